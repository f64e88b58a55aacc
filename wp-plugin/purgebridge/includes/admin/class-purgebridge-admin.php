<?php
/**
 * Settings → Purgebridge, its actions (test, retry now, purge URL, purge all)
 * and the admin bar entries. Every action needs a nonce and a capability:
 * manage_options, except "Purge this page" on a post, which needs edit_post
 * for that post. The work itself is Purgebridge_Operations'.
 *
 * @package Purgebridge
 */

defined( 'ABSPATH' ) || exit;

/**
 * Admin screens and actions.
 */
final class Purgebridge_Admin {

	const PAGE = 'purgebridge';

	/**
	 * Registers the hooks.
	 */
	public static function register() {
		add_action( 'admin_menu', array( __CLASS__, 'menu' ) );
		add_action( 'admin_init', array( __CLASS__, 'settings' ) );
		add_action( 'admin_bar_menu', array( __CLASS__, 'admin_bar' ), 100 );
		foreach ( array( 'test', 'retry', 'purge_all', 'purge_page', 'purge_url' ) as $action ) {
			add_action( 'admin_post_purgebridge_' . $action, array( __CLASS__, 'action_' . $action ) );
		}
		add_filter( 'plugin_action_links_' . plugin_basename( PURGEBRIDGE_FILE ), array( __CLASS__, 'plugin_links' ) );
		// Every write of the option, not only the settings form's (register_setting() runs on admin_init only).
		add_filter( 'sanitize_option_purgebridge_relay_url', array( __CLASS__, 'sanitize_relay_url' ) );
	}

	/**
	 * A "Settings" link on the Plugins screen.
	 *
	 * @param string[] $links Existing links.
	 * @return string[]
	 */
	public static function plugin_links( $links ) {
		if ( current_user_can( 'manage_options' ) ) {
			array_unshift( $links, '<a href="' . esc_url( self::page_url() ) . '">' . esc_html__( 'Settings', 'purgebridge' ) . '</a>' );
		}
		return $links;
	}

	/**
	 * The settings page's URL, with extra query arguments.
	 *
	 * @param array $args Query arguments.
	 * @return string
	 */
	public static function page_url( array $args = array() ) {
		return add_query_arg( $args, admin_url( 'options-general.php?page=' . self::PAGE ) );
	}

	/**
	 * Adds the settings page.
	 */
	public static function menu() {
		add_options_page( __( 'Purgebridge', 'purgebridge' ), __( 'Purgebridge', 'purgebridge' ), 'manage_options', self::PAGE, array( __CLASS__, 'render' ) );
	}

