<?php
/**
 * What each Varnish node did with this site's purges, as the relay knows it.
 *
 * A 202 from the relay only says the change was stored. The relay answers
 * POST /v1/sites/status, signed with this site's secret exactly like an
 * event, with each node's state for this site's purges (delivered, sending,
 * waiting because the node is down since T, down, refused, dead_lettered,
 * unknown) and whether it has key purges (docs/wordpress.md, "The relay's
 * node truth"). Every screen that speaks of the relay reads it from here, so
 * rows on one screen never contradict each other: one answer per request,
 * kept a few seconds, asked again (fresh) after a send, a save or a retry.
 *
 * @package Purgebridge
 */

defined( 'ABSPATH' ) || exit;

/**
 * The relay's per-site node truth.
 */
final class Purgebridge_Node_Truth {

	/** Transient holding the last answer (or failure). */
	const TRANSIENT = 'purgebridge_node_truth';

	/** Seconds an answer is reused by later page loads. */
	const TTL = 15;

	/** Seconds the relay gets to answer (the settings page waits for it). */
	const TIMEOUT = 3.0;

	/**
	 * The answer of this request, once per request.
	 *
	 * @var array|null
	 */
	private static $answer = null;

	/**
	 * The status endpoint next to the events endpoint, or ''.
	 *
	 * @return string
	 */
	public static function url() {
		$events = Purgebridge_Settings::events_url();
		return '' === $events ? '' : substr( $events, 0, -strlen( '/v1/events/wordpress' ) ) . '/v1/sites/status';
	}

	/**
	 * The relay's answer: array{ok:bool, status:int, error:string, data:array|null, at:int}.
	 *
	 * ok: the relay answered 200 with a node list. Otherwise status is the
	 * HTTP status (0: no answer) and error says why in a few words.
	 *
	 * @param bool $fresh Ask the relay now, not the last answer.
	 * @return array
	 */
	public static function get( $fresh = false ) {
		if ( ! $fresh && null !== self::$answer ) {
			return self::$answer;
		}
		if ( ! $fresh ) {
			$kept = get_transient( self::TRANSIENT );
			if ( is_array( $kept ) && isset( $kept['ok'] ) ) {
				self::$answer = $kept;
				return $kept;
			}
		}
		self::$answer = self::ask();
		set_transient( self::TRANSIENT, self::$answer, self::TTL );
		return self::$answer;
	}

	/**
	 * Forgets the kept answer: the next get() asks the relay.
	 */
	public static function forget() {
		self::$answer = null;
		delete_transient( self::TRANSIENT );
	}

	/**
	 * After a send: asks until no node is still "sending" this site's purges
	 * (the relay purges within milliseconds when the nodes answer), for at
	 * most $wait seconds, and returns the last answer.
	 *
	 * @param float $wait Longest wait in seconds.
	 * @return array
	 */
	public static function settled( $wait = 2.0 ) {
		$deadline = microtime( true ) + max( 0.0, (float) $wait );
		usleep( 150000 );
		while ( true ) {
			$answer = self::get( true );
			if ( ! $answer['ok'] || 0 === self::count( $answer, 'sending' ) || microtime( true ) >= $deadline ) {
				return $answer;
			}
			usleep( 200000 );
		}
	}

	/**
	 * Nodes in a state.
	 *
	 * @param array  $answer get()'s answer.
	 * @param string $state  State name.
	 * @return int
	 */
	public static function count( array $answer, $state ) {
		$found = 0;
		foreach ( self::nodes( $answer ) as $node ) {
			$found += ( $state === $node['state'] ) ? 1 : 0;
		}
		return $found;
	}

	/**
	 * The node list of an answer (empty when the relay did not answer).
	 *
	 * @param array $answer get()'s answer.
	 * @return array[]
	 */
	public static function nodes( array $answer ) {
		return ( $answer['ok'] && isset( $answer['data']['nodes'] ) && is_array( $answer['data']['nodes'] ) ) ? $answer['data']['nodes'] : array();
	}

