<?php
/**
 * Removes everything the plugin stored: options, the retry queue table, cron.
 *
 * @package Purgebridge
 */

defined( 'WP_UNINSTALL_PLUGIN' ) || exit;

require_once __DIR__ . '/includes/class-purgebridge-settings.php';
require_once __DIR__ . '/includes/class-purgebridge-queue.php';

foreach ( Purgebridge_Settings::OPTIONS as $purgebridge_option ) {
	delete_option( $purgebridge_option );
}
delete_metadata( 'user', 0, 'purgebridge_dismissed_notices', '', true );
Purgebridge_Queue::uninstall();
wp_clear_scheduled_hook( 'purgebridge_drain' );
wp_clear_scheduled_hook( 'purgebridge_drain_soon' );
