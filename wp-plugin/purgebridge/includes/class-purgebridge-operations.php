<?php
/**
 * What an operator can do and see, as plain functions: purge URLs, a post's
 * page or the whole site, test the relay, read the status, list, retry and
 * flush the retry queue.
 *
 * The settings page, the admin bar, Site Health and `wp purgebridge` are thin
 * layers over these, so each behaviour is written (and tested) once. Every
 * function returns data, never prints; capability checks belong to the caller
 * (WP-CLI runs as the shell user).
 *
 * @package Purgebridge
 */

defined( 'ABSPATH' ) || exit;

/**
 * Operator actions.
 */
final class Purgebridge_Operations {

	/** Most URLs one "Purge URL" request takes (the relay takes 10,000 per change). */
	const MAX_URLS = 500;

	/**
	 * Purges exactly these URLs (and keys) now: one "urls" change, sent
	 * synchronously so the caller can show the relay's answer.
	 *
	 * @param string[] $urls   Absolute URLs on this site, or paths relative to its home URL.
	 * @param string[] $keys   Surrogate keys.
	 * @param string   $reason Who asked (admin_bar, settings, wp-cli).
	 * @return array{ok:bool,message:string,urls:string[],queued:bool}
	 */
	public static function purge_urls( array $urls, array $keys = array(), $reason = 'manual' ) {
		$checked = self::site_urls( $urls );
		if ( $checked['errors'] ) {
			return self::outcome( false, implode( ' ', $checked['errors'] ) );
		}
		$keys = array_values( array_filter( array_map( 'strval', $keys ), 'strlen' ) );
		if ( ! $checked['urls'] && ! $keys ) {
			return self::outcome( false, __( 'Give at least one URL of this site.', 'purgebridge' ) );
		}
		$change         = array(
			'kind'   => 'urls',
			'action' => 'purge',
			'reason' => (string) $reason,
			'urls'   => $checked['urls'],
			'keys'   => $keys,
		);
		$result         = self::send( array( $change ) );
		$result['urls'] = $checked['urls'];
		if ( $result['ok'] && 1 === count( $checked['urls'] ) ) {
			/* translators: 1: the URL, 2: the relay's answer */
			$result['message'] = sprintf( __( 'Purge of %1$s sent. %2$s', 'purgebridge' ), $checked['urls'][0], $result['message'] );
		} elseif ( $result['ok'] ) {
			$result['message'] = sprintf(
				/* translators: 1: number of URLs, 2: the relay's answer */
				_n( 'Purge of %1$d URL sent. %2$s', 'Purge of %1$d URLs sent. %2$s', count( $checked['urls'] ), 'purgebridge' ),
				count( $checked['urls'] ),
				$result['message']
			);
		}
		return $result;
	}

	/**
	 * Purges one post's page. With $related, sends the post as updated
	 * instead, which also purges what lists it (front page, archives, feeds).
	 *
	 * @param int  $post_id Post ID.
	 * @param bool $related Also the pages that list the post.
	 * @return array{ok:bool,message:string,urls:string[],queued:bool}
	 */
	public static function purge_post( $post_id, $related = false ) {
		$post = get_post( (int) $post_id );
		$snap = $post ? Purgebridge_Snapshot::post( $post ) : null;
		if ( ! $snap || empty( $snap['visible'] ) ) {
			/* translators: %d: post ID */
			return self::outcome( false, sprintf( __( 'Post %d is not a public page: nothing to purge.', 'purgebridge' ), (int) $post_id ) );
		}
		if ( ! $related ) {
			return self::purge_urls( array( $snap['url'] ), array(), 'post' );
		}
		$result         = self::send(
			array(
				array(
					'kind'   => 'post',
					'action' => 'update',
					'post'   => Purgebridge_Event_Builder::post( $snap, $snap ),
				),
			)
		);
		$result['urls'] = array( $snap['url'] );
		return $result;
	}

	/**
	 * Purges every page of the site on every node.
	 *
	 * @param string $reason Why (manual, wp-cli).
	 * @return array{ok:bool,message:string,urls:string[],queued:bool}
	 */
	public static function purge_all( $reason = 'manual' ) {
		$result = self::send( array( Purgebridge_Event_Builder::purge_all( $reason ) ) );
		if ( $result['ok'] ) {
			$result['message'] = __( 'Purge of the whole site sent.', 'purgebridge' ) . ' ' . $result['message'];
		}
		return $result;
	}

