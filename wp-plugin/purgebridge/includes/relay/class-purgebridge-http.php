<?php
/**
 * A minimal HTTP/1.1 POST over a plain TCP socket, with a connect timeout and
 * one deadline for the whole exchange.
 *
 * Why not the WordPress HTTP API: for one small POST to a relay on the same
 * host or LAN, the first Requests + cURL call of a PHP request took 3.3 ms
 * against 1.9 ms for this class (local relay, OPcache on; docs/wordpress.md),
 * paid inside the editor's save request when the server has no
 * fastcgi_finish_request(). This class opens one connection, writes the
 * request in one go, reads the status line, the headers and a
 * Content-Length body (capped), and closes. It speaks plain http:// only: TLS,
 * proxies and redirects are left to the WordPress HTTP API (see
 * Purgebridge_Client::direct()).
 *
 * No WordPress calls except WP_Error, so the unit suite tests it against real
 * sockets without a WordPress install.
 *
 * @package Purgebridge
 */

defined( 'ABSPATH' ) || exit;

/**
 * Socket HTTP client for plain-http relays.
 */
final class Purgebridge_Http {

	/** Most response bytes kept (status line, headers and body). */
	const MAX_RESPONSE = 65536;

	/**
	 * POSTs a body and returns the answer.
	 *
	 * The deadline covers connect, write and read together, so a relay that
	 * accepts connections and never answers costs at most $timeout seconds.
	 * A status line that arrived before the deadline counts even if the body
	 * did not: a 202 means the relay stored the batch.
	 *
	 * @param string $url             http://host[:port]/path.
	 * @param array  $headers         Name => value (Host, Content-Length and Connection are set here).
	 * @param string $body            Request body.
	 * @param float  $connect_timeout Seconds to wait for the TCP connection.
	 * @param float  $timeout         Seconds for the whole exchange.
	 * @return array{status:int,body:string}|WP_Error
	 */
	public static function post( $url, array $headers, $body, $connect_timeout, $timeout ) {
		$started = microtime( true );
		$target  = self::target( $url );
		if ( null === $target ) {
			return new WP_Error( 'purgebridge_http_url', 'Not a plain http:// URL: ' . $url );
		}
		$timeout         = max( 0.001, (float) $timeout );
		$connect_timeout = min( max( 0.001, (float) $connect_timeout ), $timeout );
		$deadline        = $started + $timeout;

		$errno  = 0;
		$errstr = '';
		$socket = @stream_socket_client( $target['remote'], $errno, $errstr, $connect_timeout ); // phpcs:ignore Generic.PHP.NoSilencedErrors.Forbidden -- the error is returned as a WP_Error.
		if ( ! $socket ) {
			return new WP_Error( 'http_request_failed', sprintf( 'Connection to %s failed: %s (%d)', $target['authority'], '' !== $errstr ? $errstr : 'timed out', $errno ) );
		}
		stream_set_blocking( $socket, false );

		$request = 'POST ' . $target['path'] . " HTTP/1.1\r\nHost: " . $target['authority'] . "\r\n";
		foreach ( $headers as $name => $value ) {
			if ( in_array( strtolower( $name ), array( 'host', 'content-length', 'connection' ), true ) ) {
				continue;
			}
			$request .= str_replace( array( "\r", "\n", ':' ), '', $name ) . ': ' . str_replace( array( "\r", "\n" ), ' ', (string) $value ) . "\r\n";
		}
		$request .= 'Content-Length: ' . strlen( $body ) . "\r\nConnection: close\r\n\r\n" . $body;

		$error = self::write_all( $socket, $request, $deadline );
		if ( null !== $error ) {
			fclose( $socket );
			return new WP_Error( 'http_request_failed', $error . ' (' . $target['authority'] . ')' );
		}
		$response = self::read_response( $socket, $deadline );
		fclose( $socket );
		if ( null === $response['status'] ) {
			$waited = microtime( true ) - $started;
			return new WP_Error( 'http_request_failed', sprintf( '%s after %d ms (%s)', $response['error'], (int) round( $waited * 1000 ), $target['authority'] ) );
		}
		return array(
			'status' => $response['status'],
			'body'   => $response['body'],
		);
	}

	/**
	 * Socket address, Host header and request target of an http:// URL.
	 *
	 * @param string $url URL.
	 * @return array{remote:string,authority:string,path:string}|null Null unless plain http with a host.
	 */
	public static function target( $url ) {
		$parts = parse_url( (string) $url ); // No WordPress needed here.
		if ( ! is_array( $parts ) || ! isset( $parts['scheme'], $parts['host'] ) || 'http' !== strtolower( $parts['scheme'] ) || '' === $parts['host'] ) {
			return null;
		}
		$port      = isset( $parts['port'] ) ? (int) $parts['port'] : 80;
		$authority = $parts['host'] . ( isset( $parts['port'] ) ? ':' . $port : '' );
		$path      = isset( $parts['path'] ) && '' !== $parts['path'] ? $parts['path'] : '/';
		if ( isset( $parts['query'] ) ) {
			$path .= '?' . $parts['query'];
		}
		return array(
			'remote'    => 'tcp://' . $parts['host'] . ':' . $port,
			'authority' => $authority,
			'path'      => $path,
		);
	}

