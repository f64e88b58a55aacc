<?php
/**
 * Retry queue and dispatcher against the real WordPress database. The relay
 * is replaced by a pre_http_request filter answering what each test needs,
 * and recording what was sent.
 */

use PHPUnit\Framework\TestCase;

final class QueueTest extends TestCase {

	/** @var array Answers to give, in order: int status or 'refused'. */
	private $answers = array();

	/** @var array Answers to GET /healthz probes, in order: int status or 'refused' (200 when empty). */
	private $health = array();

	/** @var int Probes seen. */
	private $probes = 0;

	/** @var array Requests seen: url, headers, body. */
	private $sent = array();

	/** @var callable */
	private $filter;

	protected function setUp(): void {
		global $wpdb;
		$wpdb->query( 'TRUNCATE TABLE ' . Purgebridge_Queue::table() );
		foreach ( array( 'purgebridge_last_delivery', 'purgebridge_last_error', 'purgebridge_queue_overflow', 'purgebridge_queue_max', 'purgebridge_queue_waiting', 'purgebridge_last_probe', 'purgebridge_last_recovery', 'purgebridge_drain_lock' ) as $option ) {
			delete_option( $option );
		}
		update_option( 'purgebridge_relay_down_until', 0 );
		update_option( 'purgebridge_relay_failures', 0 );
		wp_clear_scheduled_hook( 'purgebridge_drain_soon' );
		$this->reset_probe_memory();
		$this->answers = array();
		$this->health  = array();
		$this->probes  = 0;
		$this->sent    = array();
		$this->filter  = function ( $pre, $args, $url ) {
			if ( 'GET' === ( isset( $args['method'] ) ? $args['method'] : 'GET' ) ) {
				++$this->probes;
				$answer = $this->health ? array_shift( $this->health ) : 200;
				if ( 'refused' === $answer ) {
					return new WP_Error( 'http_request_failed', 'cURL error 7: Connection refused' );
				}
				return array(
					'headers'  => array(),
					'body'     => '{"status":"ok"}',
					'response' => array( 'code' => $answer, 'message' => '' ),
					'cookies'  => array(),
					'filename' => null,
				);
			}
			$this->sent[] = array(
				'url'     => $url,
				'headers' => $args['headers'],
				'body'    => $args['body'],
				'timeout' => $args['timeout'],
			);
			$answer = $this->answers ? array_shift( $this->answers ) : 202;
			if ( 'refused' === $answer ) {
				return new WP_Error( 'http_request_failed', 'cURL error 7: Connection refused' );
			}
			return array(
				'headers'  => array(),
				'body'     => 202 === $answer ? '{"event_id":"e1","queued":3}' : '{"error":"status ' . $answer . '"}',
				'response' => array( 'code' => $answer, 'message' => '' ),
				'cookies'  => array(),
				'filename' => null,
			);
		};
		add_filter( 'pre_http_request', $this->filter, 5, 3 );
	}

	protected function tearDown(): void {
		remove_filter( 'pre_http_request', $this->filter, 5 );
		self::forget_after_response();
	}

	private static function body( $reason = 'test' ) {
		return Purgebridge_Event_Builder::encode( home_url( '/' ), array( Purgebridge_Event_Builder::purge_all( $reason ) ), time() );
	}

	private static function rows() {
		global $wpdb;
		return $wpdb->get_results( 'SELECT * FROM ' . Purgebridge_Queue::table() . ' ORDER BY id' );
	}

	public function test_table_exists_after_activation() {
		global $wpdb;
		$this->assertSame( Purgebridge_Queue::table(), $wpdb->get_var( $wpdb->prepare( 'SHOW TABLES LIKE %s', Purgebridge_Queue::table() ) ) );
		$this->assertSame( Purgebridge_Queue::DB_VERSION, get_option( 'purgebridge_db_version' ) );
	}

