<?php
/**
 * One signed POST to the relay, with short timeouts.
 *
 * Uses wp_remote_post, not wp_safe_remote_post: the safe variant refuses
 * loopback relays on ports other than 80, 443 and 8080, and the relay
 * normally listens on 127.0.0.1:8787.
 *
 * @package Purgebridge
 */

defined( 'ABSPATH' ) || exit;

/**
 * HTTP client for the relay.
 */
final class Purgebridge_Client {

	/** Seconds to wait for the whole answer. */
	const TIMEOUT = 2;

	/** Seconds to wait for the connection. */
	const CONNECT_TIMEOUT = 1;

	/**
	 * Sends a body, signed now.
	 *
	 * @param string $body Encoded batch.
	 * @return array{outcome:string,status:int,message:string}
	 */
	public static function send( $body ) {
		$url = Purgebridge_Settings::events_url();
		if ( '' === $url || '' === Purgebridge_Settings::secret() ) {
			return self::result( Purgebridge_Policy::RETRY, 0, __( 'Relay URL or secret not configured.', 'purgebridge' ) );
		}
		$timestamp = time();
		$response  = self::post(
			$url,
			array(
				'headers' => Purgebridge_Signer::headers( Purgebridge_Settings::secret(), $timestamp, $body ),
				'body'    => $body,
			)
		);
		if ( is_wp_error( $response ) ) {
			return self::result( Purgebridge_Policy::RETRY, 0, $response->get_error_message() );
		}
		$status  = (int) wp_remote_retrieve_response_code( $response );
		$message = substr( trim( (string) wp_remote_retrieve_body( $response ) ), 0, 300 );
		return self::result( Purgebridge_Policy::classify( $status ), $status, $message );
	}

	/**
	 * GET the relay's /healthz.
	 *
	 * @return array{outcome:string,status:int,message:string}
	 */
	public static function health() {
		$url = Purgebridge_Settings::health_url();
		if ( '' === $url ) {
			return self::result( Purgebridge_Policy::PERMANENT, 0, __( 'Relay URL not configured.', 'purgebridge' ) );
		}
		$response = wp_remote_get( $url, self::args( array() ) );
		if ( is_wp_error( $response ) ) {
			return self::result( Purgebridge_Policy::RETRY, 0, $response->get_error_message() );
		}
		$status = (int) wp_remote_retrieve_response_code( $response );
		return self::result( 200 === $status ? Purgebridge_Policy::DELIVERED : Purgebridge_Policy::RETRY, $status, substr( trim( (string) wp_remote_retrieve_body( $response ) ), 0, 300 ) );
	}

	/**
	 * POST with the plugin's timeouts, connect timeout included.
	 *
	 * @param string $url  Endpoint.
	 * @param array  $args Extra request args.
	 * @return array|WP_Error
	 */
	private static function post( $url, array $args ) {
		return wp_remote_post( $url, self::args( $args ) );
	}

	/**
	 * Request arguments shared by every call.
	 *
	 * @param array $args Extra args.
	 * @return array
	 */
	private static function args( array $args ) {
		add_action( 'requests-requests.before_request', array( __CLASS__, 'limit_connect_timeout' ), 10, 5 );
		return array_merge(
			array(
				'timeout'     => self::TIMEOUT,
				'redirection' => 0,
				'blocking'    => true,
				'user-agent'  => 'purgebridge-wordpress/' . PURGEBRIDGE_VERSION,
			),
			$args
		);
	}

	/**
	 * WordPress passes only a total timeout to Requests, whose connect timeout
	 * stays at 10 s; a relay whose SYNs are dropped would hold the editor that
	 * long. This hook shortens it for requests to the relay only.
	 *
	 * @param string $url     Request URL.
	 * @param array  $headers Headers.
	 * @param mixed  $data    Body.
	 * @param string $type    Method.
	 * @param array  $options Requests options, by reference.
	 */
	public static function limit_connect_timeout( $url, $headers, $data, $type, &$options ) {
		$relay = Purgebridge_Settings::relay_url();
		if ( '' !== $relay && 0 === strpos( (string) $url, rtrim( $relay, '/' ) ) && is_array( $options ) ) {
			$options['connect_timeout'] = self::CONNECT_TIMEOUT;
		}
	}

	/**
	 * Result array.
	 *
	 * @param string $outcome Policy constant.
	 * @param int    $status  HTTP status, 0 when none.
	 * @param string $message Relay answer or transport error.
	 * @return array
	 */
	private static function result( $outcome, $status, $message ) {
		return array(
			'outcome' => $outcome,
			'status'  => (int) $status,
			'message' => (string) $message,
		);
	}
}
