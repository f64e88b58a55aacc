<?php
/**
 * WordPress bootstrap: loads the real test WordPress built by
 * tests/fixtures/wordpress.py (PURGEBRIDGE_WP_ROOT, PURGEBRIDGE_WP_URL), with
 * the plugin active. PHPUnit includes this file inside a function, so the
 * globals WordPress expects are declared here first.
 */

// phpcs:disable
global $wpdb, $table_prefix, $wp_rewrite, $wp, $wp_query, $wp_the_query, $wp_roles, $wp_locale, $wp_embed,
	$wp_widget_factory, $wp_filter, $wp_actions, $wp_current_filter, $wp_post_types, $wp_taxonomies,
	$wp_version, $wp_db_version, $shortcode_tags, $current_user, $pagenow, $allowedposttags, $allowedtags,
	$wp_plugin_paths, $_wp_deprecated_widgets_callbacks, $wp_scripts, $wp_styles, $wp_object_cache,
	$wp_textdomain_registry, $wp_meta_keys, $wp_registered_sidebars, $wp_registered_widgets, $wp_post_statuses,
	$wp_settings_errors, $wp_rest_server, $wp_sitemaps, $timestart, $blog_id, $wp_local_package,
	$required_php_version, $required_mysql_version, $tinymce_version, $wp_theme_directories;

$purgebridge_docroot = getenv( 'PURGEBRIDGE_WP_ROOT' );
$purgebridge_url     = getenv( 'PURGEBRIDGE_WP_URL' );
if ( ! $purgebridge_docroot || ! is_file( $purgebridge_docroot . '/wp-load.php' ) || ! $purgebridge_url ) {
	fwrite( STDERR, "bootstrap-wp.php needs PURGEBRIDGE_WP_ROOT (an installed WordPress) and PURGEBRIDGE_WP_URL\n" );
	exit( 1 );
}
require dirname( dirname( __DIR__ ) ) . '/tests/fixtures/wordpress-php/wp-cli-bootstrap.php';
require $purgebridge_docroot . '/wp-load.php';
if ( ! class_exists( 'Purgebridge_Queue' ) ) {
	fwrite( STDERR, "purgebridge is not active in $purgebridge_docroot\n" );
	exit( 1 );
}
