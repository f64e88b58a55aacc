<?php
/**
 * Removes everything the plugin stored: options, the retry queue table, cron;
 * on multisite on every site of the network, and the network-wide relay
 * settings.
 *
 * @package Purgebridge
 */

defined( 'WP_UNINSTALL_PLUGIN' ) || exit;

require_once __DIR__ . '/includes/class-purgebridge-autoloader.php';
Purgebridge_Autoloader::register();

/**
 * Removes the plugin's data from the current site.
 */
function purgebridge_uninstall_site() {
	foreach ( Purgebridge_Settings::OPTIONS as $purgebridge_option ) {
		delete_option( $purgebridge_option );
	}
	Purgebridge_Queue::uninstall();
	wp_clear_scheduled_hook( 'purgebridge_drain' );
	wp_clear_scheduled_hook( 'purgebridge_drain_soon' );
}

if ( is_multisite() ) {
	Purgebridge_Network::each_site( 'purgebridge_uninstall_site' );
	delete_site_option( 'purgebridge_relay_url' );
	delete_site_option( 'purgebridge_secret' );
} else {
	purgebridge_uninstall_site();
}
delete_metadata( 'user', 0, 'purgebridge_dismissed_notices', '', true );
