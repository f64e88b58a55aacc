<?php
/**
 * Sends batches, or queues them; drains the queue from WP-Cron.
 *
 * While the relay is known to be down (a send failed a moment ago), new
 * batches go straight to the queue so that editors do not pay the timeout on
 * every save; the cron drain is what notices the relay is back.
 *
 * @package Purgebridge
 */

defined( 'ABSPATH' ) || exit;

/**
 * Delivery.
 */
final class Purgebridge_Dispatcher {

	/** Seconds new batches skip the network after a failed send. */
	const DOWN_FOR = 30;

	/** Most queued batches one drain sends. */
	const DRAIN_LIMIT = 50;

	/**
	 * Sends one body now, queueing it when the relay does not take it.
	 *
	 * @param string $body Encoded batch.
	 * @param bool   $skip_when_down Queue without trying while the relay is marked down.
	 * @return array Result (outcome, status, message, queued).
	 */
	public static function deliver( $body, $skip_when_down = true ) {
		$down_until = (int) get_option( 'purgebridge_relay_down_until', 0 );
		if ( $skip_when_down && $down_until > time() ) {
			$result = array(
				'outcome' => Purgebridge_Policy::RETRY,
				'status'  => 0,
				'message' => __( 'Relay marked unreachable after a failed send; queued for retry.', 'purgebridge' ),
			);
		} else {
			$result = Purgebridge_Client::send( $body );
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
			$result = Purgebridge_Client::send( $row->body );
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
	 * healthy relay costs no database write per save.
	 *
	 * @param array $result Result of a send.
	 */
	private static function record( array $result ) {
		$now  = time();
		$last = get_option( 'purgebridge_last_delivery', array() );
		$same = is_array( $last ) && isset( $last['outcome'], $last['status'], $last['time'] )
			&& $last['outcome'] === $result['outcome'] && (int) $last['status'] === $result['status']
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
		$down = Purgebridge_Policy::RETRY === $result['outcome'];
		if ( $down ) {
			update_option( 'purgebridge_relay_down_until', $now + self::DOWN_FOR );
		} elseif ( (int) get_option( 'purgebridge_relay_down_until', 0 ) ) {
			update_option( 'purgebridge_relay_down_until', 0 );
		}
	}
}
