<?php
/**
 * The operator functions (Purgebridge_Operations, Purgebridge_Answer) against
 * the real WordPress database. The relay is a pre_http_request filter, so
 * each test decides what "the relay" answers, including things no relay says.
 */

use PHPUnit\Framework\TestCase;

final class OperationsTest extends TestCase {

	/** @var array url => array(status, body) or 'refused'. */
	private $answers = array();

	/** @var array Bodies sent to the events URL. */
	private $sent = array();

	/** @var callable */
	private $filter;

	protected function setUp(): void {
		Purgebridge_Operations::flush_queue();
		delete_option( 'purgebridge_last_check' );
		update_option( 'purgebridge_relay_down_until', 0 );
		update_option( 'purgebridge_relay_failures', 0 );
		$this->answers = array();
		$this->sent    = array();
		$this->filter  = function ( $pre, $args, $url ) {
			$path   = substr( $url, -8 ) === '/healthz' ? 'health' : 'events';
			$answer = isset( $this->answers[ $path ] ) ? $this->answers[ $path ] : array( 202, '{"event_id":"e1","queued":1,"nodes":3}' );
			if ( 'events' === $path ) {
				$this->sent[] = json_decode( $args['body'], true );
			}
			if ( 'refused' === $answer ) {
				return new WP_Error( 'http_request_failed', 'Connection refused' );
			}
			return array(
				'headers'  => array(),
				'body'     => $answer[1],
				'response' => array(
					'code'    => $answer[0],
					'message' => '',
				),
				'cookies'  => array(),
				'filename' => null,
			);
		};
		add_filter( 'pre_http_request', $this->filter, 5, 3 );
	}

	protected function tearDown(): void {
		remove_filter( 'pre_http_request', $this->filter, 5 );
		Purgebridge_Operations::flush_queue();
		Purgebridge_Relay_State::mark_up();
	}

	public function test_an_answer_that_is_not_the_relays_is_never_shown() {
		$secret                   = 'ami-0abc SECRET-ACCESS-KEY=wJalrXUtnFEMI';
		$this->answers['health']  = array( 200, $secret );
		$this->answers['events']  = array( 200, $secret );
		$check                    = Purgebridge_Operations::test_relay();
		$this->assertFalse( $check['ok'] );
		$this->assertStringNotContainsString( 'SECRET', $check['message'] );
		$this->assertStringContainsString( 'not a purgebridge relay', $check['message'] );
		$this->assertSame( $check, get_option( 'purgebridge_last_check' ), 'kept for the status table' );
		foreach ( array( 200, 400, 403, 500, 503 ) as $status ) {
			$text = Purgebridge_Answer::describe(
				array(
					'outcome' => Purgebridge_Outcome::classify( $status ),
					'status'  => $status,
					'message' => $secret,
				)
			);
			$this->assertStringNotContainsString( 'SECRET', $text, "HTTP $status" );
		}
	}

	public function test_the_relays_own_answers_in_words() {
		$describe = function ( $status, $body ) {
			return Purgebridge_Answer::describe(
				array(
					'outcome' => Purgebridge_Outcome::classify( $status ),
					'status'  => $status,
					'message' => $body,
				)
			);
		};
		$this->assertSame( 'Accepted by the relay, which purges it on 3 Varnish nodes.', $describe( 202, '{"event_id":"e","queued":1,"nodes":3}' ) );
		$this->assertSame( 'The relay refused the batch as invalid. The relay said: changes[0].urls[0]: not on the event\'s site x.', $describe( 400, "{\"error\":\"changes[0].urls[0]: not on the event's site x\",\"field\":\"changes[0].urls[0]\"}" ) );
		$this->assertSame( 'Could not reach the relay at ' . PURGEBRIDGE_RELAY_URL . ': Connection refused.', $describe( 0, 'Connection refused' ) );
		$this->assertStringNotContainsString( "\n", $describe( 400, "{\"error\":\"a\\nb\\u0007c\"}" ) );
	}

	public function test_unreachable_relay_is_one_sentence_and_no_signed_send() {
		$this->answers['health'] = 'refused';
		$check                   = Purgebridge_Operations::test_relay();
		$this->assertFalse( $check['ok'] );
		$this->assertFalse( $check['reachable'] );
		$this->assertSame( 'Could not reach the relay at ' . PURGEBRIDGE_RELAY_URL . ': Connection refused.', $check['message'] );
		$this->assertSame( array(), $this->sent );
	}

	public function test_purge_urls_sends_one_urls_change_and_queues_when_refused() {
		$result = Purgebridge_Operations::purge_urls( array( '/a/', home_url( '/b/?x=1' ) ), array( 'post-1' ), 'test' );
		$this->assertTrue( $result['ok'] );
		$this->assertSame(
			array(
				'kind'   => 'urls',
				'action' => 'purge',
				'reason' => 'test',
				'urls'   => array( home_url( '/a/' ), home_url( '/b/?x=1' ) ),
				'keys'   => array( 'post-1' ),
			),
			$this->sent[0]['changes'][0]
		);
		$this->answers['events'] = array( 401, '{"error":"bad signature"}' );
		$result                  = Purgebridge_Operations::purge_urls( array( '/c/' ) );
		$this->assertFalse( $result['ok'] );
		$this->assertTrue( $result['queued'] );
		$this->assertStringContainsString( 'Kept as refused in the retry queue.', $result['message'] );
		$this->assertSame( 1, Purgebridge_Operations::queue_state()['refused'] );
		$this->assertCount( 1, Purgebridge_Operations::queue_list() );
		$this->assertSame( 'refused', Purgebridge_Operations::queue_list()[0]['state'] );
	}

	public function test_only_urls_of_this_site() {
		$home    = wp_parse_url( home_url( '/' ) );
		$checked = Purgebridge_Operations::site_urls(
			array(
				'http://' . $home['host'] . ':1/x/',
				'https://evil.test/',
				'//evil.test/',
				'javascript:alert(1)',
				home_url( '/a b/' ),
				home_url( '/#frag' ),
				'',
				'/ok/',
			)
		);
		$this->assertSame( array( home_url( '/ok/' ) ), $checked['urls'] );
		$this->assertCount( 6, $checked['errors'] );
	}

	public function test_refused_notice_comes_back_after_a_new_refusal() {
		$this->answers['events'] = array( 403, '{"error":"site not configured"}' );
		Purgebridge_Operations::purge_urls( array( '/a/' ) );
		$first = Purgebridge_Notices::standing();
		$this->assertArrayHasKey( 'refused', $first );
		$this->assertStringContainsString( 'PURGEBRIDGE_SITES', $first['refused']['text'] );
		update_option( 'purgebridge_last_error', array( 'time' => time() + 10, 'status' => 403, 'message' => '' ) );
		$this->assertNotSame( $first['refused']['fingerprint'], Purgebridge_Notices::standing()['refused']['fingerprint'] );
		Purgebridge_Operations::flush_queue( true );
		$this->assertArrayNotHasKey( 'refused', Purgebridge_Notices::standing() );
	}
}
