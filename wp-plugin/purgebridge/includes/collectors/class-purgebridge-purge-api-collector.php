<?php
/**
 * The public purge actions other code calls:
 * do_action( 'purgebridge_purge_urls', array $urls ),
 * do_action( 'purgebridge_purge_keys', array $keys ),
 * do_action( 'purgebridge_purge_post', int $post_id ).
 *
 * @package Purgebridge
 */

defined( 'ABSPATH' ) || exit;

/**
 * Public API collector.
 */
final class Purgebridge_Purge_Api_Collector extends Purgebridge_Collector {

	/**
	 * The posts collector (purgebridge_purge_post).
	 *
	 * @var Purgebridge_Posts_Collector
	 */
	private $posts;

	/**
	 * Public API collector.
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
		add_action( 'purgebridge_purge_urls', array( $this, 'urls' ), 10, 1 );
		add_action( 'purgebridge_purge_keys', array( $this, 'keys' ), 10, 1 );
		add_action( 'purgebridge_purge_post', array( $this->posts, 'touch' ), 10, 1 );
	}

	/**
	 * Absolute URLs on this site; the relay drops other hosts.
	 *
	 * @param array $urls URLs.
	 */
	public function urls( $urls ) {
		$urls = array_values( array_filter( (array) $urls, array( __CLASS__, 'is_http_url' ) ) );
		if ( $urls ) {
			$this->buffer->add_change( Purgebridge_Event_Builder::targets_change( $urls, array(), array() ) );
		}
	}

	/**
	 * Surrogate keys (the names of the xkey header).
	 *
	 * @param array $keys Keys.
	 */
	public function keys( $keys ) {
		$keys = array_values( array_filter( (array) $keys, array( __CLASS__, 'is_key' ) ) );
		if ( $keys ) {
			$this->buffer->add_change( Purgebridge_Event_Builder::targets_change( array(), array(), $keys ) );
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
}
