<?php
/**
 * Users as authors: what pages print of an author (display name, nicename =
 * archive slug, website) is part of their published posts.
 *
 * @package Purgebridge
 */

defined( 'ABSPATH' ) || exit;

/**
 * Author collector.
 */
final class Purgebridge_Users_Collector extends Purgebridge_Collector {

	/**
	 * The posts collector: an author's posts are marked changed.
	 *
	 * @var Purgebridge_Posts_Collector
	 */
	private $posts;

	/**
	 * Author collector.
	 *
	 * @param Purgebridge_Change_Buffer   $buffer Change buffer.
	 * @param Purgebridge_Posts_Collector $posts  Posts collector.
	 */
	public function __construct( Purgebridge_Change_Buffer $buffer, Purgebridge_Posts_Collector $posts ) {
		parent::__construct( $buffer );
		$this->posts = $posts;
	}

	/**
	 * Adds the hooks.
	 */
	public function register() {
		add_action( 'profile_update', array( $this, 'updated' ), 10, 2 );
	}

	/**
	 * A user profile was saved. When what pages print of an author changed,
	 * their published posts are marked changed and the old author archive is
	 * purged; above the site purge threshold the whole site is purged.
	 *
	 * @param int     $user_id  User id.
	 * @param WP_User $old_user User before the update.
	 */
	public function updated( $user_id, $old_user ) {
		$user = get_userdata( (int) $user_id );
		if ( ! $user || ! $old_user || ! $this->buffer->accepting() ) {
			return;
		}
		$shown = array( 'display_name', 'user_nicename', 'user_url' );
		$same  = true;
		foreach ( $shown as $field ) {
			$same = $same && (string) $old_user->$field === (string) $user->$field;
		}
		if ( $same ) {
			return;
		}
		$types = array();
		foreach ( get_post_types( array( 'public' => true ) ) as $type ) {
			if ( Purgebridge_Snapshot::tracked_type( $type ) ) {
				$types[] = $type;
			}
		}
		$threshold = Purgebridge_Change_Buffer::threshold();
		$ids       = get_posts(
			array(
				'author'         => (int) $user_id,
				'post_type'      => $types,
				'post_status'    => 'publish',
				'fields'         => 'ids',
				'posts_per_page' => $threshold + 1,
				'no_found_rows'  => true,
			)
		);
		if ( count( $ids ) > $threshold ) {
			$this->buffer->site( 'author_renamed' );
			return;
		}
		foreach ( $ids as $id ) {
			$this->posts->touch( (int) $id );
		}
		if ( $ids && $old_user->user_nicename !== $user->user_nicename ) {
			$old_url = get_author_posts_url( (int) $user_id, $old_user->user_nicename );
			$this->buffer->add_change( Purgebridge_Event_Builder::targets_change( array(), array( $old_url ), array() ) );
		}
	}
}
