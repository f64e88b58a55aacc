<?php
/**
 * Where each setting comes from: a wp-config.php constant wins and locks the
 * field (automated set-ups), else the option saved on the settings page.
 *
 * @package Purgebridge
 */

defined( 'ABSPATH' ) || exit;

/**
 * Setting getters.
 */
final class Purgebridge_Settings {

	const OPTIONS = array(
		'purgebridge_relay_url',
		'purgebridge_secret',
		'purgebridge_xkey',
		'purgebridge_esi_tag_cloud',
		'purgebridge_probe_level2',
		'purgebridge_probe_level3',
		'purgebridge_queue_max',
		Purgebridge_Relay_State::LAST_DELIVERY,
		Purgebridge_Relay_State::LAST_ERROR,
		Purgebridge_Relay_State::DOWN_UNTIL,
		Purgebridge_Relay_State::FAILURES,
		'purgebridge_queue_overflow',
		'purgebridge_queue_waiting',
		Purgebridge_Relay_State::LAST_PROBE,
		'purgebridge_last_recovery',
		'purgebridge_drain_lock',
		'purgebridge_db_version',
		'purgebridge_last_check',
	);

	/** Capability that may repoint the relay (see can_change_relay_url()). */
	const RELAY_URL_CAPABILITY = 'manage_options';

	/**
	 * Relay base URL (e.g. http://127.0.0.1:8787), '' when not configured.
	 *
	 * @return string
	 */
	public static function relay_url() {
		$url = self::configured_relay_url();
		return '' === self::check_relay_url( $url ) ? $url : '';
	}

	/**
	 * The relay URL as configured (constant or option), checked or not: what
	 * the settings page shows and what check_relay_url() judges.
	 *
	 * @return string
	 */
	public static function configured_relay_url() {
		if ( self::url_locked() ) {
			return (string) PURGEBRIDGE_RELAY_URL;
		}
		return self::relay_option( 'purgebridge_relay_url' );
	}

	/**
	 * Why a relay URL may not be used, '' when it may (or is empty).
	 *
	 * Only http(s) with a host, no user info, query or fragment: the plugin
	 * appends /v1/events/wordpress and /healthz to it, and anything else is
	 * either a mistake or an attempt to make WordPress fetch another service
	 * (a cloud metadata address, say) for whoever can edit the setting. Sites
	 * can narrow it further to an allow-list of hosts with the filter
	 * purgebridge_relay_hosts.
	 *
	 * @param string $url Candidate relay base URL.
	 * @return string Problem in plain words, or ''.
	 */
	public static function check_relay_url( $url ) {
		$url = (string) $url;
		if ( '' === $url ) {
			return '';
		}
		if ( preg_match( '/[\x00-\x20\x7f]/', $url ) ) {
			return __( 'The relay URL contains spaces or control characters.', 'purgebridge' );
		}
		$parts  = wp_parse_url( $url );
		$scheme = is_array( $parts ) && isset( $parts['scheme'] ) ? strtolower( $parts['scheme'] ) : '';
		if ( ! in_array( $scheme, array( 'http', 'https' ), true ) || empty( $parts['host'] ) ) {
			return __( 'The relay URL must start with http:// or https:// and name a host, e.g. http://127.0.0.1:8787.', 'purgebridge' );
		}
		if ( isset( $parts['user'] ) || isset( $parts['pass'] ) || false !== strpos( $url, '@' ) ) {
			return __( 'The relay URL must not contain a user name or password.', 'purgebridge' );
		}
		if ( false !== strpos( $url, '?' ) || false !== strpos( $url, '#' ) ) {
			return __( 'The relay URL must not contain a query (?) or fragment (#).', 'purgebridge' );
		}
		$host = strtolower( $parts['host'] ) . ( isset( $parts['port'] ) ? ':' . (int) $parts['port'] : '' );
		/**
		 * Filters the relay hosts this site may send to: host or host:port
		 * strings. Empty (the default) allows any http(s) host.
		 *
		 * @param string[] $hosts Allowed hosts.
		 * @param string   $url   The relay URL being checked.
		 */
		$allowed = array_map( 'strtolower', array_map( 'strval', (array) apply_filters( 'purgebridge_relay_hosts', array(), $url ) ) );
		if ( $allowed && ! in_array( $host, $allowed, true ) && ! in_array( strtolower( $parts['host'] ), $allowed, true ) ) {
			/* translators: %s: host of the relay URL */
			return sprintf( __( 'The relay host %s is not in this site\'s allow-list (filter purgebridge_relay_hosts).', 'purgebridge' ), $host );
		}
		return '';
	}

