<?php
/**
 * Tools → Site Health: is purgebridge configured, does the relay answer and
 * accept this site's signature, is anything stuck in the retry queue or
 * refused, and does WP-Cron (which sends the queue) run.
 *
 * The relay check talks to the network, so it is an asynchronous test
 * (admin-ajax "health-check-purgebridge-relay"); the others read the
 * database and run with the page.
 *
 * @package Purgebridge
 */

defined( 'ABSPATH' ) || exit;

/**
 * Site Health tests.
 */
final class Purgebridge_Site_Health {

	/** A batch waiting longer than this is a warning (the retry run is every minute). */
	const QUEUE_WARN_AGE = 300;

	/** ... and longer than this, critical. */
	const QUEUE_CRITICAL_AGE = 3600;

	/** WP-Cron counts as not running when its purgebridge event is this late. */
	const CRON_LATE = 600;

	const RELAY_TEST = 'purgebridge-relay';

	/**
	 * Registers the hooks.
	 */
	public static function register() {
		add_filter( 'site_status_tests', array( __CLASS__, 'tests' ) );
		add_action( 'wp_ajax_health-check-' . self::RELAY_TEST, array( __CLASS__, 'ajax_relay' ) );
	}

	/**
	 * Adds the tests.
	 *
	 * @param array $tests Site Health tests.
	 * @return array
	 */
	public static function tests( $tests ) {
		foreach ( array( 'configuration', 'queue', 'refused', 'cron' ) as $name ) {
			$tests['direct'][ 'purgebridge_' . $name ] = array(
				'label' => __( 'Purgebridge', 'purgebridge' ),
				'test'  => array( __CLASS__, 'test_' . $name ),
			);
		}
		$tests['async'][ self::RELAY_TEST ] = array(
			'label' => __( 'Purgebridge relay', 'purgebridge' ),
			'test'  => self::RELAY_TEST,
		);
		return $tests;
	}

	/**
	 * Relay URL and secret set (and the URL allowed).
	 *
	 * @return array Site Health result.
	 */
	public static function test_configuration() {
		$problem = Purgebridge_Operations::configuration_problem();
		if ( '' === $problem ) {
			return self::result( 'good', 'configuration', __( 'Purgebridge is configured', 'purgebridge' ), __( 'A relay URL and a secret are set; changes are sent to the relay.', 'purgebridge' ) );
		}
		return self::result(
			'critical',
			'configuration',
			__( 'Purgebridge is not configured: Varnish keeps serving old pages', 'purgebridge' ),
			$problem,
			__( 'Set PURGEBRIDGE_RELAY_URL and PURGEBRIDGE_SECRET in wp-config.php, or fill in Settings → Purgebridge.', 'purgebridge' )
		);
	}

	/**
	 * The relay answers and takes a signed ping (runs "Send test event").
	 *
	 * @return array Site Health result.
	 */
	public static function test_relay() {
		if ( ! Purgebridge_Settings::configured() ) {
			return self::result( 'recommended', 'relay', __( 'The Purgebridge relay was not checked', 'purgebridge' ), __( 'Purgebridge is not configured yet.', 'purgebridge' ) );
		}
		$check = Purgebridge_Operations::test_relay();
		if ( $check['ok'] ) {
			return self::result( 'good', 'relay', __( 'The Purgebridge relay answers and accepts this site\'s signature', 'purgebridge' ), $check['message'] );
		}
		$action = $check['reachable']
			? __( 'Make the secret match the relay\'s PURGEBRIDGE_SECRET and make sure the relay lists this site in PURGEBRIDGE_SITES.', 'purgebridge' )
			: __( 'Start the relay (purgebridge serve) or correct the relay URL. Changes wait in the retry queue meanwhile.', 'purgebridge' );
		return self::result( 'critical', 'relay', __( 'The Purgebridge relay cannot be used', 'purgebridge' ), $check['message'], $action );
	}

	/**
	 * admin-ajax endpoint of the asynchronous relay test.
	 */
	public static function ajax_relay() {
		check_ajax_referer( 'health-check-site-status' );
		if ( ! current_user_can( 'view_site_health_checks' ) ) {
			wp_send_json_error();
		}
		wp_send_json_success( self::test_relay() );
	}

