<?php
/**
 * `wp purgebridge`: the operator's actions from a shell.
 *
 * A thin adapter: every subcommand calls the Purgebridge_Operations function
 * the settings page uses and only turns its result into WP-CLI output (and
 * exit status: WP_CLI::error() exits 1). Registered only when WP-CLI runs.
 *
 * @package Purgebridge
 */

defined( 'ABSPATH' ) || exit;

/**
 * Purge pages, check the relay and manage the retry queue.
 */
class Purgebridge_CLI {

	/**
	 * Adds the command when running under WP-CLI.
	 *
	 * @return bool Whether it was registered.
	 */
	public static function register() {
		if ( ! defined( 'WP_CLI' ) || ! WP_CLI || ! class_exists( 'WP_CLI' ) ) {
			return false;
		}
		WP_CLI::add_command( 'purgebridge', __CLASS__ );
		return true;
	}

	/**
	 * Purges pages on every Varnish node.
	 *
	 * ## OPTIONS
	 *
	 * [<url>...]
	 * : URLs of this site (or paths, relative to its home URL).
	 *
	 * [--post=<id>]
	 * : The page of this post.
	 *
	 * [--related]
	 * : With --post: also what lists the post (front page, archives, feeds), as when it is saved.
	 *
	 * [--all]
	 * : Every page of the site.
	 *
	 * [--yes]
	 * : Do not ask before purging the whole site.
	 *
	 * ## EXAMPLES
	 *
	 *     wp purgebridge purge https://example.test/about/ /contact/
	 *     wp purgebridge purge --post=42
	 *     wp purgebridge purge --all --yes
	 *
	 * @param array $args  URLs.
	 * @param array $assoc Options.
	 */
	public function purge( $args, $assoc ) {
		if ( ! empty( $assoc['all'] ) ) {
			WP_CLI::confirm( sprintf( 'Purge every page of %s on every Varnish node?', home_url( '/' ) ), $assoc );
			$result = Purgebridge_Operations::purge_all( 'wp-cli' );
		} elseif ( isset( $assoc['post'] ) ) {
			$result = Purgebridge_Operations::purge_post( absint( $assoc['post'] ), ! empty( $assoc['related'] ) );
		} elseif ( $args ) {
			$result = Purgebridge_Operations::purge_urls( $args, array(), 'wp-cli' );
		} else {
			WP_CLI::error( 'Give URLs, --post=<id> or --all.' );
			return;
		}
		self::report( $result );
	}

	/**
	 * Shows whether the relay answers now, the last full check, the last send,
	 * the retry queue and refusals.
	 *
	 * ## OPTIONS
	 *
	 * [--format=<format>]
	 * : text or json.
	 * ---
	 * default: text
	 * ---
	 *
	 * @param array $args  Unused.
	 * @param array $assoc Options.
	 */
	public function status( $args, $assoc ) {
		$status          = Purgebridge_Operations::status();
		$status['relay'] = Purgebridge_Operations::relay_reachable();
		if ( isset( $assoc['format'] ) && 'json' === $assoc['format'] ) {
			WP_CLI::line( (string) wp_json_encode( $status, JSON_UNESCAPED_SLASHES ) );
			return;
		}
		$queue = $status['queue'];
		WP_CLI::line( 'Relay URL:     ' . ( '' !== $status['relay_url'] ? $status['relay_url'] : '(not set)' ) );
		WP_CLI::line( 'Configuration: ' . ( '' === $status['problem'] ? 'complete' : $status['problem'] ) );
		WP_CLI::line( 'Relay now:     ' . $status['relay']['message'] );
		WP_CLI::line( 'Relay check:   ' . ( $status['last_check'] ? self::ago( $status['last_check']['time'] ) . ': ' . $status['last_check']['message'] : 'never (run: wp purgebridge test)' ) );
		WP_CLI::line( 'Last send:     ' . ( $status['last_delivery'] ? self::ago( $status['last_delivery']['time'] ) . ': ' . Purgebridge_Answer::describe( $status['last_delivery'] ) : 'nothing sent yet' ) );
		WP_CLI::line( sprintf( 'Queue:         %d waiting (oldest %s), %d refused, at most %d kept', $queue['pending'], $queue['pending'] ? $queue['oldest_age'] . ' s old' : '-', $queue['refused'], $status['queue_max'] ) );
		if ( $status['last_refusal'] ) {
			WP_CLI::line(
				'Last refusal:  ' . self::ago( $status['last_refusal']['time'] ) . ': ' . Purgebridge_Answer::describe(
					array(
						'outcome' => Purgebridge_Outcome::PERMANENT,
						'status'  => (int) $status['last_refusal']['status'],
						'message' => (string) $status['last_refusal']['message'],
					)
				)
			);
		}
		if ( $status['overflow'] ) {
			WP_CLI::line( sprintf( 'Queue full:    since %s, %d batches replaced by one purge-all', self::ago( $status['overflow']['since'] ), (int) $status['overflow']['dropped'] ) );
		}
	}

