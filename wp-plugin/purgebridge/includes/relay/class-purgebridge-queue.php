<?php
/**
 * Durable retry queue in a custom table.
 *
 * A batch the relay did not accept with 202 is stored here and re-sent by the
 * next retry run (Purgebridge_Dispatcher lists what starts one). There is no
 * per-batch backoff: while the relay is unreachable one probe per run decides
 * for the whole queue, and once it answers every pending row goes out, oldest
 * first, merged (Purgebridge_Dispatcher::drain()). Batches refused for good
 * (401, 400, 403) are kept as "dead" so an administrator sees them and can
 * send them again after fixing the secret, instead of being retried forever.
 * The table is bounded: when full, new batches are not stored, and one "purge
 * all" batch is kept instead so nothing stale survives the overflow.
 *
 * The autoloaded option purgebridge_queue_waiting says whether pending rows
 * may exist, so a save on a healthy site learns "nothing waits" without a
 * query.
 *
 * @package Purgebridge
 */

defined( 'ABSPATH' ) || exit;

/**
 * Retry queue.
 */
final class Purgebridge_Queue {

	const DB_VERSION = '1';
	const PENDING    = 'pending';
	const DEAD       = 'dead';

	/**
	 * Table name with the site's prefix.
	 *
	 * @return string
	 */
	public static function table() {
		global $wpdb;
		return $wpdb->prefix . 'purgebridge_queue';
	}

