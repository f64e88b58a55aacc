<?php
/**
 * Which attachments a post shows by ID, and which published posts show an
 * attachment.
 *
 * WordPress records an attachment's use by other posts only inside their
 * content and in the _thumbnail_id meta: image and media blocks carry
 * `"id":12` and the class `wp-image-12`, galleries `[gallery ids="12,13"]`
 * or `"ids":[12,13]`, featured images `_thumbnail_id = 12`. So "which posts
 * show attachment 12" is a search. It runs only when an attachment changes
 * (never on a post save), is bounded (the caller site-purges above the
 * bound), and every candidate is checked with the same extraction the front
 * end uses for its attachment-<id> keys, so both modes see the same relation.
 *
 * @package Purgebridge
 */

defined( 'ABSPATH' ) || exit;

/**
 * Attachment references.
 */
final class Purgebridge_Attachment_References {

	/**
	 * Attachment IDs a post's content names (blocks, classes, galleries).
	 *
	 * @param string $content Post content.
	 * @return int[]
	 */
	public static function ids_in( $content ) {
		$content = (string) $content;
		if ( '' === $content || ( false === strpos( $content, 'id' ) && false === strpos( $content, 'wp-image-' ) ) ) {
			return array();
		}
		$ids = array();
		if ( preg_match_all( '/\bwp-image-(\d+)\b/', $content, $found ) ) {
			$ids = array_merge( $ids, $found[1] );
		}
		// Block attributes of core/image, cover, media-text, file, audio, video.
		if ( preg_match_all( '/<!--\s+wp:[^>]*?"(?:id|mediaId)"\s*:\s*(\d+)/', $content, $found ) ) {
			$ids = array_merge( $ids, $found[1] );
		}
		$lists = array();
		if ( preg_match_all( '/\[gallery\b[^\]]*?\bids\s*=\s*["\']?([\d,\s]+)/', $content, $found ) ) {
			$lists = array_merge( $lists, $found[1] );
		}
		if ( preg_match_all( '/"ids"\s*:\s*\[([\d,\s]*)\]/', $content, $found ) ) {
			$lists = array_merge( $lists, $found[1] );
		}
		foreach ( $lists as $list ) {
			$ids = array_merge( $ids, preg_split( '/[\s,]+/', trim( $list ), -1, PREG_SPLIT_NO_EMPTY ) );
		}
		return array_values( array_unique( array_filter( array_map( 'intval', $ids ) ) ) );
	}

	/**
	 * Attachments a post shows: those its content names and its featured image.
	 *
	 * @param WP_Post $post Post.
	 * @return int[]
	 */
	public static function shown_by( $post ) {
		$ids       = self::ids_in( $post->post_content );
		$thumbnail = (int) get_post_meta( $post->ID, '_thumbnail_id', true );
		if ( $thumbnail > 0 ) {
			$ids[] = $thumbnail;
		}
		return array_values( array_unique( $ids ) );
	}

	/**
	 * Published posts that show an attachment by ID (content or featured
	 * image), at most $limit; null when there are more (the caller purges
	 * the site instead).
	 *
	 * @param int $attachment_id Attachment id.
	 * @param int $limit         Most posts wanted.
	 * @return int[]|null
	 */
	public static function posts_using( $attachment_id, $limit ) {
		global $wpdb;
		$id    = (int) $attachment_id;
		$limit = max( 1, (int) $limit );
		$like  = array();
		foreach ( array( 'wp-image-' . $id, '"id":' . $id, '"mediaId":' . $id, 'ids="' . $id, ',' . $id . ',', ',' . $id . '"', ',' . $id . ']', '[' . $id . ',', '[' . $id . ']' ) as $needle ) {
			$like[] = '%' . $wpdb->esc_like( $needle ) . '%';
		}
		// One scan of the published posts; candidates are checked below.
		$candidates = $wpdb->get_results(
			$wpdb->prepare(
				"SELECT ID, post_content FROM {$wpdb->posts} WHERE post_status = 'publish' AND post_type NOT IN ('revision', 'attachment') AND ("
				. implode( ' OR ', array_fill( 0, count( $like ), 'post_content LIKE %s' ) ) . ') LIMIT %d',
				array_merge( $like, array( $limit + 1 ) )
			)
		);
		if ( count( $candidates ) > $limit ) {
			return null;
		}
		$ids = array();
		foreach ( $candidates as $row ) {
			if ( in_array( $id, self::ids_in( $row->post_content ), true ) ) {
				$ids[] = (int) $row->ID;
			}
		}
		$featured = $wpdb->get_col(
			$wpdb->prepare(
				"SELECT p.ID FROM {$wpdb->postmeta} m JOIN {$wpdb->posts} p ON p.ID = m.post_id WHERE m.meta_key = '_thumbnail_id' AND m.meta_value = %s AND p.post_status = 'publish' LIMIT %d",
				(string) $id,
				$limit + 1
			)
		);
		$ids      = array_values( array_unique( array_merge( $ids, array_map( 'intval', $featured ) ) ) );
		return count( $ids ) > $limit ? null : $ids;
	}
}
