<?php
/**
 * Must-use plugin installed by the test harness only (never shipped): lets a
 * test fake the load average the probe sees, and keeps the harness offline.
 */
add_filter(
	'purgebridge_probe_load',
	function ( $load ) {
		$fake = get_option( 'purgebridge_test_fake_load', '' );
		return '' === $fake ? $load : (float) $fake;
	}
);
add_filter(
	'purgebridge_probe_token',
	function ( $token ) {
		return (string) get_option( 'purgebridge_test_probe_token', $token );
	}
);
add_filter(
	'purgebridge_relay_hosts',
	function ( $hosts ) {
		return (array) get_option( 'purgebridge_test_relay_hosts', $hosts );
	}
);
add_filter( 'pre_wp_mail', '__return_false' );
add_filter( 'pre_http_request', function ( $pre, $args, $url ) {
	$host = parse_url( $url, PHP_URL_HOST );
	if ( ! in_array( $host, array( '127.0.0.1', 'localhost', '::1', '[::1]' ), true ) ) {
		return new WP_Error( 'purgebridge_test_offline', 'test harness: no network beyond loopback' );
	}
	return $pre;
}, 1, 3 );