	/**
	 * Whether something is wrong on the nodes' side: a node down, refusing,
	 * or dead letters of this site.
	 *
	 * @param array $answer get()'s answer.
	 * @return bool
	 */
	public static function failing( array $answer ) {
		foreach ( self::nodes( $answer ) as $node ) {
			if ( in_array( $node['state'], array( 'waiting', 'down', 'refused', 'dead_lettered' ), true ) ) {
				return true;
			}
		}
		return false;
	}

	/**
	 * One signed POST to the relay.
	 *
	 * @return array
	 */
	private static function ask() {
		$url = self::url();
		if ( '' === $url || '' === Purgebridge_Settings::secret() ) {
			return self::answer( false, 0, __( 'Relay URL or secret not configured.', 'purgebridge' ), null );
		}
		$body                  = (string) wp_json_encode( array( 'site' => home_url( '/' ) ) );
		$headers               = Purgebridge_Signer::headers( Purgebridge_Settings::secret(), time(), $body );
		$headers['User-Agent'] = 'purgebridge-wordpress/' . PURGEBRIDGE_VERSION;
		$response              = wp_remote_post(
			$url,
			array(
				'timeout'     => self::TIMEOUT,
				'redirection' => 0,
				'headers'     => $headers,
				'body'        => $body,
			)
		);
		if ( is_wp_error( $response ) ) {
			return self::answer( false, 0, $response->get_error_message(), null );
		}
		$status = (int) wp_remote_retrieve_response_code( $response );
		$data   = Purgebridge_Answer::parse( wp_remote_retrieve_body( $response ) );
		if ( 200 === $status && is_array( $data ) && isset( $data['nodes'] ) && is_array( $data['nodes'] ) ) {
			return self::answer( true, 200, '', self::clean( $data ) );
		}
		return self::answer( false, $status, Purgebridge_Answer::relay_error( wp_remote_retrieve_body( $response ) ), null );
	}

	/**
	 * Only the fields the screens use, typed: a relay URL pointing at another
	 * service cannot make WordPress print that service's answer.
	 *
	 * @param array $data Decoded answer.
	 * @return array
	 */
	private static function clean( array $data ) {
		$states = array( 'delivered', 'sending', 'waiting', 'down', 'refused', 'dead_lettered', 'unknown' );
		$nodes  = array();
		foreach ( $data['nodes'] as $node ) {
			if ( ! is_array( $node ) || ! isset( $node['node'], $node['state'] ) ) {
				continue;
			}
			$nodes[] = array(
				'node'       => sanitize_text_field( (string) $node['node'] ),
				'state'      => in_array( $node['state'], $states, true ) ? $node['state'] : 'unknown',
				'down_since' => isset( $node['down_since'] ) ? (int) $node['down_since'] : 0,
				'keys'       => isset( $node['keys'] ) ? (bool) $node['keys'] : null,
				'pending'    => isset( $node['pending'] ) ? (int) $node['pending'] : 0,
				'dead'       => isset( $node['dead'] ) ? (int) $node['dead'] : 0,
				'reason'     => sanitize_text_field( substr( (string) ( ! empty( $node['dead_reason'] ) ? $node['dead_reason'] : ( isset( $node['last_error'] ) ? $node['last_error'] : '' ) ), 0, 200 ) ),
			);
		}
		return array(
			'nodes'   => $nodes,
			'worker'  => ! empty( $data['relay']['worker'] ),
			'version' => isset( $data['relay']['version'] ) ? sanitize_text_field( (string) $data['relay']['version'] ) : '',
		);
	}

	/**
	 * Answer array.
	 *
	 * @param bool       $ok     Relay answered with a node list.
	 * @param int        $status HTTP status.
	 * @param string     $error  Why not.
	 * @param array|null $data   Cleaned answer.
	 * @return array
	 */
	private static function answer( $ok, $status, $error, $data ) {
		return array(
			'ok'     => (bool) $ok,
			'status' => (int) $status,
			'error'  => (string) $error,
			'data'   => $data,
			'at'     => time(),
		);
	}
}
