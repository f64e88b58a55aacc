<?php
/**
 * Collects the changes of one PHP request and sends them once, at shutdown.
 *
 * Old state is read the first time a post is touched (before WordPress writes
 * anything); new state is read at shutdown, when terms set after the post
 * (REST API, quick edit) are in place too. A bulk edit of 200 posts is one
 * batch, not 200 requests.
 *
 * @package Purgebridge
 */

defined( 'ABSPATH' ) || exit;

/**
 * Change collector.
 */
final class Purgebridge_Collector {

	/**
	 * Touched posts: id => array( 'old' => snapshot|null ).
	 *
	 * @var array
	 */
	private static $posts = array();

	/**
	 * Terms before a wp_set_object_terms() on a post not otherwise touched:
	 * post id => taxonomy => term ids. Inside wp_insert_post() terms are set
	 * before the status transition, so whether this is an edit of a published
	 * post or part of a new post is only known at flush time.
	 *
	 * @var array
	 */
	private static $old_terms = array();

	/**
	 * Comment changes: comment id => array( action, post id ).
	 *
	 * @var array
	 */
	private static $comments = array();

	/**
	 * Term changes: "taxonomy:id" => array( action, taxonomy, id, term|null ).
	 *
	 * @var array
	 */
	private static $terms = array();

	/**
	 * Term links before an edit: "taxonomy:id" => url.
	 *
	 * @var array
	 */
	private static $term_links = array();

	/**
	 * Site-wide changes: reason => change.
	 *
	 * @var array
	 */
	private static $site = array();

	/**
	 * Whether the shutdown handler is registered.
	 *
	 * @var bool
	 */
	private static $armed = false;

	/**
	 * Registers the hooks.
	 */
	public static function register() {
		add_action( 'pre_post_update', array( __CLASS__, 'before_post_write' ), 10, 1 );
		add_action( 'wp_trash_post', array( __CLASS__, 'before_post_write' ), 10, 1 );
		add_action( 'before_delete_post', array( __CLASS__, 'before_post_write' ), 10, 1 );
		add_action( 'transition_post_status', array( __CLASS__, 'transition' ), 10, 3 );
		add_action( 'post_updated', array( __CLASS__, 'post_written' ), 10, 1 );
		add_action( 'deleted_post', array( __CLASS__, 'post_written' ), 10, 1 );
		add_action( 'set_object_terms', array( __CLASS__, 'terms_set' ), 10, 6 );
		add_action( 'edit_attachment', array( __CLASS__, 'post_written' ), 10, 1 );

		add_action( 'transition_comment_status', array( __CLASS__, 'comment_transition' ), 10, 3 );
		add_action( 'comment_post', array( __CLASS__, 'comment_new' ), 10, 2 );
		add_action( 'edit_comment', array( __CLASS__, 'comment_edit' ), 10, 1 );

		add_action( 'edit_terms', array( __CLASS__, 'before_term_edit' ), 10, 2 );
		add_action( 'pre_delete_term', array( __CLASS__, 'before_term_delete' ), 10, 2 );
		add_action( 'created_term', array( __CLASS__, 'term_created' ), 10, 3 );
		add_action( 'edited_term', array( __CLASS__, 'term_edited' ), 10, 3 );
		add_action( 'delete_term', array( __CLASS__, 'term_deleted' ), 10, 3 );

		add_action( 'switch_theme', array( __CLASS__, 'site_theme' ) );
		add_action( 'customize_save_after', array( __CLASS__, 'site_customize' ) );
		foreach ( array( 'wp_update_nav_menu', 'wp_create_nav_menu', 'wp_delete_nav_menu', 'wp_update_nav_menu_item' ) as $menu_hook ) {
			add_action( $menu_hook, array( __CLASS__, 'site_menu' ) );
		}
		foreach ( array( 'permalink_structure', 'category_base', 'tag_base', 'blogname', 'blogdescription' ) as $option ) {
			add_action( 'update_option_' . $option, array( __CLASS__, 'site_option' ), 10, 3 );
		}
	}

	/**
	 * Forgets everything (tests, and after a flush).
	 */
	public static function reset() {
		self::$posts      = array();
		self::$old_terms  = array();
		self::$comments   = array();
		self::$terms      = array();
		self::$term_links = array();
		self::$site       = array();
	}

