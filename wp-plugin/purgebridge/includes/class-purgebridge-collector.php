<?php
/**
 * Collects the changes of one PHP request and sends them once, at shutdown.
 *
 * Old state is read the first time a post is touched (before WordPress writes
 * anything); new state is read at shutdown, when terms set after the post
 * (REST API, quick edit) are in place too. A bulk edit of 200 posts is one
 * batch, not 200 requests.
 *
 * Every record carries the blog it happened on (get_current_blog_id() at the
 * time of the hook), so an edit made after switch_to_blog() is built and sent
 * for that blog: changes() puts it into each change as 'blog', and flush()
 * sends one set of batches per blog, with that blog's home URL, after
 * removing the attribute (it is not part of the event schema).
 *
 * @package Purgebridge
 */

defined( 'ABSPATH' ) || exit;

/**
 * Change collector.
 */
final class Purgebridge_Collector {

	/** Default of the purgebridge_site_purge_threshold filter. */
	const SITE_PURGE_THRESHOLD = 200;

	/** Default of the purgebridge_flush_interval filter (CLI and cron), seconds. */
	const FLUSH_INTERVAL = 30;

	/**
	 * Post types whose content is part of every page (Site Editor, block
	 * navigation, synced patterns): any save purges the whole site.
	 */
	const SITE_TYPES = array( 'wp_template', 'wp_template_part', 'wp_global_styles', 'wp_navigation', 'wp_block' );

	/**
	 * Options printed on many pages or deciding what a listing shows: a
	 * change purges the whole site. widget_* and theme_mods_* (menu
	 * locations, Customizer) are matched by prefix in site_option().
	 */
	const SITE_OPTIONS = array(
		'permalink_structure',
		'category_base',
		'tag_base',
		'blogname',
		'blogdescription',
		'show_on_front',
		'page_on_front',
		'page_for_posts',
		'posts_per_page',
		'posts_per_rss',
		'rss_use_excerpt',
		'date_format',
		'time_format',
		'start_of_week',
		'timezone_string',
		'gmt_offset',
		'site_icon',
		'sidebars_widgets',
		'show_avatars',
		'page_comments',
		'comments_per_page',
		'default_comments_page',
		'comment_order',
		'thread_comments',
		'thread_comments_depth',
		'WPLANG',
	);

	/**
	 * Touched posts: "blog:id" => array( 'blog', 'id', 'old' => snapshot|null ).
	 *
	 * @var array
	 */
	private static $posts = array();

	/**
	 * Terms before a wp_set_object_terms(): "blog:id" => taxonomy => term ids.
	 * WordPress hands over the old ids ($old_tt_ids), whether the terms are set
	 * before, inside or after a post save; they are added to the post's old
	 * terms at flush time.
	 *
	 * @var array
	 */
	private static $old_terms = array();

	/**
	 * Comment changes: "blog:id" => array( action, post id, blog ).
	 *
	 * @var array
	 */
	private static $comments = array();

	/**
	 * Term changes: "blog:taxonomy:id" => array( action, taxonomy, id, term|null, blog ).
	 *
	 * @var array
	 */
	private static $terms = array();

	/**
	 * Terms before an edit: "blog:taxonomy:id" => array( 'url', 'name', 'slug', 'parent' ).
	 * Kept across periodic flushes: edit_terms and edited_term bracket one edit.
	 *
	 * @var array
	 */
	private static $term_before = array();

	/**
	 * Site-wide and ready-made changes: "blog:reason" => change (with 'blog').
	 *
	 * @var array
	 */
	private static $site = array();

	/**
	 * Blogs whose change set grew over the threshold: blog => true. Nothing
	 * more is recorded for them; they get one site purge.
	 *
	 * @var array
	 */
	private static $overflow = array();

	/**
	 * Inside import_start .. import_end.
	 *
	 * @var bool
	 */
	private static $importing = false;

	/**
	 * Unix time the first record of the current batch came in (periodic
	 * flushing of long processes); 0 while nothing is pending.
	 *
	 * @var int
	 */
	private static $since = 0;

