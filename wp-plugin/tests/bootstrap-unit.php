<?php
/**
 * Unit bootstrap: loads the plugin's pure classes with small stand-ins for
 * the WordPress functions they call. The stand-ins read a fake site from
 * $GLOBALS['purgebridge_fake'] that each test fills in.
 */

define( 'ABSPATH', __DIR__ . '/' );
define( 'PURGEBRIDGE_VERSION', 'test' );

$GLOBALS['purgebridge_fake'] = array();

/**
 * Resets the fake site.
 *
 * @param array $site Overrides.
 */
function purgebridge_fake_reset( array $site = array() ) {
	$GLOBALS['purgebridge_fake'] = array_merge(
		array(
			'home'         => 'https://blog.example.test/',
			'posts'        => array(),
			'permalinks'   => array(),
			'authors'      => array(),
			'terms'        => array(),
			'object_terms' => array(),
			'types'        => array(),
			'taxonomies'   => array(),
		),
		$site
	);
}

/** Stand-in: a WP_Error. */
class WP_Error {
	/** @var string */
	public $message;
	/** @param string $code Code. @param string $message Message. */
	public function __construct( $code = '', $message = '' ) {
		$this->message = $message;
	}
	/** @return string */
	public function get_error_message() {
		return $this->message;
	}
}

function is_wp_error( $thing ) {
	return $thing instanceof WP_Error;
}
function apply_filters( $hook, $value ) {
	return $value;
}
function __( $text ) {
	return $text;
}
function wp_json_encode( $data, $options = 0 ) {
	return json_encode( $data, $options );
}
function home_url( $path = '' ) {
	return rtrim( $GLOBALS['purgebridge_fake']['home'], '/' ) . $path;
}
function get_post( $id ) {
	$id = is_object( $id ) ? $id->ID : (int) $id;
	return isset( $GLOBALS['purgebridge_fake']['posts'][ $id ] ) ? $GLOBALS['purgebridge_fake']['posts'][ $id ] : null;
}
function get_permalink( $post ) {
	$id = is_object( $post ) ? $post->ID : (int) $post;
	return isset( $GLOBALS['purgebridge_fake']['permalinks'][ $id ] ) ? $GLOBALS['purgebridge_fake']['permalinks'][ $id ] : home_url( '/?p=' . $id );
}
function get_author_posts_url( $author_id ) {
	return isset( $GLOBALS['purgebridge_fake']['authors'][ $author_id ] ) ? $GLOBALS['purgebridge_fake']['authors'][ $author_id ] : home_url( '/?author=' . $author_id );
}
function get_post_type_object( $name ) {
	return isset( $GLOBALS['purgebridge_fake']['types'][ $name ] ) ? $GLOBALS['purgebridge_fake']['types'][ $name ] : null;
}
function is_post_type_viewable( $name ) {
	$type = get_post_type_object( $name );
	return $type && ! empty( $type->public );
}
function get_post_type_archive_link( $name ) {
	return home_url( '/' . $name . '/' );
}
function get_taxonomy( $name ) {
	return isset( $GLOBALS['purgebridge_fake']['taxonomies'][ $name ] ) ? $GLOBALS['purgebridge_fake']['taxonomies'][ $name ] : false;
}
function is_taxonomy_viewable( $name ) {
	$tax = get_taxonomy( $name );
	return $tax && ! empty( $tax->public );
}
function get_object_taxonomies( $post_type ) {
	$names = array();
	foreach ( $GLOBALS['purgebridge_fake']['taxonomies'] as $name => $tax ) {
		if ( in_array( $post_type, $tax->object_type, true ) ) {
			$names[] = $name;
		}
	}
	return $names;
}
function wp_get_object_terms( $post_id, $taxonomies ) {
	$all   = $GLOBALS['purgebridge_fake']['object_terms'];
	$terms = array();
	foreach ( (array) $taxonomies as $taxonomy ) {
		$ids = isset( $all[ $post_id ][ $taxonomy ] ) ? $all[ $post_id ][ $taxonomy ] : array();
		foreach ( $ids as $id ) {
			$terms[] = get_term( $id );
		}
	}
	return array_reverse( $terms ); // WordPress orders by name, not by taxonomy.
}
function get_term( $term, $taxonomy = '' ) {
	$id = is_object( $term ) ? $term->term_id : (int) $term;
	return isset( $GLOBALS['purgebridge_fake']['terms'][ $id ] ) ? $GLOBALS['purgebridge_fake']['terms'][ $id ] : null;
}
function get_term_link( $term ) {
	return $term->link;
}
function get_ancestors( $id, $taxonomy ) {
	$chain = array();
	$term  = get_term( $id );
	while ( $term && $term->parent ) {
		$chain[] = $term->parent;
		$term    = get_term( $term->parent );
	}
	return $chain;
}

// The pure classes (signer, outcome, HTTP, snapshots, event builder,
// recovery rules, ...) load on first use, as in the plugin.
require dirname( __DIR__ ) . '/purgebridge/includes/class-purgebridge-autoloader.php';
Purgebridge_Autoloader::register();

purgebridge_fake_reset();
