<?php
/**
 * Plugin Name:       Purgebridge
 * Plugin URI:        https://github.com/purgebridge/purgebridge
 * Description:       Tells the purgebridge relay about every content change in one signed event per request; the relay purges every Varnish node. Never blocks the editor, never loses an event.
 * Version:           0.1.0
 * Requires at least: 5.9
 * Requires PHP:      7.4
 * Author:            purgebridge contributors
 * License:           MIT
 * License URI:       https://opensource.org/licenses/MIT
 * Text Domain:       purgebridge
 * Domain Path:       /languages
 *
 * @package Purgebridge
 */

defined( 'ABSPATH' ) || exit;

define( 'PURGEBRIDGE_VERSION', '0.1.0' );
define( 'PURGEBRIDGE_FILE', __FILE__ );

require_once __DIR__ . '/includes/class-purgebridge-signer.php';
require_once __DIR__ . '/includes/class-purgebridge-policy.php';
require_once __DIR__ . '/includes/class-purgebridge-settings.php';
require_once __DIR__ . '/includes/class-purgebridge-snapshot.php';
require_once __DIR__ . '/includes/class-purgebridge-event-builder.php';
require_once __DIR__ . '/includes/class-purgebridge-http.php';
require_once __DIR__ . '/includes/class-purgebridge-client.php';
require_once __DIR__ . '/includes/class-purgebridge-queue.php';
require_once __DIR__ . '/includes/class-purgebridge-dispatcher.php';
require_once __DIR__ . '/includes/class-purgebridge-collector.php';
require_once __DIR__ . '/includes/class-purgebridge-probe.php';
require_once __DIR__ . '/includes/class-purgebridge-frontend.php';
require_once __DIR__ . '/includes/class-purgebridge-admin.php';
require_once __DIR__ . '/includes/class-purgebridge-network.php';
require_once __DIR__ . '/includes/class-purgebridge-plugin.php';

register_activation_hook( __FILE__, array( 'Purgebridge_Plugin', 'activate' ) );
register_deactivation_hook( __FILE__, array( 'Purgebridge_Plugin', 'deactivate' ) );

Purgebridge_Plugin::boot();
