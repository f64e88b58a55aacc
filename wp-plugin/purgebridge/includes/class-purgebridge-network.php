<?php
/**
 * WordPress multisite: one plugin, many sites, one relay.
 *
 * - Network activation sets up every site (queue table, options, cron), and a
 *   site created later is set up on `wp_initialize_site`; a deleted site's
 *   queue table is dropped with its other tables.
 * - Changes are attributed to the site they happened on: the change buffer
 *   (Purgebridge_Change_Buffer) keys every record by the blog current at the hook (so `switch_to_blog()`
 *   edits stay with their site), builds each record switched to that blog,
 *   and sends each site's changes in batches of their own, with that site's
 *   home URL, at shutdown. That is the only mechanism; nothing here follows
 *   `switch_blog`.
 * - The relay URL and secret are network-wide (site options) and only a
 *   network admin (`manage_network_options`) sets them, on Network Admin →
 *   Settings → Purgebridge (Purgebridge_Network_Page, saved by
 *   Purgebridge_Admin_Settings::save_network()). A sub-site admin cannot repoint the relay:
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
}