	public function test_delivered_batch_is_signed_and_not_queued() {
		$body   = self::body();
		$result = Purgebridge_Dispatcher::deliver( $body );
		$this->assertSame( Purgebridge_Outcome::DELIVERED, $result['outcome'] );
		$this->assertFalse( $result['queued'] );
		$this->assertCount( 0, self::rows() );
		$this->assertCount( 1, $this->sent );
		$req = $this->sent[0];
		$this->assertSame( rtrim( PURGEBRIDGE_RELAY_URL, '/' ) . '/v1/events/wordpress', $req['url'] );
		$this->assertSame( $body, $req['body'] );
		$this->assertSame( Purgebridge_Signer::sign( PURGEBRIDGE_SECRET, $req['headers']['X-Purgebridge-Timestamp'], $body ), $req['headers']['X-Purgebridge-Signature'] );
		$this->assertLessThanOrEqual( 2, abs( time() - (int) $req['headers']['X-Purgebridge-Timestamp'] ) );
	}

	public function test_refused_connection_queues_and_marks_relay_down_for_one_probe_interval() {
		$this->answers = array( 'refused' );
		$result        = Purgebridge_Dispatcher::deliver( self::body() );
		$this->assertSame( Purgebridge_Outcome::RETRY, $result['outcome'] );
		$this->assertTrue( $result['queued'] );
		$rows = self::rows();
		$this->assertCount( 1, $rows );
		$this->assertSame( 'pending', $rows[0]->state );
		$this->assertSame( '1', $rows[0]->attempts );
		$this->assertStringContainsString( 'refused', $rows[0]->last_error );
		$down = (int) get_option( 'purgebridge_relay_down_until' ) - time();
		$this->assertGreaterThanOrEqual( Purgebridge_Recovery::PROBE_INTERVAL - 1, $down );
		$this->assertLessThanOrEqual( Purgebridge_Recovery::PROBE_INTERVAL, $down );
		$this->assertCount( 1, Purgebridge_Queue::pending( 10 ), 'no per-batch backoff: pending means due' );
		$this->assertTrue( Purgebridge_Queue::waiting() );
		$next = wp_next_scheduled( 'purgebridge_drain_soon' );
		$this->assertNotFalse( $next );
		$this->assertLessThanOrEqual( (int) get_option( 'purgebridge_relay_down_until' ), $next, 'the next retry run is at the next probe time' );
	}

	public function test_while_marked_down_nothing_is_sent() {
		update_option( 'purgebridge_relay_down_until', time() + 30 );
		$result = Purgebridge_Dispatcher::deliver( self::body() );
		$this->assertTrue( $result['queued'] );
		$this->assertCount( 0, $this->sent );
		$this->assertCount( 1, self::rows() );
	}

	public function test_server_errors_are_retried_client_errors_are_dead() {
		$this->answers = array( 503, 401 );
		Purgebridge_Dispatcher::deliver( self::body( 'a' ), false );
		Purgebridge_Dispatcher::deliver( self::body( 'b' ), false );
		$rows = self::rows();
		$this->assertSame( array( 'pending', 'dead' ), array_column( $rows, 'state' ) );
		$this->assertSame( array( '503', '401' ), array_column( $rows, 'last_status' ) );
		$error = get_option( 'purgebridge_last_error' );
		$this->assertSame( 401, $error['status'] );
		$this->assertSame( 1, Purgebridge_Queue::count( Purgebridge_Queue::DEAD ) );
	}

