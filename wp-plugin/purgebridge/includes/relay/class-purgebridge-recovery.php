<?php
/**
 * Recovery after a relay outage: when a retry run probes, how queued batches
 * are merged, and the queue's state (Purgebridge_Dispatcher starts the runs
 * and follows these rules; nothing here calls it).
 *
 * While the relay is unreachable a run costs one cheap GET /healthz (the
 * probe), never one send per batch; once the relay answers, everything queued
 * goes out oldest first, merged into as few requests as the relay accepts.
 * There is no per-batch backoff: the probe interval is the only wait.
 *
 * The pure rules (merge(), probe_interval(), may_probe()) make no WordPress
 * calls, so the unit suite pins them down without WordPress.
 *
 * @package Purgebridge
 */

defined( 'ABSPATH' ) || exit;

/**
 * Probe rules, batch merging and the queue's state.
 */
final class Purgebridge_Recovery {

	/**
	 * Seconds between probes while the relay is unreachable, and how long
	 * saves go straight to the queue after a failure. Constant however long
	 * the outage: a site whose relay was down for an hour recovers as fast as
	 * one whose relay was down for a minute.
	 */
	const PROBE_INTERVAL = 30;

	/** Longest probe interval the purgebridge_probe_interval filter may set. */
	const PROBE_INTERVAL_MAX = 60;

	/** Shortest probe interval the filter may set. */
	const PROBE_INTERVAL_MIN = 5;

	/**
	 * Fewest seconds between two probes started by requests (saves,
	 * Heartbeat). WP-Cron's own runs always probe once.
	 */
	const PROBE_GAP = 5;

	/** Seconds one retry run may spend sending before it hands over to the next. */
	const RUN_BUDGET = 20;

	/**
	 * The probe interval after the purgebridge_probe_interval filter, clamped
	 * to PROBE_INTERVAL_MIN..PROBE_INTERVAL_MAX seconds.
	 *
	 * @param int|float $filtered Value the filter returned.
	 * @return int Seconds.
	 */
	public static function probe_interval( $filtered = self::PROBE_INTERVAL ) {
		return (int) max( self::PROBE_INTERVAL_MIN, min( self::PROBE_INTERVAL_MAX, (int) $filtered ) );
	}

	/**
	 * The configured probe interval.
	 *
	 * @return int Seconds.
	 */
	public static function interval() {
		/**
		 * Filters the seconds between probes of an unreachable relay (5..60).
		 *
		 * @param int $seconds Default 30.
		 */
		return self::probe_interval( apply_filters( 'purgebridge_probe_interval', self::PROBE_INTERVAL ) );
	}

	/**
	 * Whether a retry run started by $trigger probes the relay first.
	 *
	 * Runs after a reachable answer need no probe (failures is 0). WP-Cron's
	 * runs are already spaced by their schedule and probe every time; runs
	 * started by requests (saves, Heartbeat) probe at most once per
	 * PROBE_GAP seconds, so a busy wp-admin does not hammer a dead relay.
	 *
	 * @param string $trigger    'cron', 'request' or 'heartbeat'.
	 * @param int    $failures   Failed sends or probes in a row.
	 * @param int    $last_probe Unix seconds of the last probe, 0 if none.
	 * @param int    $now        Unix seconds.
	 * @return string 'send' (relay counts as up), 'probe', or 'wait' (too soon to probe again).
	 */
	public static function may_probe( $trigger, $failures, $last_probe, $now ) {
		if ( (int) $failures <= 0 ) {
			return 'send';
		}
		if ( 'cron' === $trigger || (int) $now - (int) $last_probe >= self::PROBE_GAP ) {
			return 'probe';
		}
		return 'wait';
	}

	/**
	 * Groups queued rows, oldest first, into as few requests as the relay
	 * accepts: consecutive rows of the same site while the changes and bytes
	 * stay within the limits. A row is never split (each row already fits).
	 *
	 * @param array $rows      Oldest first; each array( 'id' => int, 'site' => string, 'changes' => int, 'bytes' => int ).
	 * @param int   $max_count Most changes per request.
	 * @param int   $max_bytes Most bytes of changes per request.
	 * @return array<int,int[]> Row ids per request, in sending order.
	 */
	public static function merge( array $rows, $max_count = Purgebridge_Event_Builder::MAX_CHANGES, $max_bytes = Purgebridge_Event_Builder::MAX_BYTES ) {
		$groups = array();
		$ids    = array();
		$site   = null;
		$count  = 0;
		$bytes  = 0;
		foreach ( $rows as $row ) {
			$fits = $ids && $row['site'] === $site && $count + $row['changes'] <= $max_count && $bytes + $row['bytes'] <= $max_bytes;
			if ( $ids && ! $fits ) {
				$groups[] = $ids;
				$ids      = array();
				$count    = 0;
				$bytes    = 0;
			}
			$ids[]  = (int) $row['id'];
			$site   = $row['site'];
			$count += (int) $row['changes'];
			$bytes += (int) $row['bytes'];
		}
		if ( $ids ) {
			$groups[] = $ids;
		}
		return $groups;
	}

	/**
	 * The retry queue's state: the one function the settings page and Site
	 * Health read.
	 *
	 * @return array{pending:int,changes:int,dead:int,oldest:int,oldest_age:int,next_try:int,relay_down:bool,failures:int,last_error:string,last_recovery:array}
	 *         oldest and next_try are Unix seconds (0 when nothing waits);
	 *         next_try is when the next retry run may send (it starts with
	 *         the next WP-Cron run, save or Heartbeat tick at or after it).
	 */
	public static function state() {
		$now      = time();
		$counts   = Purgebridge_Queue::summary();
		$failures = Purgebridge_Relay_State::failures();
		$next     = 0;
		if ( $counts['pending'] ) {
			$next = $failures > 0 ? Purgebridge_Relay_State::next_try( $now ) : $now;
		}
		$error = '';
		if ( $failures > 0 || $counts['pending'] ) {
			$last  = Purgebridge_Relay_State::last_delivery();
			$error = isset( $last['outcome'] ) && Purgebridge_Outcome::DELIVERED !== $last['outcome'] ? (string) $last['message'] : '';
		}
		$recovery = get_option( 'purgebridge_last_recovery', array() );
		return array(
			'pending'       => $counts['pending'],
			'changes'       => $counts['changes'],
			'dead'          => $counts['dead'],
			'oldest'        => $counts['oldest'],
			'oldest_age'    => $counts['oldest'] ? max( 0, $now - $counts['oldest'] ) : 0,
			'next_try'      => $next,
			'relay_down'    => $failures > 0,
			'failures'      => $failures,
			'last_error'    => $error,
			'last_recovery' => is_array( $recovery ) ? $recovery : array(),
		);
	}
}
