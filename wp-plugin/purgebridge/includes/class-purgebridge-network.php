<?php
/**
 * WordPress multisite: one plugin, many sites, one relay.
 *
 * - Network activation sets up every site (queue table, options, cron), and a
 *   site created later is set up on `wp_initialize_site`; a deleted site's
 *   queue table is dropped with its other tables.
 * - Changes are attributed to the site they happened on: the collector
 *   keys every record by the blog current at the hook (so `switch_to_blog()`
 *   edits stay with their site), builds each record switched to that blog,
 *   and sends each site's changes in batches of their own, with that site's
 *   home URL, at shutdown. That is the only mechanism; nothing here follows
 *   `switch_blog`.
 * - The relay URL and secret are network-wide (site options) and only a
 *   network admin (`manage_network_options`) sets them, on Network Admin →
 *   Settings → Purgebridge. A sub-site admin cannot repoint the relay:
 *   Purgebridge_Settings reads only the network value on multisite.
 * - A site purge of a site that contains other sites' paths (the main site
 *   `/` of a subdirectory network) tells the relay which paths to keep, so
 *   it never bans its neighbours.
 *
 * @package Purgebridge
 */

defined( 'ABSPATH' ) || exit;

/**
 * Multisite support.
 */
final class Purgebridge_Network {

	const PAGE = 'purgebridge-network';

	/** Most neighbour paths sent with a site purge (the relay accepts up to 1000). */
	const MAX_KEEP_PATHS = 500;

	/**
	 * Registers the hooks (multisite only).
	 */
	public static function register() {
		if ( ! is_multisite() ) {
			return;
		}
		add_action( 'wp_initialize_site', array( __CLASS__, 'site_created' ), 20, 1 );
		add_filter( 'wpmu_drop_tables', array( __CLASS__, 'drop_tables' ), 10, 2 );
		add_filter( 'purgebridge_site_purge', array( __CLASS__, 'keep_neighbours' ) );
		add_action( 'network_admin_menu', array( __CLASS__, 'menu' ) );
		add_action( 'network_admin_edit_' . self::PAGE, array( __CLASS__, 'save' ) );
	}

	/**
	 * Runs a callback once on every site of the current network, switched to it.
	 *
	 * @param callable $callback Called with no arguments.
	 */
	public static function each_site( $callback ) {
		$ids = get_sites(
			array(
				'fields'     => 'ids',
				'number'     => 0,
				'network_id' => get_current_network_id(),
			)
		);
		foreach ( $ids as $id ) {
			switch_to_blog( (int) $id );
			call_user_func( $callback );
			restore_current_blog();
		}
	}

	/**
	 * Whether the plugin is network-activated.
	 *
	 * @return bool
	 */
	public static function network_active() {
		if ( ! function_exists( 'is_plugin_active_for_network' ) ) {
			require_once ABSPATH . 'wp-admin/includes/plugin.php';
		}
		return is_plugin_active_for_network( plugin_basename( PURGEBRIDGE_FILE ) );
	}

	/**
	 * A new site of a network where the plugin is network-active: set it up.
	 *
	 * @param WP_Site $site The new site (its tables exist at priority 20).
	 */
	public static function site_created( $site ) {
		if ( ! self::network_active() ) {
			return;
		}
		switch_to_blog( (int) $site->blog_id );
		Purgebridge_Plugin::activate_site();
		restore_current_blog();
	}

	/**
	 * Drops a deleted site's queue table along with its WordPress tables.
	 *
	 * @param string[] $tables  Tables WordPress drops.
	 * @param int      $blog_id The site being deleted.
	 * @return string[]
	 */
	public static function drop_tables( $tables, $blog_id ) {
		global $wpdb;
		$tables[] = $wpdb->get_blog_prefix( (int) $blog_id ) . 'purgebridge_queue';
		return $tables;
	}

