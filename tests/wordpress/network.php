<?php
/**
 * Turns the installed test WordPress into a network, as wp-admin/network.php
 * (and WP-CLI's `core multisite-convert`) do: the network tables, then the
 * network row with this site as its main site.
 *
 *   php network.php DOCROOT URL subdirectory|subdomain
 *
 * wp-config.php gets the MULTISITE constants afterwards (tests/fixtures_multisite.py).
 */
if ( $argc < 4 ) {
	fwrite( STDERR, "usage: network.php DOCROOT URL subdirectory|subdomain\n" );
	exit( 2 );
}
list( , $purgebridge_docroot, $purgebridge_url, $purgebridge_kind ) = $argv;
require __DIR__ . '/wp-cli-bootstrap.php';
define( 'WP_INSTALLING_NETWORK', true );
require $purgebridge_docroot . '/wp-load.php';
require_once ABSPATH . 'wp-admin/includes/upgrade.php';

global $wpdb;
foreach ( $wpdb->tables( 'ms_global' ) as $purgebridge_table => $purgebridge_prefixed ) {
	$wpdb->$purgebridge_table = $purgebridge_prefixed;
}
install_network();
$purgebridge_result = populate_network( 1, $_SERVER['HTTP_HOST'], 'admin@example.test', 'Purgebridge Test Network', '/', 'subdomain' === $purgebridge_kind );
// A subdomain network warns that wildcard DNS could not be checked (the harness is offline): expected.
if ( is_wp_error( $purgebridge_result ) && 'no_wildcard_dns' !== $purgebridge_result->get_error_code() ) {
	fwrite( STDERR, 'populate_network failed: ' . $purgebridge_result->get_error_message() . "\n" );
	exit( 1 );
}
echo "network created\n";
