<?php
/**
 * One signed POST to the relay, with short timeouts.
 *
 * Plain http:// relays (the usual set-up: the relay on the same host or LAN)
 * are sent to over a socket by Purgebridge_Http, which costs a fraction of a
 * millisecond; https://, a configured proxy, WP_HTTP_BLOCK_EXTERNAL and the
 * purgebridge_direct_http filter send it through the WordPress HTTP API
 * instead. The socket path still runs the pre_http_request filter, so test
 * doubles and plugins that short-circuit HTTP keep working.
 *
 * The fallback uses wp_remote_post, not wp_safe_remote_post: the safe variant
 * refuses loopback relays on ports other than 80, 443 and 8080, and the relay
 * normally listens on 127.0.0.1:8787.
 *
 * @package Purgebridge
 */

defined( 'ABSPATH' ) || exit;

/**
 * HTTP client for the relay.
 */
final class Purgebridge_Client {

	/**
	 * Timeouts in seconds while the editor may be waiting (the save request
	 * itself, when the server has no fastcgi_finish_request()). The relay
	 * answers 202 after one group commit: under 1 ms when idle, tens of
	 * milliseconds when saturated (docs/wordpress.md, "Sending"); a send that
	 * takes longer is not worth the editor's time: it goes to the retry queue,
	 * and at worst the batch reaches the relay twice, which is harmless because
	 * purges are idempotent.
	 */
	const EDITOR_TIMEOUTS = array(
		'connect' => 0.25,
		'total'   => 0.5,
	);

	/**
	 * Timeouts for WP-Cron's retry run and the settings page, where nobody
	 * waits on a page: patient enough for a relay that is slow, not dead.
	 */
	const BACKGROUND_TIMEOUTS = array(
		'connect' => 1.0,
		'total'   => 5.0,
	);

	/**
	 * Connect timeout for the WordPress HTTP API fallback (see limit_connect_timeout()).
	 *
	 * @var float
	 */
	private static $connect_timeout = 1.0;

	/**
	 * Sends a body, signed now.
	 *
	 * @param string $body    Encoded batch.
	 * @param string $context 'editor' (a save is running) or 'background' (cron, settings page).
	 * @return array{outcome:string,status:int,message:string}
	 */
	public static function send( $body, $context = 'editor' ) {
		$url = Purgebridge_Settings::events_url();
		if ( '' === $url || '' === Purgebridge_Settings::secret() ) {
			return self::result( Purgebridge_Outcome::RETRY, 0, __( 'Relay URL or secret not configured.', 'purgebridge' ) );
		}
		$headers               = Purgebridge_Signer::headers( Purgebridge_Settings::secret(), time(), $body );
		$headers['User-Agent'] = 'purgebridge-wordpress/' . PURGEBRIDGE_VERSION;
		$response              = self::post( $url, $headers, $body, self::timeouts( $context ) );
		if ( is_wp_error( $response ) ) {
			return self::result( Purgebridge_Outcome::RETRY, 0, $response->get_error_message() );
		}
		$status  = (int) wp_remote_retrieve_response_code( $response );
		$message = substr( trim( (string) wp_remote_retrieve_body( $response ) ), 0, 300 );
		return self::result( Purgebridge_Outcome::classify( $status ), $status, $message );
	}

	/**
	 * Connect and total timeouts for a context, after the
	 * purgebridge_send_timeout filter (for relays that are far away or slow).
	 *
	 * @param string $context 'editor' or 'background'.
	 * @return array{connect:float,total:float}
	 */
	public static function timeouts( $context = 'editor' ) {
		$defaults = 'background' === $context ? self::BACKGROUND_TIMEOUTS : self::EDITOR_TIMEOUTS;
		/**
		 * Filters the timeouts of a send to the relay, in seconds.
		 *
		 * @param array  $timeouts array( 'connect' => float, 'total' => float ).
		 * @param string $context  'editor' (inside a save) or 'background' (WP-Cron, settings page).
		 */
		$timeouts = apply_filters( 'purgebridge_send_timeout', $defaults, $context );
		$total    = isset( $timeouts['total'] ) ? (float) $timeouts['total'] : $defaults['total'];
		$total    = min( 30.0, max( 0.05, $total ) );
		$connect  = isset( $timeouts['connect'] ) ? (float) $timeouts['connect'] : $defaults['connect'];
		return array(
			'connect' => min( $total, max( 0.05, $connect ) ),
			'total'   => $total,
		);
	}