	public function test_one_probe_per_run_then_everything_in_one_merged_request_oldest_first() {
		$this->answers = array( 'refused' );
		foreach ( array( 'a', 'b', 'c' ) as $reason ) {
			Purgebridge_Dispatcher::deliver( self::body( $reason ) );
		}
		$this->assertCount( 1, $this->sent, 'one failed send, then the relay counts as down' );
		$this->assertSame( array( '1', '0', '0' ), array_column( self::rows(), 'attempts' ) );
		$this->sent   = array();
		$this->health = array( 'refused' );
		$stats        = Purgebridge_Dispatcher::drain();
		$this->assertSame( 1, $stats['probed'] );
		$this->assertSame( 1, $this->probes, 'one probe for the whole run' );
		$this->assertCount( 0, $this->sent, 'no batch is sent while the probe fails' );
		$this->assertSame( array( '1', '0', '0' ), array_column( self::rows(), 'attempts' ), 'a probe is no attempt of any batch' );
		$this->assertGreaterThan( time(), (int) get_option( 'purgebridge_relay_down_until' ) );
		$this->assertSame( 2, (int) get_option( 'purgebridge_relay_failures' ) );
		// The same request runs a second retry event: the one probe has decided.
		Purgebridge_Dispatcher::drain();
		$this->assertSame( 1, $this->probes );
		$this->reset_probe_memory();
		$stats = Purgebridge_Dispatcher::drain();
		$this->assertSame( 2, $this->probes );
		$this->assertSame( 3, $stats['sent'] );
		$this->assertSame( 1, $stats['requests'] );
		$this->assertCount( 1, $this->sent, 'three batches, one request' );
		$batch = json_decode( $this->sent[0]['body'], true );
		$this->assertSame( array( 'a', 'b', 'c' ), array_column( $batch['changes'], 'reason' ), 'oldest first' );
		$this->assertSame( home_url( '/' ), $batch['site'] );
		$this->assertSame( Purgebridge_Signer::sign( PURGEBRIDGE_SECRET, $this->sent[0]['headers']['X-Purgebridge-Timestamp'], $this->sent[0]['body'] ), $this->sent[0]['headers']['X-Purgebridge-Signature'] );
		$this->assertCount( 0, self::rows() );
		$this->assertFalse( Purgebridge_Queue::waiting() );
		$this->assertSame( 0, (int) get_option( 'purgebridge_relay_failures' ) );
		$recovery = get_option( 'purgebridge_last_recovery' );
		$this->assertSame( 3, $recovery['batches'] );
		$this->assertSame( 1, $recovery['requests'] );
		$this->assertSame( 2, $recovery['sends'], 'the batch tried at save time went twice, no batch more' );
	}

	public function test_requests_between_probes_cost_nothing_cron_always_probes() {
		$this->answers = array( 'refused' );
		Purgebridge_Dispatcher::deliver( self::body() );
		$this->sent = array();
		foreach ( array( 'request', 'heartbeat' ) as $trigger ) {
			$stats = Purgebridge_Dispatcher::drain( false, $trigger );
			$this->assertSame( 0, $stats['probed'] + $stats['requests'], "$trigger right after a failure" );
		}
		$this->assertSame( 0, $this->probes );
		update_option( 'purgebridge_last_probe', time() - Purgebridge_Recovery::PROBE_GAP );
		$stats = Purgebridge_Dispatcher::drain( false, 'heartbeat' );
		$this->assertSame( 1, $stats['probed'] );
		$this->assertSame( 1, $stats['sent'] );
	}

	public function test_a_transient_failure_stops_the_run_and_counts_one_attempt_per_row() {
		$this->answers = array( 'refused' );
		foreach ( array( 'a', 'b' ) as $reason ) {
			Purgebridge_Dispatcher::deliver( self::body( $reason ) );
		}
		$this->answers = array( 503 );
		$stats         = Purgebridge_Dispatcher::drain( true );
		$this->assertSame( 2, $stats['failed'] );
		$this->assertSame( 1, $stats['requests'] );
		$this->assertSame( array( '2', '1' ), array_column( self::rows(), 'attempts' ) );
		$this->assertSame( array( '503', '503' ), array_column( self::rows(), 'last_status' ) );
		$this->assertGreaterThan( time(), (int) get_option( 'purgebridge_relay_down_until' ) );
	}

