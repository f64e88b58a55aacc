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
	}

	/**
	 * Adds the xkey and ESI headers on anonymous front-end pages.
	 */
	public static function headers() {
		if ( headers_sent() || is_admin() ) {
			return;
		}
		if ( Purgebridge_Settings::xkey_enabled() ) {
			$keys = self::keys();
			if ( $keys ) {
				header( 'xkey: ' . implode( ' ', $keys ) );
			}
		}
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
		return isset( $_GET[ self::FRAGMENT_PARAM ] ); // phpcs:ignore WordPress.Security.NonceVerification.Recommended
	}

	/**
	 * Serves /?purgebridge-fragment=tag-cloud and exits, only while the
	 * feature is on.
	 */
	public static function maybe_fragment() {
		if ( ! self::serving_fragment() || is_admin() || ! Purgebridge_Settings::esi_tag_cloud_enabled() ) {
			return; // Off: the parameter means nothing and WordPress answers as usual.
		}
		$name = sanitize_key( wp_unslash( $_GET[ self::FRAGMENT_PARAM ] ) ); // phpcs:ignore WordPress.Security.NonceVerification.Recommended,WordPress.Security.ValidatedSanitizedInput.InputNotSanitized
		if ( 'tag-cloud' !== $name ) {
			status_header( 404 );
			exit;
		}
		status_header( 200 );
		header( 'Content-Type: text/html; charset=' . get_option( 'blog_charset' ) );
		if ( Purgebridge_Settings::xkey_enabled() ) {
			header( 'xkey: tag-cloud' );
		}
		echo wp_tag_cloud( array( 'echo' => false ) ); // phpcs:ignore WordPress.Security.EscapeOutput.OutputNotEscaped
		exit;
	}
}
