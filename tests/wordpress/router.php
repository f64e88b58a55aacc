<?php
/**
 * Router for `php -S`: existing files and directories are served by the
 * built-in server itself (PHP files executed, directories through their
 * index.php); every other path goes to WordPress's index.php, as
 * mod_rewrite does under Apache.
 */
$purgebridge_path = urldecode( (string) parse_url( $_SERVER['REQUEST_URI'], PHP_URL_PATH ) );
if ( '/' !== $purgebridge_path && false === strpos( $purgebridge_path, '..' ) && file_exists( $_SERVER['DOCUMENT_ROOT'] . $purgebridge_path ) ) {
	return false;
}
$_SERVER['SCRIPT_NAME']     = '/index.php';
$_SERVER['SCRIPT_FILENAME'] = $_SERVER['DOCUMENT_ROOT'] . '/index.php';
$_SERVER['PHP_SELF']        = '/index.php';
require $_SERVER['DOCUMENT_ROOT'] . '/index.php';