	public function test_a_merged_request_refused_for_good_is_split_so_only_the_bad_batch_dies() {
		update_option( 'purgebridge_relay_down_until', time() + 30 );
		foreach ( array( 'a', 'b', 'c' ) as $reason ) {
			Purgebridge_Dispatcher::deliver( self::body( $reason ) );
		}
		$this->assertCount( 0, $this->sent );
		$this->answers = array( 400, 202, 400, 202 );
		$stats         = Purgebridge_Dispatcher::drain( true );
		$this->assertSame( array( 'sent' => 2, 'dead' => 1 ), array( 'sent' => $stats['sent'], 'dead' => $stats['dead'] ) );
		$this->assertCount( 4, $this->sent, 'the merged request, then each batch alone' );
		$rows = self::rows();
		$this->assertCount( 1, $rows );
		$this->assertSame( 'dead', $rows[0]->state );
		$this->assertSame( 'b', json_decode( $rows[0]->body, true )['changes'][0]['reason'] );
	}

	public function test_a_signature_refusal_holds_for_every_merged_batch_without_a_split() {
		update_option( 'purgebridge_relay_down_until', time() + 30 );
		foreach ( array( 'a', 'b', 'c' ) as $reason ) {
			Purgebridge_Dispatcher::deliver( self::body( $reason ) );
		}
		$this->answers = array( 401 );
		$stats         = Purgebridge_Dispatcher::drain( true );
		$this->assertSame( 3, $stats['dead'] );
		$this->assertCount( 1, $this->sent, 'one request: the secret is wrong for all of them' );
		$this->assertSame( array( 'dead', 'dead', 'dead' ), array_column( self::rows(), 'state' ) );
		$this->assertSame( 3, Purgebridge_Queue::revive(), 'Retry now sends them again once the secret is fixed' );
	}

	public function test_requests_stay_within_the_relays_limits() {
		update_option( 'purgebridge_relay_down_until', time() + 30 );
		$changes = array_fill( 0, 200, Purgebridge_Event_Builder::purge_all( 'big' ) );
		for ( $i = 0; $i < 3; $i++ ) {
			Purgebridge_Dispatcher::deliver( Purgebridge_Event_Builder::encode( home_url( '/' ), $changes, time() ) );
		}
		$stats = Purgebridge_Dispatcher::drain( true );
		$this->assertSame( 3, $stats['sent'] );
		$this->assertSame( 2, $stats['requests'], '400 changes fit one request, the next 200 go in a second' );
		$sizes = array();
		foreach ( $this->sent as $req ) {
			$sizes[] = count( json_decode( $req['body'], true )['changes'] );
		}
		$this->assertSame( array( 400, 200 ), $sizes );
	}

	public function test_one_run_at_a_time() {
		update_option( 'purgebridge_relay_down_until', time() + 30 );
		Purgebridge_Dispatcher::deliver( self::body() );
		$token = Purgebridge_Queue::lock( 60 );
		$this->assertNotNull( $token );
		try {
			$this->assertNull( Purgebridge_Queue::lock( 60 ), 'the lock is exclusive' );
			$stats = Purgebridge_Dispatcher::drain( true );
			$this->assertSame( 1, $stats['busy'] );
			$this->assertCount( 0, $this->sent );
		} finally {
			Purgebridge_Queue::unlock( $token );
		}
		global $wpdb;
		$wpdb->query( $wpdb->prepare( "INSERT INTO {$wpdb->options} (option_name, option_value, autoload) VALUES ('purgebridge_drain_lock', %s, 'no')", ( time() - 1 ) . ':dead-run' ) );
		$stats = Purgebridge_Dispatcher::drain( true );
		$this->assertSame( 1, $stats['sent'], 'an expired lock of a run that died is taken over' );
		$this->assertNull( $wpdb->get_var( "SELECT option_value FROM {$wpdb->options} WHERE option_name = 'purgebridge_drain_lock'" ), 'released' );
	}

