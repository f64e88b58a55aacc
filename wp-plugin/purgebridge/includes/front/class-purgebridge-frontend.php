<?php
/**
 * Front-end additions: surrogate keys (xkey header) and the tag cloud as an
 * ESI fragment. Key names match the relay's mapping: post-ID, term-ID,
 * author-ID, front.
 *
 * @package Purgebridge
 */

defined( 'ABSPATH' ) || exit;

/**
 * Front-end hooks.
 */
final class Purgebridge_Frontend {

	const FRAGMENT_PARAM = 'purgebridge-fragment';

	/**
	 * Registers the hooks.
	 */
	public static function register() {
		add_action( 'template_redirect', array( __CLASS__, 'headers' ), 1 );
		add_action( 'wp_loaded', array( __CLASS__, 'maybe_fragment' ) );
		add_filter( 'wp_tag_cloud', array( __CLASS__, 'tag_cloud' ), 100, 2 );
		add_filter( 'wp_tag_cloud', array( __CLASS__, 'tag_cloud_rendered' ), 5, 1 );
	}

	/**
	 * Whether this response renders a tag cloud.
	 *
	 * @var bool
	 */
	private static $shows_tag_cloud = false;

	/**
	 * Adds the xkey and ESI headers on anonymous front-end pages.
	 */
	public static function headers() {
		if ( headers_sent() || is_admin() ) {
			return;
		}
		self::send_xkey();
		if ( Purgebridge_Settings::esi_tag_cloud_enabled() && ! is_user_logged_in() ) {
			header( 'Surrogate-Control: content="ESI/1.0"' );
		}
	}

	/**
	 * Surrogate keys of the current main query.
	 *
	 * @return string[]
	 */
	public static function keys() {
		$keys = array();
		if ( is_front_page() || is_home() ) {
			$keys[] = 'front';
		}
		if ( is_singular() ) {
			$keys[] = 'post-' . (int) get_queried_object_id();
		} elseif ( is_category() || is_tag() || is_tax() ) {
			$keys[] = 'term-' . (int) get_queried_object_id();
		} elseif ( is_author() ) {
			$keys[] = 'author-' . (int) get_queried_object_id();
		}
		$keys = array_merge( $keys, self::shown_keys() );
		if ( ! is_singular() ) {
			global $wp_query;
			if ( $wp_query && ! empty( $wp_query->posts ) ) {
				foreach ( $wp_query->posts as $post ) {
					if ( is_object( $post ) ) {
						$keys[] = 'post-' . (int) $post->ID;
					}
				}
			}
		}
		/**
		 * Filters the surrogate keys of a front-end response.
		 *
		 * @param string[] $keys Keys.
		 */
		return array_values( array_unique( (array) apply_filters( 'purgebridge_xkeys', $keys ) ) );
	}

	/**
	 * Sends (or replaces) the xkey header with the current keys.
	 */
	private static function send_xkey() {
		if ( ! Purgebridge_Settings::xkey_enabled() || headers_sent() ) {
			return;
		}
		$keys = self::keys();
		if ( $keys ) {
			header( 'xkey: ' . implode( ' ', $keys ) );
		}
	}

	/**
	 * Keys of what a page shows besides its main object: term-ID of every
	 * term of the posts it shows (the post-terms block and post_class print
	 * their names and links, so a renamed term purges these pages), and
	 * tag-cloud when the page renders a tag cloud (a classic or block widget
	 * known before the page renders, or a core/tag-cloud block that ran
	 * already: block themes render the whole template before output starts).
	 *
	 * @return string[]
	 */
	private static function shown_keys() {
		$keys = array();
		$ids  = array();
		if ( is_singular() ) {
			$ids[] = (int) get_queried_object_id();
		} else {
			global $wp_query;
			foreach ( ( $wp_query && ! empty( $wp_query->posts ) ) ? $wp_query->posts : array() as $post ) {
				if ( is_object( $post ) ) {
					$ids[] = (int) $post->ID;
				}
			}
		}
		foreach ( $ids as $id ) {
			$type = get_post_type( $id );
			foreach ( $type ? get_object_taxonomies( $type ) : array() as $taxonomy ) {
				if ( ! Purgebridge_Snapshot::tracked_taxonomy( $taxonomy ) ) {
					continue;
				}
				$terms = get_the_terms( $id, $taxonomy );
				foreach ( is_array( $terms ) ? $terms : array() as $term ) {
					$keys[] = 'term-' . (int) $term->term_id;
				}
			}
		}
		if ( self::$shows_tag_cloud || ( ! is_feed() && ! is_robots() && self::tag_cloud_widget_active() ) ) {
			$keys[] = 'tag-cloud';
		}
		return $keys;
	}

