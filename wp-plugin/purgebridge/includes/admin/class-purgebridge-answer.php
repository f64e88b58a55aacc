<?php
/**
 * The relay's answers in plain words, for people: the settings page, notices,
 * Site Health and WP-CLI all describe a send the same way.
 *
 * A relay answer is never shown as it came: only its HTTP status and the
 * fields of the relay's own JSON (event_id, queued, nodes, error) are read, so
 * a relay URL that points at some other service (a cloud metadata address,
 * an internal API) cannot make WordPress show that service's answer to
 * whoever can edit the setting.
 *
 * @package Purgebridge
 */

defined( 'ABSPATH' ) || exit;

/**
 * Plain-language descriptions of send results.
 */
final class Purgebridge_Answer {

	/** Longest relay error text shown. */
	const MAX_ERROR = 200;

	/**
	 * The relay's JSON answer, or null when the body is not one.
	 *
	 * @param string $body Response body as received.
	 * @return array|null
	 */
	public static function parse( $body ) {
		$data = json_decode( (string) $body, true );
		return is_array( $data ) ? $data : null;
	}

	/**
	 * The relay's own error text ({"error": "..."}), cut and cleaned, or ''.
	 *
	 * @param string $body Response body.
	 * @return string
	 */
	public static function relay_error( $body ) {
		$data = self::parse( $body );
		if ( ! $data || ! isset( $data['error'] ) || ! is_string( $data['error'] ) ) {
			return '';
		}
		$text = trim( (string) preg_replace( '/[\x00-\x1f\x7f]+/', ' ', $data['error'] ) );
		return function_exists( 'mb_substr' ) ? mb_substr( $text, 0, self::MAX_ERROR ) : substr( $text, 0, self::MAX_ERROR );
	}

	/**
	 * Whether a send result came from a purgebridge relay that took the batch.
	 *
	 * @param array $result Result of Purgebridge_Client::send() (outcome, status, message).
	 * @return bool
	 */
	public static function delivered( array $result ) {
		return Purgebridge_Outcome::DELIVERED === $result['outcome'];
	}

	/**
	 * One sentence for the result of a signed send.
	 *
	 * @param array $result outcome, status, message.
	 * @return string
	 */
	public static function describe( array $result ) {
		$status = (int) $result['status'];
		$body   = (string) $result['message'];
		$error  = self::relay_error( $body );
		$detail = '' !== $error ? ' ' . sprintf( /* translators: %s: the relay's error text */ __( 'The relay said: %s.', 'purgebridge' ), rtrim( $error, '.' ) ) : '';
		if ( 0 === $status ) {
			if ( ! Purgebridge_Settings::configured() ) {
				return '' !== $body ? $body : __( 'Relay URL or secret not configured.', 'purgebridge' );
			}
			return sprintf(
				/* translators: 1: relay URL, 2: why the connection failed, e.g. "Connection refused" */
				__( 'Could not reach the relay at %1$s: %2$s', 'purgebridge' ),
				Purgebridge_Settings::relay_url(),
				rtrim( '' !== $body ? $body : __( 'no answer', 'purgebridge' ), '.' ) . '.'
			);
		}
		if ( 202 === $status ) {
			$data = self::parse( $body );
			if ( is_array( $data ) && isset( $data['nodes'] ) ) {
				/* translators: %d: number of Varnish nodes */
				return sprintf( _n( 'Accepted by the relay, which purges it on %d Varnish node.', 'Accepted by the relay, which purges it on %d Varnish nodes.', (int) $data['nodes'], 'purgebridge' ), (int) $data['nodes'] );
			}
			return __( 'Accepted by the relay.', 'purgebridge' );
		}
		if ( 409 === $status ) {
			return __( 'The relay already had this batch (it was sent twice); nothing else to do.', 'purgebridge' );
		}
		if ( 401 === $status ) {
			return __( 'The relay refused the signature: the secret here differs from the relay\'s PURGEBRIDGE_SECRET, or the two clocks differ by more than a minute (the relay accepts a signature made up to 4 minutes before its own time and 1 minute after).', 'purgebridge' );
		}
		if ( 403 === $status ) {
			/* translators: %s: this site's host */
			return sprintf( __( 'The relay does not serve this site: add %s to the relay\'s PURGEBRIDGE_SITES (or use the secret configured for this site).', 'purgebridge' ), self::site_host() ) . $detail;
		}
		if ( 400 === $status ) {
			return __( 'The relay refused the batch as invalid.', 'purgebridge' ) . $detail;
		}
		if ( 413 === $status ) {
			return __( 'The batch was too large for the relay.', 'purgebridge' );
		}
		if ( 503 === $status && '' !== $error ) {
			return __( 'The relay cannot take batches right now.', 'purgebridge' ) . $detail;
		}
		/* translators: %d: HTTP status */
		return sprintf( __( 'Unexpected answer (HTTP %d): this address may not be a purgebridge relay.', 'purgebridge' ), $status );
	}

