<?php
/**
 * The change buffer without WordPress: collectors are instances that share
 * one buffer, which owns the site purge threshold, pausing and the order in
 * which changes are built.
 */

use PHPUnit\Framework\TestCase;

if ( ! function_exists( 'add_action' ) ) {
	/**
	 * Stand-in: the buffer registers its shutdown handler.
	 */
	function add_action() {
		return true;
	}
}

/**
 * A collector holding plain records, one change each.
 */
final class Purgebridge_Test_Collector extends Purgebridge_Collector {

	/** @var array */
	public $records = array();

	public function register() {
	}

	public function record( $id ) {
		$key = Purgebridge_Change_Buffer::key( $id );
		if ( $this->buffer->accepting( isset( $this->records[ $key ] ) ) ) {
			$this->records[ $key ] = $id;
			$this->buffer->arm();
		}
	}

	public function pending() {
		return count( $this->records );
	}

	public function changes() {
		$changes = array();
		foreach ( $this->records as $id ) {
			$changes[] = array( 'kind' => 'test', 'id' => $id, 'blog' => 1 );
		}
		return $changes;
	}

	public function drop_blog( $blog ) {
		$this->records = Purgebridge_Change_Buffer::without_blog( $this->records, $blog );
	}

	public function clear() {
		$this->records = array();
	}
}

final class ChangeBufferTest extends TestCase {

	public function test_changes_come_in_collector_order_then_site_purges() {
		$buffer = new Purgebridge_Change_Buffer();
		$first  = $buffer->add( new Purgebridge_Test_Collector( $buffer ) );
		$second = $buffer->add( new Purgebridge_Test_Collector( $buffer ) );
		$buffer->site( 'switch_theme' );
		$second->record( 2 );
		$first->record( 1 );
		$this->assertSame( 3, $buffer->pending() );
		$changes = $buffer->changes();
		$this->assertSame( array( 1, 2 ), array( $changes[0]['id'], $changes[1]['id'] ) );
		$this->assertSame( 'purge_all', $changes[2]['action'] );
		$this->assertSame( 1, $changes[2]['blog'] );
		$buffer->clear();
		$this->assertSame( 0, $buffer->pending() );
		$this->assertSame( array(), $buffer->changes() );
	}

	public function test_over_the_threshold_a_blog_gets_one_site_purge() {
		$buffer    = new Purgebridge_Change_Buffer();
		$collector = $buffer->add( new Purgebridge_Test_Collector( $buffer ) );
		for ( $i = 1; $i <= Purgebridge_Change_Buffer::SITE_PURGE_THRESHOLD + 5; $i++ ) {
			$collector->record( $i );
		}
		$this->assertSame( 0, $buffer->pending(), 'the records were dropped' );
		$changes = $buffer->changes();
		$this->assertCount( 1, $changes );
		$this->assertSame( 'large_change_set', $changes[0]['reason'] );
	}

	public function test_a_known_record_does_not_count_again() {
		$buffer    = new Purgebridge_Change_Buffer();
		$collector = $buffer->add( new Purgebridge_Test_Collector( $buffer ) );
		for ( $i = 1; $i <= Purgebridge_Change_Buffer::SITE_PURGE_THRESHOLD; $i++ ) {
			$collector->record( $i );
		}
		$collector->record( 1 );
		$this->assertSame( Purgebridge_Change_Buffer::SITE_PURGE_THRESHOLD, $buffer->pending() );
	}

	public function test_nothing_is_recorded_while_paused() {
		$buffer    = new Purgebridge_Change_Buffer();
		$collector = $buffer->add( new Purgebridge_Test_Collector( $buffer ) );
		$buffer->pause();
		$collector->record( 1 );
		$buffer->add_change( array( 'kind' => 'urls' ) );
		$this->assertSame( 0, $buffer->pending() );
		$buffer->resume();
		$collector->record( 1 );
		$this->assertSame( 1, $buffer->pending() );
	}

	public function test_collectors_are_instances_with_nothing_shared() {
		$one = new Purgebridge_Change_Buffer();
		$two = new Purgebridge_Change_Buffer();
		$one->add( new Purgebridge_Test_Collector( $one ) )->record( 1 );
		$this->assertSame( 1, $one->pending() );
		$this->assertSame( 0, $two->pending() );
	}
}
