<?php
/**
 * HMAC signing of event bodies, exactly as docs/events.md describes.
 *
 * Kept free of WordPress calls so the shared test vector
 * (tests/vectors/signing.json) can check it without a WordPress install.
 *
 * @package Purgebridge
 */

defined( 'ABSPATH' ) || exit;

/**
 * Signs a raw body for the relay.
 */
final class Purgebridge_Signer {

	/**
	 * Signature header value for a body sent at a given time.
	 *
	 * @param string     $secret    Shared secret (PURGEBRIDGE_SECRET).
	 * @param int|string $timestamp Unix seconds, sent as X-Purgebridge-Timestamp.
	 * @param string     $body      Exact bytes of the request body.
	 * @return string "sha256=" followed by lowercase hex.
	 */
	public static function sign( $secret, $timestamp, $body ) {
		return 'sha256=' . hash_hmac( 'sha256', (string) $timestamp . '.' . $body, (string) $secret );
	}

	/**
	 * Headers for one signed request.
	 *
	 * @param string $secret    Shared secret.
	 * @param int    $timestamp Unix seconds.
	 * @param string $body      Exact body bytes.
	 * @return array<string,string>
	 */
	public static function headers( $secret, $timestamp, $body ) {
		return array(
			'Content-Type'            => 'application/json',
			'X-Purgebridge-Timestamp' => (string) (int) $timestamp,
			'X-Purgebridge-Signature' => self::sign( $secret, (int) $timestamp, $body ),
		);
	}
}