	/**
	 * Hands over what was collected so far and starts empty; null when
	 * nothing was. Multisite: Purgebridge_Network parks a site's buffer when
	 * switch_to_blog() leaves it. Every static array of this class is such
	 * per-site state, so all of them travel, including any added later.
	 *
	 * @return array|null Property name => value.
	 */
	public static function take_buffer() {
		$buffer = array();
		foreach ( array_keys( get_class_vars( __CLASS__ ) ) as $name ) {
			if ( is_array( self::$$name ) && self::$$name ) {
				$buffer[ $name ] = self::$$name;
				self::$$name     = array();
			}
		}
		return $buffer ? $buffer : null;
	}

	/**
	 * Takes up a buffer from take_buffer(), merged over what is collected now.
	 *
	 * @param array $buffer Property name => value.
	 */
	public static function put_buffer( array $buffer ) {
		foreach ( $buffer as $name => $value ) {
			self::$$name = $value + self::$$name;
		}
		self::arm();
	}

	/**
	 * Captures the old state of a post before WordPress writes it.
	 *
	 * @param int $post_id Post id.
	 */
	public static function before_post_write( $post_id ) {
		$post = get_post( $post_id );
		if ( ! $post || ! self::trackable( $post ) || array_key_exists( $post->ID, self::$posts ) ) {
			return;
		}
		self::$posts[ $post->ID ] = array( 'old' => Purgebridge_Snapshot::post( $post ) );
		self::arm();
	}

	/**
	 * Status transitions, including those no pre-hook announces: a new post,
	 * or WP-Cron publishing a scheduled one (wp_publish_post()).
	 *
	 * @param string  $new_status New status.
	 * @param string  $old_status Old status ('new' for a new post).
	 * @param WP_Post $post       Post, already in its new state.
	 */
	public static function transition( $new_status, $old_status, $post ) {
		if ( ! $post || ! self::trackable( $post ) || array_key_exists( $post->ID, self::$posts ) ) {
			return;
		}
		$old = null;
		if ( 'new' !== $old_status ) {
			$old = Purgebridge_Snapshot::post( $post, $old_status );
		}
		self::$posts[ $post->ID ] = array( 'old' => $old );
		self::arm();
	}

	/**
	 * A post was written (or deleted) without a status transition we saw.
	 *
	 * @param int $post_id Post id.
	 */
	public static function post_written( $post_id ) {
		if ( ! array_key_exists( (int) $post_id, self::$posts ) ) {
			$post = get_post( $post_id );
			if ( $post && self::trackable( $post ) ) {
				self::$posts[ $post->ID ] = array( 'old' => Purgebridge_Snapshot::post( $post ) );
				self::arm();
			}
		}
	}

	/**
	 * Terms set on a post outside a post save (quick edit, REST, code). The
	 * old terms come from WordPress's own $old_tt_ids.
	 *
	 * @param int    $object_id  Post id.
	 * @param array  $terms      Terms given.
	 * @param array  $tt_ids     New term taxonomy ids.
	 * @param string $taxonomy   Taxonomy.
	 * @param bool   $append     Appended.
	 * @param array  $old_tt_ids Old term taxonomy ids.
	 */
	public static function terms_set( $object_id, $terms, $tt_ids, $taxonomy, $append, $old_tt_ids ) {
		$object_id = (int) $object_id;
		if ( array_key_exists( $object_id, self::$posts ) || isset( self::$old_terms[ $object_id ][ $taxonomy ] ) ) {
			return;
		}
		if ( ! Purgebridge_Snapshot::tracked_taxonomy( $taxonomy ) ) {
			return;
		}
		$old_ids = array();
		foreach ( (array) $old_tt_ids as $tt_id ) {
			$term = get_term_by( 'term_taxonomy_id', (int) $tt_id, $taxonomy );
			if ( $term ) {
				$old_ids[] = (int) $term->term_id;
			}
		}
		self::$old_terms[ $object_id ][ $taxonomy ] = $old_ids;
		self::arm();
	}

	/**
	 * Comment status changed.
	 *
	 * @param string     $new_status New status.
	 * @param string     $old_status Old status.
	 * @param WP_Comment $comment    Comment.
	 */
	public static function comment_transition( $new_status, $old_status, $comment ) {
		$action = Purgebridge_Policy::comment_action( $new_status, $old_status );
		if ( $action ) {
			self::comment( $action, $comment );
		}
	}

	/**
	 * A new comment, visible right away when approved.
	 *
	 * @param int        $comment_id Comment id.
	 * @param int|string $approved   1, 0, 'spam' or 'trash'.
	 */
	public static function comment_new( $comment_id, $approved ) {
		if ( 1 === (int) $approved && '1' === (string) $approved ) {
			self::comment( 'new', get_comment( $comment_id ) );
		}
	}

