<?php
/**
 * A stand-in for WP-CLI's WP_CLI class, for tests only: WP-CLI itself is not
 * installed on the test machines. It records what a command prints and turns
 * WP_CLI::error() (which exits 1 in WP-CLI) into an exception, so a test can
 * run Purgebridge_CLI's real subcommands over the real operations.
 */

if ( ! defined( 'WP_CLI' ) ) {
	define( 'WP_CLI', true );
}

/** Raised by the stand-in's WP_CLI::error(). */
class Purgebridge_CLI_Exit extends Exception {}

/** The stand-in. */
class WP_CLI {
	/** @var array<string,string> Commands registered: name => class. */
	public static $commands = array();
	/** @var string[] Lines printed, prefixed "Success: ", "Error: " or "". */
	public static $out = array();

	public static function add_command( $name, $callable ) {
		self::$commands[ $name ] = $callable;
	}
	public static function line( $text = '' ) {
		self::$out[] = (string) $text;
	}
	public static function log( $text ) {
		self::$out[] = (string) $text;
	}
	public static function success( $text ) {
		self::$out[] = 'Success: ' . $text;
	}
	public static function warning( $text ) {
		self::$out[] = 'Warning: ' . $text;
	}
	public static function error( $text ) {
		self::$out[] = 'Error: ' . $text;
		throw new Purgebridge_CLI_Exit( (string) $text );
	}
	public static function halt( $code ) {
		throw new Purgebridge_CLI_Exit( 'exit ' . (int) $code );
	}
	public static function confirm( $question, $assoc = array() ) {
		if ( empty( $assoc['yes'] ) ) {
			self::error( 'not confirmed: ' . $question );
		}
	}

	/**
	 * Runs "wp <name> <sub> args --opts" through the registered class.
	 *
	 * @return array{exit:int,out:string[]}
	 */
	public static function run( $name, $sub, array $args = array(), array $assoc = array() ) {
		self::$out = array();
		$class     = self::$commands[ $name ];
		$exit      = 0;
		try {
			call_user_func( array( new $class(), $sub ), $args, $assoc );
		} catch ( Purgebridge_CLI_Exit $e ) {
			$exit = 1;
		}
		return array(
			'exit' => $exit,
			'out'  => self::$out,
		);
	}
}