	/**
	 * Writes everything before the deadline.
	 *
	 * @param resource $socket   Non-blocking stream.
	 * @param string   $data     Bytes.
	 * @param float    $deadline microtime(true) limit.
	 * @return string|null Error text, null when written.
	 */
	private static function write_all( $socket, $data, $deadline ) {
		$offset = 0;
		$length = strlen( $data );
		while ( $offset < $length ) {
			$written = @fwrite( $socket, 0 === $offset && $length <= 65536 ? $data : substr( $data, $offset, 65536 ) ); // phpcs:ignore Generic.PHP.NoSilencedErrors.Forbidden
			if ( false === $written ) {
				return 'Connection closed while sending';
			}
			$offset += $written;
			if ( $offset >= $length ) {
				return null;
			}
			if ( ! self::wait( $socket, false, $deadline ) ) {
				return 'Timed out while sending';
			}
		}
		return null;
	}

	/**
	 * Reads the status line, headers and (up to MAX_RESPONSE) the body.
	 *
	 * @param resource $socket   Non-blocking stream.
	 * @param float    $deadline microtime(true) limit.
	 * @return array{status:int|null,body:string,error:string}
	 */
	private static function read_response( $socket, $deadline ) {
		$buffer = '';
		$status = null;
		$end    = null;
		$want   = null;
		while ( true ) {
			$chunk = fread( $socket, 8192 );
			if ( false === $chunk ) {
				break;
			}
			if ( '' !== $chunk ) {
				$buffer .= $chunk;
				if ( null === $end && false !== ( $pos = strpos( $buffer, "\r\n\r\n" ) ) ) { // phpcs:ignore Generic.CodeAnalysis.AssignmentInCondition.Found,Squiz.PHP.DisallowMultipleAssignments.FoundInControlStructure
					$end    = $pos + 4;
					$status = self::status( $buffer );
					if ( preg_match( '/\r\ncontent-length:\s*(\d+)/i', substr( $buffer, 0, $pos ), $match ) ) {
						$want = $end + (int) $match[1];
					}
				}
				if ( null !== $want && strlen( $buffer ) >= $want ) {
					break;
				}
				if ( strlen( $buffer ) >= self::MAX_RESPONSE ) {
					break;
				}
				continue;
			}
			if ( feof( $socket ) ) {
				break;
			}
			if ( ! self::wait( $socket, true, $deadline ) ) {
				if ( null === $status ) {
					$status = self::status( $buffer );
				}
				return array(
					'status' => $status,
					'body'   => null === $end ? '' : (string) substr( $buffer, $end ),
					'error'  => 'No answer',
				);
			}
		}
		if ( null === $status ) {
			$status = self::status( $buffer );
		}
		return array(
			'status' => $status,
			'body'   => null === $end ? '' : (string) substr( $buffer, $end, self::MAX_RESPONSE ),
			'error'  => '' === $buffer ? 'Connection closed without an answer' : 'Malformed answer',
		);
	}

	/**
	 * The status code of a buffer that starts with a status line.
	 *
	 * @param string $buffer Bytes read so far.
	 * @return int|null
	 */
	private static function status( $buffer ) {
		if ( preg_match( '#^HTTP/1\.[01] (\d{3})[ \r]#', $buffer, $match ) ) {
			return (int) $match[1];
		}
		return null;
	}

	/**
	 * Waits until the socket is readable (or writable), or the deadline.
	 *
	 * @param resource $socket   Stream.
	 * @param bool     $read     Wait for reading, else writing.
	 * @param float    $deadline microtime(true) limit.
	 * @return bool False at the deadline.
	 */
	private static function wait( $socket, $read, $deadline ) {
		$left = $deadline - microtime( true );
		if ( $left <= 0 ) {
			return false;
		}
		$reads  = $read ? array( $socket ) : null;
		$writes = $read ? null : array( $socket );
		$except = null;
		$secs   = (int) floor( $left );
		$ready  = @stream_select( $reads, $writes, $except, $secs, (int) ( ( $left - $secs ) * 1000000 ) ); // phpcs:ignore Generic.PHP.NoSilencedErrors.Forbidden -- EINTR is retried by the caller's loop.
		if ( false === $ready ) {
			return microtime( true ) < $deadline;
		}
		return $ready > 0 || microtime( true ) < $deadline;
	}
}
