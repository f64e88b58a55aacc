<?php
/**
 * The socket client against real sockets: a one-shot server child process
 * (tests/support/one-shot-server.php) for answers, a listener that never
 * accepts for a blackholed relay, a closed port for a refused one.
 */

use PHPUnit\Framework\TestCase;

final class HttpTest extends TestCase {

	/**
	 * Seconds a 0.3 s deadline may overrun on a loaded 2-core CI machine (one
	 * run took 1.6 s while three test suites shared the cores): still far
	 * below any default socket timeout (5 s and more), so a deadline that is
	 * not applied fails the test.
	 */
	const DEADLINE_SLACK = 2.0;

	/** @var resource|null */
	private $proc;

	/** @var array */
	private $pipes = array();

	protected function tearDown(): void {
		if ( $this->proc ) {
			proc_terminate( $this->proc );
			foreach ( $this->pipes as $pipe ) {
				fclose( $pipe );
			}
			proc_close( $this->proc );
			$this->proc = null;
		}
	}

	/**
	 * Starts the one-shot server and returns its port.
	 */
	private function serve( $mode, $status = 202, $body = '' ) {
		$script      = dirname( __DIR__ ) . '/support/one-shot-server.php';
		$command     = array( PHP_BINARY, $script, $mode, (string) $status, $body );
		$this->proc  = proc_open( $command, array( 1 => array( 'pipe', 'w' ), 2 => array( 'pipe', 'w' ) ), $this->pipes );
		$this->assertIsResource( $this->proc );
		$port = trim( (string) fgets( $this->pipes[1] ) );
		if ( ! preg_match( '/^\d+$/', $port ) ) {
			$this->fail( 'one-shot server did not start: ' . stream_get_contents( $this->pipes[2] ) );
		}
		return (int) $port;
	}

	/**
	 * The raw request the server received.
	 */
	private function received() {
		$line = fgets( $this->pipes[1] );
		$this->assertNotFalse( $line, 'server reported the request' );
		return base64_decode( trim( $line ) );
	}

	public function test_202_is_returned_with_body_and_the_request_is_well_formed() {
		$port   = $this->serve( 'answer', 202, '{"event_id":"e1","queued":1}' );
		$body   = '{"schema":1,"changes":[]}';
		$answer = Purgebridge_Http::post(
			"http://127.0.0.1:$port/v1/events/wordpress?x=1",
			array(
				'Content-Type'            => 'application/json',
				'X-Purgebridge-Signature' => "sha256=ab\r\nInjected: yes",
				'Content-Length'          => '999',
			),
			$body,
			0.25,
			2
		);
		$this->assertSame(
			array(
				'status' => 202,
				'body'   => '{"event_id":"e1","queued":1}',
			),
			$answer
		);
		$request = $this->received();
		list( $head, $sent ) = explode( "\r\n\r\n", $request, 2 );
		$lines = explode( "\r\n", $head );
		$this->assertSame( 'POST /v1/events/wordpress?x=1 HTTP/1.1', $lines[0] );
		$this->assertContains( "Host: 127.0.0.1:$port", $lines );
		$this->assertContains( 'Content-Length: ' . strlen( $body ), $lines, 'own length, not the caller\'s' );
		$this->assertNotContains( 'Content-Length: 999', $lines );
		$this->assertContains( 'Connection: close', $lines );
		$this->assertContains( 'X-Purgebridge-Signature: sha256=ab  Injected: yes', $lines, 'no header injection' );
		$this->assertSame( $body, $sent );
	}

	public function test_non_202_answers_carry_status_and_message() {
		$port   = $this->serve( 'answer', 401, '{"error":"Signature refused"}' );
		$answer = Purgebridge_Http::post( "http://127.0.0.1:$port/v1/events/wordpress", array(), '{}', 0.25, 2 );
		$this->assertSame( 401, $answer['status'] );
		$this->assertSame( '{"error":"Signature refused"}', $answer['body'] );
	}

	public function test_answer_without_content_length_is_read_to_the_end() {
		$port   = $this->serve( 'no-length', 503, 'overloaded' );
		$answer = Purgebridge_Http::post( "http://127.0.0.1:$port/", array(), 'x', 0.25, 2 );
		$this->assertSame(
			array(
				'status' => 503,
				'body'   => 'overloaded',
			),
			$answer
		);
	}

