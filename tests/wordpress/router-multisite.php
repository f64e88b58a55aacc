<?php
/**
 * Router for `php -S` serving a WordPress network: WordPress's own .htaccess
 * rules for a subdirectory network, then router.php.
 *
 * A site at /blog2/ links its admin, login and assets as /blog2/wp-admin/...,
 * /blog2/wp-login.php, /blog2/wp-includes/...: they are the network's one set
 * of files. REQUEST_URI keeps /blog2/ (WordPress finds the site from it);
 * SCRIPT_NAME and PHP_SELF are the file's own path, as after mod_rewrite.
 */
$purgebridge_path = urldecode( (string) parse_url( $_SERVER['REQUEST_URI'], PHP_URL_PATH ) );
$purgebridge_root = $_SERVER['DOCUMENT_ROOT'];
if ( false === strpos( $purgebridge_path, '..' )
	&& preg_match( '#^/[_0-9a-zA-Z-]+(/(?:wp-(?:admin|content|includes)(?:/.*)?|[^/]+\.php))$#', $purgebridge_path, $purgebridge_match )
	&& file_exists( $purgebridge_root . $purgebridge_match[1] ) ) {
	$purgebridge_file = $purgebridge_match[1];
	if ( is_dir( $purgebridge_root . $purgebridge_file ) ) {
		$purgebridge_file = rtrim( $purgebridge_file, '/' ) . '/index.php';
	}
	if ( '.php' === substr( $purgebridge_file, -4 ) ) {
		$_SERVER['SCRIPT_NAME']     = $purgebridge_file;
		$_SERVER['PHP_SELF']        = $purgebridge_file;
		$_SERVER['SCRIPT_FILENAME'] = $purgebridge_root . $purgebridge_file;
		chdir( dirname( $purgebridge_root . $purgebridge_file ) );
		require $purgebridge_root . $purgebridge_file;
		return true;
	}
	$purgebridge_types = array(
		'css'   => 'text/css',
		'js'    => 'application/javascript',
		'svg'   => 'image/svg+xml',
		'png'   => 'image/png',
		'gif'   => 'image/gif',
		'jpg'   => 'image/jpeg',
		'woff'  => 'font/woff',
		'woff2' => 'font/woff2',
		'json'  => 'application/json',
	);
	$purgebridge_ext = strtolower( pathinfo( $purgebridge_file, PATHINFO_EXTENSION ) );
	header( 'Content-Type: ' . ( isset( $purgebridge_types[ $purgebridge_ext ] ) ? $purgebridge_types[ $purgebridge_ext ] : 'application/octet-stream' ) );
	readfile( $purgebridge_root . $purgebridge_file );
	return true;
}
return require __DIR__ . '/router.php';
