<?php
/**
 * Delivery rules: what an answer means, batching, actions, probe.
 */

use PHPUnit\Framework\TestCase;

final class PolicyTest extends TestCase {

	public function statuses() {
		return array(
			array( 202, Purgebridge_Policy::DELIVERED ),
			array( 409, Purgebridge_Policy::DELIVERED ),
			array( 0, Purgebridge_Policy::RETRY ),
			array( 408, Purgebridge_Policy::RETRY ),
			array( 429, Purgebridge_Policy::RETRY ),
			array( 500, Purgebridge_Policy::RETRY ),
			array( 502, Purgebridge_Policy::RETRY ),
			array( 503, Purgebridge_Policy::RETRY ),
			array( 200, Purgebridge_Policy::RETRY ),
			array( 301, Purgebridge_Policy::RETRY ),
			array( 400, Purgebridge_Policy::PERMANENT ),
			array( 401, Purgebridge_Policy::PERMANENT ),
			array( 403, Purgebridge_Policy::PERMANENT ),
			array( 404, Purgebridge_Policy::PERMANENT ),
			array( 413, Purgebridge_Policy::PERMANENT ),
		);
	}

	/**
	 * @dataProvider statuses
	 */
	public function test_classify( $status, $expected ) {
		$this->assertSame( $expected, Purgebridge_Policy::classify( $status ) );
	}

	public function test_chunk_by_count() {
		$changes = array();
		for ( $i = 0; $i < 1201; $i++ ) {
			$changes[] = array( 'kind' => 'site', 'action' => 'purge_all', 'reason' => "r$i" );
		}
		$chunks = Purgebridge_Policy::chunk( $changes );
		$this->assertSame( array( 500, 500, 201 ), array_map( 'count', $chunks ) );
		$this->assertSame( $changes, array_merge( ...$chunks ) );
	}

	public function test_chunk_by_size() {
		$big     = array( 'kind' => 'site', 'action' => 'purge_all', 'reason' => str_repeat( 'x', 1000 ) );
		$chunks  = Purgebridge_Policy::chunk( array_fill( 0, 10, $big ), 500, 3500 );
		$this->assertSame( array( 3, 3, 3, 1 ), array_map( 'count', $chunks ) );
	}

	public function test_chunk_keeps_oversized_single_change() {
		$big = array( 'reason' => str_repeat( 'x', 100 ) );
		$this->assertSame( array( array( $big ), array( $big ) ), Purgebridge_Policy::chunk( array( $big, $big ), 500, 10 ) );
		$this->assertSame( array(), Purgebridge_Policy::chunk( array() ) );
	}

	public function test_post_actions() {
		$this->assertNull( Purgebridge_Policy::post_action( false, false, 'draft' ) );
		$this->assertNull( Purgebridge_Policy::post_action( false, false, null ) );
		$this->assertSame( 'publish', Purgebridge_Policy::post_action( false, true, 'publish' ) );
		$this->assertSame( 'update', Purgebridge_Policy::post_action( true, true, 'publish' ) );
		$this->assertSame( 'unpublish', Purgebridge_Policy::post_action( true, false, 'draft' ) );
		$this->assertSame( 'unpublish', Purgebridge_Policy::post_action( true, false, 'private' ) );
		$this->assertSame( 'trash', Purgebridge_Policy::post_action( true, false, 'trash' ) );
		$this->assertSame( 'delete', Purgebridge_Policy::post_action( true, false, null ) );
	}

	public function test_comment_actions() {
		$this->assertSame( 'approve', Purgebridge_Policy::comment_action( 'approved', 'unapproved' ) );
		$this->assertSame( 'unapprove', Purgebridge_Policy::comment_action( 'unapproved', 'approved' ) );
		$this->assertSame( 'spam', Purgebridge_Policy::comment_action( 'spam', 'approved' ) );
		$this->assertSame( 'trash', Purgebridge_Policy::comment_action( 'trash', 'approved' ) );
		$this->assertSame( 'trash', Purgebridge_Policy::comment_action( 'delete', 'approved' ) );
		$this->assertNull( Purgebridge_Policy::comment_action( 'spam', 'unapproved' ) );
		$this->assertNull( Purgebridge_Policy::comment_action( 'trash', 'spam' ) );
	}

	public function test_probe_status() {
		$t = array( 2 => 10.0, 3 => 20.0 );
		$this->assertSame( 200, Purgebridge_Policy::probe_status( 2, 0.5, $t ) );
		$this->assertSame( 200, Purgebridge_Policy::probe_status( 2, 10.0, $t ) );
		$this->assertSame( 503, Purgebridge_Policy::probe_status( 2, 10.01, $t ) );
		$this->assertSame( 200, Purgebridge_Policy::probe_status( 3, 15, $t ) );
		$this->assertSame( 503, Purgebridge_Policy::probe_status( 3, 25, $t ) );
		$this->assertSame( 404, Purgebridge_Policy::probe_status( 4, 0, $t ) );
	}
}