	/**
	 * Registers the settings with the Settings API.
	 */
	public static function settings() {
		$relay_here = ! is_multisite() || is_network_admin(); // Multisite: the relay is the network admin's (Purgebridge_Network).
		$relay_here && register_setting(
			self::PAGE,
			'purgebridge_relay_url',
			array(
				'type'    => 'string',
				'default' => '',
			)
		);
		$relay_here && register_setting(
			self::PAGE,
			'purgebridge_secret',
			array(
				'type'              => 'string',
				'sanitize_callback' => array( __CLASS__, 'sanitize_secret' ),
				'default'           => '',
			)
		);
		foreach ( array( 'purgebridge_xkey', 'purgebridge_esi_tag_cloud' ) as $flag ) {
			register_setting(
				self::PAGE,
				$flag,
				array(
					'type'              => 'boolean',
					'sanitize_callback' => 'rest_sanitize_boolean',
					'default'           => false,
				)
			);
		}
		foreach ( array( 'purgebridge_probe_level2' => 10, 'purgebridge_probe_level3' => 20 ) as $name => $default ) {
			register_setting(
				self::PAGE,
				$name,
				array(
					'type'              => 'number',
					'sanitize_callback' => array( __CLASS__, 'sanitize_load' ),
					'default'           => $default,
				)
			);
		}
		register_setting(
			self::PAGE,
			'purgebridge_queue_max',
			array(
				'type'              => 'integer',
				'sanitize_callback' => 'absint',
				'default'           => 1000,
			)
		);

		add_settings_section( 'purgebridge_relay', __( 'Relay', 'purgebridge' ), '__return_false', self::PAGE );
		add_settings_field( 'purgebridge_relay_url', __( 'Relay URL', 'purgebridge' ), array( __CLASS__, 'field_url' ), self::PAGE, 'purgebridge_relay', array( 'label_for' => 'purgebridge_relay_url' ) );
		add_settings_field( 'purgebridge_secret', __( 'Secret', 'purgebridge' ), array( __CLASS__, 'field_secret' ), self::PAGE, 'purgebridge_relay', array( 'label_for' => 'purgebridge_secret' ) );
		add_settings_section( 'purgebridge_front', __( 'Front end', 'purgebridge' ), '__return_false', self::PAGE );
		add_settings_field( 'purgebridge_xkey', __( 'Surrogate keys', 'purgebridge' ), array( __CLASS__, 'field_flag' ), self::PAGE, 'purgebridge_front', array( 'name' => 'purgebridge_xkey', 'label' => __( 'Send an xkey header (post-ID, term-ID, author-ID, front)', 'purgebridge' ) ) );
		add_settings_field( 'purgebridge_esi_tag_cloud', __( 'Tag cloud fragment', 'purgebridge' ), array( __CLASS__, 'field_flag' ), self::PAGE, 'purgebridge_front', array( 'name' => 'purgebridge_esi_tag_cloud', 'label' => __( 'Serve the tag cloud as an ESI include', 'purgebridge' ) ) );
		add_settings_field( 'purgebridge_probe_level2', __( 'Load probe, level 2', 'purgebridge' ), array( __CLASS__, 'field_number' ), self::PAGE, 'purgebridge_front', array( 'name' => 'purgebridge_probe_level2', 'default' => 10 ) );
		add_settings_field( 'purgebridge_probe_level3', __( 'Load probe, level 3', 'purgebridge' ), array( __CLASS__, 'field_number' ), self::PAGE, 'purgebridge_front', array( 'name' => 'purgebridge_probe_level3', 'default' => 20 ) );
		add_settings_field( 'purgebridge_queue_max', __( 'Retry queue size', 'purgebridge' ), array( __CLASS__, 'field_number' ), self::PAGE, 'purgebridge_front', array( 'name' => 'purgebridge_queue_max', 'default' => 1000 ) );
	}

	/**
	 * A relay URL that passes Purgebridge_Settings::check_relay_url(), from a
	 * user who may change it; otherwise the stored one stays and the form says
	 * why. Calls without a logged-in user (WP-CLI, code) are not asked for a
	 * capability.
	 *
	 * @param mixed $value Submitted value.
	 * @return string
	 */
	public static function sanitize_relay_url( $value ) {
		$stored = (string) get_option( 'purgebridge_relay_url', '' );
		if ( null === $value ) {
			return $stored; // Not in the form (read-only field): options.php passes null.
		}
		$value = is_string( $value ) ? trim( $value ) : '';
		if ( $value === $stored ) {
			return $stored;
		}
		if ( is_user_logged_in() && ! Purgebridge_Settings::can_change_relay_url() ) {
			add_settings_error( 'purgebridge_relay_url', 'purgebridge_relay_url_denied', __( 'You may not change the relay URL.', 'purgebridge' ) );
			return $stored;
		}
		$problem = Purgebridge_Settings::check_relay_url( $value );
		if ( '' !== $problem ) {
			add_settings_error( 'purgebridge_relay_url', 'purgebridge_relay_url_invalid', $problem . ' ' . __( 'The relay URL was not changed.', 'purgebridge' ) );
			return $stored;
		}
		return $value;
	}

