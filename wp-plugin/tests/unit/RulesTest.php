<?php
/**
 * Delivery rules: what an answer means, batching, actions, probe.
 */

use PHPUnit\Framework\TestCase;

final class RulesTest extends TestCase {

	public function statuses() {
		return array(
			array( 202, Purgebridge_Outcome::DELIVERED ),
			array( 409, Purgebridge_Outcome::DELIVERED ),
			array( 0, Purgebridge_Outcome::RETRY ),
			array( 408, Purgebridge_Outcome::RETRY ),
			array( 429, Purgebridge_Outcome::RETRY ),
			array( 500, Purgebridge_Outcome::RETRY ),
			array( 502, Purgebridge_Outcome::RETRY ),
			array( 503, Purgebridge_Outcome::RETRY ),
			array( 200, Purgebridge_Outcome::RETRY ),
			array( 301, Purgebridge_Outcome::RETRY ),
			array( 400, Purgebridge_Outcome::PERMANENT ),
			array( 401, Purgebridge_Outcome::PERMANENT ),
			array( 403, Purgebridge_Outcome::PERMANENT ),
			array( 404, Purgebridge_Outcome::PERMANENT ),
			array( 413, Purgebridge_Outcome::PERMANENT ),
		);
	}

	/**
	 * @dataProvider statuses
	 */
	public function test_classify( $status, $expected ) {
		$this->assertSame( $expected, Purgebridge_Outcome::classify( $status ) );
	}

	public function test_chunk_by_count() {
		$changes = array();
		for ( $i = 0; $i < 1201; $i++ ) {
			$changes[] = array( 'kind' => 'site', 'action' => 'purge_all', 'reason' => "r$i" );
		}
		$chunks = Purgebridge_Event_Builder::chunk( $changes );
		$this->assertSame( array( 500, 500, 201 ), array_map( 'count', $chunks ) );
		$this->assertSame( $changes, array_merge( ...$chunks ) );
	}

	public function test_chunk_by_size() {
		$big     = array( 'kind' => 'site', 'action' => 'purge_all', 'reason' => str_repeat( 'x', 1000 ) );
		$chunks  = Purgebridge_Event_Builder::chunk( array_fill( 0, 10, $big ), 500, 3500 );
		$this->assertSame( array( 3, 3, 3, 1 ), array_map( 'count', $chunks ) );
	}

	public function test_chunk_keeps_oversized_single_change() {
		$big = array( 'reason' => str_repeat( 'x', 100 ) );
		$this->assertSame( array( array( $big ), array( $big ) ), Purgebridge_Event_Builder::chunk( array( $big, $big ), 500, 10 ) );
		$this->assertSame( array(), Purgebridge_Event_Builder::chunk( array() ) );
	}

	public function test_post_actions() {
		$this->assertNull( Purgebridge_Event_Builder::post_action( false, false, 'draft' ) );
		$this->assertNull( Purgebridge_Event_Builder::post_action( false, false, null ) );
		$this->assertSame( 'publish', Purgebridge_Event_Builder::post_action( false, true, 'publish' ) );
		$this->assertSame( 'update', Purgebridge_Event_Builder::post_action( true, true, 'publish' ) );
		$this->assertSame( 'unpublish', Purgebridge_Event_Builder::post_action( true, false, 'draft' ) );
		$this->assertSame( 'unpublish', Purgebridge_Event_Builder::post_action( true, false, 'private' ) );
		$this->assertSame( 'trash', Purgebridge_Event_Builder::post_action( true, false, 'trash' ) );
		$this->assertSame( 'delete', Purgebridge_Event_Builder::post_action( true, false, null ) );
	}

	public function test_comment_actions() {
		$this->assertSame( 'approve', Purgebridge_Comments_Collector::action( 'approved', 'unapproved' ) );
		$this->assertSame( 'unapprove', Purgebridge_Comments_Collector::action( 'unapproved', 'approved' ) );
		$this->assertSame( 'spam', Purgebridge_Comments_Collector::action( 'spam', 'approved' ) );
		$this->assertSame( 'trash', Purgebridge_Comments_Collector::action( 'trash', 'approved' ) );
		$this->assertSame( 'trash', Purgebridge_Comments_Collector::action( 'delete', 'approved' ) );
		$this->assertNull( Purgebridge_Comments_Collector::action( 'spam', 'unapproved' ) );
		$this->assertNull( Purgebridge_Comments_Collector::action( 'trash', 'spam' ) );
	}

	public function test_probe_status() {
		$t = array( 2 => 10.0, 3 => 20.0 );
		$this->assertSame( 200, Purgebridge_Probe::status( 2, 0.5, $t ) );
		$this->assertSame( 200, Purgebridge_Probe::status( 2, 10.0, $t ) );
		$this->assertSame( 503, Purgebridge_Probe::status( 2, 10.01, $t ) );
		$this->assertSame( 200, Purgebridge_Probe::status( 3, 15, $t ) );
		$this->assertSame( 503, Purgebridge_Probe::status( 3, 25, $t ) );
		$this->assertSame( 404, Purgebridge_Probe::status( 4, 0, $t ) );
	}
}