	public function test_state_and_plain_words() {
		$state = Purgebridge_Recovery::state();
		$this->assertSame( 0, $state['pending'] );
		$this->assertSame( 0, $state['next_try'] );
		$this->assertStringContainsString( 'No changes wait to be sent.', Purgebridge_Answer::describe_queue( $state ) );
		$this->answers = array( 'refused' );
		Purgebridge_Dispatcher::deliver( self::body( 'a' ) );
		Purgebridge_Dispatcher::deliver( Purgebridge_Event_Builder::encode( home_url( '/' ), array( Purgebridge_Event_Builder::purge_all( 'b' ), Purgebridge_Event_Builder::purge_all( 'c' ) ), time() ) );
		global $wpdb;
		$wpdb->query( 'UPDATE ' . Purgebridge_Queue::table() . ' SET created_at = created_at - 600' );
		$state = Purgebridge_Recovery::state();
		$this->assertSame( 2, $state['pending'] );
		$this->assertSame( 3, $state['changes'] );
		$this->assertTrue( $state['relay_down'] );
		$this->assertGreaterThanOrEqual( 600, $state['oldest_age'] );
		$this->assertSame( (int) get_option( 'purgebridge_relay_down_until' ), $state['next_try'] );
		$this->assertStringContainsString( 'refused', $state['last_error'] );
		$words = Purgebridge_Answer::describe_queue( $state );
		$this->assertStringContainsString( '3 changes (2 batches) wait', $words );
		$this->assertStringContainsString( '10 mins ago', $words );
		$this->assertStringContainsString( 'Next try at', $words );
		Purgebridge_Dispatcher::drain( true );
		$state = Purgebridge_Recovery::state();
		$this->assertSame( 0, $state['pending'] );
		$this->assertStringContainsString( 'went out in 1 request(s)', Purgebridge_Answer::describe_queue( $state ) );
	}

	public function test_heartbeat_starts_a_run_after_the_response_only_when_changes_wait() {
		wp_set_current_user( 1 );
		try {
			$this->assertArrayNotHasKey( 'purgebridge', apply_filters( 'heartbeat_send', array(), 'dashboard' ), 'nothing waits' );
			update_option( 'purgebridge_relay_down_until', time() + 30 );
			update_option( 'purgebridge_relay_failures', 1 );
			Purgebridge_Dispatcher::deliver( self::body() );
			$this->assertSame( 1000, has_action( 'shutdown', array( 'Purgebridge_Dispatcher', 'after_response' ) ), 'a save queued while the relay is down retries after the response' );
			self::forget_after_response();
			$response = apply_filters( 'heartbeat_send', array(), 'dashboard' );
			$this->assertSame( array( 'waiting' => true ), $response['purgebridge'] );
			$this->assertSame( 1000, has_action( 'shutdown', array( 'Purgebridge_Dispatcher', 'after_response' ) ) );
			$this->health = array( 'refused' );
			update_option( 'purgebridge_last_probe', time() - Purgebridge_Recovery::PROBE_GAP );
			Purgebridge_Dispatcher::after_response();
			$this->assertSame( 1, $this->probes, 'the run after the Heartbeat response probed' );
			$this->assertCount( 0, $this->sent );
		} finally {
			wp_set_current_user( 0 );
		}
	}

	/** Drops a retry run a test asked for at shutdown: the suite's process must not reach the network. */
	private static function forget_after_response() {
		remove_action( 'shutdown', array( 'Purgebridge_Dispatcher', 'after_response' ), 1000 );
		$after = new ReflectionProperty( 'Purgebridge_Dispatcher', 'after_response' );
		$after->setAccessible( true );
		$after->setValue( null, null );
	}

	/** Forgets that this PHP process probed already, as a new request would. */
	private function reset_probe_memory() {
		$probed = new ReflectionProperty( 'Purgebridge_Dispatcher', 'probed' );
		$probed->setAccessible( true );
		$probed->setValue( null, false );
	}

	public function test_replay_answer_counts_as_delivered() {
		$this->answers = array( 409 );
		$result        = Purgebridge_Dispatcher::deliver( self::body() );
		$this->assertFalse( $result['queued'] );
		$this->assertCount( 0, self::rows() );
	}

