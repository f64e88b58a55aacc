<?php
/**
 * The admin bar's "Purge cache" menu on every page: "Purge this page" for
 * whoever may edit it, "Purge all…" and the settings for administrators.
 * Its links go to Purgebridge_Admin_Actions and the settings page.
 *
 * @package Purgebridge
 */

defined( 'ABSPATH' ) || exit;

/**
 * Admin bar entries.
 */
final class Purgebridge_Admin_Bar {

	/**
	 * Registers the hook.
	 */
	public static function register() {
		add_action( 'admin_bar_menu', array( __CLASS__, 'admin_bar' ), 100 );
	}

	/**
	 * The front-end page being shown: the home URL's origin and this request's
	 * path and query (home_url() would repeat a subdirectory).
	 *
	 * @return string
	 */
	private static function current_url() {
		$home = wp_parse_url( home_url( '/' ) );
		$uri  = isset( $_SERVER['REQUEST_URI'] ) ? (string) wp_unslash( $_SERVER['REQUEST_URI'] ) : '/'; // Checked by site_urls() before use
		return esc_url_raw( $home['scheme'] . '://' . $home['host'] . ( isset( $home['port'] ) ? ':' . $home['port'] : '' ) . $uri );
	}

	/**
	 * Admin bar entries on every page: "Purge this page" for whoever may
	 * edit it, "Purge all…" (with a confirmation step) and the settings for
	 * administrators.
	 *
	 * @param WP_Admin_Bar $bar Admin bar.
	 */
	public static function admin_bar( $bar ) {
		$admin   = current_user_can( 'manage_options' );
		$here    = is_admin() ? '' : self::current_url();
		$post_id = ! is_admin() && is_singular() ? (int) get_queried_object_id() : 0;
		$page    = null;
		if ( $post_id && current_user_can( 'edit_post', $post_id ) ) {
			$page = array( 'post_id' => $post_id );
		} elseif ( ! $post_id && '' !== $here && $admin ) {
			$page = array();
		}
		if ( ! $admin && null === $page ) {
			return;
		}
		$bar->add_node(
			array(
				'id'    => 'purgebridge',
				'title' => __( 'Purge cache', 'purgebridge' ),
				'href'  => $admin ? Purgebridge_Admin::page_url() : false,
			)
		);
		if ( null !== $page ) {
			$page['action']      = 'purgebridge_purge_page';
			$page['redirect_to'] = rawurlencode( $here );
			$bar->add_node(
				array(
					'parent' => 'purgebridge',
					'id'     => 'purgebridge-purge-page',
					'title'  => __( 'Purge this page', 'purgebridge' ),
					'href'   => wp_nonce_url( add_query_arg( $page, admin_url( 'admin-post.php' ) ), 'purgebridge_purge_page' ),
					'meta'   => array( 'title' => __( 'Drop this page from every Varnish node (not the archives that list it)', 'purgebridge' ) ),
				)
			);
		}
		if ( ! $admin ) {
			return;
		}
		$bar->add_node(
			array(
				'parent' => 'purgebridge',
				'id'     => 'purgebridge-purge-all',
				'title'  => __( 'Purge all…', 'purgebridge' ),
				'href'   => Purgebridge_Admin::page_url(
					array(
						'confirm'     => 'purge_all',
						'redirect_to' => rawurlencode( '' !== $here ? $here : Purgebridge_Admin::page_url() ),
					)
				),
			)
		);
	}
}
