<?php
/**
 * Durable retry queue in a custom table.
 *
 * A batch the relay did not accept with 202 is stored here and re-sent by
 * WP-Cron with backoff. Batches refused for good (401, 400, 403) are kept as
 * "dead" so an administrator sees them and can send them again after fixing
 * the secret, instead of being retried forever. The table is bounded: when
 * full, new batches are not stored, and one "purge all" batch is kept instead
 * so nothing stale survives the overflow.
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
		$wpdb->query( 'DROP TABLE IF EXISTS ' . self::table() ); // phpcs:ignore WordPress.DB.PreparedSQL.NotPrepared
	}

	/**
	 * Stores a batch.
	 *
	 * @param string $body    Encoded batch.
	 * @param array  $result  Last result (status, message).
	 * @param bool   $dead    True for a permanent refusal.
	 * @return bool False when the queue was full and the batch was replaced by a purge-all.
	 */
	public static function add( $body, array $result, $dead = false ) {
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
				'next_attempt' => $now + Purgebridge_Policy::backoff( 1, self::jitter() ),
				'attempts'     => 1,
				'state'        => $dead ? self::DEAD : self::PENDING,
				'kind'         => 'batch',
				'changes'      => isset( $decoded['changes'] ) ? count( $decoded['changes'] ) : 0,
				'last_status'  => (int) $result['status'],
				'last_error'   => substr( (string) $result['message'], 0, 255 ),
				'body'         => $body,
			),
			array( '%d', '%d', '%d', '%s', '%s', '%d', '%d', '%s', '%s' )
		);
		self::schedule_soon();
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
		$exists = (int) $wpdb->get_var( $wpdb->prepare( "SELECT COUNT(*) FROM {$table} WHERE kind = %s", 'purge_all' ) ); // phpcs:ignore WordPress.DB.PreparedSQL.InterpolatedNotPrepared -- pending or refused: one purge-all row at most, so a relay that refuses for good cannot grow the table
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
		return (int) $wpdb->get_var( $wpdb->prepare( "SELECT COUNT(*) FROM {$table} WHERE state = %s", $state ) ); // phpcs:ignore WordPress.DB.PreparedSQL.InterpolatedNotPrepared
	}

	/**
	 * Pending rows due for a retry, oldest first.
	 *
	 * @param int  $limit Most rows.
	 * @param bool $force Ignore next_attempt ("Retry now").
	 * @return array<int,object>
	 */
	public static function due( $limit, $force = false ) {
		global $wpdb;
		$table = self::table();
		$until = $force ? PHP_INT_MAX : time();
		return (array) $wpdb->get_results( $wpdb->prepare( "SELECT id, attempts, kind, body FROM {$table} WHERE state = %s AND next_attempt <= %d ORDER BY id LIMIT %d", self::PENDING, $until, (int) $limit ) ); // phpcs:ignore WordPress.DB.PreparedSQL.InterpolatedNotPrepared
	}

	/**
	 * Removes a delivered row.
	 *
	 * @param int $id Row id.
	 */
	public static function delete( $id ) {
		global $wpdb;
		$wpdb->delete( self::table(), array( 'id' => (int) $id ), array( '%d' ) );
	}

	/**
	 * Records another failed attempt and when to try again.
	 *
	 * @param object $row    Row from due().
	 * @param array  $result Result of the attempt.
	 * @param bool   $dead   True for a permanent refusal.
	 */
	public static function failed( $row, array $result, $dead ) {
		global $wpdb;
		$attempts = (int) $row->attempts + 1;
		$wpdb->update(
			self::table(),
			array(
				'attempts'     => $attempts,
				'next_attempt' => time() + Purgebridge_Policy::backoff( $attempts, self::jitter() ),
				'state'        => $dead ? self::DEAD : self::PENDING,
				'last_status'  => (int) $result['status'],
				'last_error'   => substr( (string) $result['message'], 0, 255 ),
			),
			array( 'id' => (int) $row->id ),
			array( '%d', '%d', '%s', '%d', '%s' ),
			array( '%d' )
		);
	}

	/**
	 * Moves dead rows back to pending, due now (after fixing the secret).
	 *
	 * @return int Rows revived.
	 */
	public static function revive() {
		global $wpdb;
		$table = self::table();
		return (int) $wpdb->query( $wpdb->prepare( "UPDATE {$table} SET state = %s, next_attempt = %d WHERE state = %s", self::PENDING, time(), self::DEAD ) ); // phpcs:ignore WordPress.DB.PreparedSQL.InterpolatedNotPrepared
	}

	/**
	 * Most recent error stored on a row, for the settings page.
	 *
	 * @return object|null
	 */
	public static function latest_error() {
		global $wpdb;
		$table = self::table();
		return $wpdb->get_row( "SELECT state, attempts, last_status, last_error, created_at, next_attempt FROM {$table} ORDER BY id DESC LIMIT 1" ); // phpcs:ignore WordPress.DB.PreparedSQL.InterpolatedNotPrepared
	}

	/**
	 * Age in seconds of the oldest pending row, 0 when none.
	 *
	 * @return int
	 */
	public static function oldest_age() {
		global $wpdb;
		$table  = self::table();
		$oldest = $wpdb->get_var( $wpdb->prepare( "SELECT MIN(created_at) FROM {$table} WHERE state = %s", self::PENDING ) ); // phpcs:ignore WordPress.DB.PreparedSQL.InterpolatedNotPrepared
		return $oldest ? max( 0, time() - (int) $oldest ) : 0;
	}

	/**
	 * Asks WP-Cron for a drain soon after something was queued, so a relay
	 * that is back does not wait for the next minute tick.
	 */
	public static function schedule_soon() {
		if ( ! wp_next_scheduled( 'purgebridge_drain_soon' ) ) {
			wp_schedule_single_event( time() + Purgebridge_Policy::BACKOFF_BASE, 'purgebridge_drain_soon' );
		}
	}

	/**
	 * Random 0..1 for backoff jitter.
	 *
	 * @return float
	 */
	private static function jitter() {
		return mt_rand( 0, 1000 ) / 1000;
	}
}
