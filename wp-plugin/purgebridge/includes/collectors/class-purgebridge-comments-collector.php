<?php
/**
 * Comments: only approved comments appear on pages, so a comment counts when
 * it was or is approved. The post it belongs to is read at flush time.
 *
 * @package Purgebridge
 */

defined( 'ABSPATH' ) || exit;

/**
 * Comment collector.
 */
final class Purgebridge_Comments_Collector extends Purgebridge_Collector {

	/**
	 * Comment changes: "blog:id" => array( action, post id, blog ).
	 *
	 * @var array
	 */
	private $comments = array();

	/**
	 * Adds the hooks.
	 */
	public function register() {
		add_action( 'transition_comment_status', array( $this, 'transition' ), 10, 3 );
		add_action( 'comment_post', array( $this, 'posted' ), 10, 2 );
		add_action( 'wp_insert_comment', array( $this, 'inserted' ), 10, 2 );
		add_action( 'edit_comment', array( $this, 'edited' ), 10, 1 );
	}

	/**
	 * Number of comments held.
	 *
	 * @return int
	 */
	public function pending() {
		return count( $this->comments );
	}

	/**
	 * Forgets one blog's comments.
	 *
	 * @param int $blog Blog id.
	 */
	public function drop_blog( $blog ) {
		$this->comments = Purgebridge_Change_Buffer::without_blog( $this->comments, $blog );
	}

	/**
	 * Forgets every comment.
	 */
	public function clear() {
		$this->comments = array();
	}

	/**
	 * The action of a comment status transition, or null when the comment was
	 * not and is not visible (only approved comments appear on pages).
	 *
	 * @param string $new_status WordPress comment status after (approved, unapproved, spam, trash, delete).
	 * @param string $old_status Status before.
	 * @return string|null
	 */
	public static function action( $new_status, $old_status ) {
		if ( 'approved' !== $new_status && 'approved' !== $old_status ) {
			return null;
		}
		$map = array(
			'approved'   => 'approve',
			'unapproved' => 'unapprove',
			'spam'       => 'spam',
			'trash'      => 'trash',
			'delete'     => 'trash',
		);
		return isset( $map[ $new_status ] ) ? $map[ $new_status ] : null;
	}

	/**
	 * Comment status changed.
	 *
	 * @param string     $new_status New status.
	 * @param string     $old_status Old status.
	 * @param WP_Comment $comment    Comment.
	 */
	public function transition( $new_status, $old_status, $comment ) {
		$action = self::action( $new_status, $old_status );
		if ( $action ) {
			$this->record( $action, $comment );
		}
	}

	/**
	 * A new comment, visible right away when approved.
	 *
	 * @param int        $comment_id Comment id.
	 * @param int|string $approved   1, 0, 'spam' or 'trash'.
	 */
	public function posted( $comment_id, $approved ) {
		if ( 1 === (int) $approved && '1' === (string) $approved ) {
			$this->record( 'new', get_comment( $comment_id ) );
		}
	}

	/**
	 * Any wp_insert_comment(): the REST API, importers and code create
	 * comments without wp_new_comment()'s comment_post hook.
	 *
	 * @param int        $comment_id Comment id.
	 * @param WP_Comment $comment    Comment.
	 */
	public function inserted( $comment_id, $comment ) {
		if ( $comment && '1' === (string) $comment->comment_approved ) {
			$this->record( 'new', $comment );
		}
	}

	/**
	 * An edited comment, when it is visible.
	 *
	 * @param int $comment_id Comment id.
	 */
	public function edited( $comment_id ) {
		$comment = get_comment( $comment_id );
		if ( $comment && '1' === (string) $comment->comment_approved ) {
			$this->record( 'edit', $comment );
		}
	}

	/**
	 * The changes of the comments held.
	 *
	 * @return array
	 */
	public function changes() {
		$changes = array();
		foreach ( $this->comments as $key => $entry ) {
			list( $action, $post_id, $blog ) = $entry;
			$comment_id                      = (int) substr( $key, strpos( $key, ':' ) + 1 );
			$change                          = Purgebridge_Change_Buffer::in_blog(
				$blog,
				function () use ( $action, $post_id, $comment_id ) {
					$post = get_post( $post_id );
					if ( ! $post || ! Purgebridge_Posts_Collector::trackable( $post ) ) {
						return null;
					}
					return Purgebridge_Event_Builder::comment_change( $action, $comment_id, Purgebridge_Snapshot::post( $post ) );
				}
			);
			if ( $change ) {
				$change['blog'] = $blog;
				$changes[]      = $change;
			}
		}
		return $changes;
	}

	/**
	 * Records a comment change.
	 *
	 * @param string     $action  Action.
	 * @param WP_Comment $comment Comment.
	 */
	private function record( $action, $comment ) {
		if ( ! $comment || ! $this->buffer->accepting() ) {
			return;
		}
		$id  = (int) $comment->comment_ID;
		$key = Purgebridge_Change_Buffer::key( $id );
		if ( isset( $this->comments[ $key ] ) && 'new' === $this->comments[ $key ][0] && 'edit' === $action ) {
			return;
		}
		$this->comments[ $key ] = array( $action, (int) $comment->comment_post_ID, Purgebridge_Change_Buffer::blog() );
		$this->buffer->arm();
	}
}