	/**
	 * "Send test event": the relay's /healthz, then a signed ping that purges
	 * nothing. The outcome is kept (purgebridge_last_check) for the status
	 * table and Site Health.
	 *
	 * @return array{ok:bool,message:string,reachable:bool,signed:bool,time:int}
	 */
	public static function test_relay() {
		if ( ! Purgebridge_Settings::configured() ) {
			$check = array(
				'ok'        => false,
				'reachable' => false,
				'signed'    => false,
				'message'   => self::configuration_problem(),
				'time'      => time(),
			);
		} else {
			$health = Purgebridge_Client::health();
			$signed = null;
			if ( 0 !== (int) $health['status'] ) { // Nothing answered: a signed send would only fail the same way.
				$body   = Purgebridge_Event_Builder::encode( home_url( '/' ), array( Purgebridge_Event_Builder::ping() ), time() );
				$signed = Purgebridge_Client::send( $body, 'background' );
			}
			$check = array(
				'ok'        => Purgebridge_Answer::healthy( $health ) && $signed && Purgebridge_Answer::delivered( $signed ),
				'reachable' => Purgebridge_Answer::healthy( $health ),
				'signed'    => $signed && Purgebridge_Answer::delivered( $signed ),
				'message'   => Purgebridge_Answer::describe_health( $health ) . ( $signed ? ' ' . self::describe_ping( $signed ) : '' ),
				'time'      => time(),
			);
		}
		update_option( 'purgebridge_last_check', $check, false );
		return $check;
	}

	/**
	 * Whether the relay answers its /healthz now (no signed send, nothing stored).
	 *
	 * @return array{reachable:bool,message:string}
	 */
	public static function relay_reachable() {
		if ( '' !== self::configuration_problem() ) {
			return array(
				'reachable' => false,
				'message'   => self::configuration_problem(),
			);
		}
		$health = Purgebridge_Client::health();
		return array(
			'reachable' => Purgebridge_Answer::healthy( $health ),
			'message'   => Purgebridge_Answer::describe_health( $health ),
		);
	}

	/**
	 * The ping's answer, in words.
	 *
	 * @param array $signed Result of the signed send.
	 * @return string
	 */
	private static function describe_ping( array $signed ) {
		if ( Purgebridge_Answer::delivered( $signed ) ) {
			return __( 'A signed test event was accepted: the secret matches and the relay serves this site.', 'purgebridge' );
		}
		return __( 'The signed test event was not accepted:', 'purgebridge' ) . ' ' . Purgebridge_Answer::describe( $signed );
	}

	/**
	 * Why nothing can be sent, '' when the configuration is complete.
	 *
	 * @return string
	 */
	public static function configuration_problem() {
		$url     = Purgebridge_Settings::configured_relay_url();
		$problem = Purgebridge_Settings::check_relay_url( $url );
		if ( '' !== $problem ) {
			return $problem;
		}
		if ( '' === $url && '' === Purgebridge_Settings::secret() ) {
			return __( 'No relay URL and no secret are set: nothing is sent to the relay, so Varnish keeps serving old pages.', 'purgebridge' );
		}
		if ( '' === $url ) {
			return __( 'No relay URL is set: nothing is sent to the relay.', 'purgebridge' );
		}
		if ( '' === Purgebridge_Settings::secret() ) {
			return __( 'No secret is set: nothing is sent to the relay.', 'purgebridge' );
		}
		return '';
	}

	/**
	 * Everything the status screens show, as data.
	 *
	 * @return array
	 */
	public static function status() {
		$last  = Purgebridge_Relay_State::last_delivery();
		$error = Purgebridge_Relay_State::last_error();
		$check = get_option( 'purgebridge_last_check', array() );
		$full  = get_option( 'purgebridge_queue_overflow', array() );
		return array(
			'configured'    => Purgebridge_Settings::configured(),
			'problem'       => self::configuration_problem(),
			'relay_url'     => Purgebridge_Settings::configured_relay_url(),
			'last_check'    => is_array( $check ) && isset( $check['time'] ) ? $check : null,
			'last_delivery' => isset( $last['time'] ) ? $last : null,
			'last_refusal'  => isset( $error['time'] ) ? $error : null,
			'down_until'    => Purgebridge_Relay_State::down_until(),
			'failures'      => Purgebridge_Relay_State::failures(),
			'queue'         => self::queue_state(),
			'queue_max'     => Purgebridge_Settings::queue_max(),
			'overflow'      => is_array( $full ) && isset( $full['since'] ) ? $full : null,
		);
	}

