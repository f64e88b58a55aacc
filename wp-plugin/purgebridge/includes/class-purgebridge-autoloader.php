<?php
/**
 * Loads a Purgebridge_* class from includes/ the first time it is used:
 * Purgebridge_Change_Buffer lives in class-purgebridge-change-buffer.php, in
 * one of the folders below. The folders are the plugin's layout:
 *
 * - (top)       the bootstrap, settings, operator actions, multisite;
 * - events/     what a change is: snapshots of WordPress objects, the
 *               events sent to the relay (pure, unit-tested);
 * - collectors/ the change buffer and one collector per kind of object;
 * - relay/      talking to the relay: signing, HTTP, the retry queue, the
 *               dispatcher, recovery rules and the relay's known state;
 * - front/      what public pages get: surrogate keys, ESI, the load probe;
 * - admin/      what people see: settings screens, admin bar, notices,
 *               Site Health, WP-CLI output.
 *
 * @package Purgebridge
 */

defined( 'ABSPATH' ) || exit;

/**
 * Class autoloader.
 */
final class Purgebridge_Autoloader {

	/** Folders under includes/, searched in this order. */
	const FOLDERS = array( '', 'events/', 'collectors/', 'relay/', 'front/', 'admin/' );

	/**
	 * Registers the autoloader.
	 */
	public static function register() {
		spl_autoload_register( array( __CLASS__, 'load' ) );
	}

	/**
	 * The file of a class, or null when it is not one of ours.
	 *
	 * @param string $class Class name.
	 * @return string|null Absolute path.
	 */
	public static function file( $class ) {
		if ( 0 !== strpos( $class, 'Purgebridge_' ) ) {
			return null;
		}
		$name = 'class-' . strtolower( str_replace( '_', '-', $class ) ) . '.php';
		foreach ( self::FOLDERS as $folder ) {
			$path = __DIR__ . '/' . $folder . $name;
			if ( is_file( $path ) ) {
				return $path;
			}
		}
		return null;
	}

	/**
	 * Autoload callback.
	 *
	 * @param string $class Class name.
	 */
	public static function load( $class ) {
		$path = self::file( $class );
		if ( null !== $path ) {
			require_once $path;
		}
	}
}
