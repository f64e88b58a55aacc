<?php
/**
 * Importers: nothing is recorded one by one between import_start and
 * import_end, which purges the whole site once.
 *
 * @package Purgebridge
 */

defined( 'ABSPATH' ) || exit;

/**
 * Import collector.
 */
final class Purgebridge_Import_Collector extends Purgebridge_Collector {

	/**
	 * Adds the hooks.
	 */
	public function register() {
		add_action( 'import_start', array( $this, 'start' ) );
		add_action( 'import_end', array( $this, 'end' ) );
	}

	/** An importer starts. */
	public function start() {
		$this->buffer->pause();
	}

	/** An importer finished: one site purge. */
	public function end() {
		$this->buffer->resume();
		$this->buffer->site( 'import' );
	}
}
