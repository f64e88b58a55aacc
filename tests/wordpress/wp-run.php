<?php
/**
 * Runs a PHP snippet inside the test WordPress and prints its return value as
 * JSON on the last line, after the marker "@@PURGEBRIDGE@@".
 *
 *   php wp-run.php DOCROOT URL SNIPPET_FILE
 *
 * The snippet is the body of a function; `return` sends a value back. The
 * plugin's shutdown handler runs after it, as in a real request, so the
 * snippet's changes are sent to the relay when the process ends.
 */
list( , $purgebridge_docroot, $purgebridge_url, $purgebridge_snippet ) = $argv;
require __DIR__ . '/wp-cli-bootstrap.php';
require $purgebridge_docroot . '/wp-load.php';
require_once ABSPATH . 'wp-admin/includes/admin.php';
$purgebridge_code = file_get_contents( $purgebridge_snippet );
$purgebridge_fn   = eval( 'return function () { ' . $purgebridge_code . ' };' );
$purgebridge_ret  = $purgebridge_fn();
echo "\n@@PURGEBRIDGE@@" . json_encode( $purgebridge_ret, JSON_UNESCAPED_SLASHES ) . "\n";