	/**
	 * Keeps the stored secret when the write-only field is left empty.
	 *
	 * @param mixed $value Submitted value.
	 * @return string
	 */
	public static function sanitize_secret( $value ) {
		$value = is_string( $value ) ? trim( $value ) : '';
		if ( '' === $value ) {
			return (string) get_option( 'purgebridge_secret', '' );
		}
		return $value;
	}

	/**
	 * A load threshold: a non-negative number.
	 *
	 * @param mixed $value Submitted value.
	 * @return float
	 */
	public static function sanitize_load( $value ) {
		return max( 0.0, (float) $value );
	}

	/** Relay URL field: read-only when wp-config.php sets it or the user may not change it. */
	public static function field_url() {
		if ( is_multisite() && ! is_network_admin() ) {
			echo '<code>' . esc_html( Purgebridge_Settings::configured_relay_url() ) . '</code> ';
			echo '<p class="description">' . esc_html__( 'Set for every site of the network by a network administrator (Network Admin → Settings → Purgebridge).', 'purgebridge' ) . '</p>';
			return;
		}
		if ( Purgebridge_Settings::url_locked() || ! Purgebridge_Settings::can_change_relay_url() ) {
			echo '<code>' . esc_html( Purgebridge_Settings::configured_relay_url() ) . '</code> ';
			echo '<p class="description">' . esc_html( Purgebridge_Settings::url_locked() ? __( 'Set by PURGEBRIDGE_RELAY_URL in wp-config.php.', 'purgebridge' ) : __( 'Only an administrator who may change the relay URL can change it.', 'purgebridge' ) ) . '</p>';
			return;
		}
		printf( '<input type="url" class="regular-text" id="purgebridge_relay_url" name="purgebridge_relay_url" value="%s" placeholder="http://127.0.0.1:8787" />', esc_attr( Purgebridge_Settings::relay_option( 'purgebridge_relay_url' ) ) );
		echo '<p class="description">' . esc_html__( 'The relay\'s base address: http:// or https://, a host and port, no user name, query or fragment.', 'purgebridge' ) . '</p>';
	}

	/** Secret field: write-only, the stored value is never printed. */
	public static function field_secret() {
		if ( is_multisite() && ! is_network_admin() ) {
			echo '<p class="description">' . esc_html__( 'Set for every site of the network by a network administrator.', 'purgebridge' ) . '</p>';
			return;
		}
		if ( Purgebridge_Settings::secret_locked() ) {
			echo '<p class="description">' . esc_html__( 'Set by PURGEBRIDGE_SECRET in wp-config.php.', 'purgebridge' ) . '</p>';
			return;
		}
		$stored = '' !== Purgebridge_Settings::relay_option( 'purgebridge_secret' );
		printf(
			'<input type="password" class="regular-text" id="purgebridge_secret" name="purgebridge_secret" value="" autocomplete="new-password" placeholder="%s" />',
			esc_attr( $stored ? __( 'stored — leave empty to keep', 'purgebridge' ) : '' )
		);
	}

	/**
	 * Checkbox field.
	 *
	 * @param array $args name, label.
	 */
	public static function field_flag( $args ) {
		printf(
			'<label><input type="checkbox" name="%1$s" value="1" %2$s /> %3$s</label>',
			esc_attr( $args['name'] ),
			checked( (bool) get_option( $args['name'], false ), true, false ),
			esc_html( $args['label'] )
		);
	}

	/**
	 * Number field.
	 *
	 * @param array $args name, default.
	 */
	public static function field_number( $args ) {
		printf( '<input type="number" step="any" min="0" class="small-text" name="%1$s" value="%2$s" />', esc_attr( $args['name'] ), esc_attr( (string) get_option( $args['name'], $args['default'] ) ) );
	}

