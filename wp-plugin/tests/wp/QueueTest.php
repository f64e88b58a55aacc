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

	/** @var array Requests seen: url, headers, body. */
	private $sent = array();

	/** @var callable */
	private $filter;

	protected function setUp(): void {
		global $wpdb;
		$wpdb->query( 'TRUNCATE TABLE ' . Purgebridge_Queue::table() );
		foreach ( array( 'purgebridge_last_delivery', 'purgebridge_last_error', 'purgebridge_queue_overflow', 'purgebridge_queue_max' ) as $option ) {
			delete_option( $option );
		}
		update_option( 'purgebridge_relay_down_until', 0 );
		update_option( 'purgebridge_relay_failures', 0 );
		$this->answers = array();
		$this->sent    = array();
		$this->filter  = function ( $pre, $args, $url ) {
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
		$this->assertSame( Purgebridge_Policy::DELIVERED, $result['outcome'] );
		$this->assertFalse( $result['queued'] );
		$this->assertCount( 0, self::rows() );
		$this->assertCount( 1, $this->sent );
		$req = $this->sent[0];
		$this->assertSame( rtrim( PURGEBRIDGE_RELAY_URL, '/' ) . '/v1/events/wordpress', $req['url'] );
		$this->assertSame( $body, $req['body'] );
		$this->assertSame( Purgebridge_Signer::sign( PURGEBRIDGE_SECRET, $req['headers']['X-Purgebridge-Timestamp'], $body ), $req['headers']['X-Purgebridge-Signature'] );
		$this->assertLessThanOrEqual( 2, abs( time() - (int) $req['headers']['X-Purgebridge-Timestamp'] ) );
	}

	public function test_refused_connection_queues_with_backoff_and_marks_relay_down() {
		$this->answers = array( 'refused' );
		$result        = Purgebridge_Dispatcher::deliver( self::body() );
		$this->assertSame( Purgebridge_Policy::RETRY, $result['outcome'] );
		$this->assertTrue( $result['queued'] );
		$rows = self::rows();
		$this->assertCount( 1, $rows );
		$this->assertSame( 'pending', $rows[0]->state );
		$this->assertGreaterThanOrEqual( 30, $rows[0]->next_attempt - $rows[0]->created_at );
		$this->assertStringContainsString( 'refused', $rows[0]->last_error );
		$this->assertGreaterThan( time(), (int) get_option( 'purgebridge_relay_down_until' ) );
		$this->assertSame( array(), Purgebridge_Queue::due( 10 ), 'not due before its backoff' );
		$this->assertCount( 1, Purgebridge_Queue::due( 10, true ) );
		$this->assertNotFalse( wp_next_scheduled( 'purgebridge_drain_soon' ) );
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

	public function test_drain_sends_due_rows_and_stops_at_first_failure() {
		$this->answers = array( 'refused', 'refused', 'refused' );
		foreach ( array( 'a', 'b', 'c' ) as $reason ) {
			Purgebridge_Dispatcher::deliver( self::body( $reason ), false );
		}
		$this->assertCount( 3, self::rows() );
		$this->sent    = array();
		$this->answers = array( 202, 'refused' );
		$stats         = Purgebridge_Dispatcher::drain( true );
		$this->assertSame( array( 'sent' => 1, 'failed' => 1, 'dead' => 0 ), $stats );
		$this->assertCount( 2, $this->sent, 'stopped after the relay failed again' );
		$rows = self::rows();
		$this->assertCount( 2, $rows );
		$this->assertSame( '2', $rows[0]->attempts );
		$this->assertSame( '1', $rows[1]->attempts );
		$this->answers = array();
		$stats         = Purgebridge_Dispatcher::drain( true );
		$this->assertSame( 2, $stats['sent'] );
		$this->assertCount( 0, self::rows() );
		$reasons = array();
		foreach ( $this->sent as $req ) {
			$batch     = json_decode( $req['body'], true );
			$reasons[] = $batch['changes'][0]['reason'];
		}
		$this->assertSame( array( 'a', 'b', 'b', 'c' ), $reasons, 'oldest first, the failed one again, then the rest' );
	}

	public function test_drain_respects_backoff_unless_forced() {
		$this->answers = array( 'refused' );
		Purgebridge_Dispatcher::deliver( self::body(), false );
		$this->sent = array();
		$stats      = Purgebridge_Dispatcher::drain( false );
		$this->assertSame( 0, $stats['sent'] + $stats['failed'] );
		$this->assertCount( 0, $this->sent );
		global $wpdb;
		$wpdb->query( 'UPDATE ' . Purgebridge_Queue::table() . ' SET next_attempt = ' . ( time() - 1 ) );
		$stats = Purgebridge_Dispatcher::drain( false );
		$this->assertSame( 1, $stats['sent'] );
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
		Purgebridge_Admin::settings();
		ob_start();
		Purgebridge_Admin::render();
		$html = ob_get_clean();
		$this->assertStringContainsString( 'The relay refused the signature', $html );
		$this->assertStringContainsString( '1 batch was refused and is kept', $html );
		$this->assertStringNotContainsString( PURGEBRIDGE_SECRET, $html, 'the secret is never printed' );
		wp_set_current_user( 0 );
	}

	public function test_failed_sends_in_a_row_escalate_the_down_window_and_an_answer_clears_it() {
		$this->answers = array( 'refused', 503, 'refused', 'refused', 'refused', 'refused' );
		$windows       = array();
		foreach ( $this->answers as $i => $unused ) {
			$before = time();
			Purgebridge_Dispatcher::deliver( self::body( "f$i" ), false );
			$windows[] = (int) get_option( 'purgebridge_relay_down_until' ) - $before;
		}
		foreach ( array( 30, 60, 120, 240, 300, 300 ) as $i => $expected ) {
			$this->assertGreaterThanOrEqual( $expected - 1, $windows[ $i ], "window after failure $i" );
			$this->assertLessThanOrEqual( $expected, $windows[ $i ], "window after failure $i" );
		}
		$this->assertSame( 6, (int) get_option( 'purgebridge_relay_failures' ) );
		$this->assertCount( 6, self::rows(), 'every failed batch is queued' );
		// While marked down an editor's save does not touch the network.
		$this->sent = array();
		Purgebridge_Dispatcher::deliver( self::body( 'while down' ) );
		$this->assertCount( 0, $this->sent );
		// WP-Cron's retry run ignores the window; its first success clears it.
		$stats = Purgebridge_Dispatcher::drain( true );
		$this->assertSame( 7, $stats['sent'] );
		$this->assertSame( 0, (int) get_option( 'purgebridge_relay_down_until' ) );
		$this->assertSame( 0, (int) get_option( 'purgebridge_relay_failures' ) );
		$this->assertCount( 0, self::rows() );
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
