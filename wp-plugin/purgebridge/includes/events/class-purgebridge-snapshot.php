<?php
/**
 * Reads what WordPress knows about a post or term at one moment.
 *
 * The plugin takes one snapshot before a change (old permalink, old terms)
 * and one at the end of the request (new state); the event builder compares
 * the two. Reading the old state early matters: once a post is trashed,
 * get_permalink() only returns "?p=ID".
 *
 * @package Purgebridge
 */

defined( 'ABSPATH' ) || exit;

/**
 * Snapshot readers.
 */
final class Purgebridge_Snapshot {

	/**
	 * Whether changes to posts of this type can make public pages stale.
	 *
	 * @param string $post_type Post type name.
	 * @return bool
	 */
	public static function tracked_type( $post_type ) {
		if ( in_array( $post_type, array( 'revision', 'nav_menu_item', 'customize_changeset', 'oembed_cache', 'user_request', 'wp_block', 'wp_template', 'wp_template_part', 'wp_global_styles', 'wp_navigation' ), true ) ) {
			return false;
		}
		$tracked = function_exists( 'is_post_type_viewable' ) ? is_post_type_viewable( $post_type ) : false;
		/**
		 * Filters whether a post type's changes are sent to the relay.
		 *
		 * @param bool   $tracked   Default: the type is publicly viewable.
		 * @param string $post_type Post type.
		 */
		return (bool) apply_filters( 'purgebridge_tracked_post_type', $tracked, $post_type );
	}

	/**
	 * Whether a post in this status is on a public page.
	 *
	 * @param WP_Post|object $post   The post.
	 * @param string|null    $status Status to judge (defaults to the post's).
	 * @return bool
	 */
	public static function is_visible( $post, $status = null ) {
		$status = null === $status ? $post->post_status : $status;
		if ( 'publish' === $status ) {
			return true;
		}
		if ( 'attachment' === $post->post_type && 'inherit' === $status ) {
			if ( empty( $post->post_parent ) ) {
				return true;
			}
			$parent = get_post( $post->post_parent );
			return $parent && 'publish' === $parent->post_status;
		}
		return false;
	}

	/**
	 * Everything the event needs about a post, now.
	 *
	 * @param WP_Post|object $post   The post.
	 * @param string|null    $status Status to record instead of the current one
	 *                               (used when WordPress has already moved on).
	 * @return array Snapshot (see Purgebridge_Event_Builder::post()).
	 */
	public static function post( $post, $status = null ) {
		$status  = null === $status ? $post->post_status : $status;
		$visible = self::is_visible( $post, $status );
		$type    = get_post_type_object( $post->post_type );
		$author  = (int) $post->post_author;
		return array(
			'id'               => (int) $post->ID,
			'type'             => (string) $post->post_type,
			'rest_base'        => self::rest_base( $type, $post->post_type ),
			'status'           => $status,
			'visible'          => $visible,
			'url'              => $visible ? (string) get_permalink( $post ) : null,
			'date'             => $visible ? substr( (string) $post->post_date, 0, 10 ) : null,
			'author'           => array(
				'id'  => $author,
				'url' => (string) get_author_posts_url( $author ),
			),
			'terms'            => $visible ? self::post_terms( $post ) : array(),
			'type_archive_url' => self::type_archive_url( $type, $post->post_type ),
		);
	}

	/**
	 * REST base of a post type or taxonomy object, null when not in REST.
	 *
	 * @param object|null $object Post type or taxonomy object.
	 * @param string      $name   Its name.
	 * @return string|null
	 */
	public static function rest_base( $object, $name ) {
		if ( ! $object || empty( $object->show_in_rest ) ) {
			return null;
		}
		return ! empty( $object->rest_base ) ? (string) $object->rest_base : (string) $name;
	}

	/**
	 * Archive link of a custom post type with an archive.
	 *
	 * @param object|null $type Post type object.
	 * @param string      $name Post type name.
	 * @return string|null
	 */
	private static function type_archive_url( $type, $name ) {
		if ( ! $type || ! empty( $type->_builtin ) || empty( $type->has_archive ) ) {
			return null;
		}
		$link = get_post_type_archive_link( $name );
		return $link ? (string) $link : null;
	}

