<?php
/**
 * Delivery decisions as plain functions: what an HTTP answer means, how long
 * to wait before the next try, how a request's changes are cut into batches.
 *
 * No WordPress calls here, so the unit tests can pin every rule down.
 *
 * @package Purgebridge
 */

defined( 'ABSPATH' ) || exit;

/**
 * Pure delivery rules.
 */
final class Purgebridge_Policy {

	const DELIVERED = 'delivered';
	const RETRY     = 'retry';
	const PERMANENT = 'permanent';

	/** The relay refuses more than this many changes in one batch. */
	const MAX_CHANGES = 500;

	/** Stay well under the relay's 256 KiB body limit. */
	const MAX_BYTES = 200000;

	/**
	 * What an answer from the relay means for the batch.
	 *
	 * 202 is the only "it is on disk" answer. 409 means this very signature was
	 * already accepted, so the batch is delivered. 408, 429 and 5xx are
	 * transient; any other 4xx (401 signature, 400 schema, 403 site, 413 size)
	 * will not heal by itself and must be shown to a human instead of retried
	 * forever. 0 stands for "no HTTP answer" (refused, timeout, DNS).
	 *
	 * @param int $status HTTP status code, 0 when there was none.
	 * @return string One of the class constants.
	 */
	public static function classify( $status ) {
		$status = (int) $status;
		if ( 202 === $status || 409 === $status ) {
			return self::DELIVERED;
		}
		if ( 408 === $status || 429 === $status ) {
			return self::RETRY;
		}
		if ( $status >= 400 && $status < 500 ) {
			return self::PERMANENT;
		}
		return self::RETRY;
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
	 * The action of a comment status transition, or null when the comment was
	 * not and is not visible (only approved comments appear on pages).
	 *
	 * @param string $new_status WordPress comment status after (approved, unapproved, spam, trash, delete).
	 * @param string $old_status Status before.
	 * @return string|null
	 */
	public static function comment_action( $new_status, $old_status ) {
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
	 * Load probe answer for a level: 503 when the load is over its threshold.
	 *
	 * @param int   $level      2 or 3.
	 * @param float $load       1-minute load average.
	 * @param array $thresholds Level => threshold.
	 * @return int 200, 503, or 404 for an unknown level.
	 */
	public static function probe_status( $level, $load, array $thresholds ) {
		$level = (int) $level;
		if ( ! isset( $thresholds[ $level ] ) ) {
			return 404;
		}
		return ( (float) $load > (float) $thresholds[ $level ] ) ? 503 : 200;
	}
}
