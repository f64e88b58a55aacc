<?php
/**
 * Plugin Name:       Purgebridge
 * Plugin URI:        https://github.com/purgebridge/purgebridge
 * Description:       Tells the purgebridge relay about every content change in one signed event per request; the relay purges every Varnish node. Never blocks the editor, never loses an event.
 * Version:           0.1.0
 * Requires at least: 6.1
 * Tested up to:      6.1
 * Requires PHP:      7.4
 * Author:            purgebridge contributors
 * License:           MIT
 * License URI:       https://opensource.org/licenses/MIT
 * Text Domain:       purgebridge
 * Domain Path:       /languages
 * Update URI:        https://github.com/purgebridge/purgebridge
 *
 * @package Purgebridge
 */

defined( 'ABSPATH' ) || exit;

// Load guard: a second copy (say one in mu-plugins and one in plugins) would
// redeclare every class and stop the site with a fatal error. The first copy
// loaded wins; administrators are told where the other one is.
if ( defined( 'PURGEBRIDGE_FILE' ) ) {
	$purgebridge_skipped = __FILE__;
	add_action(
		'admin_notices',
		function () use ( $purgebridge_skipped ) {
			if ( current_user_can( 'manage_options' ) ) {
				/* translators: 1: path of the copy not loaded, 2: path of the active copy */
				echo '<div class="notice notice-warning" id="purgebridge-second-copy"><p>' . esc_html( sprintf( __( 'Purgebridge is installed twice: %1$s was not loaded because %2$s already is. Remove one of them.', 'purgebridge' ), $purgebridge_skipped, PURGEBRIDGE_FILE ) ) . '</p></div>';
			}
		}
	);
	return;
}

define( 'PURGEBRIDGE_VERSION', '0.1.0' );
define( 'PURGEBRIDGE_FILE', __FILE__ );

require_once __DIR__ . '/includes/class-purgebridge-autoloader.php';
Purgebridge_Autoloader::register();

register_activation_hook( __FILE__, array( 'Purgebridge_Plugin', 'activate' ) );
register_deactivation_hook( __FILE__, array( 'Purgebridge_Plugin', 'deactivate' ) );

Purgebridge_Plugin::boot();
