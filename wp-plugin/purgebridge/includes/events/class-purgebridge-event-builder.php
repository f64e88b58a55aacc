<?php
/**
 * Turns snapshots into the Change objects and batch bodies of docs/events.md.
 *
 * Pure functions over arrays: the hooks collect snapshots, this class decides
 * what the relay is told. Key order follows the schema document so bodies are
 * easy to compare with the shared test vector.
 *
 * @package Purgebridge
 */

defined( 'ABSPATH' ) || exit;

/**
 * Builds Change arrays and encoded batches.
 */
final class Purgebridge_Event_Builder {

	/** The relay refuses more than this many changes in one batch. */
	const MAX_CHANGES = 500;

	/** Stay well under the relay's 256 KiB body limit. */
	const MAX_BYTES = 200000;

	/**
	 * A post change from the state before and after, or null when no public
	 * page changed (a draft edited, a private post saved).
	 *
	 * @param array|null $old Snapshot before; null for a new post.
	 * @param array|null $new Snapshot after; null once deleted.
	 * @return array|null Change.
	 */
	public static function post_change( $old, $new ) {
		if ( null === $old && null === $new ) {
			return null;
		}
		$old_visible = $old && ! empty( $old['visible'] );
		$new_visible = $new && ! empty( $new['visible'] );
		$action      = self::post_action( $old_visible, $new_visible, $new ? $new['status'] : null );
		if ( null === $action ) {
			return null;
		}
		return array(
			'kind'   => 'post',
			'action' => $action,
			'post'   => self::post( $old, $new ),
		);
	}

	/**
	 * The Post object of the schema.
	 *
	 * @param array|null $old Snapshot before.
	 * @param array|null $new Snapshot after.
	 * @return array
	 */
	public static function post( $old, $new ) {
		$old_visible = $old && ! empty( $old['visible'] );
		$new_visible = $new && ! empty( $new['visible'] );
		$base        = $new ? $new : $old;
		$author      = $new_visible || ! $old ? $base['author'] : $old['author'];
		return array(
			'id'               => (int) $base['id'],
			'type'             => (string) $base['type'],
			'rest_base'        => $base['rest_base'],
			'status_old'       => $old ? $old['status'] : null,
			'status_new'       => $new ? $new['status'] : null,
			'url_old'          => $old_visible ? $old['url'] : null,
			'url_new'          => $new_visible ? $new['url'] : null,
			'date_old'         => $old_visible ? $old['date'] : null,
			'date_new'         => $new_visible ? $new['date'] : null,
			'author'           => array(
				'id'  => (int) $author['id'],
				'url' => (string) $author['url'],
			),
			'terms_old'        => $old_visible ? array_values( $old['terms'] ) : array(),
			'terms_new'        => $new_visible ? array_values( $new['terms'] ) : array(),
			'type_archive_url' => $base['type_archive_url'],
		);
	}

	/**
	 * A comment change on a visible post.
	 *
	 * @param string $action     approve, unapprove, spam, trash, edit or new.
	 * @param int    $comment_id Comment id.
	 * @param array  $post       Snapshot of the post it belongs to.
	 * @return array|null Null when the post is not public.
	 */
	public static function comment_change( $action, $comment_id, $post ) {
		if ( ! $post || empty( $post['visible'] ) ) {
			return null;
		}
		return array(
			'kind'       => 'comment',
			'action'     => (string) $action,
			'post'       => self::post( $post, $post ),
			'comment_id' => (int) $comment_id,
		);
	}

	/**
	 * A term change.
	 *
	 * @param string      $action  create, edit or delete.
	 * @param array       $term    Term array (id, taxonomy, rest_base, url).
	 * @param string|null $url_old Archive link before an edit, when it changed.
	 * @return array
	 */
	public static function term_change( $action, array $term, $url_old = null ) {
		$term['url_old'] = ( null !== $url_old && $url_old !== $term['url'] ) ? (string) $url_old : null;
		return array(
			'kind'   => 'term',
			'action' => (string) $action,
			'term'   => $term,
		);
	}

	/**
	 * A site-wide change: everything on the site is stale.
	 *
	 * @param string $reason Why (switch_theme, customize_save, ...).
	 * @return array
	 */
	public static function purge_all( $reason ) {
		/**
		 * Filters a site purge before it is sent; on multisite
		 * Purgebridge_Network adds `keep_paths` (the neighbour sites' paths).
		 *
		 * @param array $change The site change.
		 */
		return apply_filters(
			'purgebridge_site_purge',
			array(
				'kind'   => 'site',
				'action' => 'purge_all',
				'reason' => (string) $reason,
			)
		);
	}

