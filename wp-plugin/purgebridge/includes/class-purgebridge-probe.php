<?php
/**
 * Load probe for vcl/degrade.vcl: /?purgebridge-probe=2 answers 200, or 503
 * when the 1-minute load average is over the level's threshold.
 *
 * Handled on plugins_loaded, before the theme and most of WordPress run, so
 * probing every few seconds costs little and an overloaded origin that cannot
 * even answer this counts as degraded too.
 *
 * @package Purgebridge
 */

defined( 'ABSPATH' ) || exit;

/**
 * Load probe endpoint.
 */
final class Purgebridge_Probe {

	/**
	 * Answers the probe and exits, when the request is one.
	 */
	public static function maybe_handle() {
		if ( ! isset( $_GET['purgebridge-probe'] ) ) { // phpcs:ignore WordPress.Security.NonceVerification.Recommended
			return;
		}
		$level      = absint( wp_unslash( $_GET['purgebridge-probe'] ) ); // phpcs:ignore WordPress.Security.NonceVerification.Recommended,WordPress.Security.ValidatedSanitizedInput.InputNotSanitized
		$thresholds = Purgebridge_Settings::probe_thresholds();
		$load       = self::load();
		$status     = Purgebridge_Policy::probe_status( $level, $load, $thresholds );
		status_header( $status );
		nocache_headers();
		header( 'Content-Type: text/plain; charset=utf-8' );
		if ( 404 === $status ) {
			echo "unknown level\n";
		} else {
			printf( "level %d %s load %.2f threshold %.2f\n", (int) $level, 200 === $status ? 'ok' : 'overloaded', (float) $load, (float) $thresholds[ $level ] );
		}
		exit;
	}

	/**
	 * 1-minute load average, from /proc/loadavg when readable.
	 *
	 * @return float
	 */
	public static function load() {
		$load = null;
		if ( is_readable( '/proc/loadavg' ) ) {
			$raw = file_get_contents( '/proc/loadavg' ); // phpcs:ignore WordPress.WP.AlternativeFunctions.file_get_contents_file_get_contents
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
}