	/**
	 * Public terms of a post, ancestors included (a parent category archive
	 * lists its children's posts).
	 *
	 * @param WP_Post|object $post       The post.
	 * @param array          $override   Taxonomy => term ids to use instead of the stored ones.
	 * @return array List of Term arrays.
	 */
	public static function post_terms( $post, array $override = array() ) {
		$taxonomies = array();
		foreach ( get_object_taxonomies( $post->post_type ) as $taxonomy ) {
			if ( self::tracked_taxonomy( $taxonomy ) ) {
				$taxonomies[] = $taxonomy;
			}
		}
		$ids     = array();
		$missing = array();
		foreach ( array_diff( $taxonomies, array_keys( $override ) ) as $taxonomy ) {
			// WordPress often has them in memory already: wp_update_post() reads
			// the post's categories and tags before pre_post_update fires.
			$cached = function_exists( 'get_object_term_cache' ) ? get_object_term_cache( $post->ID, $taxonomy ) : false;
			if ( ! is_array( $cached ) ) {
				$missing[] = $taxonomy;
				continue;
			}
			foreach ( $cached as $term ) {
				$ids[ $taxonomy ][] = (int) $term->term_id;
			}
		}
		if ( $missing ) {
			// One query for the rest of the taxonomies; term meta is not needed.
			$found = wp_get_object_terms( $post->ID, $missing, array( 'update_term_meta_cache' => false ) );
			if ( ! is_wp_error( $found ) ) {
				foreach ( $found as $term ) {
					$ids[ $term->taxonomy ][] = (int) $term->term_id;
				}
			}
		}
		foreach ( $override as $taxonomy => $term_ids ) {
			if ( in_array( $taxonomy, $taxonomies, true ) ) {
				$ids[ $taxonomy ] = array_map( 'intval', $term_ids );
			}
		}
		$terms = array();
		foreach ( $taxonomies as $taxonomy ) {
			if ( empty( $ids[ $taxonomy ] ) ) {
				continue;
			}
			foreach ( $ids[ $taxonomy ] as $term_id ) {
				$chain = array_merge( array( $term_id ), array_map( 'intval', get_ancestors( $term_id, $taxonomy, 'taxonomy' ) ) );
				foreach ( $chain as $id ) {
					if ( isset( $terms[ $id ] ) ) {
						continue;
					}
					$term = self::term( $id, $taxonomy );
					if ( $term ) {
						$terms[ $id ] = $term;
					}
				}
			}
		}
		return array_values( $terms );
	}

	/**
	 * Two lists of Term arrays as one, each term once (terms the post had
	 * before a wp_set_object_terms() and those of its old snapshot).
	 *
	 * @param array $first  Term arrays.
	 * @param array $second Term arrays.
	 * @return array
	 */
	public static function merge_terms( array $first, array $second ) {
		$merged = array();
		foreach ( array_merge( $first, $second ) as $term ) {
			$merged[ $term['taxonomy'] . ':' . $term['id'] ] = $term;
		}
		return array_values( $merged );
	}

	/**
	 * Whether a taxonomy has public archive pages.
	 *
	 * @param string $taxonomy Taxonomy name.
	 * @return bool
	 */
	public static function tracked_taxonomy( $taxonomy ) {
		$tracked = function_exists( 'is_taxonomy_viewable' ) ? is_taxonomy_viewable( $taxonomy ) : false;
		/**
		 * Filters whether a taxonomy's terms are sent to the relay.
		 *
		 * @param bool   $tracked  Default: the taxonomy is publicly viewable.
		 * @param string $taxonomy Taxonomy.
		 */
		return (bool) apply_filters( 'purgebridge_tracked_taxonomy', $tracked, $taxonomy );
	}

	/**
	 * One Term array, or null when the term does not exist.
	 *
	 * @param int|WP_Term $term     Term id or object.
	 * @param string      $taxonomy Taxonomy.
	 * @return array|null
	 */
	public static function term( $term, $taxonomy ) {
		$term = get_term( $term, $taxonomy );
		if ( ! $term || is_wp_error( $term ) ) {
			return null;
		}
		$link = get_term_link( $term );
		if ( is_wp_error( $link ) ) {
			return null;
		}
		return array(
			'id'        => (int) $term->term_id,
			'taxonomy'  => (string) $term->taxonomy,
			'rest_base' => self::rest_base( get_taxonomy( $term->taxonomy ), $term->taxonomy ),
			'url'       => (string) $link,
		);
	}
}