	/**
	 * The paths of the other sites inside this site's path on the same host
	 * (the main site `/` of a subdirectory network: `/blog2/`, `/blog3/`).
	 *
	 * @return string[] Empty on subdomain networks, or when there are more than MAX_KEEP_PATHS.
	 */
	public static function neighbour_paths() {
		$site = get_site();
		if ( ! $site ) {
			return array();
		}
		$paths = array();
		$rows  = get_sites(
			array(
				'domain'       => $site->domain,
				'path__not_in' => array( $site->path ),
				'number'       => self::MAX_KEEP_PATHS + 1,
				'fields'       => 'ids',
			)
		);
		foreach ( $rows as $id ) {
			$other = get_site( $id );
			if ( $other && 0 === strpos( $other->path, $site->path ) ) {
				$paths[] = $other->path;
			}
		}
		if ( count( $paths ) > self::MAX_KEEP_PATHS ) {
			return array(); // The relay bans the whole host: never stale, wider than needed.
		}
		sort( $paths );
		return $paths;
	}

	/**
	 * `purgebridge_site_purge`: a site purge keeps the neighbours' paths.
	 *
	 * @param array $change The site change.
	 * @return array
	 */
	public static function keep_neighbours( $change ) {
		$keep = self::neighbour_paths();
		if ( $keep ) {
			$change['keep_paths'] = $keep;
		}
		return $change;
	}

	/**
	 * Network Admin → Settings → Purgebridge.
	 */
	public static function menu() {
		add_submenu_page( 'settings.php', __( 'Purgebridge', 'purgebridge' ), __( 'Purgebridge', 'purgebridge' ), 'manage_network_options', self::PAGE, array( __CLASS__, 'render' ) );
	}

	/**
	 * The network settings page: relay URL and secret for every site.
	 */
	public static function render() {
		if ( ! current_user_can( 'manage_network_options' ) ) {
			return;
		}
		echo '<div class="wrap"><h1>' . esc_html__( 'Purgebridge (network)', 'purgebridge' ) . '</h1>';
		if ( isset( $_GET['updated'] ) ) {
			echo '<div class="notice notice-success"><p>' . esc_html__( 'Network settings saved.', 'purgebridge' ) . '</p></div>';
		}
		echo '<p>' . esc_html__( 'Every site of this network sends its changes to this relay, signed with this secret. Site administrators see these settings but cannot change them.', 'purgebridge' ) . '</p>';
		echo '<form method="post" action="' . esc_url( network_admin_url( 'edit.php?action=' . self::PAGE ) ) . '">';
		wp_nonce_field( self::PAGE );
		echo '<table class="form-table" role="presentation"><tr><th scope="row"><label for="purgebridge_relay_url">' . esc_html__( 'Relay URL', 'purgebridge' ) . '</label></th><td>';
		Purgebridge_Admin::field_url();
		echo '</td></tr><tr><th scope="row"><label for="purgebridge_secret">' . esc_html__( 'Secret', 'purgebridge' ) . '</label></th><td>';
		Purgebridge_Admin::field_secret();
		echo '</td></tr></table>';
		submit_button();
		echo '</form></div>';
	}

	/**
	 * Saves the network settings (network_admin_edit_ action).
	 */
	public static function save() {
		check_admin_referer( self::PAGE );
		if ( ! current_user_can( 'manage_network_options' ) ) {
			wp_die( esc_html__( 'Only a network administrator may change the relay.', 'purgebridge' ), 403 );
		}
		// sanitize_option() runs the setting's own sanitizer.
		if ( ! Purgebridge_Settings::url_locked() && isset( $_POST['purgebridge_relay_url'] ) ) {
			$url = sanitize_option( 'purgebridge_relay_url', wp_unslash( $_POST['purgebridge_relay_url'] ) );
			update_site_option( 'purgebridge_relay_url', $url );
		}
		if ( ! Purgebridge_Settings::secret_locked() && isset( $_POST['purgebridge_secret'] ) ) {
			$secret = trim( (string) wp_unslash( $_POST['purgebridge_secret'] ) );
			if ( '' !== $secret ) {
				update_site_option( 'purgebridge_secret', $secret );
			}
		}
		wp_safe_redirect( add_query_arg( array( 'page' => self::PAGE, 'updated' => 1 ), network_admin_url( 'settings.php' ) ) );
		exit;
	}
}