	/**
	 * One sentence for the relay's /healthz check.
	 *
	 * @param array $result outcome, status, message of Purgebridge_Client::health().
	 * @return string
	 */
	public static function describe_health( array $result ) {
		$status = (int) $result['status'];
		if ( 0 === $status ) {
			return self::describe( $result );
		}
		$data = self::parse( $result['message'] );
		if ( 200 === $status && is_array( $data ) && isset( $data['status'] ) && 'ok' === $data['status'] ) {
			return __( 'The relay is running.', 'purgebridge' );
		}
		/* translators: %d: HTTP status */
		return sprintf( __( 'Something answers at the relay URL (HTTP %d), but it is not a purgebridge relay.', 'purgebridge' ), $status );
	}

	/**
	 * Whether a /healthz answer came from a running relay.
	 *
	 * @param array $result Result of Purgebridge_Client::health().
	 * @return bool
	 */
	public static function healthy( array $result ) {
		$data = 200 === (int) $result['status'] ? self::parse( $result['message'] ) : null;
		return is_array( $data ) && isset( $data['status'] ) && 'ok' === $data['status'];
	}

	/**
	 * This site's host[:port], as the relay's PURGEBRIDGE_SITES must list it.
	 *
	 * @return string
	 */
	public static function site_host() {
		$parts = wp_parse_url( home_url( '/' ) );
		return ( isset( $parts['host'] ) ? $parts['host'] : '' ) . ( isset( $parts['port'] ) ? ':' . $parts['port'] : '' );
	}

	/**
	 * The state in plain words, for the settings page.
	 *
	 * @param array $state From Purgebridge_Recovery::state().
	 * @return string
	 */
	public static function describe_queue( array $state ) {
		$format = get_option( 'time_format', 'H:i' );
		if ( ! $state['pending'] ) {
			$text = __( 'No changes wait to be sent.', 'purgebridge' );
			$last = $state['last_recovery'];
			if ( isset( $last['time'], $last['batches'], $last['requests'] ) ) {
				$text .= ' ' . sprintf(
					/* translators: 1: batches, 2: changes, 3: requests, 4: time ago, 5: how long they had waited */
					__( 'The last backlog (%1$d batches, %2$d changes) went out in %3$d request(s) %4$s ago, after waiting %5$s.', 'purgebridge' ),
					(int) $last['batches'],
					(int) $last['changes'],
					(int) $last['requests'],
					human_time_diff( (int) $last['time'] ),
					human_time_diff( 0, (int) $last['waited'] )
				);
			}
			return $text;
		}
		$text = sprintf(
			/* translators: 1: changes, 2: batches, 3: clock time, 4: time ago */
			__( '%1$d changes (%2$d batches) wait to be sent to the relay, the oldest since %3$s (%4$s ago).', 'purgebridge' ),
			(int) $state['changes'],
			(int) $state['pending'],
			wp_date( $format, (int) $state['oldest'] ),
			human_time_diff( (int) $state['oldest'] )
		);
		if ( $state['relay_down'] ) {
			$text .= ' ' . sprintf(
				/* translators: 1: error, 2: clock time, 3: time from now, 4: probe interval in seconds */
				__( 'The relay did not answer (%1$s). Next try at %2$s (in %3$s), then every %4$d seconds until it answers; everything waiting is then sent at once.', 'purgebridge' ),
				'' !== $state['last_error'] ? $state['last_error'] : __( 'no answer', 'purgebridge' ),
				wp_date( $format, (int) $state['next_try'] ),
				human_time_diff( time(), max( time() + 1, (int) $state['next_try'] ) ),
				Purgebridge_Recovery::interval()
			);
		} else {
			$text .= ' ' . __( 'Next try: with the next WP-Cron run, save or wp-admin Heartbeat tick.', 'purgebridge' );
		}
		if ( defined( 'DISABLE_WP_CRON' ) && DISABLE_WP_CRON ) {
			$text .= ' ' . __( 'WP-Cron is disabled (DISABLE_WP_CRON): make sure a system cron job runs wp-cron.php every minute.', 'purgebridge' );
		}
		return $text;
	}
}