	public function test_dead_rows_revive_on_retry_now() {
		$this->answers = array( 401 );
		Purgebridge_Dispatcher::deliver( self::body(), false );
		$this->assertSame( 0, Purgebridge_Dispatcher::drain( true )['sent'], 'dead rows are not retried by cron' );
		$this->assertSame( 1, Purgebridge_Queue::revive() );
		$this->assertSame( 1, Purgebridge_Dispatcher::drain( true )['sent'] );
		$this->assertCount( 0, self::rows() );
	}

	public function test_queue_is_bounded_and_overflow_becomes_one_purge_all() {
		update_option( 'purgebridge_queue_max', 10 );
		for ( $i = 0; $i < 13; $i++ ) {
			$this->answers[] = 'refused';
			Purgebridge_Dispatcher::deliver( self::body( "r$i" ), false );
		}
		$rows = self::rows();
		$this->assertCount( 11, $rows, '10 batches plus one purge-all' );
		$kinds = array_count_values( array_column( $rows, 'kind' ) );
		$this->assertSame( array( 'batch' => 10, 'purge_all' => 1 ), $kinds );
		$overflow = get_option( 'purgebridge_queue_overflow' );
		$this->assertSame( 3, $overflow['dropped'] );
		$purge = json_decode( end( $rows )->body, true );
		$this->assertSame( 'queue_overflow', $purge['changes'][0]['reason'] );
		$this->answers = array();
		Purgebridge_Dispatcher::drain( true );
		$this->assertCount( 0, self::rows() );
		$this->assertFalse( get_option( 'purgebridge_queue_overflow' ), 'overflow notice cleared once the purge-all went out' );
	}

	public function test_settings_page_shows_queue_and_refusal() {
		$this->answers = array( 401 );
		Purgebridge_Dispatcher::deliver( self::body(), false );
		require_once ABSPATH . 'wp-admin/includes/admin.php';
		wp_set_current_user( 1 );
		Purgebridge_Admin_Settings::settings();
		ob_start();
		Purgebridge_Admin::render();
		$html = ob_get_clean();
		$this->assertStringContainsString( 'The relay refused the signature', $html );
		$this->assertStringContainsString( '1 batch was refused and is kept', $html );
		$this->assertStringContainsString( 'No changes wait', $html, 'the plain-words queue state' );
		$this->assertStringNotContainsString( PURGEBRIDGE_SECRET, $html, 'the secret is never printed' );
		wp_set_current_user( 0 );
	}

	public function test_failed_sends_in_a_row_keep_one_probe_interval_and_an_answer_clears_it() {
		$this->answers = array( 'refused', 503, 'refused', 'refused', 'refused', 'refused' );
		$windows       = array();
		foreach ( $this->answers as $i => $unused ) {
			$before = time();
			Purgebridge_Dispatcher::deliver( self::body( "f$i" ), false );
			$windows[] = (int) get_option( 'purgebridge_relay_down_until' ) - $before;
		}
		foreach ( $windows as $i => $window ) {
			$this->assertGreaterThanOrEqual( Purgebridge_Recovery::PROBE_INTERVAL - 1, $window, "window after failure $i" );
			$this->assertLessThanOrEqual( Purgebridge_Recovery::PROBE_INTERVAL, $window, "window after failure $i: no growth however long the outage" );
		}
		$this->assertSame( 6, (int) get_option( 'purgebridge_relay_failures' ) );
		$this->assertCount( 6, self::rows(), 'every failed batch is queued' );
		// While marked down an editor's save does not touch the network.
		$this->sent = array();
		Purgebridge_Dispatcher::deliver( self::body( 'while down' ) );
		$this->assertCount( 0, $this->sent );
		// "Retry now" sends without probing; its first success clears the mark.
		$stats = Purgebridge_Dispatcher::drain( true );
		$this->assertSame( 7, $stats['sent'] );
		$this->assertSame( 1, $stats['requests'] );
		$this->assertSame( 0, (int) get_option( 'purgebridge_relay_down_until' ) );
		$this->assertSame( 0, (int) get_option( 'purgebridge_relay_failures' ) );
		$this->assertCount( 0, self::rows() );
	}

