<?php
/**
 * Terms of the tracked taxonomies: created, edited (with the archive link
 * they had before) and deleted. A term whose name, slug or parent changed
 * marks the posts carrying it as changed (they print it).
 *
 * @package Purgebridge
 */

defined( 'ABSPATH' ) || exit;

/**
 * Term collector.
 */
final class Purgebridge_Terms_Collector extends Purgebridge_Collector {

	/**
	 * The posts collector: posts showing a renamed term are marked changed.
	 *
	 * @var Purgebridge_Posts_Collector
	 */
	private $posts;

	/**
	 * Term changes: "blog:taxonomy:id" => array( action, taxonomy, id, term|null, blog ).
	 *
	 * @var array
	 */
	private $terms = array();

	/**
	 * Terms before an edit: "blog:taxonomy:id" => array( 'url', 'shown' ).
	 * Kept across periodic flushes: edit_terms and edited_term bracket one edit.
	 *
	 * @var array
	 */
	private $before = array();

	/**
	 * Term collector.
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
		add_action( 'edit_terms', array( $this, 'before_edit' ), 10, 2 );
		add_action( 'pre_delete_term', array( $this, 'before_delete' ), 10, 2 );
		add_action( 'created_term', array( $this, 'created' ), 10, 3 );
		add_action( 'edited_term', array( $this, 'edited' ), 10, 3 );
		add_action( 'delete_term', array( $this, 'deleted' ), 10, 3 );
	}

	/**
	 * Number of terms held.
	 *
	 * @return int
	 */
	public function pending() {
		return count( $this->terms );
	}

	/**
	 * Forgets one blog's terms.
	 *
	 * @param int $blog Blog id.
	 */
	public function drop_blog( $blog ) {
		$this->terms = Purgebridge_Change_Buffer::without_blog( $this->terms, $blog );
	}

	/**
	 * Forgets the term changes; the state before an edit in progress stays.
	 */
	public function clear() {
		$this->terms = array();
	}

	/**
	 * Remembers a term before an edit: its archive link (slug or parent may
	 * change) and what posts print of it (name, slug).
	 *
	 * @param int    $term_id  Term id.
	 * @param string $taxonomy Taxonomy.
	 */
	public function before_edit( $term_id, $taxonomy ) {
		$key = Purgebridge_Change_Buffer::key( $taxonomy . ':' . (int) $term_id );
		if ( isset( $this->before[ $key ] ) || ! Purgebridge_Snapshot::tracked_taxonomy( $taxonomy ) ) {
			return;
		}
		$term = Purgebridge_Snapshot::term( (int) $term_id, $taxonomy );
		$raw  = get_term( (int) $term_id, $taxonomy );
		if ( $term && $raw && ! is_wp_error( $raw ) ) {
			$this->before[ $key ] = array(
				'url'   => $term['url'],
				'shown' => array( $raw->name, $raw->slug, (int) $raw->parent ),
			);
		}
	}

	/**
	 * Captures a term before it is deleted: afterwards it has no link.
	 *
	 * @param int    $term_id  Term id.
	 * @param string $taxonomy Taxonomy.
	 */
	public function before_delete( $term_id, $taxonomy ) {
		if ( ! Purgebridge_Snapshot::tracked_taxonomy( $taxonomy ) || ! $this->buffer->accepting() ) {
			return;
		}
		$term = Purgebridge_Snapshot::term( (int) $term_id, $taxonomy );
		if ( $term ) {
			$this->terms[ Purgebridge_Change_Buffer::key( $taxonomy . ':' . (int) $term_id ) ] = array( 'delete', $taxonomy, (int) $term_id, $term, Purgebridge_Change_Buffer::blog() );
			$this->buffer->arm();
		}
	}

	/**
	 * A term was created.
	 *
	 * @param int    $term_id  Term id.
	 * @param int    $tt_id    Term taxonomy id.
	 * @param string $taxonomy Taxonomy.
	 */
	public function created( $term_id, $tt_id, $taxonomy ) {
		$this->record( 'create', $term_id, $taxonomy );
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
	public function edited( $term_id, $tt_id, $taxonomy ) {
		$key = Purgebridge_Change_Buffer::key( $taxonomy . ':' . (int) $term_id );
		if ( isset( $this->terms[ $key ] ) && 'create' === $this->terms[ $key ][0] ) {
			return;
		}
		$this->record( 'edit', $term_id, $taxonomy );
		$raw = get_term( (int) $term_id, $taxonomy );
		if ( ! isset( $this->before[ $key ] ) || ! $raw || is_wp_error( $raw ) ) {
			return;
		}
		if ( $this->before[ $key ]['shown'] === array( $raw->name, $raw->slug, (int) $raw->parent ) ) {
			return;
		}
		$objects = get_objects_in_term( (int) $term_id, $taxonomy );
		if ( is_wp_error( $objects ) ) {
			return;
		}
		if ( count( $objects ) > Purgebridge_Change_Buffer::threshold() ) {
			$this->buffer->site( 'term_renamed' );
			return;
		}
		foreach ( $objects as $object_id ) {
			$this->posts->touch( (int) $object_id );
		}
	}

	/**
	 * A term was deleted (captured in before_delete()).
	 *
	 * @param int    $term_id  Term id.
	 * @param int    $tt_id    Term taxonomy id.
	 * @param string $taxonomy Taxonomy.
	 */
	public function deleted( $term_id, $tt_id, $taxonomy ) {
		$key = Purgebridge_Change_Buffer::key( $taxonomy . ':' . (int) $term_id );
		if ( isset( $this->terms[ $key ] ) ) {
			$this->terms[ $key ][0] = 'delete';
		}
	}

	/**
	 * The changes of the terms held; a term not captured before is read now.
	 *
	 * @return array
	 */
	public function changes() {
		$changes = array();
		foreach ( $this->terms as $key => $entry ) {
			list( $action, $taxonomy, $term_id, $term, $blog ) = $entry;
			if ( null === $term ) {
				$term = Purgebridge_Change_Buffer::in_blog(
					$blog,
					function () use ( $term_id, $taxonomy ) {
						return Purgebridge_Snapshot::term( $term_id, $taxonomy );
					}
				);
			}
			if ( ! $term ) {
				continue;
			}
			$old            = isset( $this->before[ $key ] ) ? $this->before[ $key ]['url'] : null;
			$change         = Purgebridge_Event_Builder::term_change( $action, $term, 'edit' === $action ? $old : null );
			$change['blog'] = $blog;
			$changes[]      = $change;
		}
		return $changes;
	}

	/**
	 * Records a term change; the term is read at flush time.
	 *
	 * @param string $action   create or edit.
	 * @param int    $term_id  Term id.
	 * @param string $taxonomy Taxonomy.
	 */
	private function record( $action, $term_id, $taxonomy ) {
		if ( ! Purgebridge_Snapshot::tracked_taxonomy( $taxonomy ) || ! $this->buffer->accepting() ) {
			return;
		}
		$this->terms[ Purgebridge_Change_Buffer::key( $taxonomy . ':' . (int) $term_id ) ] = array( $action, $taxonomy, (int) $term_id, null, Purgebridge_Change_Buffer::blog() );
		$this->buffer->arm();
	}
}
