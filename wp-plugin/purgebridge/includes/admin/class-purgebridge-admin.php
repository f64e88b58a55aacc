<?php
/**
 * Settings → Purgebridge as people see it: the status table, the settings
 * form's fields, the action buttons and the "Purge all" confirmation. Output
 * only: the settings are registered and saved by Purgebridge_Admin_Settings,
 * the buttons are handled by Purgebridge_Admin_Actions, the admin bar is
 * Purgebridge_Admin_Bar's.
 *
 * @package Purgebridge
 */

defined( 'ABSPATH' ) || exit;

/**
 * The settings page.
 */
final class Purgebridge_Admin {

	const PAGE = 'purgebridge';

	/**
	 * Registers the hooks.
	 */
	public static function register() {
		add_action( 'admin_menu', array( __CLASS__, 'menu' ) );
		add_filter( 'plugin_action_links_' . plugin_basename( PURGEBRIDGE_FILE ), array( __CLASS__, 'plugin_links' ) );
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
		if ( isset( $_GET['confirm'] ) && 'purge_all' === $_GET['confirm'] ) {
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
		echo '<tr id="purgebridge-status-' . esc_attr( $id ) . '" class="purgebridge-' . esc_attr( '' !== $state ? $state : 'info' ) . '"><th scope="row"' . $style . '>' . esc_html( $label ) . '</th><td>' . esc_html( $value ) . '</td></tr>'; // $style is built from constants
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
	 * The page to return to after an action: a URL of this site, or ''.
	 *
	 * @return string
	 */
	public static function redirect_target() {
		$to = isset( $_REQUEST['redirect_to'] ) ? esc_url_raw( wp_unslash( $_REQUEST['redirect_to'] ) ) : '';
		return '' !== $to ? (string) wp_validate_redirect( $to, '' ) : '';
	}
}