	/**
	 * An edited comment, when it is visible.
	 *
	 * @param int $comment_id Comment id.
	 */
	public static function comment_edit( $comment_id ) {
		$comment = get_comment( $comment_id );
		if ( $comment && '1' === (string) $comment->comment_approved ) {
			self::comment( 'edit', $comment );
		}
	}

	/**
	 * Records a comment change.
	 *
	 * @param string     $action  Action.
	 * @param WP_Comment $comment Comment.
	 */
	private static function comment( $action, $comment ) {
		if ( ! $comment ) {
			return;
		}
		$id = (int) $comment->comment_ID;
		if ( isset( self::$comments[ $id ] ) && 'new' === self::$comments[ $id ][0] && 'edit' === $action ) {
			return;
		}
		self::$comments[ $id ] = array( $action, (int) $comment->comment_post_ID );
		self::arm();
	}

	/**
	 * Remembers a term's archive link before an edit changes its slug or parent.
	 *
	 * @param int    $term_id  Term id.
	 * @param string $taxonomy Taxonomy.
	 */
	public static function before_term_edit( $term_id, $taxonomy ) {
		$key = $taxonomy . ':' . (int) $term_id;
		if ( isset( self::$term_links[ $key ] ) || ! Purgebridge_Snapshot::tracked_taxonomy( $taxonomy ) ) {
			return;
		}
		$term = Purgebridge_Snapshot::term( (int) $term_id, $taxonomy );
		if ( $term ) {
			self::$term_links[ $key ] = $term['url'];
		}
	}

	/**
	 * Captures a term before it is deleted: afterwards it has no link.
	 *
	 * @param int    $term_id  Term id.
	 * @param string $taxonomy Taxonomy.
	 */
	public static function before_term_delete( $term_id, $taxonomy ) {
		if ( ! Purgebridge_Snapshot::tracked_taxonomy( $taxonomy ) ) {
			return;
		}
		$term = Purgebridge_Snapshot::term( (int) $term_id, $taxonomy );
		if ( $term ) {
			self::$terms[ $taxonomy . ':' . (int) $term_id ] = array( 'delete', $taxonomy, (int) $term_id, $term );
			self::arm();
		}
	}

	/**
	 * A term was created.
	 *
	 * @param int    $term_id  Term id.
	 * @param int    $tt_id    Term taxonomy id.
	 * @param string $taxonomy Taxonomy.
	 */
	public static function term_created( $term_id, $tt_id, $taxonomy ) {
		self::term( 'create', $term_id, $taxonomy );
	}

	/**
	 * A term was edited.
	 *
	 * @param int    $term_id  Term id.
	 * @param int    $tt_id    Term taxonomy id.
	 * @param string $taxonomy Taxonomy.
	 */
	public static function term_edited( $term_id, $tt_id, $taxonomy ) {
		$key = $taxonomy . ':' . (int) $term_id;
		if ( isset( self::$terms[ $key ] ) && 'create' === self::$terms[ $key ][0] ) {
			return;
		}
		self::term( 'edit', $term_id, $taxonomy );
	}

	/**
	 * A term was deleted (captured in before_term_delete()).
	 *
	 * @param int    $term_id  Term id.
	 * @param int    $tt_id    Term taxonomy id.
	 * @param string $taxonomy Taxonomy.
	 */
	public static function term_deleted( $term_id, $tt_id, $taxonomy ) {
		$key = $taxonomy . ':' . (int) $term_id;
		if ( isset( self::$terms[ $key ] ) ) {
			self::$terms[ $key ][0] = 'delete';
		}
	}

	/**
	 * Records a term change; the term is read at flush time.
	 *
	 * @param string $action   create or edit.
	 * @param int    $term_id  Term id.
	 * @param string $taxonomy Taxonomy.
	 */
	private static function term( $action, $term_id, $taxonomy ) {
		if ( ! Purgebridge_Snapshot::tracked_taxonomy( $taxonomy ) ) {
			return;
		}
		self::$terms[ $taxonomy . ':' . (int) $term_id ] = array( $action, $taxonomy, (int) $term_id, null );
		self::arm();
	}

	/** Theme switched. */
	public static function site_theme() {
		self::site( 'switch_theme' );
	}

	/** Customizer saved. */
	public static function site_customize() {
		self::site( 'customize_save' );
	}

	/** A menu changed. */
	public static function site_menu() {
		self::site( 'wp_update_nav_menu' );
	}

	/**
	 * A site-wide option changed (fires only when the value differs).
	 *
	 * @param mixed  $old_value Old value.
	 * @param mixed  $value     New value.
	 * @param string $option    Option name.
	 */
	public static function site_option( $old_value, $value, $option ) {
		$reasons = array(
			'permalink_structure' => 'permalink_structure',
			'category_base'       => 'permalink_structure',
			'tag_base'            => 'permalink_structure',
			'blogname'            => 'blogname',
			'blogdescription'     => 'blogdescription',
		);
		self::site( isset( $reasons[ $option ] ) ? $reasons[ $option ] : $option );
	}