	/**
	 * The settings page: status, settings, actions; or the confirmation of a
	 * site-wide purge.
	 */
	public static function render() {
		if ( ! current_user_can( 'manage_options' ) ) {
			return;
		}
		echo '<div class="wrap" id="purgebridge-settings"><h1>' . esc_html__( 'Purgebridge', 'purgebridge' ) . '</h1>';
		if ( isset( $_GET['confirm'] ) && 'purge_all' === $_GET['confirm'] ) { // phpcs:ignore WordPress.Security.NonceVerification.Recommended
			self::confirm_purge_all();
			echo '</div>';
			return;
		}
		self::status();
		echo '<form method="post" action="options.php">';
		settings_fields( self::PAGE );
		do_settings_sections( self::PAGE );
		submit_button();
		echo '</form>';
		echo '<h2>' . esc_html__( 'Check and retry', 'purgebridge' ) . '</h2><p>';
		self::action_button( 'test', __( 'Send test event', 'purgebridge' ) );
		self::action_button( 'retry', __( 'Retry now', 'purgebridge' ) );
		echo '</p><p class="description">' . esc_html__( '"Send test event" checks that the relay answers and accepts this site\'s signature; it purges nothing. "Retry now" sends every waiting batch at once, including those the relay refused (after you fixed the cause).', 'purgebridge' ) . '</p>';
		self::purge_url_box();
		echo '<h2>' . esc_html__( 'Purge the whole site', 'purgebridge' ) . '</h2>';
		echo '<p><a class="button button-link-delete" id="purgebridge-purge-all" href="' . esc_url( self::page_url( array( 'confirm' => 'purge_all' ) ) ) . '">' . esc_html__( 'Purge all…', 'purgebridge' ) . '</a></p></div>';
	}

	/**
	 * The "Purge URL" box: URLs of this site, one per line.
	 */
	private static function purge_url_box() {
		echo '<h2>' . esc_html__( 'Purge URLs', 'purgebridge' ) . '</h2>';
		echo '<form method="post" action="' . esc_url( admin_url( 'admin-post.php' ) ) . '">';
		echo '<input type="hidden" name="action" value="purgebridge_purge_url" />';
		wp_nonce_field( 'purgebridge_purge_url' );
		printf(
			'<p><label for="purgebridge-urls">%1$s</label><br /><textarea id="purgebridge-urls" name="urls" rows="3" class="large-text code" placeholder="%2$s"></textarea></p>',
			esc_html__( 'Pages of this site to purge on every Varnish node, one URL or path per line. Only these pages are purged, not the archives that list them.', 'purgebridge' ),
			esc_attr( home_url( '/about/' ) )
		);
		submit_button( __( 'Purge these URLs', 'purgebridge' ), 'secondary', 'submit', false, array( 'id' => 'purgebridge-purge-urls' ) );
		echo '</form>';
	}

	/**
	 * The confirmation step of "Purge all" (settings page and admin bar).
	 */
	private static function confirm_purge_all() {
		$back = self::redirect_target();
		echo '<div class="notice notice-warning" id="purgebridge-confirm"><p><strong>' . esc_html__( 'Purge every page of this site?', 'purgebridge' ) . '</strong></p><p>';
		printf(
			/* translators: %s: the site's home URL */
			esc_html__( 'Every page of %s is dropped from every Varnish node. Until the cache fills again, every visitor\'s request goes to WordPress, which can slow a busy site down. To refresh one page, use "Purge this page" in the admin bar or the "Purge URLs" box instead.', 'purgebridge' ),
			'<code>' . esc_html( home_url( '/' ) ) . '</code>'
		);
		echo '</p><form method="post" action="' . esc_url( admin_url( 'admin-post.php' ) ) . '"><p>';
		echo '<input type="hidden" name="action" value="purgebridge_purge_all" />';
		wp_nonce_field( 'purgebridge_purge_all' );
		echo '<input type="hidden" name="redirect_to" value="' . esc_attr( $back ) . '" />';
		submit_button( __( 'Yes, purge all', 'purgebridge' ), 'primary', 'submit', false, array( 'id' => 'purgebridge-confirm-purge-all' ) );
		echo ' <a class="button" href="' . esc_url( '' !== $back ? $back : self::page_url() ) . '">' . esc_html__( 'Cancel', 'purgebridge' ) . '</a></p></form></div>';
	}

