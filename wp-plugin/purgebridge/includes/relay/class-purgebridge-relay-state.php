<?php
/**
 * What this site knows about the relay: whether it counts as down (and
 * until when), how many sends or probes failed in a row, when it was last
 * probed, and its last answer. Kept in options, so every request (and every
 * PHP process of the site) sees the same state; one success from anywhere
 * clears the down mark for everyone.
 *
 * The only class that reads or writes these options: everything else asks
 * it (is_down(), failures(), ...).
 *
 * @package Purgebridge
 */

defined( 'ABSPATH' ) || exit;

/**
 * The relay's state as this site saw it.
 */
final class Purgebridge_Relay_State {

	/** Option: Unix seconds until which new batches are queued without trying, 0 when up. */
	const DOWN_UNTIL = 'purgebridge_relay_down_until';

	/** Option: failed sends or probes in a row. */
	const FAILURES = 'purgebridge_relay_failures';

	/** Option: Unix seconds of the last probe (or failure). */
	const LAST_PROBE = 'purgebridge_last_probe';

	/** Option: the last answer (time, outcome, status, message). */
	const LAST_DELIVERY = 'purgebridge_last_delivery';

	/** Option: the last refusal (time, status, message). */
	const LAST_ERROR = 'purgebridge_last_error';

	/**
	 * Options set up on activation, with their defaults.
	 *
	 * @return array Option => default.
	 */
	public static function defaults() {
		return array(
			self::DOWN_UNTIL => 0,
			self::FAILURES   => 0,
		);
	}

	/**
	 * Whether the relay counts as down at $now (a send or probe failed less
	 * than one probe interval ago).
	 *
	 * @param int|null $now Unix seconds, default now.
	 * @return bool
	 */
	public static function is_down( $now = null ) {
		return self::down_until() > ( null === $now ? time() : (int) $now );
	}

	/**
	 * Unix seconds until which the relay counts as down, 0 when it is up.
	 *
	 * @param int $unset What a site that never stored the state answers.
	 * @return int
	 */
	public static function down_until( $unset = 0 ) {
		return (int) get_option( self::DOWN_UNTIL, $unset );
	}

	/**
	 * When the next send may go out: now, or the end of the down window.
	 *
	 * @param int|null $now Unix seconds, default now.
	 * @return int Unix seconds.
	 */
	public static function next_try( $now = null ) {
		return max( null === $now ? time() : (int) $now, self::down_until() );
	}

	/**
	 * Failed sends or probes in a row (0: the relay answered last time).
	 *
	 * @return int
	 */
	public static function failures() {
		return (int) get_option( self::FAILURES, 0 );
	}

	/**
	 * Unix seconds of the last probe, 0 if none.
	 *
	 * @return int
	 */
	public static function last_probe() {
		return (int) get_option( self::LAST_PROBE, 0 );
	}

	/**
	 * A probe succeeded at $now.
	 *
	 * @param int $now Unix seconds.
	 */
	public static function probed( $now ) {
		update_option( self::LAST_PROBE, (int) $now, false );
	}

	/**
	 * The last answer recorded: array( time, outcome, status, message ), or
	 * an empty array.
	 *
	 * @return array
	 */
	public static function last_delivery() {
		$last = get_option( self::LAST_DELIVERY, array() );
		return is_array( $last ) ? $last : array();
	}

	/**
	 * The last refusal recorded: array( time, status, message ), or an empty
	 * array.
	 *
	 * @return array
	 */
	public static function last_error() {
		$error = get_option( self::LAST_ERROR, array() );
		return is_array( $error ) ? $error : array();
	}

	/**
	 * Forgets the last refusal (the refused batches were flushed).
	 */
	public static function forget_error() {
		delete_option( self::LAST_ERROR );
	}

	/**
	 * Remembers the last answer for the settings page, and whether the relay
	 * is down. Writes only when something changed or a minute passed, so a
	 * healthy relay costs no database write per save (202 and 409 are both
	 * "delivered" and do not alternate writes).
	 *
	 * @param array $result Result of a send or probe.
	 * @param int   $window Seconds the relay counts as down after a failure.
	 */
	public static function record( array $result, $window ) {
		$now  = time();
		$last = get_option( self::LAST_DELIVERY, array() );
		$same = is_array( $last ) && isset( $last['outcome'], $last['status'], $last['time'] )
			&& $last['outcome'] === $result['outcome']
			&& ( Purgebridge_Outcome::DELIVERED === $result['outcome'] || (int) $last['status'] === $result['status'] )
			&& $now - (int) $last['time'] < 60;
		if ( ! $same ) {
			update_option(
				self::LAST_DELIVERY,
				array(
					'time'    => $now,
					'outcome' => $result['outcome'],
					'status'  => $result['status'],
					'message' => substr( $result['message'], 0, 300 ),
				)
			);
		}
		if ( Purgebridge_Outcome::PERMANENT === $result['outcome'] ) {
			update_option(
				self::LAST_ERROR,
				array(
					'time'    => $now,
					'status'  => $result['status'],
					'message' => substr( $result['message'], 0, 300 ),
				),
				false
			);
			if ( function_exists( 'error_log' ) ) {
				error_log( sprintf( 'purgebridge: relay refused a batch with HTTP %d: %s', $result['status'], substr( $result['message'], 0, 200 ) ) );
			}
		}
		if ( Purgebridge_Outcome::RETRY === $result['outcome'] ) {
			self::mark_down( $now, $window );
		} else {
			self::mark_up();
		}
	}

	/**
	 * Another failed send or probe in a row: the relay counts as down for
	 * $window seconds, however long the outage; the count of failures is
	 * kept for the settings page.
	 *
	 * @param int $now    Unix seconds.
	 * @param int $window Seconds.
	 * @return int The window in seconds.
	 */
	public static function mark_down( $now, $window ) {
		update_option( self::FAILURES, self::failures() + 1 );
		update_option( self::DOWN_UNTIL, (int) $now + (int) $window );
		update_option( self::LAST_PROBE, (int) $now, false );
		return (int) $window;
	}

	/**
	 * The relay answered (any HTTP answer that is not a retry): editors send
	 * directly again. Costs no write when the relay was not marked down.
	 */
	public static function mark_up() {
		if ( self::down_until() ) {
			update_option( self::DOWN_UNTIL, 0 );
		}
		if ( self::failures() ) {
			update_option( self::FAILURES, 0 );
		}
	}
}
