<?php
/**
 * The changes of one PHP request, kept until they are sent once, at shutdown.
 *
 * The collectors (one per kind of object: posts, comments, terms, users,
 * site settings, the Site Editor, imports, the public purge actions) listen
 * to WordPress and record what they saw here; the buffer owns what they
 * share:
 *
 * - the blog of every record: get_current_blog_id() at the time of the hook,
 *   so an edit made after switch_to_blog() is built and sent for that blog
 *   (changes() puts it into each change as 'blog'; flush() sends one set of
 *   batches per blog, with that blog's home URL, after removing it);
 * - the site-wide and ready-made changes (site(), add_change());
 * - the site purge threshold: a blog with more changes than that in one
 *   request gets one site purge instead (accepting());
 * - pausing (an import records nothing until it ends);
 * - flushing: once at shutdown, after the response where the server allows
 *   it, and every FLUSH_INTERVAL seconds in long CLI and cron processes.
 *
 * A collector's records are built into changes at flush time, from the
 * state then (terms set after a post, in the same request, are in place).
 *
 * @package Purgebridge
 */

defined( 'ABSPATH' ) || exit;

/**
 * Per-request change buffer shared by the collectors.
 */
final class Purgebridge_Change_Buffer {

	/** Default of the purgebridge_site_purge_threshold filter. */
	const SITE_PURGE_THRESHOLD = 200;

	/** Default of the purgebridge_flush_interval filter (CLI and cron), seconds. */
	const FLUSH_INTERVAL = 30;

	/**
	 * Collectors, in the order their changes are built.
	 *
	 * @var Purgebridge_Collector[]
	 */
	private $collectors = array();

	/**
	 * Site-wide and ready-made changes: "blog:reason" => change (with 'blog').
	 *
	 * @var array
	 */
	private $site = array();

	/**
	 * Blogs whose change set grew over the threshold: blog => true. Nothing
	 * more is recorded for them; they get one site purge.
	 *
	 * @var array
	 */
	private $overflow = array();

	/**
	 * Nothing is recorded while paused (an import).
	 *
	 * @var bool
	 */
	private $paused = false;

	/**
	 * Unix time the first record of the current batch came in (periodic
	 * flushing of long processes); 0 while nothing is pending.
	 *
	 * @var int
	 */
	private $since = 0;

	/**
	 * Inside flush(): building the changes must not start another flush.
	 *
	 * @var bool
	 */
	private $flushing = false;

	/**
	 * Whether the shutdown handler is registered.
	 *
	 * @var bool
	 */
	private $armed = false;

	/**
	 * Adds a collector and registers its hooks.
	 *
	 * @param Purgebridge_Collector $collector Collector sharing this buffer.
	 * @return Purgebridge_Collector The collector.
	 */
	public function add( Purgebridge_Collector $collector ) {
		$this->collectors[] = $collector;
		$collector->register();
		return $collector;
	}

	/**
	 * Forgets every record (after a flush; a term's state before an edit is
	 * kept by its collector, since edit_terms and edited_term bracket one edit).
	 */
	public function clear() {
		foreach ( $this->collectors as $collector ) {
			$collector->clear();
		}
		$this->site     = array();
		$this->overflow = array();
		$this->since    = 0;
	}

	/**
	 * Number of records waiting for the next flush.
	 *
	 * @return int
	 */
	public function pending() {
		$count = count( $this->site );
		foreach ( $this->collectors as $collector ) {
			$count += $collector->pending();
		}
		return $count;
	}

	/**
	 * Records nothing until resume() (an importer running).
	 */
	public function pause() {
		$this->paused = true;
	}

	/**
	 * Records again.
	 */
	public function resume() {
		$this->paused = false;
	}

	/**
	 * Records a site-wide purge.
	 *
	 * @param string $reason Reason.
	 */
	public function site( $reason ) {
		$change         = Purgebridge_Event_Builder::purge_all( $reason );
		$change['blog'] = self::blog();

		$this->site[ self::key( $reason ) ] = $change;
		$this->arm();
	}

	/**
	 * Adds a ready-made change (the public API, an old author archive).
	 *
	 * @param array $change Change.
	 */
	public function add_change( array $change ) {
		if ( ! $this->accepting() ) {
			return;
		}
		$change['blog'] = self::blog();
		$this->site[ self::key( 'manual:' . count( $this->site ) ) ] = $change;
		$this->arm();
	}

	/**
	 * Changes collected so far, built from the current state, each with
	 * 'blog' (the blog it happened on).
	 *
	 * @return array
	 */
	public function changes() {
		$changes = array();
		foreach ( array_keys( $this->overflow ) as $blog ) {
			$change         = Purgebridge_Event_Builder::purge_all( 'large_change_set' );
			$change['blog'] = $blog;
			$changes[]      = $change;
		}
		foreach ( $this->collectors as $collector ) {
			foreach ( $collector->changes() as $change ) {
				$changes[] = $change;
			}
		}
		foreach ( $this->site as $change ) {
			$changes[] = $change;
		}
		return $changes;
	}

