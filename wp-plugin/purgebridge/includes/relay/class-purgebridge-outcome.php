<?php
/**
 * What an answer from the relay means for a batch: delivered, retry later,
 * or refused for good. A pure rule, so the unit tests pin it down.
 *
 * @package Purgebridge
 */

defined( 'ABSPATH' ) || exit;

/**
 * Outcome of a send.
 */
final class Purgebridge_Outcome {

	const DELIVERED = 'delivered';
	const RETRY     = 'retry';
	const PERMANENT = 'permanent';

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
}