	/**
	 * Status table in plain words: the relay, the last send, the queue.
	 */
	private static function status() {
		$s = Purgebridge_Operations::status();
		echo '<h2>' . esc_html__( 'Status', 'purgebridge' ) . '</h2><table class="widefat striped" id="purgebridge-status"><tbody>';
		if ( '' !== $s['problem'] ) {
			self::row( 'configuration', __( 'Configuration', 'purgebridge' ), $s['problem'], 'error' );
		}
		$check = $s['last_check'];
		if ( $check ) {
			self::row(
				'relay',
				__( 'Relay', 'purgebridge' ),
				sprintf(
					/* translators: 1: time ago, 2: result in words */
					__( 'Checked %1$s ago: %2$s', 'purgebridge' ),
					human_time_diff( (int) $check['time'] ),
					$check['message']
				),
				$check['ok'] ? 'ok' : 'error'
			);
		} else {
			self::row( 'relay', __( 'Relay', 'purgebridge' ), __( 'Not checked yet: press "Send test event".', 'purgebridge' ) );
		}
		$last = $s['last_delivery'];
		if ( $last ) {
			$delivered = Purgebridge_Outcome::DELIVERED === $last['outcome'];
			self::row(
				'last-send',
				__( 'Last send', 'purgebridge' ),
				sprintf(
					/* translators: 1: "delivered" or "not delivered", 2: time ago, 3: what the relay answered */
					__( '%1$s %2$s ago. %3$s', 'purgebridge' ),
					$delivered ? __( 'Delivered', 'purgebridge' ) : __( 'Not delivered', 'purgebridge' ),
					human_time_diff( (int) $last['time'] ),
					Purgebridge_Answer::describe( $last )
				),
				$delivered ? 'ok' : 'error'
			);
		} else {
			self::row( 'last-send', __( 'Last send', 'purgebridge' ), __( 'Nothing sent yet.', 'purgebridge' ) );
		}
		if ( $s['down_until'] > time() ) {
			self::row(
				'down',
				__( 'Relay unreachable', 'purgebridge' ),
				sprintf(
					/* translators: 1: failed sends in a row, 2: time left */
					__( 'The last %1$d sends failed. For the next %2$s, changes go straight to the retry queue so editors do not wait; the retry run keeps trying the relay.', 'purgebridge' ),
					$s['failures'],
					human_time_diff( time(), $s['down_until'] )
				),
				'error'
			);
		}
		$queue = $s['queue'];
		self::row(
			'queue',
			__( 'Waiting to be sent', 'purgebridge' ),
			Purgebridge_Answer::describe_queue( Purgebridge_Recovery::state() ),
			$queue['pending'] ? 'warning' : 'ok'
		);
		if ( $queue['refused'] ) {
			$refusal = $s['last_refusal'];
			self::row(
				'refused',
				__( 'Refused by the relay', 'purgebridge' ),
				sprintf(
					/* translators: %d: number of batches */
					_n( '%d batch was refused and is kept; fix the cause, then press "Retry now".', '%d batches were refused and are kept; fix the cause, then press "Retry now".', $queue['refused'], 'purgebridge' ),
					$queue['refused']
				) . ( $refusal ? ' ' . Purgebridge_Answer::describe(
					array(
						'outcome' => Purgebridge_Outcome::PERMANENT,
						'status'  => (int) $refusal['status'],
						'message' => (string) $refusal['message'],
					)
				) : '' ),
				'error'
			);
		}
		if ( $s['overflow'] ) {
			self::row(
				'full',
				__( 'Queue full', 'purgebridge' ),
				sprintf(
					/* translators: 1: time ago, 2: number of batches */
					__( 'Full since %1$s ago: %2$d batches were not kept; one "purge all" is sent instead when the relay is back.', 'purgebridge' ),
					human_time_diff( (int) $s['overflow']['since'] ),
					(int) $s['overflow']['dropped']
				),
				'error'
			);
		}
		echo '</tbody></table>';
	}

