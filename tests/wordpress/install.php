<?php
/**
 * Installs the test WordPress non-interactively, in steps that each need a
 * fresh PHP process:
 *
 *   php install.php DOCROOT URL install     -- wp_install()
 *   php install.php DOCROOT URL permalinks  -- pretty permalinks + flush
 *   php install.php DOCROOT URL activate    -- activate purgebridge
 *   php install.php DOCROOT URL install-zip ZIP -- install a plugin zip with Plugin_Upgrader
 *
 * Taxonomy rewrite rules (category, tag) are only registered when the
 * permalink structure is already set as WordPress starts, so the flush must
 * happen in a process started after the structure was saved.
 */
if ( $argc < 4 ) {
	fwrite( STDERR, "usage: install.php DOCROOT URL install|permalinks|activate\n" );
	exit( 2 );
}
list( , $purgebridge_docroot, $purgebridge_url, $purgebridge_step ) = $argv;
require __DIR__ . '/wp-cli-bootstrap.php';

if ( 'install' === $purgebridge_step ) {
	define( 'WP_INSTALLING', true );
	require $purgebridge_docroot . '/wp-load.php';
	require_once ABSPATH . 'wp-admin/includes/upgrade.php';
	if ( is_blog_installed() ) {
		echo "already installed\n";
		exit( 0 );
	}
	$purgebridge_result = wp_install( 'Purgebridge Test', 'admin', 'admin@example.test', true, '', 'admin-password-for-tests' );
	if ( is_wp_error( $purgebridge_result ) || empty( $purgebridge_result['user_id'] ) ) {
		fwrite( STDERR, "wp_install failed\n" );
		exit( 1 );
	}
	echo "installed user " . (int) $purgebridge_result['user_id'] . "\n";
	exit( 0 );
}

require $purgebridge_docroot . '/wp-load.php';

if ( 'permalinks' === $purgebridge_step ) {
	global $wp_rewrite;
	update_option( 'permalink_structure', '/%year%/%monthnum%/%day%/%postname%/' );
	update_option( 'posts_per_page', 5 );
	$wp_rewrite->init();
	flush_rewrite_rules( false );
	echo "permalinks set\n";
	exit( 0 );
}

if ( 'flush' === $purgebridge_step ) {
	flush_rewrite_rules( false );
	$purgebridge_rules = get_option( 'rewrite_rules' );
	$purgebridge_has   = false;
	foreach ( array_keys( (array) $purgebridge_rules ) as $purgebridge_rule ) {
		if ( 0 === strpos( $purgebridge_rule, 'category/' ) ) {
			$purgebridge_has = true;
		}
	}
	if ( ! $purgebridge_has ) {
		fwrite( STDERR, "no category rewrite rules after flush\n" );
		exit( 1 );
	}
	echo "rewrite rules flushed\n";
	exit( 0 );
}

if ( 'activate' === $purgebridge_step ) {
	require_once ABSPATH . 'wp-admin/includes/plugin.php';
	$purgebridge_result = activate_plugin( 'purgebridge/purgebridge.php' );
	if ( is_wp_error( $purgebridge_result ) ) {
		fwrite( STDERR, 'activation failed: ' . $purgebridge_result->get_error_message() . "\n" );
		exit( 1 );
	}
	echo "activated\n";
	exit( 0 );
}

if ( 'install-zip' === $purgebridge_step ) {
	// The plugin's zip through WordPress's own upgrader, as Plugins → Add New → Upload does it.
	require_once ABSPATH . 'wp-admin/includes/admin.php';
	require_once ABSPATH . 'wp-admin/includes/class-wp-upgrader.php';
	$purgebridge_upgrader = new Plugin_Upgrader( new Automatic_Upgrader_Skin() );
	$purgebridge_result   = $purgebridge_upgrader->install( $argv[4] );
	if ( true !== $purgebridge_result ) {
		$purgebridge_errors = is_wp_error( $purgebridge_result ) ? $purgebridge_result->get_error_message() : implode( '; ', (array) $purgebridge_upgrader->skin->get_upgrade_messages() );
		fwrite( STDERR, 'Plugin_Upgrader::install failed: ' . $purgebridge_errors . "\n" );
		exit( 1 );
	}
	echo 'installed ' . $purgebridge_upgrader->plugin_info() . "\n";
	exit( 0 );
}

fwrite( STDERR, "unknown step $purgebridge_step\n" );
exit( 2 );
