<?php
/**
 * Sends batches, or queues them; runs the retry queue, and starts retry runs.
 *
 * While the relay is known to be down (Purgebridge_Relay_State: a send or
 * probe failed less than Purgebridge_Recovery::interval() seconds ago), new
 * batches go straight to the queue so that editors do not pay the timeout on
 * every save; a retry run after the response then probes
 * (Purgebridge_Recovery::may_probe()). One success from anywhere clears the
 * mark for everyone.
 *
 * A retry run (drain()) is started by any of:
 * - WP-Cron: the every-minute event, and a single event at the next probe
 *   time (at most one probe interval after the last failure);
 * - the end of any request whose send reached the relay, or whose save was
 *   queued while the relay was marked down (after the response is sent);
 * - the Heartbeat API while someone has wp-admin open.
 *
 * Depends on Purgebridge_Recovery (the rules) and Purgebridge_Relay_State;
 * neither calls back.
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
	 * Sends one body now, queueing it when the relay does not take it.
	 *
	 * @param string $body           Encoded batch.
	 * @param bool   $skip_when_down Queue without trying while the relay is marked down.
	 * @param string $context        Timeouts to use: 'editor' (a save) or 'background' (see Purgebridge_Client).
	 * @return array Result (outcome, status, message, queued).
	 */
	public static function deliver( $body, $skip_when_down = true, $context = 'editor' ) {
		$tried = ! ( $skip_when_down && Purgebridge_Relay_State::is_down() );
		if ( ! $tried ) {
			$result = array(
				'outcome' => Purgebridge_Outcome::RETRY,
				'status'  => 0,
				'message' => __( 'Relay marked unreachable after a failed send; queued for retry.', 'purgebridge' ),
			);
		} else {
			$result = Purgebridge_Client::send( $body, $context );
			self::record( $result );
		}
		$result['queued'] = false;
		if ( Purgebridge_Outcome::DELIVERED !== $result['outcome'] ) {
			Purgebridge_Queue::add( $body, $result, Purgebridge_Outcome::PERMANENT === $result['outcome'], $tried );
			$result['queued'] = true;
		}
		if ( Purgebridge_Queue::waiting() ) {
			if ( Purgebridge_Outcome::DELIVERED === $result['outcome'] || ! $tried ) {
				// The relay just answered, or a probe may be due: retry once the editor has the response.
				self::drain_after_response( 'request' );
			}
			if ( Purgebridge_Outcome::RETRY === $result['outcome'] ) {
				Purgebridge_Queue::schedule_at( Purgebridge_Relay_State::next_try() );
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
		$decision = Purgebridge_Recovery::may_probe( $trigger, Purgebridge_Relay_State::failures(), Purgebridge_Relay_State::last_probe(), $now );
		if ( 'send' === $decision ) {
			return true;
		}
		if ( 'wait' === $decision || self::$probed || ! Purgebridge_Queue::pending( 1 ) ) {
			return false;
		}
		self::$probed    = true;
		$stats['probed'] = 1;
		$health          = Purgebridge_Client::health();
		if ( Purgebridge_Outcome::DELIVERED === $health['outcome'] ) {
			Purgebridge_Relay_State::probed( $now );
			Purgebridge_Relay_State::mark_up();
			return true;
		}
		self::record( $health );
		Purgebridge_Queue::schedule_at( Purgebridge_Relay_State::down_until( $now ) );
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
				$batch             = json_decode( $row->body, true );
				$by_id[ $row->id ] = array(
					'row'     => $row,
					'site'    => isset( $batch['site'] ) ? (string) $batch['site'] : '',
					'changes' => isset( $batch['changes'] ) && is_array( $batch['changes'] ) ? $batch['changes'] : array(),
				);
				$plan[]            = array(
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
		if ( Purgebridge_Outcome::DELIVERED === $result['outcome'] ) {
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
		if ( Purgebridge_Outcome::PERMANENT === $result['outcome'] && count( $group ) > 1 && in_array( $result['status'], array( 400, 413 ), true ) ) {
			foreach ( $group as $id => $entry ) {
				if ( ! self::send_group( array( $id => $entry ), $stats, $summary ) ) {
					return false;
				}
			}
			return true;
		}
		$dead = Purgebridge_Outcome::PERMANENT === $result['outcome'];
		Purgebridge_Queue::failed( $ids, $result, $dead );
		if ( $dead ) {
			$stats['dead'] += count( $ids );
			return true;
		}
		$stats['failed'] += count( $ids );
		Purgebridge_Queue::schedule_at( Purgebridge_Relay_State::down_until( time() ) );
		return false;
	}

	/**
	 * Records a send's or probe's answer in the relay state; a failure marks
	 * the relay down for one probe interval.
	 *
	 * @param array $result Result of a send.
	 */
	private static function record( array $result ) {
		Purgebridge_Relay_State::record( $result, Purgebridge_Recovery::interval() );
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
		self::drain( false, $trigger );
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
}
