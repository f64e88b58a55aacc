<?php
/**
 * Shared start of the harness's PHP command-line scripts: pretends to be a
 * request to the test site so WordPress builds the right URLs.
 *
 * Usage: require it with $purgebridge_docroot and $purgebridge_url set.
 */
$purgebridge_parts          = parse_url( $purgebridge_url );
$_SERVER['HTTP_HOST']       = $purgebridge_parts['host'] . ( isset( $purgebridge_parts['port'] ) ? ':' . $purgebridge_parts['port'] : '' );
$_SERVER['SERVER_NAME']     = $purgebridge_parts['host'];
$_SERVER['SERVER_PORT']     = isset( $purgebridge_parts['port'] ) ? (string) $purgebridge_parts['port'] : '80';
$_SERVER['REQUEST_URI']     = '/';
$_SERVER['REQUEST_METHOD']  = 'GET';
$_SERVER['SERVER_PROTOCOL'] = 'HTTP/1.1';
$_SERVER['REMOTE_ADDR']     = '127.0.0.1';

/* The harness has no mail server; WordPress mails the admin on install. */
if ( ! function_exists( 'wp_mail' ) ) {
	function wp_mail() {
		return true;
	}
}
