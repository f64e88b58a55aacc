<?php
/**
 * Sends batches, or queues them; runs the retry queue.
 *
 * While the relay is known to be down (a send or probe failed less than
 * Purgebridge_Recovery::interval() seconds ago), new batches go straight to
 * the queue so that editors do not pay the timeout on every save; a retry
 * run after the response then probes (Purgebridge_Recovery::may_probe()).
 * One success from anywhere clears the mark for everyone.
 *
 * @package Purgebridge
 */

defined( 'ABSPATH' ) || exit;

/**
 * Delivery.
 */
final class Purgebridge_Dispatcher {

	/** Rows read per round of a retry run. */
	const DRAIN_LIMIT = 200;

	/**
	 * Whether this PHP request already probed (WP-Cron may run both retry
	 * events in one request: one probe decides for both).
	 *
	 * @var bool
	 */
	private static $probed = false;

	/**
	 * Sends one body now, queueing it when the relay does not take it.
	 *
	 * @param string $body           Encoded batch.
	 * @param bool   $skip_when_down Queue without trying while the relay is marked down.
	 * @param string $context        Timeouts to use: 'editor' (a save) or 'background' (see Purgebridge_Client).
	 * @return array Result (outcome, status, message, queued).
	 */
	public static function deliver( $body, $skip_when_down = true, $context = 'editor' ) {
		$tried = ! ( $skip_when_down && (int) get_option( 'purgebridge_relay_down_until', 0 ) > time() );
		if ( ! $tried ) {
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
			Purgebridge_Queue::add( $body, $result, Purgebridge_Policy::PERMANENT === $result['outcome'], $tried );
			$result['queued'] = true;
		}
		if ( Purgebridge_Queue::waiting() ) {
			if ( Purgebridge_Policy::DELIVERED === $result['outcome'] || ! $tried ) {
				// The relay just answered, or a probe may be due: retry once the editor has the response.
				Purgebridge_Recovery::drain_after_response( 'request' );
			}
			if ( Purgebridge_Policy::RETRY === $result['outcome'] ) {
				Purgebridge_Queue::schedule_at( max( time(), (int) get_option( 'purgebridge_relay_down_until', 0 ) ) );
			}
		}
		return $result;
	}

	/**
	 * A retry run: sends every pending batch, oldest first, merged into as
	 * few requests as the relay accepts. When the relay is marked down it
	 * first probes GET /healthz once, and stops there if that fails: one cheap
	 * request per run, however many batches wait. One run at a time
	 * (Purgebridge_Queue::lock()); a run that uses up RUN_BUDGET seconds asks
	 * WP-Cron for the next one right away.
	 *
	 * @param bool   $force   Send without probing ("Retry now").
	 * @param string $trigger 'cron', 'request' or 'heartbeat' (Purgebridge_Recovery::may_probe()).
	 * @return array{sent:int,failed:int,dead:int,requests:int,probed:int,busy:int}
	 */
	public static function drain( $force = false, $trigger = 'cron' ) {
		$stats = array(
			'sent'     => 0,
			'failed'   => 0,
			'dead'     => 0,
			'requests' => 0,
			'probed'   => 0,
			'busy'     => 0,
		);
		if ( ! Purgebridge_Settings::configured() ) {
			return $stats;
		}
		$token = Purgebridge_Queue::lock( Purgebridge_Recovery::RUN_BUDGET + 40 );
		if ( null === $token ) {
			$stats['busy'] = 1;
			return $stats;
		}
		try {
			if ( ! $force && ! self::reachable( $trigger, $stats ) ) {
				return $stats;
			}
			self::send_pending( $stats );
		} finally {
			Purgebridge_Queue::unlock( $token );
		}
		return $stats;
	}

	/**
	 * Whether the run may send: yes when the relay is not marked down, else
	 * after a successful probe. A failed probe marks the relay down again and
	 * asks WP-Cron for the next run at the next probe time.
	 *
	 * @param string $trigger Who started the run.
	 * @param array  $stats   Run counters, by reference.
	 * @return bool
	 */
	private static function reachable( $trigger, array &$stats ) {
		$now      = time();
		$decision = Purgebridge_Recovery::may_probe( $trigger, (int) get_option( 'purgebridge_relay_failures', 0 ), (int) get_option( 'purgebridge_last_probe', 0 ), $now );
		if ( 'send' === $decision ) {
			return true;
		}
		if ( 'wait' === $decision || self::$probed || ! Purgebridge_Queue::pending( 1 ) ) {
			return false;
		}
		self::$probed    = true;
		$stats['probed'] = 1;
		$health          = Purgebridge_Client::health();
		if ( Purgebridge_Policy::DELIVERED === $health['outcome'] ) {
			update_option( 'purgebridge_last_probe', $now, false );
			self::mark_up();
			return true;
		}
		self::record( $health );
		Purgebridge_Queue::schedule_at( (int) get_option( 'purgebridge_relay_down_until', $now ) );
		return false;
	}