	public function test_the_probe_interval_is_at_most_a_minute() {
		$slow = function () {
			return 3600;
		};
		add_filter( 'purgebridge_probe_interval', $slow );
		try {
			$this->assertSame( 60, Purgebridge_Recovery::interval() );
			$this->assertSame( 60, Purgebridge_Relay_State::mark_down( time(), Purgebridge_Recovery::interval() ) );
		} finally {
			remove_filter( 'purgebridge_probe_interval', $slow );
		}
	}

	public function test_a_refusal_means_the_relay_is_reachable() {
		$this->answers = array( 'refused', 401 );
		Purgebridge_Dispatcher::deliver( self::body( 'a' ), false );
		$this->assertGreaterThan( time(), (int) get_option( 'purgebridge_relay_down_until' ) );
		Purgebridge_Dispatcher::deliver( self::body( 'b' ), false );
		$this->assertSame( 0, (int) get_option( 'purgebridge_relay_down_until' ) );
		$this->assertSame( 0, (int) get_option( 'purgebridge_relay_failures' ) );
		$this->assertSame( array( 'pending', 'dead' ), array_column( self::rows(), 'state' ) );
	}

	public function test_editor_sends_use_short_timeouts_cron_patient_ones() {
		$this->answers = array( 'refused' );
		Purgebridge_Dispatcher::deliver( self::body() );
		Purgebridge_Dispatcher::drain( true );
		$this->assertSame( array( 0.5, 5.0 ), array_column( $this->sent, 'timeout' ) );
		$this->assertEquals(
			array(
				'connect' => 0.25,
				'total'   => 0.5,
			),
			Purgebridge_Client::timeouts( 'editor' )
		);
		$this->assertEquals(
			array(
				'connect' => 1.0,
				'total'   => 5.0,
			),
			Purgebridge_Client::timeouts( 'background' )
		);
		$slow = function ( $timeouts, $context ) {
			return 'editor' === $context ? array(
				'connect' => 3,
				'total'   => 2,
			) : array( 'total' => 999 );
		};
		add_filter( 'purgebridge_send_timeout', $slow, 10, 2 );
		try {
			$this->assertEquals(
				array(
					'connect' => 2.0,
					'total'   => 2.0,
				),
				Purgebridge_Client::timeouts( 'editor' ),
				'connect never exceeds total'
			);
			$this->assertEquals(
				array(
					'connect' => 1.0,
					'total'   => 30.0,
				),
				Purgebridge_Client::timeouts( 'background' ),
				'bounded, missing keys keep their defaults'
			);
		} finally {
			remove_filter( 'purgebridge_send_timeout', $slow, 10 );
		}
	}

	public function test_socket_client_only_for_plain_http() {
		$this->assertTrue( Purgebridge_Client::direct( 'http://127.0.0.1:8787/v1/events/wordpress' ) );
		$this->assertFalse( Purgebridge_Client::direct( 'https://relay.example/v1/events/wordpress' ) );
		add_filter( 'purgebridge_direct_http', '__return_false' );
		try {
			$this->assertFalse( Purgebridge_Client::direct( 'http://127.0.0.1:8787/v1/events/wordpress' ) );
		} finally {
			remove_filter( 'purgebridge_direct_http', '__return_false' );
		}
	}

	public function test_alternating_202_and_409_write_the_last_delivery_once() {
		global $wpdb;
		$this->answers = array( 202, 409, 202, 409 );
		Purgebridge_Dispatcher::deliver( self::body( 'first' ) );
		$queries = $wpdb->num_queries;
		foreach ( array( 'a', 'b', 'c' ) as $reason ) {
			Purgebridge_Dispatcher::deliver( self::body( $reason ) );
		}
		$this->assertSame( $queries, $wpdb->num_queries, 'a healthy relay costs no database query per save' );
	}
}