	/**
	 * Whether a classic tag cloud widget or a block widget holding a tag
	 * cloud is in an active sidebar (classic themes print widgets after the
	 * headers are sent, so this is decided up front).
	 *
	 * @return bool
	 */
	private static function tag_cloud_widget_active() {
		if ( function_exists( 'wp_is_block_theme' ) && wp_is_block_theme() ) {
			return false;
		}
		if ( is_active_widget( false, false, 'tag_cloud', true ) ) {
			return true;
		}
		foreach ( (array) get_option( 'widget_block', array() ) as $number => $widget ) {
			if ( is_array( $widget ) && isset( $widget['content'] ) && false !== strpos( $widget['content'], '<!-- wp:tag-cloud' )
				&& is_active_widget( false, 'block-' . $number, 'block', true ) ) {
				return true;
			}
		}
		return false;
	}

	/**
	 * A tag cloud was rendered (widget, core/tag-cloud block or theme code):
	 * the page gets the tag-cloud key when its headers are still open.
	 *
	 * @param string|array $output Tag cloud markup.
	 * @return string|array Unchanged.
	 */
	public static function tag_cloud_rendered( $output ) {
		if ( ! is_admin() && ! self::serving_fragment() && ! self::$shows_tag_cloud && did_action( 'template_redirect' ) ) {
			self::$shows_tag_cloud = true;
			self::send_xkey();
		}
		return $output;
	}

	/**
	 * Path of the tag cloud fragment, relative to the host.
	 *
	 * @return string
	 */
	public static function fragment_path() {
		return wp_make_link_relative( add_query_arg( self::FRAGMENT_PARAM, 'tag-cloud', home_url( '/' ) ) );
	}

	/**
	 * Replaces the tag cloud with an ESI include for anonymous visitors.
	 *
	 * @param string|array $output Tag cloud markup.
	 * @param array        $args   wp_tag_cloud() arguments.
	 * @return string|array
	 */
	public static function tag_cloud( $output, $args ) {
		if ( ! is_string( $output ) || '' === $output || is_admin() || is_user_logged_in() || self::serving_fragment() || ! Purgebridge_Settings::esi_tag_cloud_enabled() ) {
			return $output;
		}
		return '<esi:include src="' . esc_attr( self::fragment_path() ) . '"/>';
	}

	/**
	 * Whether this request is the fragment itself.
	 *
	 * @return bool
	 */
	private static function serving_fragment() {
		return isset( $_GET[ self::FRAGMENT_PARAM ] );
	}

	/**
	 * Serves /?purgebridge-fragment=tag-cloud and exits, only while the
	 * feature is on.
	 */
	public static function maybe_fragment() {
		if ( ! self::serving_fragment() || is_admin() || ! Purgebridge_Settings::esi_tag_cloud_enabled() ) {
			return; // Off: the parameter means nothing and WordPress answers as usual.
		}
		$name = sanitize_key( wp_unslash( $_GET[ self::FRAGMENT_PARAM ] ) );
		if ( 'tag-cloud' !== $name ) {
			status_header( 404 );
			exit;
		}
		status_header( 200 );
		header( 'Content-Type: text/html; charset=' . get_option( 'blog_charset' ) );
		if ( Purgebridge_Settings::xkey_enabled() ) {
			header( 'xkey: tag-cloud' );
		}
		echo wp_tag_cloud( array( 'echo' => false ) );
		exit;
	}
}