	public function test_status_that_arrived_counts_even_if_the_body_stalls() {
		$port    = $this->serve( 'stall-body', 202, '{"event_id"' );
		$started = microtime( true );
		$answer  = Purgebridge_Http::post( "http://127.0.0.1:$port/", array(), 'x', 0.25, 0.5 );
		$elapsed = microtime( true ) - $started;
		$this->assertSame( 202, $answer['status'] );
		$this->assertLessThan( 1.0, $elapsed, 'the deadline also bounds a stalled body' );
	}

	public function test_connection_closed_without_answer_is_an_error() {
		$port   = $this->serve( 'close' );
		$answer = Purgebridge_Http::post( "http://127.0.0.1:$port/", array(), 'x', 0.25, 2 );
		$this->assertInstanceOf( WP_Error::class, $answer );
		$this->assertStringContainsString( 'without an answer', $answer->get_error_message() );
	}

	/**
	 * A listening socket nobody reads: the kernel completes the handshake
	 * (backlog), no answer ever comes. Returns array( server, port ).
	 */
	private function blackhole() {
		$server = stream_socket_server( 'tcp://127.0.0.1:0' );
		$name   = stream_socket_get_name( $server, false );
		return array( $server, (int) substr( $name, strrpos( $name, ':' ) + 1 ) );
	}

	public function test_blackholed_relay_times_out_at_the_deadline() {
		// The kernel completes the handshake (backlog); nobody ever reads or answers.
		list( $server, $port ) = $this->blackhole();
		try {
			$started = microtime( true );
			$answer  = Purgebridge_Http::post( "http://127.0.0.1:$port/v1/events/wordpress", array(), '{}', 0.25, 0.3 );
			$elapsed = microtime( true ) - $started;
		} finally {
			fclose( $server );
		}
		$this->assertInstanceOf( WP_Error::class, $answer );
		$this->assertStringContainsString( 'No answer after', $answer->get_error_message() );
		$this->assertGreaterThanOrEqual( 0.29, $elapsed );
		$this->assertLessThan( self::DEADLINE_SLACK, $elapsed );
	}

	public function test_blackholed_relay_bounds_a_body_too_large_for_the_socket_buffers() {
		list( $server, $port ) = $this->blackhole();
		$body                  = str_repeat( 'x', 32 * 1024 * 1024 );
		try {
			$started = microtime( true );
			$answer  = Purgebridge_Http::post( "http://127.0.0.1:$port/", array(), $body, 0.25, 0.3 );
			$elapsed = microtime( true ) - $started;
		} finally {
			fclose( $server );
		}
		$this->assertInstanceOf( WP_Error::class, $answer );
		$this->assertStringContainsString( 'Timed out while sending', $answer->get_error_message() );
		$this->assertLessThan( self::DEADLINE_SLACK, $elapsed );
	}

	public function test_refused_connection_fails_fast() {
		$server = stream_socket_server( 'tcp://127.0.0.1:0' );
		$name   = stream_socket_get_name( $server, false );
		fclose( $server );
		$started = microtime( true );
		$answer  = Purgebridge_Http::post( 'http://' . $name . '/', array(), '{}', 0.25, 0.5 );
		$this->assertInstanceOf( WP_Error::class, $answer );
		$this->assertStringContainsString( 'Connection to ' . $name . ' failed', $answer->get_error_message() );
		$this->assertLessThan( 0.2, microtime( true ) - $started );
	}

	public function test_only_plain_http_urls_are_targets() {
		$this->assertSame(
			array(
				'remote'    => 'tcp://127.0.0.1:8787',
				'authority' => '127.0.0.1:8787',
				'path'      => '/v1/events/wordpress',
			),
			Purgebridge_Http::target( 'http://127.0.0.1:8787/v1/events/wordpress' )
		);
		$this->assertSame(
			array(
				'remote'    => 'tcp://relay.internal:80',
				'authority' => 'relay.internal',
				'path'      => '/',
			),
			Purgebridge_Http::target( 'HTTP://relay.internal' )
		);
		$this->assertSame( 'tcp://[::1]:8787', Purgebridge_Http::target( 'http://[::1]:8787/x' )['remote'] );
		$this->assertNull( Purgebridge_Http::target( 'https://relay.example/v1/events/wordpress' ) );
		$this->assertNull( Purgebridge_Http::target( 'relay:8787' ) );
		$this->assertNull( Purgebridge_Http::target( '' ) );
		$this->assertInstanceOf( WP_Error::class, Purgebridge_Http::post( 'https://relay.example/', array(), '', 0.1, 0.1 ) );
	}
}
