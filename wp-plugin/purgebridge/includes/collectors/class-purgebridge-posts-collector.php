<?php
/**
 * Posts, pages, attachments and every other tracked post type.
 *
 * A post's old state is read the first time it is touched in a request
 * (before WordPress writes anything); its new state is read at flush time,
 * when terms set after the post (REST API, quick edit) are in place too. A
 * bulk edit of 200 posts is one batch, not 200 requests. Site Editor types
 * (templates, global styles, navigation, synced patterns) are left to
 * Purgebridge_Site_Editor_Collector.
 *
 * @package Purgebridge
 */

defined( 'ABSPATH' ) || exit;

/**
 * Post collector.
 */
final class Purgebridge_Posts_Collector extends Purgebridge_Collector {

	/**
	 * Touched posts: "blog:id" => array( 'blog', 'id', 'old' => snapshot|null ).
	 *
	 * @var array
	 */
	private $posts = array();

	/**
	 * Terms before a wp_set_object_terms(): "blog:id" => taxonomy => term ids.
	 * WordPress hands over the old ids ($old_tt_ids), whether the terms are set
	 * before, inside or after a post save; they are added to the post's old
	 * terms at flush time.
	 *
	 * @var array
	 */
	private $old_terms = array();

	/**
	 * Adds the hooks.
	 */
	public function register() {
		add_action( 'pre_post_update', array( $this, 'before_write' ), 10, 1 );
		add_action( 'wp_trash_post', array( $this, 'before_write' ), 10, 1 );
		add_action( 'before_delete_post', array( $this, 'before_write' ), 10, 1 );
		add_action( 'delete_attachment', array( $this, 'before_write' ), 10, 1 );
		add_action( 'transition_post_status', array( $this, 'transition' ), 10, 3 );
		add_action( 'post_updated', array( $this, 'touch' ), 10, 1 );
		add_action( 'deleted_post', array( $this, 'touch' ), 10, 1 );
		add_action( 'set_object_terms', array( $this, 'terms_set' ), 10, 6 );
		add_action( 'add_attachment', array( $this, 'touch' ), 10, 1 );
		add_action( 'edit_attachment', array( $this, 'touch' ), 10, 1 );
		add_action( 'post_stuck', array( $this, 'touch' ), 10, 1 );
		add_action( 'post_unstuck', array( $this, 'touch' ), 10, 1 );
	}

	/**
	 * Number of posts held (a post whose terms alone changed counts once).
	 *
	 * @return int
	 */
	public function pending() {
		return count( $this->posts + $this->old_terms );
	}

	/**
	 * Forgets one blog's posts.
	 *
	 * @param int $blog Blog id.
	 */
	public function drop_blog( $blog ) {
		$this->posts     = Purgebridge_Change_Buffer::without_blog( $this->posts, $blog );
		$this->old_terms = Purgebridge_Change_Buffer::without_blog( $this->old_terms, $blog );
	}

	/**
	 * Forgets every post.
	 */
	public function clear() {
		$this->posts     = array();
		$this->old_terms = array();
	}

	/**
	 * Captures the old state of a post before WordPress writes it.
	 *
	 * @param int $post_id Post id.
	 */
	public function before_write( $post_id ) {
		$post = get_post( $post_id );
		if ( ! $post || ! self::trackable( $post ) || $this->tracked( $post->ID ) ) {
			return;
		}
		$this->record( $post, Purgebridge_Snapshot::post( $post ) );
	}

	/**
	 * Status transitions, including those no pre-hook announces: a new post,
	 * or WP-Cron publishing a scheduled one (wp_publish_post()).
	 *
	 * @param string  $new_status New status.
	 * @param string  $old_status Old status ('new' for a new post).
	 * @param WP_Post $post       Post, already in its new state.
	 */
	public function transition( $new_status, $old_status, $post ) {
		if ( ! $post || ! self::trackable( $post ) || $this->tracked( $post->ID ) ) {
			return;
		}
		$this->record( $post, 'new' === $old_status ? null : Purgebridge_Snapshot::post( $post, $old_status ) );
	}