	/**
	 * Creates or upgrades the table (activation).
	 */
	public static function install() {
		global $wpdb;
		require_once ABSPATH . 'wp-admin/includes/upgrade.php';
		$table   = self::table();
		$charset = $wpdb->get_charset_collate();
		dbDelta(
			"CREATE TABLE {$table} (
  id bigint(20) unsigned NOT NULL AUTO_INCREMENT,
  created_at int(10) unsigned NOT NULL,
  next_attempt int(10) unsigned NOT NULL,
  attempts smallint(5) unsigned NOT NULL DEFAULT 0,
  state varchar(10) NOT NULL DEFAULT 'pending',
  kind varchar(20) NOT NULL DEFAULT 'batch',
  changes int(10) unsigned NOT NULL DEFAULT 0,
  last_status smallint(5) unsigned NOT NULL DEFAULT 0,
  last_error varchar(255) NOT NULL DEFAULT '',
  body longtext NOT NULL,
  PRIMARY KEY  (id),
  KEY due (state,next_attempt)
) {$charset};"
		);
		update_option( 'purgebridge_db_version', self::DB_VERSION );
	}

	/**
	 * Drops the table (uninstall).
	 */
	public static function uninstall() {
		global $wpdb;
		$wpdb->query( 'DROP TABLE IF EXISTS ' . self::table() );
	}

	/**
	 * Stores a batch.
	 *
	 * @param string $body    Encoded batch.
	 * @param array  $result  Last result (status, message).
	 * @param bool   $dead    True for a permanent refusal.
	 * @param bool   $tried   False when the batch was queued without a send (relay marked down).
	 * @return bool False when the queue was full and the batch was replaced by a purge-all.
	 */
	public static function add( $body, array $result, $dead = false, $tried = true ) {
		global $wpdb;
		$now = time();
		if ( self::count( self::PENDING ) + self::count( self::DEAD ) >= Purgebridge_Settings::queue_max() ) {
			self::overflow( $result );
			return false;
		}
		$decoded = json_decode( $body, true );
		$wpdb->insert(
			self::table(),
			array(
				'created_at'   => $now,
				'next_attempt' => $now,
				'attempts'     => $tried ? 1 : 0,
				'state'        => $dead ? self::DEAD : self::PENDING,
				'kind'         => 'batch',
				'changes'      => isset( $decoded['changes'] ) ? count( $decoded['changes'] ) : 0,
				'last_status'  => (int) $result['status'],
				'last_error'   => substr( (string) $result['message'], 0, 255 ),
				'body'         => $body,
			),
			array( '%d', '%d', '%d', '%s', '%s', '%d', '%d', '%s', '%s' )
		);
		if ( ! $dead ) {
			self::mark_waiting( true );
		}
		return true;
	}

	/**
	 * The queue is full: remember that, and make sure one purge-all batch is
	 * pending (it may go one row over the bound, never more).
	 *
	 * @param array $result Last result.
	 */
	private static function overflow( array $result ) {
		global $wpdb;
		$overflow            = get_option( 'purgebridge_queue_overflow', array() );
		$overflow            = is_array( $overflow ) ? $overflow : array();
		$overflow['since']   = isset( $overflow['since'] ) ? $overflow['since'] : time();
		$overflow['dropped'] = ( isset( $overflow['dropped'] ) ? (int) $overflow['dropped'] : 0 ) + 1;
		update_option( 'purgebridge_queue_overflow', $overflow, false );
		$table  = self::table();
		$exists = (int) $wpdb->get_var( $wpdb->prepare( "SELECT COUNT(*) FROM {$table} WHERE kind = %s", 'purge_all' ) ); // Pending or refused: one purge-all row at most, so a relay that refuses for good cannot grow the table
		if ( $exists ) {
			return;
		}
		$now = time();
		$wpdb->insert(
			$table,
			array(
				'created_at'   => $now,
				'next_attempt' => $now,
				'attempts'     => 0,
				'state'        => self::PENDING,
				'kind'         => 'purge_all',
				'changes'      => 1,
				'last_status'  => (int) $result['status'],
				'last_error'   => 'queue full',
				'body'         => Purgebridge_Event_Builder::encode( home_url( '/' ), array( Purgebridge_Event_Builder::purge_all( 'queue_overflow' ) ), $now ),
			),
			array( '%d', '%d', '%d', '%s', '%s', '%d', '%d', '%s', '%s' )
		);
		self::mark_waiting( true );
	}

	/**
	 * Number of rows in a state.
	 *
	 * @param string $state pending or dead.
	 * @return int
	 */
	public static function count( $state ) {
		global $wpdb;
		$table = self::table();
		return (int) $wpdb->get_var( $wpdb->prepare( "SELECT COUNT(*) FROM {$table} WHERE state = %s", $state ) );
	}

	/**
	 * Pending rows, oldest first.
	 *
	 * @param int $limit Most rows.
	 * @return array<int,object> Rows with id, attempts, kind, changes, created_at, body.
	 */
	public static function pending( $limit ) {
		global $wpdb;
		$table = self::table();
		return (array) $wpdb->get_results( $wpdb->prepare( "SELECT id, attempts, kind, changes, created_at, body FROM {$table} WHERE state = %s ORDER BY id LIMIT %d", self::PENDING, (int) $limit ) );
	}

	/**
	 * Removes delivered rows.
	 *
	 * @param int[] $ids Row ids.
	 */
	public static function delete( array $ids ) {
		global $wpdb;
		if ( ! $ids ) {
			return;
		}
		$table = self::table();
		$wpdb->query( "DELETE FROM {$table} WHERE id IN (" . implode( ',', array_map( 'intval', $ids ) ) . ')' ); // Integers only.
	}

	/**
	 * Records another failed attempt of rows sent together.
	 *
	 * @param int[] $ids    Row ids.
	 * @param array $result Result of the attempt.
	 * @param bool  $dead   True for a permanent refusal.
	 */
	public static function failed( array $ids, array $result, $dead ) {
		global $wpdb;
		if ( ! $ids ) {
			return;
		}
		$table = self::table();
		$wpdb->query( // Ids are integers.
			$wpdb->prepare(
				"UPDATE {$table} SET attempts = attempts + 1, next_attempt = %d, state = %s, last_status = %d, last_error = %s WHERE id IN (" . implode( ',', array_map( 'intval', $ids ) ) . ')',
				time(),
				$dead ? self::DEAD : self::PENDING,
				(int) $result['status'],
				substr( (string) $result['message'], 0, 255 )
			)
		);
	}

	/**
	 * Counts for Purgebridge_Recovery::state(): pending rows, their changes,
	 * dead rows, and when the oldest pending row was queued. One query.
	 *
	 * @return array{pending:int,changes:int,dead:int,oldest:int}
	 */
	public static function summary() {
		global $wpdb;
		$table = self::table();
		$row   = $wpdb->get_row( $wpdb->prepare( "SELECT SUM(state = %s) AS pending, SUM(IF(state = %s, changes, 0)) AS changes, SUM(state = %s) AS dead, MIN(IF(state = %s, created_at, NULL)) AS oldest FROM {$table}", self::PENDING, self::PENDING, self::DEAD, self::PENDING ) );
		return array(
			'pending' => $row ? (int) $row->pending : 0,
			'changes' => $row ? (int) $row->changes : 0,
			'dead'    => $row ? (int) $row->dead : 0,
			'oldest'  => $row ? (int) $row->oldest : 0,
		);
	}

	/**
	 * Whether pending rows may wait (no query: an autoloaded option).
	 *
	 * @return bool
	 */
	public static function waiting() {
		return (bool) get_option( 'purgebridge_queue_waiting', false );
	}

	/**
	 * Sets the "pending rows may wait" flag; writes only when it changes.
	 *
	 * @param bool $waiting Whether pending rows exist.
	 */
	public static function mark_waiting( $waiting ) {
		if ( self::waiting() !== (bool) $waiting ) {
			update_option( 'purgebridge_queue_waiting', $waiting ? 1 : 0, true );
		}
	}

	/**
	 * Takes the retry-run lock: one run sends at a time, so two runs never
	 * send the same rows. The lock is an option row inserted with INSERT
	 * IGNORE (atomic in the database, unlike add_option()) holding its expiry;
	 * a run that died leaves a lock that others take over once it expired.
	 *
	 * @param int $ttl Seconds the lock is valid.
	 * @return string|null Token for unlock(), null when another run holds it.
	 */
	public static function lock( $ttl ) {
		global $wpdb;
		$now     = time();
		$token   = ( $now + (int) $ttl ) . ':' . wp_generate_password( 12, false );
		$options = $wpdb->options;
		$taken   = $wpdb->query( $wpdb->prepare( "INSERT IGNORE INTO {$options} (option_name, option_value, autoload) VALUES (%s, %s, 'no')", 'purgebridge_drain_lock', $token ) );
		if ( ! $taken ) {
			$held = (string) $wpdb->get_var( $wpdb->prepare( "SELECT option_value FROM {$options} WHERE option_name = %s", 'purgebridge_drain_lock' ) );
			if ( (int) $held >= $now ) {
				return null;
			}
			$taken = $wpdb->query( $wpdb->prepare( "UPDATE {$options} SET option_value = %s WHERE option_name = %s AND option_value = %s", $token, 'purgebridge_drain_lock', $held ) );
			if ( ! $taken ) {
				return null;
			}
		}
		return $token;
	}

	/**
	 * Releases the lock taken with lock(), if it is still ours.
	 *
	 * @param string $token From lock().
	 */
	public static function unlock( $token ) {
		global $wpdb;
		$wpdb->query( $wpdb->prepare( "DELETE FROM {$wpdb->options} WHERE option_name = %s AND option_value = %s", 'purgebridge_drain_lock', $token ) );
	}

	/**
	 * Moves dead rows back to pending, due now (after fixing the secret).
	 *
	 * @return int Rows revived.
	 */
	public static function revive() {
		global $wpdb;
		$table   = self::table();
		$revived = (int) $wpdb->query( $wpdb->prepare( "UPDATE {$table} SET state = %s, next_attempt = %d WHERE state = %s", self::PENDING, time(), self::DEAD ) );
		if ( $revived ) {
			self::mark_waiting( true );
		}
		return $revived;
	}

	/**
	 * Most recent error stored on a row, for the settings page.
	 *
	 * @return object|null
	 */
	public static function latest_error() {
		global $wpdb;
		$table = self::table();
		return $wpdb->get_row( "SELECT state, attempts, last_status, last_error, created_at, next_attempt FROM {$table} ORDER BY id DESC LIMIT 1" );
	}

	/**
	 * Age in seconds of the oldest pending row, 0 when none.
	 *
	 * @return int
	 */
	public static function oldest_age() {
		global $wpdb;
		$table  = self::table();
		$oldest = $wpdb->get_var( $wpdb->prepare( "SELECT MIN(created_at) FROM {$table} WHERE state = %s", self::PENDING ) );
		return $oldest ? max( 0, time() - (int) $oldest ) : 0;
	}

	/**
	 * Asks WP-Cron for a retry run at $when, moving an already scheduled one
	 * earlier if needed (WordPress refuses a second identical single event
	 * within ten minutes, so the later one is unscheduled first).
	 *
	 * @param int $when Unix seconds.
	 */
	public static function schedule_at( $when ) {
		$next = wp_next_scheduled( 'purgebridge_drain_soon' );
		if ( $next && $next <= $when ) {
			return;
		}
		if ( $next ) {
			wp_unschedule_event( $next, 'purgebridge_drain_soon' );
		}
		wp_schedule_single_event( (int) $when, 'purgebridge_drain_soon' );
	}
}
