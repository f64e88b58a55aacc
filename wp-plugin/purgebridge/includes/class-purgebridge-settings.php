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
		'purgebridge_last_delivery',
		'purgebridge_last_error',
		'purgebridge_relay_down_until',
		'purgebridge_relay_failures',
		'purgebridge_queue_overflow',
		'purgebridge_db_version',
	);

	/**
	 * Relay base URL (e.g. http://127.0.0.1:8787), '' when not configured.
	 *
	 * @return string
	 */
	public static function relay_url() {
		if ( self::url_locked() ) {
			return (string) PURGEBRIDGE_RELAY_URL;
		}
		return self::relay_option( 'purgebridge_relay_url' );
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
