<?php
/**
 * Settings → Purgebridge, its actions (test, retry now, purge all) and the
 * admin bar entries. Everything here needs manage_options and a nonce.
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
		foreach ( array( 'test', 'retry', 'purge_all', 'purge_page' ) as $action ) {
			add_action( 'admin_post_purgebridge_' . $action, array( __CLASS__, 'action_' . $action ) );
		}
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
				'type'              => 'string',
				'sanitize_callback' => 'esc_url_raw',
				'default'           => '',
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

	/** Relay URL field. */
	public static function field_url() {
		if ( is_multisite() && ! is_network_admin() ) {
			echo '<code>' . esc_html( Purgebridge_Settings::relay_url() ) . '</code> ';
			echo '<p class="description">' . esc_html__( 'Set for every site of the network by a network administrator (Network Admin → Settings → Purgebridge).', 'purgebridge' ) . '</p>';
			return;
		}
		if ( Purgebridge_Settings::url_locked() ) {
			echo '<code>' . esc_html( Purgebridge_Settings::relay_url() ) . '</code> ';
			echo '<p class="description">' . esc_html__( 'Set by PURGEBRIDGE_RELAY_URL in wp-config.php.', 'purgebridge' ) . '</p>';
			return;
		}
		printf( '<input type="url" class="regular-text" id="purgebridge_relay_url" name="purgebridge_relay_url" value="%s" placeholder="http://127.0.0.1:8787" />', esc_attr( Purgebridge_Settings::relay_option( 'purgebridge_relay_url' ) ) );
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
	 * The settings page.
	 */
	public static function render() {
		if ( ! current_user_can( 'manage_options' ) ) {
			return;
		}
		echo '<div class="wrap"><h1>' . esc_html__( 'Purgebridge', 'purgebridge' ) . '</h1>';
		self::notice();
		self::status();
		echo '<form method="post" action="options.php">';
		settings_fields( self::PAGE );
		do_settings_sections( self::PAGE );
		submit_button();
		echo '</form>';
		echo '<h2>' . esc_html__( 'Actions', 'purgebridge' ) . '</h2><p>';
		self::action_button( 'test', __( 'Send test event', 'purgebridge' ), 'secondary' );
		self::action_button( 'retry', __( 'Retry now', 'purgebridge' ), 'secondary' );
		self::action_button( 'purge_all', __( 'Purge all', 'purgebridge' ), 'delete' );
		echo '</p></div>';
	}

	/**
	 * Status table: last delivery, queue, permanent errors.
	 */
	private static function status() {
		$last     = get_option( 'purgebridge_last_delivery', array() );
		$error    = get_option( 'purgebridge_last_error', array() );
		$overflow = get_option( 'purgebridge_queue_overflow', array() );
		$pending  = Purgebridge_Queue::count( Purgebridge_Queue::PENDING );
		$dead     = Purgebridge_Queue::count( Purgebridge_Queue::DEAD );
		echo '<h2>' . esc_html__( 'Status', 'purgebridge' ) . '</h2><table class="widefat striped" id="purgebridge-status"><tbody>';
		if ( ! Purgebridge_Settings::configured() ) {
			self::row( __( 'Configuration', 'purgebridge' ), __( 'Relay URL or secret missing: nothing is sent.', 'purgebridge' ) );
		}
		if ( is_array( $last ) && isset( $last['time'] ) ) {
			self::row(
				__( 'Last delivery', 'purgebridge' ),
				sprintf(
					/* translators: 1: outcome, 2: HTTP status, 3: time ago, 4: relay answer */
					__( '%1$s (HTTP %2$d) %3$s ago: %4$s', 'purgebridge' ),
					$last['outcome'],
					(int) $last['status'],
					human_time_diff( (int) $last['time'] ),
					$last['message']
				)
			);
		} else {
			self::row( __( 'Last delivery', 'purgebridge' ), __( 'none yet', 'purgebridge' ) );
		}
		$down_until = (int) get_option( 'purgebridge_relay_down_until', 0 );
		if ( $down_until > time() ) {
			self::row(
				__( 'Relay marked unreachable', 'purgebridge' ),
				sprintf(
					/* translators: 1: failed sends in a row, 2: time left */
					__( 'after %1$d failed sends in a row; new batches go straight to the retry queue for %2$s more, or until WP-Cron\'s retry run reaches the relay.', 'purgebridge' ),
					(int) get_option( 'purgebridge_relay_failures', 0 ),
					human_time_diff( time(), $down_until )
				)
			);
		}
		self::row(
			__( 'Retry queue', 'purgebridge' ),
			sprintf(
				/* translators: 1: pending batches, 2: maximum, 3: age of oldest in human form */
				__( '%1$d pending of at most %2$d (oldest %3$s)', 'purgebridge' ),
				$pending,
				Purgebridge_Settings::queue_max(),
				$pending ? human_time_diff( time() - Purgebridge_Queue::oldest_age() ) : '-'
			)
		);
		if ( $dead ) {
			self::row(
				__( 'Refused by the relay', 'purgebridge' ),
				sprintf(
					/* translators: %d: number of batches */
					__( '%d batches refused for good; fix the cause, then "Retry now" sends them again.', 'purgebridge' ),
					$dead
				)
			);
		}
		if ( is_array( $error ) && isset( $error['time'] ) ) {
			$hint = 401 === (int) $error['status'] ? __( 'Signature refused: the secret here differs from PURGEBRIDGE_SECRET on the relay, or the clocks differ by more than 300 s.', 'purgebridge' ) : '';
			self::row(
				__( 'Last refusal', 'purgebridge' ),
				sprintf(
					/* translators: 1: HTTP status, 2: time ago, 3: relay answer, 4: hint */
					__( 'HTTP %1$d %2$s ago: %3$s %4$s', 'purgebridge' ),
					(int) $error['status'],
					human_time_diff( (int) $error['time'] ),
					$error['message'],
					$hint
				)
			);
		}
		if ( is_array( $overflow ) && isset( $overflow['since'] ) ) {
			self::row(
				__( 'Queue full', 'purgebridge' ),
				sprintf(
					/* translators: 1: time ago, 2: number of batches */
					__( 'Full since %1$s ago; %2$d batches were replaced by one "purge all" that is sent when the relay is back.', 'purgebridge' ),
					human_time_diff( (int) $overflow['since'] ),
					(int) $overflow['dropped']
				)
			);
		}
		echo '</tbody></table>';
	}

	/**
	 * One status row.
	 *
	 * @param string $label Label.
	 * @param string $value Value.
	 */
	private static function row( $label, $value ) {
		echo '<tr><th scope="row">' . esc_html( $label ) . '</th><td>' . esc_html( $value ) . '</td></tr>';
	}

	/**
	 * A small form posting to admin-post.php with a nonce.
	 *
	 * @param string $action Action suffix.
	 * @param string $label  Button label.
	 * @param string $type   Button type.
	 */
	private static function action_button( $action, $label, $type ) {
		echo '<form method="post" action="' . esc_url( admin_url( 'admin-post.php' ) ) . '" style="display:inline-block;margin-right:1em">';
		echo '<input type="hidden" name="action" value="' . esc_attr( 'purgebridge_' . $action ) . '" />';
		wp_nonce_field( 'purgebridge_' . $action );
		submit_button( $label, $type, 'submit', false );
		echo '</form>';
	}

	/**
	 * Shows and forgets the current user's last action result.
	 */
	private static function notice() {
		$key    = 'purgebridge_notice_' . get_current_user_id();
		$notice = get_transient( $key );
		if ( ! is_array( $notice ) ) {
			return;
		}
		delete_transient( $key );
		printf( '<div class="notice notice-%1$s" id="purgebridge-notice"><p>%2$s</p></div>', esc_attr( $notice['ok'] ? 'success' : 'error' ), esc_html( $notice['text'] ) );
	}

	/**
	 * Stores a notice and returns to the settings page (or another URL).
	 *
	 * @param bool   $ok       Success.
	 * @param string $text     Message.
	 * @param string $redirect Where to go.
	 */
	private static function finish( $ok, $text, $redirect = '' ) {
		set_transient(
			'purgebridge_notice_' . get_current_user_id(),
			array(
				'ok'   => (bool) $ok,
				'text' => $text,
			),
			300
		);
		if ( '' === $redirect ) {
			$redirect = admin_url( 'options-general.php?page=' . self::PAGE );
		}
		wp_safe_redirect( $redirect );
		exit;
	}

	/**
	 * Capability and nonce check shared by every action.
	 *
	 * @param string $action Action suffix.
	 */
	private static function guard( $action ) {
		if ( ! current_user_can( 'manage_options' ) ) {
			wp_die( esc_html__( 'You are not allowed to do this.', 'purgebridge' ), '', array( 'response' => 403 ) );
		}
		check_admin_referer( 'purgebridge_' . $action );
	}

	/**
	 * A human line for a send result.
	 *
	 * @param array $result Result.
	 * @return string
	 */
	public static function describe( array $result ) {
		$status = $result['status'] ? 'HTTP ' . $result['status'] : __( 'no answer', 'purgebridge' );
		return trim( $status . ' ' . $result['message'] );
	}

	/** "Send test event": /healthz, then a signed ping that purges nothing. */
	public static function action_test() {
		self::guard( 'test' );
		$health = Purgebridge_Client::health();
		$body   = Purgebridge_Event_Builder::encode( home_url( '/' ), array( Purgebridge_Event_Builder::ping() ), time() );
		$signed = Purgebridge_Client::send( $body, 'background' );
		$ok     = Purgebridge_Policy::DELIVERED === $health['outcome'] && Purgebridge_Policy::DELIVERED === $signed['outcome'];
		self::finish(
			$ok,
			sprintf(
				/* translators: 1: health answer, 2: signed event answer */
				__( 'Relay health: %1$s. Signed test event: %2$s.', 'purgebridge' ),
				self::describe( $health ),
				self::describe( $signed )
			)
		);
	}

	/** "Retry now": revive refused batches and drain ignoring backoff. */
	public static function action_retry() {
		self::guard( 'retry' );
		Purgebridge_Dispatcher::mark_up();
		$revived = Purgebridge_Queue::revive();
		$stats   = Purgebridge_Dispatcher::drain( true );
		self::finish(
			0 === $stats['failed'] && 0 === $stats['dead'],
			sprintf(
				/* translators: 1: sent, 2: failed, 3: refused, 4: revived */
				__( 'Sent %1$d, failed %2$d, refused %3$d (%4$d refused batches were retried).', 'purgebridge' ),
				$stats['sent'],
				$stats['failed'],
				$stats['dead'],
				$revived
			)
		);
	}

	/** "Purge all": a site-wide purge, sent now. */
	public static function action_purge_all() {
		self::guard( 'purge_all' );
		self::send_now( array( Purgebridge_Event_Builder::purge_all( 'manual' ) ), self::redirect_target() );
	}

	/** Admin bar "Purge this page": the post or term behind the page. */
	public static function action_purge_page() {
		self::guard( 'purge_page' );
		$change = null;
		$post   = isset( $_GET['post_id'] ) ? get_post( absint( $_GET['post_id'] ) ) : null; // phpcs:ignore WordPress.Security.NonceVerification.Recommended
		if ( $post ) {
			$snap   = Purgebridge_Snapshot::post( $post );
			$change = $snap['visible'] ? array(
				'kind'   => 'post',
				'action' => 'update',
				'post'   => Purgebridge_Event_Builder::post( $snap, $snap ),
			) : null;
		} elseif ( isset( $_GET['term_id'], $_GET['taxonomy'] ) ) { // phpcs:ignore WordPress.Security.NonceVerification.Recommended
			$term   = Purgebridge_Snapshot::term( absint( $_GET['term_id'] ), sanitize_key( wp_unslash( $_GET['taxonomy'] ) ) ); // phpcs:ignore WordPress.Security.NonceVerification.Recommended
			$change = $term ? Purgebridge_Event_Builder::term_change( 'edit', $term ) : null;
		}
		if ( ! $change ) {
			self::finish( false, __( 'Nothing public to purge on that page.', 'purgebridge' ), self::redirect_target() );
		}
		self::send_now( array( $change ), self::redirect_target() );
	}

	/**
	 * Sends changes synchronously so the result can be shown.
	 *
	 * @param array  $changes  Changes.
	 * @param string $redirect Where to go afterwards.
	 */
	private static function send_now( array $changes, $redirect ) {
		$ok   = true;
		$text = array();
		foreach ( Purgebridge_Event_Builder::bodies( home_url( '/' ), $changes, time() ) as $body ) {
			$result = Purgebridge_Dispatcher::deliver( $body, false, 'background' );
			$ok     = $ok && Purgebridge_Policy::DELIVERED === $result['outcome'];
			$text[] = self::describe( $result ) . ( $result['queued'] ? ' ' . __( '(queued for retry)', 'purgebridge' ) : '' );
		}
		self::finish( $ok, __( 'Relay answered:', 'purgebridge' ) . ' ' . implode( '; ', $text ), $redirect );
	}

	/**
	 * The page to return to after an admin bar action.
	 *
	 * @return string
	 */
	private static function redirect_target() {
		$to = isset( $_REQUEST['redirect_to'] ) ? esc_url_raw( wp_unslash( $_REQUEST['redirect_to'] ) ) : ''; // phpcs:ignore WordPress.Security.NonceVerification.Recommended,WordPress.Security.ValidatedSanitizedInput.InputNotSanitized
		return $to ? wp_validate_redirect( $to, '' ) : '';
	}

	/**
	 * Admin bar entries.
	 *
	 * @param WP_Admin_Bar $bar Admin bar.
	 */
	public static function admin_bar( $bar ) {
		if ( ! current_user_can( 'manage_options' ) ) {
			return;
		}
		$here = is_admin() ? '' : home_url( add_query_arg( array() ) );
		$bar->add_node(
			array(
				'id'    => 'purgebridge',
				'title' => __( 'Purge', 'purgebridge' ),
				'href'  => admin_url( 'options-general.php?page=' . self::PAGE ),
			)
		);
		$args = array( 'action' => 'purgebridge_purge_page' );
		if ( ! is_admin() && is_singular() ) {
			$args['post_id'] = get_queried_object_id();
		} elseif ( ! is_admin() && ( is_category() || is_tag() || is_tax() ) ) {
			$term             = get_queried_object();
			$args['term_id']  = $term->term_id;
			$args['taxonomy'] = $term->taxonomy;
		}
		if ( count( $args ) > 1 ) {
			$args['redirect_to'] = rawurlencode( $here );
			$bar->add_node(
				array(
					'parent' => 'purgebridge',
					'id'     => 'purgebridge-purge-page',
					'title'  => __( 'Purge this page', 'purgebridge' ),
					'href'   => wp_nonce_url( add_query_arg( $args, admin_url( 'admin-post.php' ) ), 'purgebridge_purge_page' ),
				)
			);
		}
		$bar->add_node(
			array(
				'parent' => 'purgebridge',
				'id'     => 'purgebridge-purge-all',
				'title'  => __( 'Purge all', 'purgebridge' ),
				'href'   => wp_nonce_url(
					add_query_arg(
						array(
							'action'      => 'purgebridge_purge_all',
							'redirect_to' => rawurlencode( $here ),
						),
						admin_url( 'admin-post.php' )
					),
					'purgebridge_purge_all'
				),
			)
		);
	}
}