	/**
	 * Inside flush(): building the changes must not start another flush.
	 *
	 * @var bool
	 */
	private static $flushing = false;

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
		add_action( 'delete_attachment', array( __CLASS__, 'before_post_write' ), 10, 1 );
		add_action( 'transition_post_status', array( __CLASS__, 'transition' ), 10, 3 );
		add_action( 'post_updated', array( __CLASS__, 'post_written' ), 10, 1 );
		add_action( 'deleted_post', array( __CLASS__, 'post_written' ), 10, 1 );
		add_action( 'set_object_terms', array( __CLASS__, 'terms_set' ), 10, 6 );
		add_action( 'add_attachment', array( __CLASS__, 'post_written' ), 10, 1 );
		add_action( 'edit_attachment', array( __CLASS__, 'post_written' ), 10, 1 );
		add_action( 'post_stuck', array( __CLASS__, 'touch_post' ), 10, 1 );
		add_action( 'post_unstuck', array( __CLASS__, 'touch_post' ), 10, 1 );

		add_action( 'transition_comment_status', array( __CLASS__, 'comment_transition' ), 10, 3 );
		add_action( 'comment_post', array( __CLASS__, 'comment_new' ), 10, 2 );
		add_action( 'wp_insert_comment', array( __CLASS__, 'comment_inserted' ), 10, 2 );
		add_action( 'edit_comment', array( __CLASS__, 'comment_edit' ), 10, 1 );

		add_action( 'edit_terms', array( __CLASS__, 'before_term_edit' ), 10, 2 );
		add_action( 'pre_delete_term', array( __CLASS__, 'before_term_delete' ), 10, 2 );
		add_action( 'created_term', array( __CLASS__, 'term_created' ), 10, 3 );
		add_action( 'edited_term', array( __CLASS__, 'term_edited' ), 10, 3 );
		add_action( 'delete_term', array( __CLASS__, 'term_deleted' ), 10, 3 );

		add_action( 'profile_update', array( __CLASS__, 'author_updated' ), 10, 2 );

		add_action( 'switch_theme', array( __CLASS__, 'site_theme' ) );
		add_action( 'customize_save_after', array( __CLASS__, 'site_customize' ) );
		foreach ( array( 'wp_update_nav_menu', 'wp_create_nav_menu', 'wp_delete_nav_menu', 'wp_update_nav_menu_item' ) as $menu_hook ) {
			add_action( $menu_hook, array( __CLASS__, 'site_menu' ) );
		}
		add_action( 'updated_option', array( __CLASS__, 'site_option' ), 10, 3 );
		add_action( 'added_option', array( __CLASS__, 'site_option_added' ), 10, 2 );

		add_action( 'import_start', array( __CLASS__, 'import_start' ) );
		add_action( 'import_end', array( __CLASS__, 'import_end' ) );