	/**
	 * Records a site-wide purge.
	 *
	 * @param string $reason Reason.
	 */
	public static function site( $reason ) {
		self::$site[ $reason ] = Purgebridge_Event_Builder::purge_all( $reason );
		self::arm();
	}

	/**
	 * Adds a ready-made change (admin bar "Purge this page").
	 *
	 * @param array $change Change.
	 */
	public static function add_change( array $change ) {
		self::$site[ 'manual:' . count( self::$site ) ] = $change;
		self::arm();
	}

	/**
	 * Changes collected so far, built from the current state.
	 *
	 * @return array
	 */
	public static function changes() {
		$changes = array();
		foreach ( self::$old_terms as $id => $by_taxonomy ) {
			if ( array_key_exists( $id, self::$posts ) ) {
				continue;
			}
			$post = get_post( $id );
			if ( ! $post || ! self::trackable( $post ) ) {
				continue;
			}
			$old = Purgebridge_Snapshot::post( $post );
			if ( $old['visible'] ) {
				$old['terms'] = Purgebridge_Snapshot::post_terms( $post, $by_taxonomy );
			}
			self::$posts[ $id ] = array( 'old' => $old );
		}
		foreach ( self::$posts as $id => $entry ) {
			$post   = get_post( $id );
			$new    = $post ? Purgebridge_Snapshot::post( $post ) : null;
			$change = Purgebridge_Event_Builder::post_change( $entry['old'], $new );
			if ( $change ) {
				$changes[] = $change;
			}
		}
		foreach ( self::$comments as $comment_id => $entry ) {
			$post = get_post( $entry[1] );
			if ( ! $post || ! self::trackable( $post ) ) {
				continue;
			}
			$change = Purgebridge_Event_Builder::comment_change( $entry[0], $comment_id, Purgebridge_Snapshot::post( $post ) );
			if ( $change ) {
				$changes[] = $change;
			}
		}
		foreach ( self::$terms as $key => $entry ) {
			list( $action, $taxonomy, $term_id, $term ) = $entry;
			if ( null === $term ) {
				$term = Purgebridge_Snapshot::term( $term_id, $taxonomy );
			}
			if ( ! $term ) {
				continue;
			}
			$old       = isset( self::$term_links[ $key ] ) ? self::$term_links[ $key ] : null;
			$changes[] = Purgebridge_Event_Builder::term_change( $action, $term, 'edit' === $action ? $old : null );
		}
		foreach ( self::$site as $change ) {
			$changes[] = $change;
		}
		return $changes;
	}

	/**
	 * Builds the batches and hands them to the dispatcher. Runs at shutdown,
	 * after the response is flushed where the server allows it.
	 *
	 * @param bool $finish_request Call fastcgi_finish_request() first.
	 * @return array Results, one per batch.
	 */
	public static function flush( $finish_request = true ) {
		$changes = self::changes();
		self::reset();
		if ( ! $changes ) {
			return array();
		}
		if ( ! Purgebridge_Settings::configured() ) {
			return array();
		}
		if ( $finish_request && function_exists( 'fastcgi_finish_request' ) && 'cli' !== PHP_SAPI ) {
			fastcgi_finish_request();
		}
		$results = array();
		foreach ( Purgebridge_Event_Builder::bodies( home_url( '/' ), $changes, time() ) as $body ) {
			$results[] = Purgebridge_Dispatcher::deliver( $body );
		}
		return $results;
	}

	/**
	 * Shutdown handler.
	 */
	public static function on_shutdown() {
		self::$armed = false;
		self::flush( true );
	}

	/**
	 * Registers the shutdown handler once something was collected.
	 */
	private static function arm() {
		if ( ! self::$armed ) {
			self::$armed = true;
			add_action( 'shutdown', array( __CLASS__, 'on_shutdown' ), 100 );
		}
	}

	/**
	 * Whether a post's changes can matter to a public page.
	 *
	 * @param WP_Post $post Post.
	 * @return bool
	 */
	private static function trackable( $post ) {
		if ( 'revision' === $post->post_type || 'auto-draft' === $post->post_status ) {
			return false;
		}
		if ( function_exists( 'wp_is_post_autosave' ) && wp_is_post_autosave( $post ) ) {
			return false;
		}
		return Purgebridge_Snapshot::tracked_type( $post->post_type );
	}
}
