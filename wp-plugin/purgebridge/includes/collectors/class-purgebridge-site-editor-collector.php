<?php
/**
 * Post types that are part of every page (Site Editor templates and
 * template parts, global styles, block navigation, synced patterns): any
 * save purges the whole site.
 *
 * @package Purgebridge
 */

defined( 'ABSPATH' ) || exit;

/**
 * Site Editor collector.
 */
final class Purgebridge_Site_Editor_Collector extends Purgebridge_Collector {

	/** The post types whose posts every page shows. */
	const TYPES = array( 'wp_template', 'wp_template_part', 'wp_global_styles', 'wp_navigation', 'wp_block' );

	/**
	 * Adds the hooks.
	 */
	public function register() {
		add_action( 'transition_post_status', array( $this, 'transition' ), 10, 3 );
		add_action( 'post_updated', array( $this, 'written' ), 10, 1 );
		add_action( 'deleted_post', array( $this, 'written' ), 10, 1 );
	}

	/**
	 * Status transitions. WordPress creates an empty wp_global_styles post the
	 * first time the styles are read for editing: that changes no page.
	 *
	 * @param string  $new_status New status.
	 * @param string  $old_status Old status ('new' for a new post).
	 * @param WP_Post $post       Post, already in its new state.
	 */
	public function transition( $new_status, $old_status, $post ) {
		if ( $post && self::is_site_type( $post ) && ( 'new' !== $old_status || 'wp_global_styles' !== $post->post_type ) ) {
			$this->buffer->site( 'site_editor:' . $post->post_type );
		}
	}

	/**
	 * A post was written (or deleted) without a status transition.
	 *
	 * @param int $post_id Post id.
	 */
	public function written( $post_id ) {
		$post = get_post( $post_id );
		if ( $post && self::is_site_type( $post ) ) {
			$this->buffer->site( 'site_editor:' . $post->post_type );
		}
	}

	/**
	 * Whether a post's type is part of every page (auto-drafts are not yet).
	 *
	 * @param WP_Post $post Post.
	 * @return bool
	 */
	public static function is_site_type( $post ) {
		return in_array( $post->post_type, self::TYPES, true ) && 'auto-draft' !== $post->post_status;
	}
}