	/**
	 * Retry-queue state: the one place that reads it, so it follows the queue
	 * class when that changes.
	 *
	 * @return array{pending:int,refused:int,oldest_age:int}
	 */
	public static function queue_state() {
		$state = Purgebridge_Recovery::state();
		return array(
			'pending'    => (int) $state['pending'],
			'refused'    => (int) $state['dead'],
			'oldest_age' => (int) $state['oldest_age'],
		);
	}

	/**
	 * Queued batches, oldest first, without their bodies.
	 *
	 * @param int $limit Most rows.
	 * @return array<int,array{id:int,state:string,created:int,next_try:int,attempts:int,changes:int,last_answer:string}>
	 */
	public static function queue_list( $limit = 100 ) {
		global $wpdb;
		$table = Purgebridge_Queue::table();
		$rows  = (array) $wpdb->get_results( $wpdb->prepare( "SELECT id, state, created_at, next_attempt, attempts, changes, last_status, last_error FROM {$table} ORDER BY id LIMIT %d", (int) $limit ) );
		$list  = array();
		foreach ( $rows as $row ) {
			$list[] = array(
				'id'          => (int) $row->id,
				'state'       => Purgebridge_Queue::DEAD === $row->state ? 'refused' : 'waiting',
				'created'     => (int) $row->created_at,
				'next_try'    => (int) $row->next_attempt,
				'attempts'    => (int) $row->attempts,
				'changes'     => (int) $row->changes,
				'last_answer' => Purgebridge_Answer::describe(
					array(
						'outcome' => Purgebridge_Outcome::classify( (int) $row->last_status ),
						'status'  => (int) $row->last_status,
						'message' => (string) $row->last_error,
					)
				),
			);
		}
		return $list;
	}

	/**
	 * "Retry now": refused batches become due again, and everything due is sent now.
	 *
	 * @return array{ok:bool,message:string,sent:int,failed:int,refused:int,revived:int}
	 */
	public static function retry_queue() {
		Purgebridge_Relay_State::mark_up();
		$revived = Purgebridge_Queue::revive();
		$stats   = Purgebridge_Dispatcher::drain( true );
		$left    = self::queue_state();
		$ok      = 0 === $stats['failed'] && 0 === $stats['dead'];
		return array(
			'ok'      => $ok,
			'message' => sprintf(
				/* translators: 1: batches delivered, 2: batches still waiting, 3: refused */
				_n( 'Delivered %1$d queued batch; %2$d still waiting, %3$d refused by the relay.', 'Delivered %1$d queued batches; %2$d still waiting, %3$d refused by the relay.', $stats['sent'], 'purgebridge' ),
				$stats['sent'],
				$left['pending'],
				$left['refused']
			),
			'sent'    => $stats['sent'],
			'failed'  => $stats['failed'],
			'refused' => $stats['dead'],
			'revived' => $revived,
		);
	}

	/**
	 * Deletes queued batches: all, or only the refused ones. What they would
	 * have purged stays cached until it expires or is purged otherwise, so the
	 * callers ask first.
	 *
	 * @param bool $refused_only Only the batches the relay refused for good.
	 * @return int Rows deleted.
	 */
	public static function flush_queue( $refused_only = false ) {
		global $wpdb;
		$table   = Purgebridge_Queue::table();
		$deleted = $refused_only
			? $wpdb->query( $wpdb->prepare( "DELETE FROM {$table} WHERE state = %s", Purgebridge_Queue::DEAD ) )
			: $wpdb->query( "DELETE FROM {$table}" );
		if ( ! $refused_only ) {
			delete_option( 'purgebridge_queue_overflow' );
		}
		Purgebridge_Relay_State::forget_error();
		return (int) $deleted;
	}

