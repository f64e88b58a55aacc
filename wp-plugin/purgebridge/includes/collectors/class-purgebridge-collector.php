<?php
/**
 * What every collector is: hooks for one kind of object, records kept in
 * the shared change buffer's request, changes built at flush time.
 *
 * A new kind of object gets its own subclass, added in
 * Purgebridge_Plugin::collectors(): register() adds its hooks, and a
 * collector that keeps records of its own reports them through pending(),
 * changes(), drop_blog() and clear(). Site-wide purges and ready-made changes
 * go to the buffer (site(), add_change()), which keeps them for everyone.
 *
 * @package Purgebridge
 */

defined( 'ABSPATH' ) || exit;

/**
 * Base of the collectors.
 */
abstract class Purgebridge_Collector {

	/**
	 * The request's change buffer.
	 *
	 * @var Purgebridge_Change_Buffer
	 */
	protected $buffer;

	/**
	 * Collector writing into $buffer.
	 *
	 * @param Purgebridge_Change_Buffer $buffer Change buffer.
	 */
	public function __construct( Purgebridge_Change_Buffer $buffer ) {
		$this->buffer = $buffer;
	}

	/**
	 * Adds the WordPress hooks.
	 */
	abstract public function register();

	/**
	 * Number of records this collector holds.
	 *
	 * @return int
	 */
	public function pending() {
		return 0;
	}

	/**
	 * The changes of the held records, built from the current state, each
	 * with 'blog' (the blog it happened on).
	 *
	 * @return array
	 */
	public function changes() {
		return array();
	}

	/**
	 * Forgets one blog's records (it gets one site purge instead).
	 *
	 * @param int $blog Blog id.
	 */
	public function drop_blog( $blog ) {
	}

	/**
	 * Forgets the records (after a flush).
	 */
	public function clear() {
	}
}