	/**
	 * One status row.
	 *
	 * @param string $id    Row id suffix (tests and styling).
	 * @param string $label Label.
	 * @param string $value Value.
	 * @param string $state ok, warning, error or '' (colours the row's edge).
	 */
	private static function row( $id, $label, $value, $state = '' ) {
		$colours = array(
			'ok'      => '#00a32a',
			'warning' => '#dba617',
			'error'   => '#d63638',
		);
		$style   = isset( $colours[ $state ] ) ? ' style="border-left:4px solid ' . $colours[ $state ] . '"' : '';
		echo '<tr id="purgebridge-status-' . esc_attr( $id ) . '" class="purgebridge-' . esc_attr( '' !== $state ? $state : 'info' ) . '"><th scope="row"' . $style . '>' . esc_html( $label ) . '</th><td>' . esc_html( $value ) . '</td></tr>'; // phpcs:ignore WordPress.Security.EscapeOutput.OutputNotEscaped -- $style is built from constants
	}

	/**
	 * A small form posting to admin-post.php with a nonce.
	 *
	 * @param string $action Action suffix.
	 * @param string $label  Button label.
	 */
	private static function action_button( $action, $label ) {
		echo '<form method="post" action="' . esc_url( admin_url( 'admin-post.php' ) ) . '" style="display:inline-block;margin-right:1em">';
		echo '<input type="hidden" name="action" value="' . esc_attr( 'purgebridge_' . $action ) . '" />';
		wp_nonce_field( 'purgebridge_' . $action );
		submit_button( $label, 'secondary', 'submit', false, array( 'id' => 'purgebridge-' . $action ) );
		echo '</form>';
	}

	/**
	 * Shows the result where the action started and ends the request.
	 *
	 * @param array  $result   ok, message.
	 * @param string $redirect Where to go ('' = the settings page).
	 */
	private static function finish( array $result, $redirect = '' ) {
		Purgebridge_Notices::flash( $result['ok'], $result['message'] );
		wp_safe_redirect( '' !== $redirect ? $redirect : self::page_url() );
		exit;
	}

	/**
	 * Capability and nonce check shared by the actions.
	 *
	 * @param string $action     Action suffix.
	 * @param string $capability Capability.
	 * @param mixed  ...$args    Capability arguments (a post ID).
	 */
	private static function guard( $action, $capability = 'manage_options', ...$args ) {
		if ( ! current_user_can( $capability, ...$args ) ) {
			wp_die( esc_html__( 'You are not allowed to do this.', 'purgebridge' ), '', array( 'response' => 403 ) );
		}
		check_admin_referer( 'purgebridge_' . $action );
	}

	/** "Send test event". */
	public static function action_test() {
		self::guard( 'test' );
		self::finish( Purgebridge_Operations::test_relay() );
	}

	/** "Retry now": refused batches are sent again, and everything waiting. */
	public static function action_retry() {
		self::guard( 'retry' );
		self::finish( Purgebridge_Operations::retry_queue() );
	}

	/** "Yes, purge all" on the confirmation step. */
	public static function action_purge_all() {
		self::guard( 'purge_all' );
		self::finish( Purgebridge_Operations::purge_all( 'manual' ), self::redirect_target() );
	}

	/** The "Purge URLs" box. */
	public static function action_purge_url() {
		self::guard( 'purge_url' );
		$lines = isset( $_POST['urls'] ) ? preg_split( '/[\r\n]+/', (string) wp_unslash( $_POST['urls'] ) ) : array(); // phpcs:ignore WordPress.Security.ValidatedSanitizedInput.InputNotSanitized -- each line is checked by site_urls()
		self::finish( Purgebridge_Operations::purge_urls( (array) $lines, array(), 'settings' ) );
	}

