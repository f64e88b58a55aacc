<?php
/**
 * Sends batches, or queues them; drains the queue from WP-Cron.
 *
 * While the relay is known to be down (a send failed a moment ago), new
 * batches go straight to the queue so that editors do not pay the timeout on
 * every save. The "down" window starts at 30 s and doubles with every failed
 * send in a row, up to 5 minutes, so a long outage costs one timeout per
 * window, not one per minute. WP-Cron's retry run sends regardless of the
 * window: it is what notices the relay is back, and one success clears the
 * window for everyone.
 *
 * @package Purgebridge
 */

defined( 'ABSPATH' ) || exit;

/**
 * Delivery.
 */
final class Purgebridge_Dispatcher {

	/** Most queued batches one drain sends. */
	const DRAIN_LIMIT = 50;

	/**
	 * Sends one body now, queueing it when the relay does not take it.
	 *
	 * @param string $body           Encoded batch.
	 * @param bool   $skip_when_down Queue without trying while the relay is marked down.
	 * @param string $context        Timeouts to use: 'editor' (a save) or 'background' (see Purgebridge_Client).
	 * @return array Result (outcome, status, message, queued).
	 */
	public static function deliver( $body, $skip_when_down = true, $context = 'editor' ) {
		$down_until = (int) get_option( 'purgebridge_relay_down_until', 0 );
		if ( $skip_when_down && $down_until > time() ) {
			$result = array(
				'outcome' => Purgebridge_Policy::RETRY,
				'status'  => 0,
				'message' => __( 'Relay marked unreachable after a failed send; queued for retry.', 'purgebridge' ),
			);
		} else {
			$result = Purgebridge_Client::send( $body, $context );
			self::record( $result );
		}
		$result['queued'] = false;
		if ( Purgebridge_Policy::DELIVERED !== $result['outcome'] ) {
			Purgebridge_Queue::add( $body, $result, Purgebridge_Policy::PERMANENT === $result['outcome'] );
			$result['queued'] = true;
		}
		return $result;
	}

	/**
	 * Sends due queued batches, oldest first; stops at the first transient
	 * failure so a relay that is still down is not hammered.
	 *
	 * @param bool $force Ignore backoff ("Retry now").
	 * @return array{sent:int,failed:int,dead:int}
	 */
	public static function drain( $force = false ) {
		$stats = array(
			'sent'   => 0,
			'failed' => 0,
			'dead'   => 0,
		);
		if ( ! Purgebridge_Settings::configured() ) {
			return $stats;
		}
		foreach ( Purgebridge_Queue::due( self::DRAIN_LIMIT, $force ) as $row ) {
			$result = Purgebridge_Client::send( $row->body, 'background' );
			self::record( $result );
			if ( Purgebridge_Policy::DELIVERED === $result['outcome'] ) {
				Purgebridge_Queue::delete( $row->id );
				if ( 'purge_all' === $row->kind ) {
					delete_option( 'purgebridge_queue_overflow' );
				}
				++$stats['sent'];
				continue;
			}
			$dead = Purgebridge_Policy::PERMANENT === $result['outcome'];
			Purgebridge_Queue::failed( $row, $result, $dead );
			if ( $dead ) {
				++$stats['dead'];
				continue;
			}
			++$stats['failed'];
			break;
		}
		if ( $stats['failed'] || Purgebridge_Queue::count( Purgebridge_Queue::PENDING ) ) {
			Purgebridge_Queue::schedule_soon();
		}
		return $stats;
	}

	/**
	 * Remembers the last answer for the settings page, and whether the relay
	 * is down. Writes only when something changed or a minute passed, so a
	 * healthy relay costs no database write per save (202 and 409 are both
	 * "delivered" and do not alternate writes).
	 *
	 * @param array $result Result of a send.
	 */
	private static function record( array $result ) {
		$now  = time();
		$last = get_option( 'purgebridge_last_delivery', array() );
		$same = is_array( $last ) && isset( $last['outcome'], $last['status'], $last['time'] )
			&& $last['outcome'] === $result['outcome']
			&& ( Purgebridge_Policy::DELIVERED === $result['outcome'] || (int) $last['status'] === $result['status'] )
			&& $now - (int) $last['time'] < 60;
		if ( ! $same ) {
			update_option(
				'purgebridge_last_delivery',
				array(
					'time'    => $now,
					'outcome' => $result['outcome'],
					'status'  => $result['status'],
					'message' => substr( $result['message'], 0, 300 ),
				)
			);
		}
		if ( Purgebridge_Policy::PERMANENT === $result['outcome'] ) {
			update_option(
				'purgebridge_last_error',
				array(
					'time'    => $now,
					'status'  => $result['status'],
					'message' => substr( $result['message'], 0, 300 ),
				),
				false
			);
			if ( function_exists( 'error_log' ) ) {
				error_log( sprintf( 'purgebridge: relay refused a batch with HTTP %d: %s', $result['status'], substr( $result['message'], 0, 200 ) ) ); // phpcs:ignore WordPress.PHP.DevelopmentFunctions.error_log_error_log
			}
		}
		if ( Purgebridge_Policy::RETRY === $result['outcome'] ) {
			self::mark_down( $now );
		} else {
			self::mark_up();
		}
	}

	/**
	 * Another failed send in a row: the relay counts as down for a window
	 * that doubles per failure (Purgebridge_Policy::down_window()).
	 *
	 * @param int $now Unix seconds.
	 * @return int The window in seconds.
	 */
	public static function mark_down( $now ) {
		$failures = (int) get_option( 'purgebridge_relay_failures', 0 ) + 1;
		$window   = Purgebridge_Policy::down_window( $failures );
		update_option( 'purgebridge_relay_failures', $failures );
		update_option( 'purgebridge_relay_down_until', (int) $now + $window );
		return $window;
	}

	/**
	 * The relay answered (any HTTP answer that is not a retry): editors send
	 * directly again. Costs no write when the relay was not marked down.
	 */
	public static function mark_up() {
		if ( (int) get_option( 'purgebridge_relay_down_until', 0 ) ) {
			update_option( 'purgebridge_relay_down_until', 0 );
		}
		if ( (int) get_option( 'purgebridge_relay_failures', 0 ) ) {
			update_option( 'purgebridge_relay_failures', 0 );
		}
	}
}
