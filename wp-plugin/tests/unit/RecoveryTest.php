<?php
/**
 * Recovery rules without WordPress: how queued batches are merged, when a
 * retry run probes, and the bound on the probe interval.
 */

use PHPUnit\Framework\TestCase;

final class RecoveryTest extends TestCase {

	private static function row( $id, $changes, $bytes = 100, $site = 'https://a.test/' ) {
		return array(
			'id'      => $id,
			'site'    => $site,
			'changes' => $changes,
			'bytes'   => $bytes,
		);
	}

	public function test_everything_fits_one_request() {
		$rows = array();
		for ( $i = 1; $i <= 20; $i++ ) {
			$rows[] = self::row( $i, 3 );
		}
		$this->assertSame( array( range( 1, 20 ) ), Purgebridge_Recovery::merge( $rows ) );
	}

	public function test_change_count_limit_starts_a_new_request_in_order() {
		$rows = array( self::row( 1, 300 ), self::row( 2, 200 ), self::row( 3, 1 ), self::row( 4, 499 ), self::row( 5, 1 ) );
		$this->assertSame( array( array( 1, 2 ), array( 3, 4 ), array( 5 ) ), Purgebridge_Recovery::merge( $rows, 500, 1000000 ) );
	}

	public function test_byte_limit_starts_a_new_request() {
		$rows = array( self::row( 1, 1, 600 ), self::row( 2, 1, 400 ), self::row( 3, 1, 1 ) );
		$this->assertSame( array( array( 1, 2 ), array( 3 ) ), Purgebridge_Recovery::merge( $rows, 500, 1000 ) );
	}

	public function test_a_row_over_the_limits_goes_alone_and_is_never_split() {
		$rows = array( self::row( 1, 1 ), self::row( 2, 900 ), self::row( 3, 1 ) );
		$this->assertSame( array( array( 1 ), array( 2 ), array( 3 ) ), Purgebridge_Recovery::merge( $rows, 500, 1000000 ) );
	}

	public function test_sites_are_never_mixed() {
		$rows = array( self::row( 1, 1, 10, 'https://a.test/' ), self::row( 2, 1, 10, 'https://b.test/' ), self::row( 3, 1, 10, 'https://b.test/' ) );
		$this->assertSame( array( array( 1 ), array( 2, 3 ) ), Purgebridge_Recovery::merge( $rows ) );
	}

	public function test_nothing_to_merge() {
		$this->assertSame( array(), Purgebridge_Recovery::merge( array() ) );
	}

	public function test_relay_up_means_send_without_probe() {
		$this->assertSame( 'send', Purgebridge_Recovery::may_probe( 'cron', 0, 0, 1000 ) );
		$this->assertSame( 'send', Purgebridge_Recovery::may_probe( 'heartbeat', 0, 999, 1000 ) );
	}

	public function test_cron_always_probes_requests_are_rate_limited() {
		$gap = Purgebridge_Recovery::PROBE_GAP;
		$this->assertSame( 'probe', Purgebridge_Recovery::may_probe( 'cron', 120, 999, 1000 ) );
		$this->assertSame( 'wait', Purgebridge_Recovery::may_probe( 'request', 3, 1000 - $gap + 1, 1000 ) );
		$this->assertSame( 'wait', Purgebridge_Recovery::may_probe( 'heartbeat', 3, 1000, 1000 ) );
		$this->assertSame( 'probe', Purgebridge_Recovery::may_probe( 'heartbeat', 3, 1000 - $gap, 1000 ) );
		$this->assertSame( 'probe', Purgebridge_Recovery::may_probe( 'request', 1, 0, 1000 ) );
	}

	public function test_probe_interval_is_bounded_however_long_the_outage() {
		$this->assertSame( 30, Purgebridge_Recovery::probe_interval() );
		$this->assertSame( 60, Purgebridge_Recovery::probe_interval( 3600 ) );
		$this->assertSame( 5, Purgebridge_Recovery::probe_interval( 0 ) );
		$this->assertSame( 45, Purgebridge_Recovery::probe_interval( 45 ) );
		$this->assertLessThanOrEqual( 60, Purgebridge_Recovery::PROBE_INTERVAL_MAX );
	}
}