	/**
	 * Whether a URL goes over Purgebridge_Http instead of the WordPress HTTP
	 * API: plain http only, and only where WordPress itself would open a
	 * direct connection (no proxy, not blocked by WP_HTTP_BLOCK_EXTERNAL).
	 *
	 * @param string $url Events URL.
	 * @return bool
	 */
	public static function direct( $url ) {
		if ( null === Purgebridge_Http::target( $url ) ) {
			return false;
		}
		/**
		 * Filters whether sends to the relay use the plugin's socket client
		 * (plain http:// only) instead of the WordPress HTTP API.
		 *
		 * @param bool   $direct Default true.
		 * @param string $url    Events URL.
		 */
		if ( ! apply_filters( 'purgebridge_direct_http', true, $url ) ) {
			return false;
		}
		if ( defined( 'WP_HTTP_BLOCK_EXTERNAL' ) && WP_HTTP_BLOCK_EXTERNAL && function_exists( '_wp_http_get_object' ) && _wp_http_get_object()->block_request( $url ) ) {
			return false;
		}
		if ( class_exists( 'WP_HTTP_Proxy' ) ) {
			$proxy = new WP_HTTP_Proxy();
			if ( $proxy->is_enabled() && $proxy->send_through_proxy( $url ) ) {
				return false;
			}
		}
		return true;
	}

	/**
	 * GET the relay's /healthz.
	 *
	 * @return array{outcome:string,status:int,message:string}
	 */
	public static function health() {
		$url = Purgebridge_Settings::health_url();
		if ( '' === $url ) {
			return self::result( Purgebridge_Outcome::PERMANENT, 0, __( 'Relay URL not configured.', 'purgebridge' ) );
		}
		$timeouts              = self::timeouts( 'background' );
		self::$connect_timeout = $timeouts['connect'];
		$response              = wp_remote_get( $url, self::args( array( 'timeout' => $timeouts['total'] ) ) );
		if ( is_wp_error( $response ) ) {
			return self::result( Purgebridge_Outcome::RETRY, 0, $response->get_error_message() );
		}
		$status = (int) wp_remote_retrieve_response_code( $response );
		return self::result( 200 === $status ? Purgebridge_Outcome::DELIVERED : Purgebridge_Outcome::RETRY, $status, substr( trim( (string) wp_remote_retrieve_body( $response ) ), 0, 300 ) );
	}

	/**
	 * POST with the given timeouts: over the socket client where direct()
	 * allows, else through wp_remote_post. Both return the WordPress HTTP API's
	 * response shape (or a WP_Error).
	 *
	 * @param string $url      Endpoint.
	 * @param array  $headers  Request headers.
	 * @param string $body     Body.
	 * @param array  $timeouts connect, total.
	 * @return array|WP_Error
	 */
	private static function post( $url, array $headers, $body, array $timeouts ) {
		$args = self::args(
			array(
				'method'  => 'POST',
				'timeout' => $timeouts['total'],
				'headers' => $headers,
				'body'    => $body,
			)
		);
		if ( ! self::direct( $url ) ) {
			self::$connect_timeout = $timeouts['connect'];
			return wp_remote_post( $url, $args );
		}
		/** This filter is documented in wp-includes/class-wp-http.php */
		$pre = apply_filters( 'pre_http_request', false, $args, $url );
		if ( false !== $pre ) {
			return $pre;
		}
		$answer = Purgebridge_Http::post( $url, $headers, $body, $timeouts['connect'], $timeouts['total'] );
		if ( is_wp_error( $answer ) ) {
			return $answer;
		}
		return array(
			'headers'  => array(),
			'body'     => $answer['body'],
			'response' => array(
				'code'    => $answer['status'],
				'message' => '',
			),
			'cookies'  => array(),
			'filename' => null,
		);
	}

	/**
	 * Request arguments shared by every call through the WordPress HTTP API.
	 *
	 * @param array $args Extra args.
	 * @return array
	 */
	private static function args( array $args ) {
		add_action( 'requests-requests.before_request', array( __CLASS__, 'limit_connect_timeout' ), 10, 5 );
		return array_merge(
			array(
				'timeout'     => self::BACKGROUND_TIMEOUTS['total'],
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
			$options['connect_timeout'] = self::$connect_timeout;
		}
	}

	/**
	 * Result array.
	 *
	 * @param string $outcome Purgebridge_Outcome constant.
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