	/**
	 * URLs of this site from what a person typed: absolute URLs on the home
	 * host (under its path), or paths taken relative to the home URL.
	 *
	 * @param string[] $input URLs or paths.
	 * @return array{urls:string[],errors:string[]}
	 */
	public static function site_urls( array $input ) {
		$home   = wp_parse_url( home_url( '/' ) );
		$base   = isset( $home['path'] ) ? trailingslashit( $home['path'] ) : '/';
		$host   = strtolower( $home['host'] ) . ( isset( $home['port'] ) ? ':' . $home['port'] : '' );
		$urls   = array();
		$errors = array();
		foreach ( $input as $raw ) {
			$raw = trim( (string) $raw );
			if ( '' === $raw ) {
				continue;
			}
			if ( '/' === $raw[0] && ( ! isset( $raw[1] ) || '/' !== $raw[1] ) ) {
				$raw = untrailingslashit( home_url() ) . ( 0 === strpos( $raw, $base ) ? substr( $raw, strlen( $base ) - 1 ) : $raw );
			}
			$parts = preg_match( '/[\x00-\x20\x7f]/', $raw ) ? false : wp_parse_url( $raw );
			$ok    = is_array( $parts ) && isset( $parts['scheme'], $parts['host'] ) && in_array( strtolower( $parts['scheme'] ), array( 'http', 'https' ), true );
			$where = $ok ? strtolower( $parts['host'] ) . ( isset( $parts['port'] ) ? ':' . $parts['port'] : '' ) : '';
			$path  = $ok && isset( $parts['path'] ) ? $parts['path'] : '/';
			if ( ! $ok || $where !== $host || 0 !== strpos( trailingslashit( $path ), $base ) || isset( $parts['user'] ) || isset( $parts['fragment'] ) ) {
				/* translators: 1: what was given, 2: this site's home URL */
				$errors[] = sprintf( __( '%1$s is not a URL of this site (%2$s).', 'purgebridge' ), $raw, home_url( '/' ) );
				continue;
			}
			$urls[] = $raw;
		}
		if ( count( $urls ) > self::MAX_URLS ) {
			/* translators: %d: most URLs */
			$errors[] = sprintf( __( 'At most %d URLs at once.', 'purgebridge' ), self::MAX_URLS );
		}
		return array(
			'urls'   => array_values( array_unique( $urls ) ),
			'errors' => $errors,
		);
	}

	/**
	 * Sends changes now (background timeouts); what the relay does not take
	 * waits in the retry queue as any other batch.
	 *
	 * @param array $changes Changes.
	 * @return array{ok:bool,message:string,urls:string[],queued:bool}
	 */
	private static function send( array $changes ) {
		if ( ! Purgebridge_Settings::configured() ) {
			return self::outcome( false, self::configuration_problem() );
		}
		$ok     = true;
		$queued = false;
		$text   = array();
		foreach ( Purgebridge_Event_Builder::bodies( home_url( '/' ), $changes, time() ) as $body ) {
			$result = Purgebridge_Dispatcher::deliver( $body, false, 'background' );
			$ok     = $ok && Purgebridge_Answer::delivered( $result );
			$queued = $queued || ! empty( $result['queued'] );
			$line   = Purgebridge_Answer::describe( $result );
			if ( ! empty( $result['queued'] ) ) {
				$line .= ' ' . ( Purgebridge_Outcome::PERMANENT === $result['outcome']
					? __( 'Kept as refused in the retry queue.', 'purgebridge' )
					: __( 'It waits in the retry queue and is sent again automatically.', 'purgebridge' ) );
			}
			$text[] = $line;
		}
		$outcome           = self::outcome( $ok, implode( ' ', array_unique( $text ) ) );
		$outcome['queued'] = $queued;
		return $outcome;
	}

	/**
	 * A result array.
	 *
	 * @param bool   $ok      Success.
	 * @param string $message Plain words.
	 * @return array{ok:bool,message:string,urls:string[],queued:bool}
	 */
	private static function outcome( $ok, $message ) {
		return array(
			'ok'      => (bool) $ok,
			'message' => (string) $message,
			'urls'    => array(),
			'queued'  => false,
		);
	}
}