	/**
	 * Sends pending rows in merged requests until the queue is empty, the
	 * relay fails, or the run's time is up.
	 *
	 * @param array $stats Run counters, by reference.
	 */
	private static function send_pending( array &$stats ) {
		$deadline = microtime( true ) + Purgebridge_Recovery::RUN_BUDGET;
		$summary  = array(
			'batches'  => 0,
			'changes'  => 0,
			'requests' => 0,
			'oldest'   => 0,
			'sends'    => 0,
		);
		$stop     = false;
		while ( ! $stop ) {
			$rows = Purgebridge_Queue::pending( self::DRAIN_LIMIT );
			if ( ! $rows ) {
				break;
			}
			$by_id = array();
			$plan  = array();
			foreach ( $rows as $row ) {
				$batch            = json_decode( $row->body, true );
				$by_id[ $row->id ] = array(
					'row'     => $row,
					'site'    => isset( $batch['site'] ) ? (string) $batch['site'] : '',
					'changes' => isset( $batch['changes'] ) && is_array( $batch['changes'] ) ? $batch['changes'] : array(),
				);
				$plan[]           = array(
					'id'      => (int) $row->id,
					'site'    => $by_id[ $row->id ]['site'],
					'changes' => count( $by_id[ $row->id ]['changes'] ),
					'bytes'   => strlen( $row->body ),
				);
			}
			foreach ( Purgebridge_Recovery::merge( $plan ) as $ids ) {
				if ( microtime( true ) > $deadline ) {
					Purgebridge_Queue::schedule_at( time() );
					$stop = true;
					break;
				}
				$group = array_intersect_key( $by_id, array_flip( $ids ) );
				if ( ! self::send_group( $group, $stats, $summary ) ) {
					$stop = true;
					break;
				}
			}
			if ( count( $rows ) < self::DRAIN_LIMIT ) {
				break;
			}
		}
		if ( ! Purgebridge_Queue::pending( 1 ) ) {
			Purgebridge_Queue::mark_waiting( false );
		}
		if ( $summary['batches'] ) {
			$summary['time']   = time();
			$summary['waited'] = max( 0, $summary['time'] - $summary['oldest'] );
			update_option( 'purgebridge_last_recovery', $summary, false );
		}
	}

	/**
	 * Sends rows as one request (one row: its own body; several: their
	 * changes merged into one body). A merged request refused for its content
	 * (400 schema, 413 size) is split, so only the rows at fault end up dead;
	 * other refusals (401 signature, 403 site) hold for every row alike.
	 *
	 * @param array $group   Row id => array( row, site, changes ), oldest first.
	 * @param array $stats   Run counters, by reference.
	 * @param array $summary Backlog summary, by reference.
	 * @return bool False when the relay failed (the run stops).
	 */
	private static function send_group( array $group, array &$stats, array &$summary ) {
		$first = reset( $group );
		if ( 1 === count( $group ) ) {
			$body = $first['row']->body;
		} else {
			$changes = array();
			foreach ( $group as $entry ) {
				$changes = array_merge( $changes, $entry['changes'] );
			}
			$body = Purgebridge_Event_Builder::encode( $first['site'], $changes, time() );
		}
		$result = Purgebridge_Client::send( $body, 'background' );
		self::record( $result );
		++$stats['requests'];
		$ids = array_map( 'intval', array_keys( $group ) );
		if ( Purgebridge_Policy::DELIVERED === $result['outcome'] ) {
			Purgebridge_Queue::delete( $ids );
			++$summary['requests'];
			foreach ( $group as $entry ) {
				++$stats['sent'];
				++$summary['batches'];
				$summary['changes'] += count( $entry['changes'] );
				$summary['oldest']   = $summary['oldest'] ? min( $summary['oldest'], (int) $entry['row']->created_at ) : (int) $entry['row']->created_at;
				$summary['sends']    = max( $summary['sends'], (int) $entry['row']->attempts + 1 );
				if ( 'purge_all' === $entry['row']->kind ) {
					delete_option( 'purgebridge_queue_overflow' );
				}
			}
			return true;
		}
		if ( Purgebridge_Policy::PERMANENT === $result['outcome'] && count( $group ) > 1 && in_array( $result['status'], array( 400, 413 ), true ) ) {
			foreach ( $group as $id => $entry ) {
				if ( ! self::send_group( array( $id => $entry ), $stats, $summary ) ) {
					return false;
				}
			}
			return true;
		}
		$dead = Purgebridge_Policy::PERMANENT === $result['outcome'];
		Purgebridge_Queue::failed( $ids, $result, $dead );
		if ( $dead ) {
			$stats['dead'] += count( $ids );
			return true;
		}
		$stats['failed'] += count( $ids );
		Purgebridge_Queue::schedule_at( (int) get_option( 'purgebridge_relay_down_until', time() ) );
		return false;
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
	 * Another failed send or probe in a row: the relay counts as down for one
	 * probe interval (Purgebridge_Recovery::interval()), however long the
	 * outage; the count of failures is kept for the settings page.
	 *
	 * @param int $now Unix seconds.
	 * @return int The window in seconds.
	 */
	public static function mark_down( $now ) {
		$failures = (int) get_option( 'purgebridge_relay_failures', 0 ) + 1;
		$window   = Purgebridge_Recovery::interval();
		update_option( 'purgebridge_relay_failures', $failures );
		update_option( 'purgebridge_relay_down_until', (int) $now + $window );
		update_option( 'purgebridge_last_probe', (int) $now, false );
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
