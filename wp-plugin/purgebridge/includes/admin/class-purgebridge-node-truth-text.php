<?php
/**
 * The relay's node truth in sentences: after a purge or a test, on the
 * settings page, in Site Health, the notices and WP-CLI, the same words.
 *
 * "Accepted" is never said alone: the sentence says how many nodes purged
 * and, for each node that did not, why and what happens next ("node X is
 * down since 10:42; 3 purges wait for it and are sent when it returns").
 *
 * @package Purgebridge
 */

defined( 'ABSPATH' ) || exit;

/**
 * Sentences for Purgebridge_Node_Truth answers.
 */
final class Purgebridge_Node_Truth_Text {

	/**
	 * Level and text of an answer: array{level:string, text:string, lines:string[]}.
	 *
	 * level: 'success' (every node purged), 'warning' (a node down, waiting
	 * or not contacted yet), 'error' (refused or given-up purges, the worker
	 * stopped, or the relay could not be asked). lines: the headline first,
	 * then one sentence per node that needs one.
	 *
	 * @param array $answer Purgebridge_Node_Truth::get().
	 * @return array
	 */
	public static function summary( array $answer ) {
		if ( ! $answer['ok'] ) {
			return self::result( 'error', array( self::unasked( $answer ) ) );
		}
		$nodes  = Purgebridge_Node_Truth::nodes( $answer );
		$total  = count( $nodes );
		$purged = Purgebridge_Node_Truth::count( $answer, 'delivered' );
		if ( $total > 0 && Purgebridge_Node_Truth::count( $answer, 'unknown' ) === $total && ! empty( $answer['data']['worker'] ) ) {
			// A relay that has purged nothing since it started (a test event purges nothing): not a fault.
			return self::result(
				'success',
				array(
					sprintf(
						/* translators: %d: number of Varnish nodes */
						_n( 'The relay serves %d Varnish node and has not had to purge anything on it since it started.', 'The relay serves %d Varnish nodes and has not had to purge anything on them since it started.', $total, 'purgebridge' ),
						$total
					),
				)
			);
		}
		$lines = array(
			sprintf(
				/* translators: 1: nodes that purged everything of this site, 2: all nodes */
				_n( '%1$d of %2$d Varnish node purged.', '%1$d of %2$d Varnish nodes purged.', $total, 'purgebridge' ),
				$purged,
				$total
			),
		);
		$level = 'success';
		if ( empty( $answer['data']['worker'] ) ) {
			$lines[] = __( 'The relay\'s purge worker is not running: nothing is being purged.', 'purgebridge' );
			$level   = 'error';
		}
		foreach ( $nodes as $node ) {
			$sentence = self::node( $node );
			if ( '' === $sentence ) {
				continue;
			}
			$lines[] = $sentence;
			$worse   = in_array( $node['state'], array( 'refused', 'dead_lettered' ), true ) ? 'error' : ( in_array( $node['state'], array( 'delivered', 'unknown' ), true ) ? 'success' : 'warning' );
			$level   = self::worse( $level, $worse );
		}
		return self::result( $level, $lines );
	}

	/**
	 * One node's sentence, '' when all is well with it.
	 *
	 * @param array $node Cleaned node entry.
	 * @return string
	 */
	public static function node( array $node ) {
		$name  = $node['node'];
		$since = $node['down_since'] ? wp_date( (string) get_option( 'time_format', 'H:i' ), $node['down_since'] ) : __( 'a moment ago', 'purgebridge' );
		switch ( $node['state'] ) {
			case 'waiting':
				return sprintf(
					/* translators: 1: node host:port, 2: time it went down, 3: purges waiting */
					_n( 'Node %1$s is down since %2$s; %3$d purge waits for it and is sent when it returns.', 'Node %1$s is down since %2$s; %3$d purges wait for it and are sent when it returns.', $node['pending'], 'purgebridge' ),
					$name,
					$since,
					$node['pending']
				);
			case 'down':
				/* translators: 1: node host:port, 2: time it went down */
				return sprintf( __( 'Node %1$s is down since %2$s; the next purges will wait for it.', 'purgebridge' ), $name, $since );
			case 'refused':
				return sprintf(
					/* translators: 1: node host:port, 2: purges refused, 3: the node's answer */
					_n( 'Node %1$s refused %2$d purge (%3$s): its Varnish acl does not let the relay in.', 'Node %1$s refused %2$d purges (%3$s): its Varnish acl does not let the relay in.', $node['dead'], 'purgebridge' ),
					$name,
					$node['dead'],
					$node['reason']
				);
			case 'dead_lettered':
				return sprintf(
					/* translators: 1: node host:port, 2: purges given up, 3: why */
					_n( 'Node %1$s: %2$d purge was given up (%3$s); the relay\'s operator can send it again with "purgebridge queue retry".', 'Node %1$s: %2$d purges were given up (%3$s); the relay\'s operator can send them again with "purgebridge queue retry".', $node['dead'], 'purgebridge' ),
					$name,
					$node['dead'],
					$node['reason']
				);
			case 'sending':
				/* translators: %s: node host:port */
				return sprintf( __( 'Node %s is still being purged.', 'purgebridge' ), $name );
			case 'unknown':
				/* translators: %s: node host:port */
				return sprintf( __( 'Node %s has not been sent anything since the relay started.', 'purgebridge' ), $name );
		}
		if ( false === $node['keys'] ) {
			/* translators: %s: node host:port */
			return sprintf( __( 'Node %s has no key purges: its pages are purged by URL only.', 'purgebridge' ), $name );
		}
		return '';
	}

	/**
	 * Why the relay could not be asked.
	 *
	 * @param array $answer Failed answer.
	 * @return string
	 */
	private static function unasked( array $answer ) {
		if ( 0 === $answer['status'] ) {
			/* translators: %s: why the connection failed */
			return sprintf( __( 'Could not ask the relay what the Varnish nodes did: %s', 'purgebridge' ), rtrim( '' !== $answer['error'] ? $answer['error'] : __( 'no answer', 'purgebridge' ), '.' ) . '.' );
		}
		if ( 401 === $answer['status'] ) {
			return __( 'The relay did not accept this site\'s signature, so it does not say what the Varnish nodes did.', 'purgebridge' );
		}
		return sprintf(
			/* translators: 1: HTTP status, 2: the relay's error text */
			__( 'The relay answered %1$d when asked what the Varnish nodes did. %2$s', 'purgebridge' ),
			$answer['status'],
			$answer['error']
		);
	}

	/**
	 * The worse of two levels.
	 *
	 * @param string $a Level.
	 * @param string $b Level.
	 * @return string
	 */
	private static function worse( $a, $b ) {
		$order = array( 'success', 'warning', 'error' );
		return array_search( $a, $order, true ) >= array_search( $b, $order, true ) ? $a : $b;
	}

	/**
	 * Result array.
	 *
	 * @param string   $level Level.
	 * @param string[] $lines Sentences.
	 * @return array
	 */
	private static function result( $level, array $lines ) {
		return array(
			'level' => $level,
			'text'  => implode( ' ', $lines ),
			'lines' => $lines,
		);
	}
}