		add_action( 'purgebridge_purge_urls', array( __CLASS__, 'purge_urls' ), 10, 1 );
		add_action( 'purgebridge_purge_keys', array( __CLASS__, 'purge_keys' ), 10, 1 );
		add_action( 'purgebridge_purge_post', array( __CLASS__, 'touch_post' ), 10, 1 );
	}

	/**
	 * Forgets everything (tests, and after a flush).
	 */
	public static function reset() {
		self::$posts       = array();
		self::$old_terms   = array();
		self::$comments    = array();
		self::$terms       = array();
		self::$term_before = array();
		self::$site        = array();
		self::$overflow    = array();
		self::$since       = 0;
	}

	/**
	 * Number of records waiting for the next flush.
	 *
	 * @return int
	 */
	public static function pending() {
		return count( self::$posts + self::$old_terms ) + count( self::$comments ) + count( self::$terms ) + count( self::$site );
	}

	// -- posts ---------------------------------------------------------------

	/**
	 * Captures the old state of a post before WordPress writes it.
	 *
	 * @param int $post_id Post id.
	 */
	public static function before_post_write( $post_id ) {
		$post = get_post( $post_id );
		if ( ! $post || self::site_type( $post ) || ! self::trackable( $post ) || self::tracked_post( $post->ID ) ) {
			return;
		}
		self::record_post( $post, Purgebridge_Snapshot::post( $post ) );
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
		if ( ! $post ) {
			return;
		}
		// WordPress creates an empty wp_global_styles post the first time the
		// styles are read for editing: that changes no page.
		if ( self::site_type( $post ) && ( 'new' !== $old_status || 'wp_global_styles' !== $post->post_type ) ) {
			self::site( 'site_editor:' . $post->post_type );
			return;
		}
		if ( ! self::trackable( $post ) || self::tracked_post( $post->ID ) ) {
			return;
		}
		self::record_post( $post, 'new' === $old_status ? null : Purgebridge_Snapshot::post( $post, $old_status ) );
	}

	/**
	 * A post was written (or deleted) without a status transition we saw.
	 *
	 * @param int $post_id Post id.
	 */
	public static function post_written( $post_id ) {
		$post = get_post( $post_id );
		if ( $post && self::site_type( $post ) ) {
			self::site( 'site_editor:' . $post->post_type );
			return;
		}
		self::touch_post( $post_id );
	}

	/**
	 * Marks a post as changed as it is now: sticky on/off, a term it carries
	 * renamed, the action purgebridge_purge_post.
	 *
	 * @param int $post_id Post id.
	 */
	public static function touch_post( $post_id ) {
		$post = get_post( (int) $post_id );
		if ( $post && self::trackable( $post ) && ! self::tracked_post( $post->ID ) ) {
			self::record_post( $post, Purgebridge_Snapshot::post( $post ) );
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
	public static function terms_set( $object_id, $terms, $tt_ids, $taxonomy, $append, $old_tt_ids ) {
		$key = self::key( (int) $object_id );
		if ( isset( self::$old_terms[ $key ][ $taxonomy ] ) || ! Purgebridge_Snapshot::tracked_taxonomy( $taxonomy ) || ! self::accepting( $key ) ) {
			return;
		}
		$old_ids = array();
		foreach ( (array) $old_tt_ids as $tt_id ) {
			$term = get_term_by( 'term_taxonomy_id', (int) $tt_id, $taxonomy );
			if ( $term ) {
				$old_ids[] = (int) $term->term_id;
			}
		}
		self::$old_terms[ $key ][ $taxonomy ] = $old_ids;
		self::arm();
	}

	/**
	 * Whether a post is already recorded in this request (on the current blog).
	 *
	 * @param int $post_id Post id.
	 * @return bool
	 */
	private static function tracked_post( $post_id ) {
		return array_key_exists( self::key( $post_id ), self::$posts );
	}

	/**
	 * Records a post with its state before the change.
	 *
	 * @param WP_Post    $post Post.
	 * @param array|null $old  Snapshot before, null for a new post.
	 */
	private static function record_post( $post, $old ) {
		if ( ! self::accepting( self::key( $post->ID ) ) ) {
			return;
		}
		self::$posts[ self::key( $post->ID ) ] = array(
			'blog' => self::blog(),
			'id'   => (int) $post->ID,
			'old'  => $old,
		);
		self::arm();
	}

	// -- comments ------------------------------------------------------------

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
	 * Any wp_insert_comment(): the REST API, importers and code create
	 * comments without wp_new_comment()'s comment_post hook.
	 *
	 * @param int        $comment_id Comment id.
	 * @param WP_Comment $comment    Comment.
	 */
	public static function comment_inserted( $comment_id, $comment ) {
		if ( $comment && '1' === (string) $comment->comment_approved ) {
			self::comment( 'new', $comment );
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
		if ( ! $comment || ! self::accepting() ) {
			return;
		}
		$id  = (int) $comment->comment_ID;
		$key = self::key( $id );
		if ( isset( self::$comments[ $key ] ) && 'new' === self::$comments[ $key ][0] && 'edit' === $action ) {
			return;
		}
		self::$comments[ $key ] = array( $action, (int) $comment->comment_post_ID, self::blog() );
		self::arm();
	}

	// -- terms ---------------------------------------------------------------

	/**
	 * Remembers a term before an edit: its archive link (slug or parent may
	 * change) and what posts print of it (name, slug).
	 *
	 * @param int    $term_id  Term id.
	 * @param string $taxonomy Taxonomy.
	 */
	public static function before_term_edit( $term_id, $taxonomy ) {
		$key = self::key( $taxonomy . ':' . (int) $term_id );
		if ( isset( self::$term_before[ $key ] ) || ! Purgebridge_Snapshot::tracked_taxonomy( $taxonomy ) ) {
			return;
		}
		$term = Purgebridge_Snapshot::term( (int) $term_id, $taxonomy );
		$raw  = get_term( (int) $term_id, $taxonomy );
		if ( $term && $raw && ! is_wp_error( $raw ) ) {
			self::$term_before[ $key ] = array(
				'url'    => $term['url'],
				'shown'  => array( $raw->name, $raw->slug, (int) $raw->parent ),
			);
		}
	}

	/**
	 * Captures a term before it is deleted: afterwards it has no link.
	 *
	 * @param int    $term_id  Term id.
	 * @param string $taxonomy Taxonomy.
	 */
	public static function before_term_delete( $term_id, $taxonomy ) {
		if ( ! Purgebridge_Snapshot::tracked_taxonomy( $taxonomy ) || ! self::accepting() ) {
			return;
		}
		$term = Purgebridge_Snapshot::term( (int) $term_id, $taxonomy );
		if ( $term ) {
			self::$terms[ self::key( $taxonomy . ':' . (int) $term_id ) ] = array( 'delete', $taxonomy, (int) $term_id, $term, self::blog() );
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
	 * A term was edited. When its name, slug or parent changed, every
	 * published post carrying it prints it differently (post-terms block,
	 * post_class on listings, feeds): those posts are marked changed, or,
	 * above the site purge threshold, the whole site is purged.
	 *
	 * @param int    $term_id  Term id.
	 * @param int    $tt_id    Term taxonomy id.
	 * @param string $taxonomy Taxonomy.
	 */
	public static function term_edited( $term_id, $tt_id, $taxonomy ) {
		$key = self::key( $taxonomy . ':' . (int) $term_id );
		if ( isset( self::$terms[ $key ] ) && 'create' === self::$terms[ $key ][0] ) {
			return;
		}
		self::term( 'edit', $term_id, $taxonomy );
		$raw = get_term( (int) $term_id, $taxonomy );
		if ( ! isset( self::$term_before[ $key ] ) || ! $raw || is_wp_error( $raw ) ) {
			return;
		}
		if ( self::$term_before[ $key ]['shown'] === array( $raw->name, $raw->slug, (int) $raw->parent ) ) {
			return;
		}
		$objects = get_objects_in_term( (int) $term_id, $taxonomy );
		if ( is_wp_error( $objects ) ) {
			return;
		}
		if ( count( $objects ) > self::threshold() ) {
			self::site( 'term_renamed' );
			return;
		}
		foreach ( $objects as $object_id ) {
			self::touch_post( (int) $object_id );
		}
	}

	/**
	 * A term was deleted (captured in before_term_delete()).
	 *
	 * @param int    $term_id  Term id.
	 * @param int    $tt_id    Term taxonomy id.
	 * @param string $taxonomy Taxonomy.
	 */
	public static function term_deleted( $term_id, $tt_id, $taxonomy ) {
		$key = self::key( $taxonomy . ':' . (int) $term_id );
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
		if ( ! Purgebridge_Snapshot::tracked_taxonomy( $taxonomy ) || ! self::accepting() ) {
			return;
		}
		self::$terms[ self::key( $taxonomy . ':' . (int) $term_id ) ] = array( $action, $taxonomy, (int) $term_id, null, self::blog() );
		self::arm();
	}

	// -- authors -------------------------------------------------------------

	/**
	 * A user profile was saved. When what pages print of an author changed
	 * (display name, nicename = archive slug, website), their published posts
	 * are marked changed and the old author archive is purged; above the
	 * site purge threshold the whole site is purged.
	 *
	 * @param int     $user_id  User id.
	 * @param WP_User $old_user User before the update.
	 */
	public static function author_updated( $user_id, $old_user ) {
		$user = get_userdata( (int) $user_id );
		if ( ! $user || ! $old_user || ! self::accepting() ) {
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
		$ids = get_posts(
			array(
				'author'         => (int) $user_id,
				'post_type'      => $types,
				'post_status'    => 'publish',
				'fields'         => 'ids',
				'posts_per_page' => self::threshold() + 1,
				'no_found_rows'  => true,
			)
		);
		if ( count( $ids ) > self::threshold() ) {
			self::site( 'author_renamed' );
			return;
		}
		foreach ( $ids as $id ) {
			self::touch_post( (int) $id );
		}
		if ( $ids && $old_user->user_nicename !== $user->user_nicename ) {
			$old_url = get_author_posts_url( (int) $user_id, $old_user->user_nicename );
			self::add_change( Purgebridge_Event_Builder::targets_change( array(), array( $old_url ), array() ) );
		}
	}

	// -- site-wide -----------------------------------------------------------

	/** Theme switched. */
	public static function site_theme() {
		self::site( 'switch_theme' );
	}

	/** Customizer saved. */
	public static function site_customize() {
		self::site( 'customize_save' );
	}

	/** A classic menu changed. */
	public static function site_menu() {
		self::site( 'wp_update_nav_menu' );
	}

	/**
	 * An option was added or changed (updated_option fires only when the
	 * value differs): options pages print or that decide what listings show,
	 * widgets (widget_*, sidebars_widgets) and theme mods (nav_menu_locations,
	 * custom logo, header) purge the whole site.
	 *
	 * @param string $option    Option name.
	 * @param mixed  $old_value Value before (updated_option).
	 * @param mixed  $value     Value after (updated_option).
	 */
	public static function site_option( $option, $old_value = null, $value = null ) {
		$option = (string) $option;
		if ( 0 === strpos( $option, 'theme_mods_' ) && self::shown_value( $old_value ) === self::shown_value( $value ) ) {
			return;
		}
		if ( in_array( $option, self::SITE_OPTIONS, true ) ) {
			$reasons = array(
				'category_base' => 'permalink_structure',
				'tag_base'      => 'permalink_structure',
			);
			self::site( isset( $reasons[ $option ] ) ? $reasons[ $option ] : $option );
		} elseif ( 0 === strpos( $option, 'widget_' ) ) {
			self::site( 'widgets' );
		} elseif ( 0 === strpos( $option, 'theme_mods_' ) ) {
			self::site( 'theme_mods' );
		}
	}

	/**
	 * An option was created. WordPress creates an empty widget_* option the
	 * first time a widget type is loaded on any page view: that shows nothing.
	 *
	 * @param string $option Option name.
	 * @param mixed  $value  Value.
	 */
	public static function site_option_added( $option, $value ) {
		$shown = self::shown_value( $value );
		if ( ! empty( $shown ) ) {
			self::site_option( $option, null, $shown );
		}
	}

	/**
	 * An option value without the bookkeeping WordPress writes on page views:
	 * '_multiwidget' of widget options and 'custom_css_post_id' of theme mods
	 * (set to -1 the first time a front page looks for Additional CSS).
	 *
	 * @param mixed $value Option value.
	 * @return mixed
	 */
	private static function shown_value( $value ) {
		if ( is_array( $value ) ) {
			unset( $value['_multiwidget'], $value['custom_css_post_id'] );
		}
		return $value;
	}

	/** An importer starts: nothing is recorded one by one until import_end. */
	public static function import_start() {
		self::$importing = true;
	}

	/** An importer finished: one site purge. */
	public static function import_end() {
		self::$importing = false;
		self::site( 'import' );
	}

	/**
	 * Records a site-wide purge.
	 *
	 * @param string $reason Reason.
	 */
	public static function site( $reason ) {
		$change         = Purgebridge_Event_Builder::purge_all( $reason );
		$change['blog'] = self::blog();
		self::$site[ self::key( $reason ) ] = $change;
		self::arm();
	}

	/**
	 * Adds a ready-made change (admin bar "Purge this page", the public API).
	 *
	 * @param array $change Change.
	 */
	public static function add_change( array $change ) {
		if ( ! self::accepting() ) {
			return;
		}
		$change['blog'] = self::blog();
		self::$site[ self::key( 'manual:' . count( self::$site ) ) ] = $change;
		self::arm();
	}

	/**
	 * Public API: do_action( 'purgebridge_purge_urls', array $urls ). Absolute
	 * URLs on this site; the relay drops other hosts.
	 *
	 * @param array $urls URLs.
	 */
	public static function purge_urls( $urls ) {
		$urls = array_values( array_filter( (array) $urls, array( __CLASS__, 'is_http_url' ) ) );
		if ( $urls ) {
			self::add_change( Purgebridge_Event_Builder::targets_change( $urls, array(), array() ) );
		}
	}

	/**
	 * Public API: do_action( 'purgebridge_purge_keys', array $keys ).
	 *
	 * @param array $keys Surrogate keys (the names of the xkey header).
	 */
	public static function purge_keys( $keys ) {
		$keys = array_values( array_filter( (array) $keys, array( __CLASS__, 'is_key' ) ) );
		if ( $keys ) {
			self::add_change( Purgebridge_Event_Builder::targets_change( array(), array(), $keys ) );
		}
	}

	/**
	 * Whether a value is an absolute http(s) URL without whitespace.
	 *
	 * @param mixed $url Value.
	 * @return bool
	 */
	private static function is_http_url( $url ) {
		return is_string( $url ) && preg_match( '#^https?://[^\s/]+#i', $url ) && ! preg_match( '/[\s\x00-\x1f\x7f]/', $url );
	}

	/**
	 * Whether a value is a key the relay accepts.
	 *
	 * @param mixed $key Value.
	 * @return bool
	 */
	private static function is_key( $key ) {
		return is_string( $key ) && preg_match( '#^[A-Za-z0-9._:/-]{1,200}$#', $key );
	}

	// -- building and sending ------------------------------------------------

	/**
	 * Changes collected so far, built from the current state, each with
	 * 'blog' (the blog it happened on).
	 *
	 * @return array
	 */
	public static function changes() {
		$changes = array();
		foreach ( array_keys( self::$overflow ) as $blog ) {
			$change         = Purgebridge_Event_Builder::purge_all( 'large_change_set' );
			$change['blog'] = $blog;
			$changes[]      = $change;
		}
		foreach ( self::$old_terms as $key => $by_taxonomy ) {
			if ( ! array_key_exists( $key, self::$posts ) ) {
				list( $blog, $id ) = explode( ':', $key, 2 );
				self::in_blog(
					(int) $blog,
					function () use ( $key, $id, $by_taxonomy ) {
						$post = get_post( (int) $id );
						if ( $post && self::trackable( $post ) && ! self::site_type( $post ) ) {
							// Only terms changed: the post as it is, with the terms it had.
							$old = Purgebridge_Snapshot::post( $post );
							if ( $old['visible'] ) {
								$old['terms'] = Purgebridge_Snapshot::post_terms( $post, $by_taxonomy );
							}
							self::$posts[ $key ] = array(
								'blog' => self::blog(),
								'id'   => (int) $id,
								'old'  => $old,
							);
						}
					}
				);
			}
		}
		self::add_parents_of_attachments();
		foreach ( self::$posts as $key => $entry ) {
			$built = self::in_blog(
				$entry['blog'],
				function () use ( $key, $entry ) {
					return self::post_changes( $entry, isset( self::$old_terms[ $key ] ) ? self::$old_terms[ $key ] : array() );
				}
			);
			foreach ( $built as $change ) {
				$change['blog'] = $entry['blog'];
				$changes[]      = $change;
			}
		}
		foreach ( self::$comments as $key => $entry ) {
			list( $action, $post_id, $blog ) = $entry;
			$comment_id                      = (int) substr( $key, strpos( $key, ':' ) + 1 );
			$change                          = self::in_blog(
				$blog,
				function () use ( $action, $post_id, $comment_id ) {
					$post = get_post( $post_id );
					if ( ! $post || ! self::trackable( $post ) ) {
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
		foreach ( self::$terms as $key => $entry ) {
			list( $action, $taxonomy, $term_id, $term, $blog ) = $entry;
			if ( null === $term ) {
				$term = self::in_blog(
					$blog,
					function () use ( $term_id, $taxonomy ) {
						return Purgebridge_Snapshot::term( $term_id, $taxonomy );
					}
				);
			}
			if ( ! $term ) {
				continue;
			}
			$old            = isset( self::$term_before[ $key ] ) ? self::$term_before[ $key ]['url'] : null;
			$change         = Purgebridge_Event_Builder::term_change( $action, $term, 'edit' === $action ? $old : null );
			$change['blog'] = $blog;
			$changes[]      = $change;
		}
		foreach ( self::$site as $change ) {
			$changes[] = $change;
		}
		return $changes;
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
			if ( count( $children ) > self::threshold() ) {
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
	private static function add_parents_of_attachments() {
		foreach ( self::$posts as $entry ) {
			self::in_blog(
				$entry['blog'],
				function () use ( $entry ) {
					$post = get_post( $entry['id'] );
					if ( $post && 'attachment' === $post->post_type && $post->post_parent ) {
						self::touch_post( (int) $post->post_parent );
					}
				}
			);
		}
	}

	/**
	 * Builds the batches and hands them to the dispatcher, one set per blog.
	 * Runs at shutdown, after the response is flushed where the server allows
	 * it, and every FLUSH_INTERVAL seconds in long CLI and cron processes.
	 *
	 * @param bool $finish_request Call fastcgi_finish_request() first.
	 * @return array Results, one per batch.
	 */
	public static function flush( $finish_request = true ) {
		self::$flushing = true;
		try {
			$changes = self::changes();
		} finally {
			self::$flushing = false;
		}
		$before = self::$term_before;
		self::reset();
		self::$term_before = $before;
		if ( ! $changes ) {
			return array();
		}
		if ( ! Purgebridge_Settings::configured() ) {
			return array();
		}
		if ( $finish_request && function_exists( 'fastcgi_finish_request' ) && 'cli' !== PHP_SAPI ) {
			fastcgi_finish_request();
		}
		$by_blog = array();
		foreach ( $changes as $change ) {
			$blog = isset( $change['blog'] ) ? (int) $change['blog'] : self::blog();
			unset( $change['blog'] );
			$by_blog[ $blog ][] = $change;
		}
		$results = array();
		foreach ( $by_blog as $blog => $blog_changes ) {
			if ( count( $blog_changes ) > self::threshold() ) {
				$blog_changes = array( Purgebridge_Event_Builder::purge_all( 'large_change_set' ) );
			}
			$home = self::in_blog(
				$blog,
				function () {
					return home_url( '/' );
				}
			);
			foreach ( Purgebridge_Event_Builder::bodies( $home, $blog_changes, time() ) as $body ) {
				$results[] = Purgebridge_Dispatcher::deliver( $body );
			}
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
	 * Whether a new record may be added now. Long CLI and cron processes
	 * (wp post update over thousands of posts) send what they have every
	 * FLUSH_INTERVAL seconds, so pages are fresh before the process ends and
	 * memory stays flat. Over the site purge threshold a blog is marked for
	 * one site purge and nothing more is recorded for it; during an import
	 * nothing is recorded (import_end purges the site).
	 *
	 * @param string|null $key Record key of a post (already recorded posts do not count again).
	 * @return bool
	 */
	private static function accepting( $key = null ) {
		if ( self::$importing ) {
			return false;
		}
		$long_running = 'cli' === PHP_SAPI || ( function_exists( 'wp_doing_cron' ) && wp_doing_cron() );
		if ( ! self::$since || ! self::pending() ) {
			self::$since = time();
		} elseif ( $long_running && ! self::$flushing ) {
			/**
			 * Filters how often (seconds) a CLI or cron process sends its batch.
			 *
			 * @param int $seconds Default 30.
			 */
			$interval = (int) apply_filters( 'purgebridge_flush_interval', self::FLUSH_INTERVAL );
			if ( time() - self::$since >= $interval ) {
				self::flush( false );
				self::$since = time();
			}
		}
		$blog = self::blog();
		if ( isset( self::$overflow[ $blog ] ) ) {
			return false;
		}
		$known = null !== $key && ( isset( self::$posts[ $key ] ) || isset( self::$old_terms[ $key ] ) );
		if ( ! $known && self::pending() >= self::threshold() ) {
			self::$overflow[ $blog ] = true;
			self::drop_blog( $blog );
			self::arm();
			return false;
		}
		return true;
	}

	/**
	 * Forgets a blog's records (it gets one site purge instead).
	 *
	 * @param int $blog Blog id.
	 */
	private static function drop_blog( $blog ) {
		$keep = function ( $key ) use ( $blog ) {
			return 0 !== strpos( (string) $key, $blog . ':' );
		};
		self::$posts     = array_filter( self::$posts, $keep, ARRAY_FILTER_USE_KEY );
		self::$old_terms = array_filter( self::$old_terms, $keep, ARRAY_FILTER_USE_KEY );
		self::$comments  = array_filter( self::$comments, $keep, ARRAY_FILTER_USE_KEY );
		self::$terms     = array_filter( self::$terms, $keep, ARRAY_FILTER_USE_KEY );
	}

	/**
	 * Changes in one request above which a blog gets one site purge instead.
	 *
	 * @return int
	 */
	public static function threshold() {
		/**
		 * Filters how many changes one request may send before the whole
		 * site is purged instead (imports, bulk edits, wp post update).
		 *
		 * @param int $threshold Default 200.
		 */
		return max( 1, (int) apply_filters( 'purgebridge_site_purge_threshold', self::SITE_PURGE_THRESHOLD ) );
	}

	/**
	 * Current blog id (1 on a single site).
	 *
	 * @return int
	 */
	private static function blog() {
		return function_exists( 'get_current_blog_id' ) ? (int) get_current_blog_id() : 1;
	}

	/**
	 * A record key scoped by the current blog.
	 *
	 * @param int|string $id Id within the blog.
	 * @return string
	 */
	private static function key( $id ) {
		return self::blog() . ':' . $id;
	}

	/**
	 * Runs a function with $blog as the current blog.
	 *
	 * @param int      $blog     Blog id.
	 * @param callable $function Function.
	 * @return mixed What it returns.
	 */
	private static function in_blog( $blog, $function ) {
		$switch = function_exists( 'is_multisite' ) && is_multisite() && (int) $blog !== self::blog();
		if ( $switch ) {
			switch_to_blog( (int) $blog );
		}
		try {
			return $function();
		} finally {
			if ( $switch ) {
				restore_current_blog();
			}
		}
	}

	/**
	 * Whether a post's type is part of every page (Site Editor, block
	 * navigation, synced patterns), so any change purges the whole site.
	 *
	 * @param WP_Post $post Post.
	 * @return bool
	 */
	private static function site_type( $post ) {
		return in_array( $post->post_type, self::SITE_TYPES, true ) && 'auto-draft' !== $post->post_status;
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