	/**
	 * Lists, retries or empties the retry queue.
	 *
	 * ## OPTIONS
	 *
	 * <action>
	 * : list, retry or flush.
	 * ---
	 * options:
	 *   - list
	 *   - retry
	 *   - flush
	 * ---
	 *
	 * [--refused]
	 * : flush: only the batches the relay refused.
	 *
	 * [--format=<format>]
	 * : list: text or json.
	 * ---
	 * default: text
	 * ---
	 *
	 * [--yes]
	 * : flush: do not ask.
	 *
	 * @param array $args  Action.
	 * @param array $assoc Options.
	 */
	public function queue( $args, $assoc ) {
		$action = isset( $args[0] ) ? $args[0] : 'list';
		if ( 'list' === $action ) {
			$rows = Purgebridge_Operations::queue_list( 1000 );
			if ( isset( $assoc['format'] ) && 'json' === $assoc['format'] ) {
				WP_CLI::line( (string) wp_json_encode( $rows, JSON_UNESCAPED_SLASHES ) );
				return;
			}
			foreach ( $rows as $row ) {
				WP_CLI::line( sprintf( '#%d %s, %d change(s), queued %s, %d attempt(s): %s', $row['id'], $row['state'], $row['changes'], self::ago( $row['created'] ), $row['attempts'], $row['last_answer'] ) );
			}
			WP_CLI::line( sprintf( '%d batch(es) in the retry queue.', count( $rows ) ) );
			return;
		}
		if ( 'retry' === $action ) {
			self::report( Purgebridge_Operations::retry_queue() );
			return;
		}
		if ( 'flush' === $action ) {
			$refused = ! empty( $assoc['refused'] );
			WP_CLI::confirm( $refused ? 'Delete the refused batches? Their pages stay cached until purged otherwise.' : 'Delete every queued batch? Their pages stay cached until purged otherwise.', $assoc );
			WP_CLI::success( sprintf( 'Deleted %d batch(es).', Purgebridge_Operations::flush_queue( $refused ) ) );
			return;
		}
		WP_CLI::error( sprintf( 'Unknown queue action "%s": use list, retry or flush.', $action ) );
	}

	/**
	 * Checks that the relay answers and accepts a signed event (purges nothing).
	 *
	 * @param array $args  Unused.
	 * @param array $assoc Unused.
	 */
	public function test( $args, $assoc ) {
		self::report( Purgebridge_Operations::test_relay() );
	}

	/**
	 * Success or error (exit 1) with the operation's plain-words message.
	 *
	 * @param array $result ok, message.
	 */
	private static function report( array $result ) {
		if ( $result['ok'] ) {
			WP_CLI::success( $result['message'] );
			return;
		}
		WP_CLI::error( $result['message'] );
	}

	/**
	 * "5 mins ago".
	 *
	 * @param int $time Unix seconds.
	 * @return string
	 */
	private static function ago( $time ) {
		return human_time_diff( (int) $time ) . ' ago';
	}
}
