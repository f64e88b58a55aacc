<?php
/**
 * Must-use plugin of the multisite test harness only (never shipped).
 *
 * The harness serves every site on one loopback port, so a site's domain is
 * "127.0.0.1:PORT" or "blog2.localhost:PORT". WordPress keeps such domains
 * (ms-settings.php matches HTTP_HOST with its port), but wp_insert_site()
 * passes the domain through sanitize_user(), which drops the colon. Put the
 * port back for exactly that shape.
 */
add_filter(
	'sanitize_user',
	function ( $clean, $raw ) {
		$raw = trim( (string) $raw );
		return preg_match( '/^[a-z0-9.-]+:[0-9]{1,5}$/', $raw ) ? $raw : $clean;
	},
	10,
	2
);