	/**
	 * Retry-queue backlog and age.
	 *
	 * @return array Site Health result.
	 */
	public static function test_queue() {
		$state = Purgebridge_Operations::queue_state();
		if ( ! $state['pending'] ) {
			return self::result( 'good', 'queue', __( 'No Purgebridge changes are waiting', 'purgebridge' ), __( 'Every change has reached the relay.', 'purgebridge' ) );
		}
		$text = sprintf(
			/* translators: 1: number of batches, 2: age of the oldest */
			_n( '%1$d batch of changes waits to be sent; the oldest is %2$s old. Until it is sent, the pages it changed may be stale on Varnish.', '%1$d batches of changes wait to be sent; the oldest is %2$s old. Until they are sent, the pages they changed may be stale on Varnish.', $state['pending'], 'purgebridge' ),
			$state['pending'],
			human_time_diff( time() - $state['oldest_age'] )
		);
		if ( $state['oldest_age'] < self::QUEUE_WARN_AGE ) {
			return self::result( 'good', 'queue', __( 'A few Purgebridge changes are on their way', 'purgebridge' ), $text );
		}
		return self::result(
			$state['oldest_age'] >= self::QUEUE_CRITICAL_AGE ? 'critical' : 'recommended',
			'queue',
			__( 'Purgebridge changes are waiting for the relay', 'purgebridge' ),
			$text,
			__( 'Check that the relay runs and that WP-Cron runs (see the WP-Cron test), then press "Retry now" on Settings → Purgebridge.', 'purgebridge' )
		);
	}

	/**
	 * Batches the relay refused for good.
	 *
	 * @return array Site Health result.
	 */
	public static function test_refused() {
		$state = Purgebridge_Operations::queue_state();
		if ( ! $state['refused'] ) {
			return self::result( 'good', 'refused', __( 'The Purgebridge relay refused no changes', 'purgebridge' ), __( 'No batch is kept as refused.', 'purgebridge' ) );
		}
		$notices = Purgebridge_Notices::standing();
		return self::result(
			'critical',
			'refused',
			__( 'The Purgebridge relay refuses this site\'s changes', 'purgebridge' ),
			isset( $notices['refused'] ) ? $notices['refused']['text'] : '',
			__( 'Fix the cause named above on the relay or in the settings, then press "Retry now" on Settings → Purgebridge.', 'purgebridge' )
		);
	}

	/**
	 * WP-Cron runs the retry queue: its purgebridge event is not overdue.
	 *
	 * @return array Site Health result.
	 */
	public static function test_cron() {
		$next     = wp_next_scheduled( Purgebridge_Plugin::CRON_HOOK );
		$disabled = defined( 'DISABLE_WP_CRON' ) && DISABLE_WP_CRON;
		$system   = __( 'With DISABLE_WP_CRON, run WordPress\'s cron from the system cron every minute, e.g. "* * * * * php /path/to/wordpress/wp-cron.php" or "wp cron event run --due-now".', 'purgebridge' );
		if ( ! $next ) {
			return self::result( 'critical', 'cron', __( 'The Purgebridge retry run is not scheduled', 'purgebridge' ), __( 'Changes that could not be sent at once are never retried.', 'purgebridge' ), __( 'Deactivate and activate Purgebridge to schedule it again.', 'purgebridge' ) );
		}
		$late = time() - (int) $next;
		if ( $late > self::CRON_LATE ) {
			return self::result(
				'critical',
				'cron',
				__( 'WP-Cron does not run, so Purgebridge never retries', 'purgebridge' ),
				/* translators: %s: how late */
				sprintf( __( 'The retry run was due %s ago and has not run.', 'purgebridge' ), human_time_diff( (int) $next ) ),
				$disabled ? $system : __( 'WP-Cron runs when someone visits the site; on a site Varnish serves from cache it may not. Define DISABLE_WP_CRON and run it from the system cron.', 'purgebridge' )
			);
		}
		return self::result(
			'good',
			'cron',
			__( 'WP-Cron runs the Purgebridge retry queue', 'purgebridge' ),
			$disabled ? __( 'DISABLE_WP_CRON is set and the system cron runs WordPress\'s cron on time.', 'purgebridge' ) : __( 'The retry run is on time.', 'purgebridge' )
		);
	}

	/**
	 * A Site Health result array.
	 *
	 * @param string $status      good, recommended or critical.
	 * @param string $test        Test name.
	 * @param string $label       Headline.
	 * @param string $description What it means.
	 * @param string $action      What to do ('' for none).
	 * @return array
	 */
	private static function result( $status, $test, $label, $description, $action = '' ) {
		$link = '<a href="' . esc_url( Purgebridge_Admin::page_url() ) . '">' . esc_html__( 'Settings → Purgebridge', 'purgebridge' ) . '</a>';
		return array(
			'label'       => $label,
			'status'      => $status,
			'badge'       => array(
				'label' => __( 'Performance', 'purgebridge' ),
				'color' => 'good' === $status ? 'blue' : ( 'critical' === $status ? 'red' : 'orange' ),
			),
			'description' => '<p>' . esc_html( $description ) . '</p>' . ( '' !== $action ? '<p>' . esc_html( $action ) . '</p>' : '' ),
			'actions'     => '<p>' . $link . '</p>',
			'test'        => 'purgebridge_' . $test,
		);
	}
}