	/**
	 * Admin bar "Purge this page": a post's page needs edit_post for it; any
	 * other page (archives, search, the front page) needs manage_options.
	 */
	public static function action_purge_page() {
		$post_id = isset( $_GET['post_id'] ) ? absint( $_GET['post_id'] ) : 0; // phpcs:ignore WordPress.Security.NonceVerification.Recommended -- guard() checks it
		if ( $post_id ) {
			self::guard( 'purge_page', 'edit_post', $post_id );
			self::finish( Purgebridge_Operations::purge_post( $post_id ), self::redirect_target() );
		}
		self::guard( 'purge_page' );
		$back = self::redirect_target();
		self::finish( Purgebridge_Operations::purge_urls( array( $back ), array(), 'admin_bar' ), $back );
	}

	/**
	 * The page to return to after an action: a URL of this site, or ''.
	 *
	 * @return string
	 */
	private static function redirect_target() {
		$to = isset( $_REQUEST['redirect_to'] ) ? esc_url_raw( wp_unslash( $_REQUEST['redirect_to'] ) ) : ''; // phpcs:ignore WordPress.Security.NonceVerification.Recommended,WordPress.Security.ValidatedSanitizedInput.InputNotSanitized
		return '' !== $to ? (string) wp_validate_redirect( $to, '' ) : '';
	}

	/**
	 * The front-end page being shown: the home URL's origin and this request's
	 * path and query (home_url() would repeat a subdirectory).
	 *
	 * @return string
	 */
	private static function current_url() {
		$home = wp_parse_url( home_url( '/' ) );
		$uri  = isset( $_SERVER['REQUEST_URI'] ) ? (string) wp_unslash( $_SERVER['REQUEST_URI'] ) : '/'; // phpcs:ignore WordPress.Security.ValidatedSanitizedInput.InputNotSanitized -- checked by site_urls() before use
		return esc_url_raw( $home['scheme'] . '://' . $home['host'] . ( isset( $home['port'] ) ? ':' . $home['port'] : '' ) . $uri );
	}

	/**
	 * Admin bar entries on every page: "Purge this page" for whoever may
	 * edit it, "Purge all…" (with a confirmation step) and the settings for
	 * administrators.
	 *
	 * @param WP_Admin_Bar $bar Admin bar.
	 */
	public static function admin_bar( $bar ) {
		$admin   = current_user_can( 'manage_options' );
		$here    = is_admin() ? '' : self::current_url();
		$post_id = ! is_admin() && is_singular() ? (int) get_queried_object_id() : 0;
		$page    = null;
		if ( $post_id && current_user_can( 'edit_post', $post_id ) ) {
			$page = array( 'post_id' => $post_id );
		} elseif ( ! $post_id && '' !== $here && $admin ) {
			$page = array();
		}
		if ( ! $admin && null === $page ) {
			return;
		}
		$bar->add_node(
			array(
				'id'    => 'purgebridge',
				'title' => __( 'Purge cache', 'purgebridge' ),
				'href'  => $admin ? self::page_url() : false,
			)
		);
		if ( null !== $page ) {
			$page['action']      = 'purgebridge_purge_page';
			$page['redirect_to'] = rawurlencode( $here );
			$bar->add_node(
				array(
					'parent' => 'purgebridge',
					'id'     => 'purgebridge-purge-page',
					'title'  => __( 'Purge this page', 'purgebridge' ),
					'href'   => wp_nonce_url( add_query_arg( $page, admin_url( 'admin-post.php' ) ), 'purgebridge_purge_page' ),
					'meta'   => array( 'title' => __( 'Drop this page from every Varnish node (not the archives that list it)', 'purgebridge' ) ),
				)
			);
		}
		if ( ! $admin ) {
			return;
		}
		$bar->add_node(
			array(
				'parent' => 'purgebridge',
				'id'     => 'purgebridge-purge-all',
				'title'  => __( 'Purge all…', 'purgebridge' ),
				'href'   => self::page_url(
					array(
						'confirm'     => 'purge_all',
						'redirect_to' => rawurlencode( '' !== $here ? $here : self::page_url() ),
					)
				),
			)
		);
	}
}
