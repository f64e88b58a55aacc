<?php
/**
 * Wires the parts together: hooks, activation, cron.
 *
 * @package Purgebridge
 */

defined( 'ABSPATH' ) || exit;

/**
 * Plugin bootstrap.
 */
final class Purgebridge_Plugin {

	const CRON_HOOK     = 'purgebridge_drain';
	const CRON_INTERVAL = 'purgebridge_minute';

	/**
	 * Registers every hook. Called once when the plugin file loads.
	 */
	public static function boot() {
		add_action( 'plugins_loaded', array( 'Purgebridge_Probe', 'maybe_handle' ), 0 );
		add_action( 'init', array( __CLASS__, 'load_textdomain' ) );
		add_filter( 'cron_schedules', array( __CLASS__, 'cron_schedules' ) ); // phpcs:ignore WordPress.WP.CronInterval.ChangeDetected
		add_action( self::CRON_HOOK, array( __CLASS__, 'drain' ) );
		add_action( 'purgebridge_drain_soon', array( __CLASS__, 'drain' ) );
		Purgebridge_Collector::register();
		Purgebridge_Frontend::register();
		Purgebridge_Admin::register();
		Purgebridge_Recovery::register();
		Purgebridge_Notices::register();
		Purgebridge_Site_Health::register();
		Purgebridge_CLI::register();
	}

	/**
	 * Loads translations from languages/.
	 */
	public static function load_textdomain() {
		load_plugin_textdomain( 'purgebridge', false, dirname( plugin_basename( PURGEBRIDGE_FILE ) ) . '/languages' );
	}

	/**
	 * Adds the one-minute cron interval.
	 *
	 * @param array $schedules Schedules.
	 * @return array
	 */
	public static function cron_schedules( $schedules ) {
		$schedules[ self::CRON_INTERVAL ] = array(
			'interval' => 60,
			'display'  => __( 'Every minute (Purgebridge retry queue)', 'purgebridge' ),
		);
		return $schedules;
	}

	/**
	 * Cron callback: sends due queued batches.
	 */
	public static function drain() {
		Purgebridge_Dispatcher::drain( false );
	}

	/**
	 * Activation: table, default options, cron.
	 */
	public static function activate() {
		Purgebridge_Queue::install();
		add_option( 'purgebridge_relay_url', '' );
		add_option( 'purgebridge_secret', '', '', false );
		add_option( 'purgebridge_xkey', false );
		add_option( 'purgebridge_esi_tag_cloud', false );
		add_option( 'purgebridge_probe_level2', 10 );
		add_option( 'purgebridge_probe_level3', 20 );
		add_option( 'purgebridge_queue_max', 1000 );
		add_option( 'purgebridge_relay_down_until', 0 );
		add_option( 'purgebridge_relay_failures', 0 );
		add_option( 'purgebridge_queue_waiting', 0 );
		add_filter( 'cron_schedules', array( __CLASS__, 'cron_schedules' ) ); // phpcs:ignore WordPress.WP.CronInterval.ChangeDetected
		if ( ! wp_next_scheduled( self::CRON_HOOK ) ) {
			wp_schedule_event( time() + 60, self::CRON_INTERVAL, self::CRON_HOOK );
		}
	}

	/**
	 * Deactivation: stop cron; the queue stays for a later activation.
	 */
	public static function deactivate() {
		wp_clear_scheduled_hook( self::CRON_HOOK );
		wp_clear_scheduled_hook( 'purgebridge_drain_soon' );
	}
}