	/**
	 * Marks a post as changed as it is now: written without a status
	 * transition, sticky on/off, a term or author it shows renamed, the
	 * action purgebridge_purge_post.
	 *
	 * @param int $post_id Post id.
	 */
	public function touch( $post_id ) {
		$post = get_post( (int) $post_id );
		if ( $post && self::trackable( $post ) && ! $this->tracked( $post->ID ) ) {
			$this->record( $post, Purgebridge_Snapshot::post( $post ) );
		}
	}

	/**
	 * Terms set on a post (inside a save or outside: REST, Quick Edit, code).
	 * The old terms come from WordPress's own $old_tt_ids; the first call per
	 * post and taxonomy in a request holds the state before the request.
	 *
	 * @param int    $object_id  Post id.
	 * @param array  $terms      Terms given.
	 * @param array  $tt_ids     New term taxonomy ids.
	 * @param string $taxonomy   Taxonomy.
	 * @param bool   $append     Appended.
	 * @param array  $old_tt_ids Old term taxonomy ids.
	 */
	public function terms_set( $object_id, $terms, $tt_ids, $taxonomy, $append, $old_tt_ids ) {
		$key = Purgebridge_Change_Buffer::key( (int) $object_id );
		if ( isset( $this->old_terms[ $key ][ $taxonomy ] ) || ! Purgebridge_Snapshot::tracked_taxonomy( $taxonomy ) || ! $this->buffer->accepting( $this->known( $key ) ) ) {
			return;
		}
		$old_ids = array();
		foreach ( (array) $old_tt_ids as $tt_id ) {
			$term = get_term_by( 'term_taxonomy_id', (int) $tt_id, $taxonomy );
			if ( $term ) {
				$old_ids[] = (int) $term->term_id;
			}
		}
		$this->old_terms[ $key ][ $taxonomy ] = $old_ids;
		$this->buffer->arm();
	}

	/**
	 * The changes of the posts held: posts whose terms alone changed, the
	 * posts attachments are attached to, and published descendants of a
	 * post whose permalink moved.
	 *
	 * @return array
	 */
	public function changes() {
		foreach ( $this->old_terms as $key => $by_taxonomy ) {
			if ( ! array_key_exists( $key, $this->posts ) ) {
				list( $blog, $id ) = explode( ':', $key, 2 );
				Purgebridge_Change_Buffer::in_blog(
					(int) $blog,
					function () use ( $key, $id, $by_taxonomy ) {
						$post = get_post( (int) $id );
						if ( $post && self::trackable( $post ) ) {
							// Only terms changed: the post as it is, with the terms it had.
							$old = Purgebridge_Snapshot::post( $post );
							if ( $old['visible'] ) {
								$old['terms'] = Purgebridge_Snapshot::post_terms( $post, $by_taxonomy );
							}
							$this->posts[ $key ] = array(
								'blog' => Purgebridge_Change_Buffer::blog(),
								'id'   => (int) $id,
								'old'  => $old,
							);
						}
					}
				);
			}
		}
		$this->add_parents_of_attachments();
		$changes = array();
		foreach ( $this->posts as $key => $entry ) {
			$built = Purgebridge_Change_Buffer::in_blog(
				$entry['blog'],
				function () use ( $key, $entry ) {
					return self::post_changes( $entry, isset( $this->old_terms[ $key ] ) ? $this->old_terms[ $key ] : array() );
				}
			);
			foreach ( $built as $change ) {
				$change['blog'] = $entry['blog'];
				$changes[]      = $change;
			}
		}
		return $changes;
	}