	/**
	 * Builds the batches and hands them to the dispatcher, one set per blog.
	 *
	 * @param bool $finish_request Call fastcgi_finish_request() first.
	 * @return array Results, one per batch.
	 */
	public function flush( $finish_request = true ) {
		$this->flushing = true;
		try {
			$changes = $this->changes();
		} finally {
			$this->flushing = false;
		}
		$this->clear();
		if ( ! $changes ) {
			return array();
		}
		if ( ! Purgebridge_Settings::configured() ) {
			return array();
		}
		if ( $finish_request && function_exists( 'fastcgi_finish_request' ) && 'cli' !== PHP_SAPI ) {
			fastcgi_finish_request();
		}
		$by_blog = array();
		foreach ( $changes as $change ) {
			$blog = isset( $change['blog'] ) ? (int) $change['blog'] : self::blog();
			unset( $change['blog'] );
			$by_blog[ $blog ][] = $change;
		}
		$results = array();
		foreach ( $by_blog as $blog => $blog_changes ) {
			if ( count( $blog_changes ) > self::threshold() ) {
				$blog_changes = array( Purgebridge_Event_Builder::purge_all( 'large_change_set' ) );
			}
			$home = self::in_blog(
				$blog,
				function () {
					return home_url( '/' );
				}
			);
			foreach ( Purgebridge_Event_Builder::bodies( $home, $blog_changes, time() ) as $body ) {
				$results[] = Purgebridge_Dispatcher::deliver( $body );
			}
		}
		return $results;
	}

	/**
	 * Shutdown handler.
	 */
	public function on_shutdown() {
		$this->armed = false;
		$this->flush( true );
	}

	/**
	 * Registers the shutdown handler once something was collected. Collectors
	 * call it after each record.
	 */
	public function arm() {
		if ( ! $this->armed ) {
			$this->armed = true;
			add_action( 'shutdown', array( $this, 'on_shutdown' ), 100 );
		}
	}

	/**
	 * Whether a new record may be added now. Long CLI and cron processes
	 * (wp post update over thousands of posts) send what they have every
	 * FLUSH_INTERVAL seconds, so pages are fresh before the process ends and
	 * memory stays flat. Over the site purge threshold a blog is marked for
	 * one site purge and nothing more is recorded for it; while paused
	 * (an import) nothing is recorded.
	 *
	 * @param bool $known The record is already held (it does not count again).
	 * @return bool
	 */
	public function accepting( $known = false ) {
		if ( $this->paused ) {
			return false;
		}
		$long_running = 'cli' === PHP_SAPI || ( function_exists( 'wp_doing_cron' ) && wp_doing_cron() );
		if ( ! $this->since || ! $this->pending() ) {
			$this->since = time();
		} elseif ( $long_running && ! $this->flushing ) {
			/**
			 * Filters how often (seconds) a CLI or cron process sends its batch.
			 *
			 * @param int $seconds Default 30.
			 */
			$interval = (int) apply_filters( 'purgebridge_flush_interval', self::FLUSH_INTERVAL );
			if ( time() - $this->since >= $interval ) {
				$this->flush( false );
				$this->since = time();
			}
		}
		$blog = self::blog();
		if ( isset( $this->overflow[ $blog ] ) ) {
			return false;
		}
		if ( ! $known && $this->pending() >= self::threshold() ) {
			$this->overflow[ $blog ] = true;
			foreach ( $this->collectors as $collector ) {
				$collector->drop_blog( $blog );
			}
			$this->arm();
			return false;
		}
		return true;
	}

	/**
	 * Changes in one request above which a blog gets one site purge instead.
	 *
	 * @return int
	 */
	public static function threshold() {
		/**
		 * Filters how many changes one request may send before the whole
		 * site is purged instead (imports, bulk edits, wp post update).
		 *
		 * @param int $threshold Default 200.
		 */
		return max( 1, (int) apply_filters( 'purgebridge_site_purge_threshold', self::SITE_PURGE_THRESHOLD ) );
	}

	/**
	 * Current blog id (1 on a single site).
	 *
	 * @return int
	 */
	public static function blog() {
		return function_exists( 'get_current_blog_id' ) ? (int) get_current_blog_id() : 1;
	}

	/**
	 * A record key scoped by the current blog.
	 *
	 * @param int|string $id Id within the blog.
	 * @return string
	 */
	public static function key( $id ) {
		return self::blog() . ':' . $id;
	}

	/**
	 * Forgets the records of one blog from a list keyed by key().
	 *
	 * @param array $records Records.
	 * @param int   $blog    Blog id.
	 * @return array The other blogs' records.
	 */
	public static function without_blog( array $records, $blog ) {
		$keep = function ( $key ) use ( $blog ) {
			return 0 !== strpos( (string) $key, $blog . ':' );
		};
		return array_filter( $records, $keep, ARRAY_FILTER_USE_KEY );
	}

	/**
	 * Runs a function with $blog as the current blog.
	 *
	 * @param int      $blog     Blog id.
	 * @param callable $function Function.
	 * @return mixed What it returns.
	 */
	public static function in_blog( $blog, $function ) {
		$switch = function_exists( 'is_multisite' ) && is_multisite() && (int) $blog !== self::blog();
		if ( $switch ) {
			switch_to_blog( (int) $blog );
		}
		try {
			return $function();
		} finally {
			if ( $switch ) {
				restore_current_blog();
			}
		}
	}
}
