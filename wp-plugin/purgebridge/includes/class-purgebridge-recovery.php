<?php
/**
 * Recovery after a relay outage: what starts a retry run, when a run probes,
 * how queued batches are merged, and the queue's state in plain words.
 *
 * A retry run (Purgebridge_Dispatcher::drain()) is started by any of:
 * - WP-Cron: the every-minute event, and a single event at the next probe
 *   time (at most PROBE_INTERVAL after the last failure);
 * - the end of any request whose send reached the relay, or whose save was
 *   queued while the relay was marked down (after the response is sent);
 * - the Heartbeat API while someone has wp-admin open.
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
 * Retry triggers, probe rules, batch merging and the queue's state.
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
	 * Who asked for a retry run at the end of this request, null for nobody.
	 *
	 * @var string|null
	 */
	private static $after_response = null;

	/**
	 * Registers the Heartbeat hook (called from Purgebridge_Plugin::boot()).
	 */
	public static function register() {
		add_filter( 'heartbeat_send', array( __CLASS__, 'heartbeat' ), 10, 1 );
	}

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
	public static function merge( array $rows, $max_count = Purgebridge_Policy::MAX_CHANGES, $max_bytes = Purgebridge_Policy::MAX_BYTES ) {
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
	 * Starts a retry run at the end of this request, after the response is
	 * sent where the server allows it (fastcgi_finish_request()). Called when
	 * a send reached the relay while a backlog waits, or a save was queued.
	 *
	 * @param string $trigger 'request' or 'heartbeat'.
	 */
	public static function drain_after_response( $trigger = 'request' ) {
		if ( null !== self::$after_response ) {
			return;
		}
		self::$after_response = $trigger;
		add_action( 'shutdown', array( __CLASS__, 'after_response' ), 1000 );
	}

	/**
	 * Shutdown: finishes the response where the server allows it, then runs
	 * the retry run drain_after_response() asked for.
	 */
	public static function after_response() {
		$trigger              = self::$after_response;
		self::$after_response = null;
		if ( null === $trigger ) {
			return;
		}
		if ( function_exists( 'fastcgi_finish_request' ) && 'cli' !== PHP_SAPI ) {
			fastcgi_finish_request();
		}
		Purgebridge_Dispatcher::drain( false, $trigger );
	}

	/**
	 * Heartbeat tick from an open wp-admin page (heartbeat_send runs on every
	 * logged-in tick, heartbeat_received only when a script sent data): when
	 * changes wait, retry after this response; the run decides whether a
	 * probe is due.
	 *
	 * @param array $response Heartbeat response.
	 * @return array Response, saying that changes wait, for scripts that care.
	 */
	public static function heartbeat( $response ) {
		if ( ! current_user_can( 'edit_posts' ) || ! Purgebridge_Queue::waiting() ) {
			return $response;
		}
		self::drain_after_response( 'heartbeat' );
		$response['purgebridge'] = array( 'waiting' => true );
		return $response;
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
		$failures = (int) get_option( 'purgebridge_relay_failures', 0 );
		$next     = 0;
		if ( $counts['pending'] ) {
			$next = $failures > 0 ? max( $now, (int) get_option( 'purgebridge_relay_down_until', 0 ) ) : $now;
		}
		$error = '';
		if ( $failures > 0 || $counts['pending'] ) {
			$last  = get_option( 'purgebridge_last_delivery', array() );
			$error = is_array( $last ) && isset( $last['outcome'] ) && Purgebridge_Policy::DELIVERED !== $last['outcome'] ? (string) $last['message'] : '';
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

	/**
	 * The state in plain words, for the settings page.
	 *
	 * @param array $state From state().
	 * @return string
	 */
	public static function describe( array $state ) {
		$format = get_option( 'time_format', 'H:i' );
		if ( ! $state['pending'] ) {
			$text = __( 'No changes wait to be sent.', 'purgebridge' );
			$last = $state['last_recovery'];
			if ( isset( $last['time'], $last['batches'], $last['requests'] ) ) {
				$text .= ' ' . sprintf(
					/* translators: 1: batches, 2: changes, 3: requests, 4: time ago, 5: how long they had waited */
					__( 'The last backlog (%1$d batches, %2$d changes) went out in %3$d request(s) %4$s ago, after waiting %5$s.', 'purgebridge' ),
					(int) $last['batches'],
					(int) $last['changes'],
					(int) $last['requests'],
					human_time_diff( (int) $last['time'] ),
					human_time_diff( 0, (int) $last['waited'] )
				);
			}
			return $text;
		}
		$text = sprintf(
			/* translators: 1: changes, 2: batches, 3: clock time, 4: time ago */
			__( '%1$d changes (%2$d batches) wait to be sent to the relay, the oldest since %3$s (%4$s ago).', 'purgebridge' ),
			(int) $state['changes'],
			(int) $state['pending'],
			wp_date( $format, (int) $state['oldest'] ),
			human_time_diff( (int) $state['oldest'] )
		);
		if ( $state['relay_down'] ) {
			$text .= ' ' . sprintf(
				/* translators: 1: error, 2: clock time, 3: time from now, 4: probe interval in seconds */
				__( 'The relay did not answer (%1$s). Next try at %2$s (in %3$s), then every %4$d seconds until it answers; everything waiting is then sent at once.', 'purgebridge' ),
				'' !== $state['last_error'] ? $state['last_error'] : __( 'no answer', 'purgebridge' ),
				wp_date( $format, (int) $state['next_try'] ),
				human_time_diff( time(), max( time() + 1, (int) $state['next_try'] ) ),
				self::interval()
			);
		} else {
			$text .= ' ' . __( 'Next try: with the next WP-Cron run, save or wp-admin Heartbeat tick.', 'purgebridge' );
		}
		if ( defined( 'DISABLE_WP_CRON' ) && DISABLE_WP_CRON ) {
			$text .= ' ' . __( 'WP-Cron is disabled (DISABLE_WP_CRON): make sure a system cron job runs wp-cron.php every minute.', 'purgebridge' );
		}
		return $text;
	}
}