	/**
	 * Whether a post's changes can matter to a public page. Site Editor
	 * types never are (Purgebridge_Snapshot::tracked_type()).
	 *
	 * @param WP_Post $post Post.
	 * @return bool
	 */
	public static function trackable( $post ) {
		if ( 'revision' === $post->post_type || 'auto-draft' === $post->post_status ) {
			return false;
		}
		if ( function_exists( 'wp_is_post_autosave' ) && wp_is_post_autosave( $post ) ) {
			return false;
		}
		return Purgebridge_Snapshot::tracked_type( $post->post_type );
	}

	/**
	 * Whether a post is already held (on the current blog).
	 *
	 * @param int $post_id Post id.
	 * @return bool
	 */
	private function tracked( $post_id ) {
		return array_key_exists( Purgebridge_Change_Buffer::key( $post_id ), $this->posts );
	}

	/**
	 * Whether a record key is held (as a post or as terms set on it).
	 *
	 * @param string $key Record key.
	 * @return bool
	 */
	private function known( $key ) {
		return isset( $this->posts[ $key ] ) || isset( $this->old_terms[ $key ] );
	}

	/**
	 * Records a post with its state before the change.
	 *
	 * @param WP_Post    $post Post.
	 * @param array|null $old  Snapshot before, null for a new post.
	 */
	private function record( $post, $old ) {
		if ( ! $this->buffer->accepting( $this->known( Purgebridge_Change_Buffer::key( $post->ID ) ) ) ) {
			return;
		}
		$this->posts[ Purgebridge_Change_Buffer::key( $post->ID ) ] = array(
			'blog' => Purgebridge_Change_Buffer::blog(),
			'id'   => (int) $post->ID,
			'old'  => $old,
		);
		$this->buffer->arm();
	}

	/**
	 * The change of one recorded post, and of its published descendants when
	 * its permalink moved (a parent page's slug is part of its children's URLs).
	 *
	 * @param array $entry     Recorded post.
	 * @param array $old_terms Taxonomy => term ids before set_object_terms().
	 * @return array Changes.
	 */
	private static function post_changes( array $entry, array $old_terms ) {
		$post = get_post( $entry['id'] );
		$new  = $post ? Purgebridge_Snapshot::post( $post ) : null;
		$old  = $entry['old'];
		if ( $old && $old['visible'] && $old_terms && $post ) {
			$old['terms'] = Purgebridge_Snapshot::merge_terms( $old['terms'], Purgebridge_Snapshot::post_terms( $post, $old_terms ) );
		}
		$change = Purgebridge_Event_Builder::post_change( $old, $new );
		if ( ! $change ) {
			return array();
		}
		$changes = array( $change );
		$old_url = $change['post']['url_old'];
		$new_url = $change['post']['url_new'];
		if ( $old_url && $new_url && $old_url !== $new_url && is_post_type_hierarchical( $post->post_type ) ) {
			$children = get_pages(
				array(
					'child_of'    => $post->ID,
					'post_type'   => $post->post_type,
					'post_status' => 'publish',
				)
			);
			if ( count( $children ) > Purgebridge_Change_Buffer::threshold() ) {
				return array( Purgebridge_Event_Builder::purge_all( 'parent_moved' ) );
			}
			foreach ( $children as $child ) {
				$now = Purgebridge_Snapshot::post( $child );
				$was = $now;
				if ( 0 === strpos( (string) $now['url'], $new_url ) ) {
					$was['url'] = $old_url . substr( $now['url'], strlen( $new_url ) );
				}
				$changes[] = Purgebridge_Event_Builder::post_change( $was, $now );
			}
		}
		return $changes;
	}

	/**
	 * An attachment's caption, title or file shows on the post it is attached
	 * to: that post is marked changed too.
	 */
	private function add_parents_of_attachments() {
		foreach ( $this->posts as $entry ) {
			Purgebridge_Change_Buffer::in_blog(
				$entry['blog'],
				function () use ( $entry ) {
					$post = get_post( $entry['id'] );
					if ( $post && 'attachment' === $post->post_type && $post->post_parent ) {
						$this->touch( (int) $post->post_parent );
					}
				}
			);
		}
	}
}
