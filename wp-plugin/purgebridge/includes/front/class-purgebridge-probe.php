<?php
/**
 * Load probe for vcl/degrade.vcl: /?purgebridge-probe=2 answers 200, or 503
 * when the 1-minute load average is over the level's threshold.
 *
 * Handled on plugins_loaded, before the theme and most of WordPress run, so
 * probing every few seconds costs little and an overloaded origin that cannot
 * even answer this counts as degraded too.
 *
 * It answers only Varnish's own probe: with PURGEBRIDGE_PROBE_TOKEN set, a
 * request carrying that token in X-Purgebridge-Probe; without it, a request
 * from an allowed address (loopback by default, filter
 * purgebridge_probe_addresses) that carries no X-Forwarded-For -- varnishd adds
 * that header to every request it passes on for a client, and not to its
 * probes. Anyone else gets the ordinary page, so a visitor can neither read
 * the server's load nor learn the thresholds. The answer names the level and
 * ok/overloaded only.
 *
 * @package Purgebridge
 */

defined( 'ABSPATH' ) || exit;

/**
 * Load probe endpoint.
 */
final class Purgebridge_Probe {

	const HEADER = 'HTTP_X_PURGEBRIDGE_PROBE';

	/**
	 * Answers the probe and exits, when the request is one from Varnish.
	 */
	public static function maybe_handle() {
		if ( ! isset( $_GET['purgebridge-probe'] ) || ! self::allowed() ) {
			return;
		}
		$level  = absint( wp_unslash( $_GET['purgebridge-probe'] ) );
		$status = self::status( $level, self::load(), Purgebridge_Settings::probe_thresholds() );
		status_header( $status );
		nocache_headers();
		header( 'Content-Type: text/plain; charset=utf-8' );
		if ( 404 === $status ) {
			echo "unknown level\n";
		} else {
			printf( "level %d %s\n", (int) $level, 200 === $status ? 'ok' : 'overloaded' );
		}
		exit;
	}

	/**
	 * Whether this request is Varnish's probe (see the file comment).
	 *
	 * @return bool
	 */
	public static function allowed() {
		$token = Purgebridge_Settings::probe_token();
		if ( '' !== $token ) {
			$sent = isset( $_SERVER[ self::HEADER ] ) ? (string) wp_unslash( $_SERVER[ self::HEADER ] ) : '';
			return hash_equals( $token, $sent );
		}
		if ( isset( $_SERVER['HTTP_X_FORWARDED_FOR'] ) ) {
			return false;
		}
		$remote = isset( $_SERVER['REMOTE_ADDR'] ) ? (string) wp_unslash( $_SERVER['REMOTE_ADDR'] ) : '';
		/**
		 * Filters the addresses the load probe answers when no token is set
		 * (where varnishd connects from).
		 *
		 * @param string[] $addresses Exact REMOTE_ADDR values.
		 */
		$addresses = (array) apply_filters( 'purgebridge_probe_addresses', array( '127.0.0.1', '::1' ) );
		return in_array( $remote, $addresses, true );
	}

	/**
	 * 1-minute load average, from /proc/loadavg when readable.
	 *
	 * @return float
	 */
	public static function load() {
		$load = null;
		if ( is_readable( '/proc/loadavg' ) ) {
			$raw = file_get_contents( '/proc/loadavg' );
			if ( false !== $raw ) {
				$load = (float) strtok( $raw, ' ' );
			}
		}
		if ( null === $load && function_exists( 'sys_getloadavg' ) ) {
			$avg  = sys_getloadavg();
			$load = is_array( $avg ) ? (float) $avg[0] : 0.0;
		}
		/**
		 * Filters the load value the probe compares with its thresholds.
		 *
		 * @param float $load 1-minute load average.
		 */
		return (float) apply_filters( 'purgebridge_probe_load', (float) $load );
	}

	/**
	 * Load probe answer for a level: 503 when the load is over its threshold.
	 *
	 * @param int   $level      2 or 3.
	 * @param float $load       1-minute load average.
	 * @param array $thresholds Level => threshold.
	 * @return int 200, 503, or 404 for an unknown level.
	 */
	public static function status( $level, $load, array $thresholds ) {
		$level = (int) $level;
		if ( ! isset( $thresholds[ $level ] ) ) {
			return 404;
		}
		return ( (float) $load > (float) $thresholds[ $level ] ) ? 503 : 200;
	}
}
