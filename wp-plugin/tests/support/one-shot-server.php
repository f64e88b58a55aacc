<?php
/**
 * A one-connection HTTP server for HttpTest, run as a child process:
 *
 *   php one-shot-server.php MODE STATUS BODY
 *
 * Listens on a free loopback port and prints it on the first line; accepts
 * one connection, reads the request (headers and Content-Length body),
 * answers according to MODE, then prints the request it received, base64
 * encoded, on the second line and exits. Modes:
 *
 *   answer         status line, Content-Length, body
 *   no-length      status line and body without Content-Length, then close
 *   stall-body     status line and a Content-Length larger than the body, then
 *                  wait 3 s before closing
 *   close          read the request, close without answering
 */

list( , $mode, $status, $body ) = array_pad( $argv, 4, '' );
$server = stream_socket_server( 'tcp://127.0.0.1:0', $errno, $errstr );
if ( ! $server ) {
	fwrite( STDERR, "listen failed: $errstr\n" );
	exit( 1 );
}
$name = stream_socket_get_name( $server, false );
echo substr( $name, strrpos( $name, ':' ) + 1 ), "\n";
flush();
$conn = stream_socket_accept( $server, 10 );
if ( ! $conn ) {
	fwrite( STDERR, "no connection within 10 s\n" );
	exit( 1 );
}
stream_set_timeout( $conn, 5 );
$request = '';
while ( false === strpos( $request, "\r\n\r\n" ) && ! feof( $conn ) ) {
	$request .= fread( $conn, 8192 );
}
$head = substr( $request, 0, strpos( $request, "\r\n\r\n" ) + 4 );
$want = preg_match( '/\r\ncontent-length:\s*(\d+)/i', $head, $m ) ? strlen( $head ) + (int) $m[1] : strlen( $head );
while ( strlen( $request ) < $want && ! feof( $conn ) ) {
	$request .= fread( $conn, 65536 );
}
$line = "HTTP/1.1 $status Test\r\nContent-Type: application/json\r\n";
switch ( $mode ) {
	case 'answer':
		fwrite( $conn, $line . 'Content-Length: ' . strlen( $body ) . "\r\n\r\n" . $body );
		break;
	case 'no-length':
		fwrite( $conn, $line . "Connection: close\r\n\r\n" . $body );
		break;
	case 'stall-body':
		fwrite( $conn, $line . 'Content-Length: ' . ( strlen( $body ) + 100 ) . "\r\n\r\n" . $body );
		sleep( 3 );
		break;
	case 'close':
		break;
}
fclose( $conn );
echo base64_encode( $request ), "\n";