	/**
	 * Whether the current user may change the relay URL. The one place that
	 * decides it: on a network, only a network administrator may repoint the
	 * relay, which is a change of this single check.
	 *
	 * @return bool
	 */
	public static function can_change_relay_url() {
		if ( is_multisite() ) {
			return current_user_can( 'manage_network_options' );
		}
		return current_user_can( self::RELAY_URL_CAPABILITY );
	}

	/**
	 * Shared token the load probe requires in X-Purgebridge-Probe, '' when the
	 * probe is limited by address instead (see Purgebridge_Probe::allowed()).
	 *
	 * @return string
	 */
	public static function probe_token() {
		$token = defined( 'PURGEBRIDGE_PROBE_TOKEN' ) ? (string) PURGEBRIDGE_PROBE_TOKEN : '';
		/**
		 * Filters the load probe's token (default: the PURGEBRIDGE_PROBE_TOKEN constant).
		 *
		 * @param string $token Token, '' for none.
		 */
		return (string) apply_filters( 'purgebridge_probe_token', $token );
	}

	/**
	 * The events endpoint of the relay.
	 *
	 * @return string
	 */
	public static function events_url() {
		$base = rtrim( self::relay_url(), '/' );
		if ( '' === $base ) {
			return '';
		}
		if ( '/v1/events/wordpress' === substr( $base, -20 ) ) {
			return $base;
		}
		return $base . '/v1/events/wordpress';
	}

	/**
	 * The relay's health URL (reachability check of the settings page).
	 *
	 * @return string
	 */
	public static function health_url() {
		$events = self::events_url();
		return '' === $events ? '' : substr( $events, 0, -strlen( '/v1/events/wordpress' ) ) . '/healthz';
	}

	/**
	 * Shared secret; never printed anywhere.
	 *
	 * @return string
	 */
	public static function secret() {
		if ( self::secret_locked() ) {
			return (string) PURGEBRIDGE_SECRET;
		}
		return self::relay_option( 'purgebridge_secret' );
	}

	/**
	 * The stored relay URL or secret. On multisite it is the network's value,
	 * set by a network admin only (Purgebridge_Network): a sub-site's own
	 * option is never read, so a sub-site admin cannot repoint the relay.
	 *
	 * @param string $name purgebridge_relay_url or purgebridge_secret.
	 * @return string
	 */
	public static function relay_option( $name ) {
		return (string) ( is_multisite() ? get_site_option( $name, '' ) : get_option( $name, '' ) );
	}

	/**
	 * Whether wp-config.php sets the relay URL.
	 *
	 * @return bool
	 */
	public static function url_locked() {
		return defined( 'PURGEBRIDGE_RELAY_URL' ) && '' !== (string) PURGEBRIDGE_RELAY_URL;
	}

	/**
	 * Whether wp-config.php sets the secret.
	 *
	 * @return bool
	 */
	public static function secret_locked() {
		return defined( 'PURGEBRIDGE_SECRET' ) && '' !== (string) PURGEBRIDGE_SECRET;
	}

	/**
	 * Whether events can be sent at all.
	 *
	 * @return bool
	 */
	public static function configured() {
		return '' !== self::relay_url() && '' !== self::secret();
	}

	/**
	 * Load thresholds per degradation level.
	 *
	 * @return array<int,float>
	 */
	public static function probe_thresholds() {
		$thresholds = array(
			2 => (float) get_option( 'purgebridge_probe_level2', 10 ),
			3 => (float) get_option( 'purgebridge_probe_level3', 20 ),
		);
		/**
		 * Filters the 1-minute load average above which a probe level fails.
		 *
		 * @param array $thresholds Level (2, 3) => load average.
		 */
		return (array) apply_filters( 'purgebridge_probe_thresholds', $thresholds );
	}

	/**
	 * Most batches kept in the retry queue.
	 *
	 * @return int
	 */
	public static function queue_max() {
		$max = (int) get_option( 'purgebridge_queue_max', 1000 );
		return max( 10, (int) apply_filters( 'purgebridge_queue_max', $max ) );
	}

	/**
	 * Whether front-end responses carry an xkey header.
	 *
	 * @return bool
	 */
	public static function xkey_enabled() {
		return (bool) apply_filters( 'purgebridge_xkey_enabled', (bool) get_option( 'purgebridge_xkey', false ) );
	}

	/**
	 * Whether the tag cloud is replaced by an ESI include.
	 *
	 * @return bool
	 */
	public static function esi_tag_cloud_enabled() {
		return (bool) apply_filters( 'purgebridge_esi_tag_cloud_enabled', (bool) get_option( 'purgebridge_esi_tag_cloud', false ) );
	}
}
