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
	 * The request's change buffer, once boot() ran.
	 *
	 * @var Purgebridge_Change_Buffer|null
	 */
	private static $buffer = null;

	/**
	 * Registers every hook. Called once when the plugin file loads.
	 */
	public static function boot() {
		add_action( 'plugins_loaded', array( 'Purgebridge_Probe', 'maybe_handle' ), 0 );
		add_action( 'plugins_loaded', array( __CLASS__, 'maybe_upgrade' ) );
		add_action( 'init', array( __CLASS__, 'load_textdomain' ) );
		add_filter( 'cron_schedules', array( __CLASS__, 'cron_schedules' ) );
		add_action( self::CRON_HOOK, array( __CLASS__, 'drain' ) );
		add_action( 'purgebridge_drain_soon', array( __CLASS__, 'drain' ) );
		self::$buffer = self::collectors( new Purgebridge_Change_Buffer() );
		Purgebridge_Dispatcher::register();
		Purgebridge_Frontend::register();
		Purgebridge_Admin::register();
		Purgebridge_Admin_Settings::register();
		Purgebridge_Admin_Actions::register();
		Purgebridge_Admin_Bar::register();
		Purgebridge_Network_Page::register();
		Purgebridge_Notices::register();
		Purgebridge_Site_Health::register();
		Purgebridge_CLI::register();
		Purgebridge_Network::register();
	}

	/**
	 * Adds the collectors, one per kind of object, to a change buffer (their
	 * changes are built in this order).
	 *
	 * @param Purgebridge_Change_Buffer $buffer Change buffer.
	 * @return Purgebridge_Change_Buffer The buffer.
	 */
	public static function collectors( Purgebridge_Change_Buffer $buffer ) {
		$posts = $buffer->add( new Purgebridge_Posts_Collector( $buffer ) );
		$buffer->add( new Purgebridge_Comments_Collector( $buffer ) );
		$buffer->add( new Purgebridge_Terms_Collector( $buffer, $posts ) );
		$buffer->add( new Purgebridge_Users_Collector( $buffer, $posts ) );
		$buffer->add( new Purgebridge_Site_Collector( $buffer ) );
		$buffer->add( new Purgebridge_Site_Editor_Collector( $buffer ) );
		$buffer->add( new Purgebridge_Import_Collector( $buffer ) );
		$buffer->add( new Purgebridge_Purge_Api_Collector( $buffer, $posts ) );
		return $buffer;
	}

	/**
	 * The request's change buffer (what the collectors recorded so far).
	 *
	 * @return Purgebridge_Change_Buffer
	 */
	public static function buffer() {
		return self::$buffer;
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
	 * Activation; network activation sets up every site of the network.
	 *
	 * @param bool $network_wide Activated for the whole network.
	 */
	public static function activate( $network_wide = false ) {
		self::on_sites( $network_wide, array( __CLASS__, 'activate_site' ) );
	}

	/**
	 * Runs a per-site step on every site for a network-wide (de)activation,
	 * else on the current site.
	 *
	 * @param bool     $network_wide For the whole network.
	 * @param callable $step         Called with no arguments.
	 */
	private static function on_sites( $network_wide, $step ) {
		if ( is_multisite() && $network_wide ) {
			Purgebridge_Network::each_site( $step );
			return;
		}
		call_user_func( $step );
	}

	/**
	 * After a plugin update (new files, no activation): a site whose tables
	 * are older than this code is set up again. One autoloaded option read
	 * per request; each site of a network upgrades on its own next request.
	 */
	public static function maybe_upgrade() {
		if ( Purgebridge_Queue::DB_VERSION !== get_option( 'purgebridge_db_version' ) ) {
			self::activate_site();
		}
	}

	/**
	 * Sets up the current site: table (created or upgraded), default options,
	 * cron. Safe to run again.
	 */
	public static function activate_site() {
		Purgebridge_Queue::install();
		add_option( 'purgebridge_relay_url', '' );
		add_option( 'purgebridge_secret', '', '', false );
		add_option( 'purgebridge_xkey', false );
		add_option( 'purgebridge_esi_tag_cloud', false );
		add_option( 'purgebridge_probe_level2', 10 );
		add_option( 'purgebridge_probe_level3', 20 );
		add_option( 'purgebridge_queue_max', 1000 );
		foreach ( Purgebridge_Relay_State::defaults() as $option => $default ) {
			add_option( $option, $default );
		}
		add_option( 'purgebridge_queue_waiting', 0 );
		add_filter( 'cron_schedules', array( __CLASS__, 'cron_schedules' ) );
		if ( ! wp_next_scheduled( self::CRON_HOOK ) ) {
			wp_schedule_event( time() + 60, self::CRON_INTERVAL, self::CRON_HOOK );
		}
	}

	/**
	 * Deactivation: stop cron (on every site for a network deactivation);
	 * the queue stays for a later activation.
	 *
	 * @param bool $network_wide Deactivated for the whole network.
	 */
	public static function deactivate( $network_wide = false ) {
		self::on_sites( $network_wide, array( __CLASS__, 'deactivate_site' ) );
	}

	/**
	 * Stops the current site's cron.
	 */
	public static function deactivate_site() {
		wp_clear_scheduled_hook( self::CRON_HOOK );
		wp_clear_scheduled_hook( 'purgebridge_drain_soon' );
	}
}