	/**
	 * Given targets (the public API, an author's old archive): absolute URLs
	 * purged as they are, archives purged with their pages and feed, and
	 * surrogate keys.
	 *
	 * @param string[] $urls     Absolute URLs.
	 * @param string[] $archives Absolute URLs of listings.
	 * @param string[] $keys     Surrogate keys.
	 * @return array
	 */
	public static function targets_change( array $urls, array $archives, array $keys ) {
		return array(
			'kind'     => 'urls',
			'action'   => 'purge',
			'urls'     => array_values( array_map( 'strval', $urls ) ),
			'archives' => array_values( array_map( 'strval', $archives ) ),
			'keys'     => array_values( array_map( 'strval', $keys ) ),
		);
	}

	/**
	 * The relay's harmless "are you there, is my signature right" change.
	 *
	 * @return array
	 */
	public static function ping() {
		return array(
			'kind'   => 'site',
			'action' => 'ping',
			'reason' => 'settings test',
		);
	}

	/**
	 * Encodes one batch body. The exact bytes returned are what gets signed.
	 *
	 * Every batch carries a random batch_id. The relay refuses a signature it
	 * has seen (409, a replay) and the plugin counts a 409 as delivered (the
	 * relay already has that batch); the signature covers only the timestamp's
	 * second and the body, so without the id two batches with the same changes
	 * signed in the same second (the block editor's REST save and its
	 * meta-box post; stick_post() then unstick_post()) would share a
	 * signature, and the second, which must purge again, would be dropped as
	 * a replay. A queued batch keeps its body, so a re-send after a lost
	 * answer is still recognised as the same batch.
	 *
	 * @param string      $site     home_url('/').
	 * @param array       $changes  1..500 changes.
	 * @param int         $sent_at  Unix seconds.
	 * @param string|null $batch_id Fixed id (tests); null for a fresh random one.
	 * @return string JSON.
	 */
	public static function encode( $site, array $changes, $sent_at, $batch_id = null ) {
		$batch = array(
			'schema'   => 1,
			'site'     => (string) $site,
			'sent_at'  => (int) $sent_at,
			'batch_id' => null === $batch_id ? bin2hex( random_bytes( 16 ) ) : (string) $batch_id,
			'changes'  => array_values( $changes ),
		);
		return (string) wp_json_encode( $batch, JSON_UNESCAPED_SLASHES | JSON_UNESCAPED_UNICODE );
	}

	/**
	 * All bodies for one request's changes, cut to the relay's limits. A
	 * site-wide purge makes every other change of the request redundant.
	 *
	 * @param string $site    home_url('/').
	 * @param array  $changes Changes in the order they happened.
	 * @param int    $sent_at Unix seconds.
	 * @return string[]
	 */
	public static function bodies( $site, array $changes, $sent_at ) {
		$site_wide = array();
		foreach ( $changes as $change ) {
			if ( 'site' === $change['kind'] && 'purge_all' === $change['action'] ) {
				$site_wide[] = $change;
			}
		}
		if ( $site_wide ) {
			$changes = $site_wide;
		}
		$bodies = array();
		foreach ( self::chunk( $changes ) as $chunk ) {
			$bodies[] = self::encode( $site, $chunk, $sent_at );
		}
		return $bodies;
	}

	/**
	 * The action of a post change, or null when no public page changed.
	 *
	 * @param bool        $old_visible Was the post publicly visible before.
	 * @param bool        $new_visible Is it publicly visible now.
	 * @param string|null $new_status  Status now, null when deleted.
	 * @return string|null publish, update, unpublish, trash, delete or null.
	 */
	public static function post_action( $old_visible, $new_visible, $new_status ) {
		if ( ! $old_visible && ! $new_visible ) {
			return null;
		}
		if ( ! $old_visible ) {
			return 'publish';
		}
		if ( $new_visible ) {
			return 'update';
		}
		if ( null === $new_status ) {
			return 'delete';
		}
		return 'trash' === $new_status ? 'trash' : 'unpublish';
	}

	/**
	 * Cuts a list of changes into batches the relay accepts (count and size).
	 *
	 * @param array $changes   Change arrays.
	 * @param int   $max_count Most changes per batch.
	 * @param int   $max_bytes Most encoded bytes of changes per batch.
	 * @return array<int,array> Lists of changes, none empty.
	 */
	public static function chunk( array $changes, $max_count = self::MAX_CHANGES, $max_bytes = self::MAX_BYTES ) {
		$batches = array();
		$current = array();
		$bytes   = 0;
		foreach ( array_values( $changes ) as $change ) {
			$size = strlen( (string) json_encode( $change ) ) + 1;
			if ( $current && ( count( $current ) >= $max_count || $bytes + $size > $max_bytes ) ) {
				$batches[] = $current;
				$current   = array();
				$bytes     = 0;
			}
			$current[] = $change;
			$bytes    += $size;
		}
		if ( $current ) {
			$batches[] = $current;
		}
		return $batches;
	}
}
