<?php
/**
 * The settings of Settings → Purgebridge: registered with the Settings API,
 * checked and sanitized when saved (from the form or any update_option()).
 * The fields themselves are drawn by Purgebridge_Admin.
 *
 * @package Purgebridge
 */

defined( 'ABSPATH' ) || exit;

/**
 * Settings registration and saving.
 */
final class Purgebridge_Admin_Settings {

	/**
	 * Registers the hooks.
	 */
	public static function register() {
		add_action( 'admin_init', array( __CLASS__, 'settings' ) );
		// Every write of the option, not only the settings form's (register_setting() runs on admin_init only).
		add_filter( 'sanitize_option_purgebridge_relay_url', array( __CLASS__, 'sanitize_relay_url' ) );
		if ( is_multisite() ) {
			add_action( 'network_admin_edit_' . Purgebridge_Network_Page::PAGE, array( __CLASS__, 'save_network' ) );
		}
	}

	/**
	 * Registers the settings with the Settings API.
	 */
	public static function settings() {
		$relay_here = ! is_multisite() || is_network_admin(); // Multisite: the relay is the network admin's (Purgebridge_Network).
		$relay_here && register_setting(
			Purgebridge_Admin::PAGE,
			'purgebridge_relay_url',
			array(
				'type'    => 'string',
				'default' => '',
			)
		);
		$relay_here && register_setting(
			Purgebridge_Admin::PAGE,
			'purgebridge_secret',
			array(
				'type'              => 'string',
				'sanitize_callback' => array( __CLASS__, 'sanitize_secret' ),
				'default'           => '',
			)
		);
		foreach ( array( 'purgebridge_xkey', 'purgebridge_esi_tag_cloud' ) as $flag ) {
			register_setting(
				Purgebridge_Admin::PAGE,
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
				Purgebridge_Admin::PAGE,
				$name,
				array(
					'type'              => 'number',
					'sanitize_callback' => array( __CLASS__, 'sanitize_load' ),
					'default'           => $default,
				)
			);
		}
		register_setting(
			Purgebridge_Admin::PAGE,
			'purgebridge_queue_max',
			array(
				'type'              => 'integer',
				'sanitize_callback' => 'absint',
				'default'           => 1000,
			)
		);

		add_settings_section( 'purgebridge_relay', __( 'Relay', 'purgebridge' ), '__return_false', Purgebridge_Admin::PAGE );
		add_settings_field( 'purgebridge_relay_url', __( 'Relay URL', 'purgebridge' ), array( 'Purgebridge_Admin', 'field_url' ), Purgebridge_Admin::PAGE, 'purgebridge_relay', array( 'label_for' => 'purgebridge_relay_url' ) );
		add_settings_field( 'purgebridge_secret', __( 'Secret', 'purgebridge' ), array( 'Purgebridge_Admin', 'field_secret' ), Purgebridge_Admin::PAGE, 'purgebridge_relay', array( 'label_for' => 'purgebridge_secret' ) );
		add_settings_section( 'purgebridge_front', __( 'Front end', 'purgebridge' ), '__return_false', Purgebridge_Admin::PAGE );
		add_settings_field( 'purgebridge_xkey', __( 'Surrogate keys', 'purgebridge' ), array( 'Purgebridge_Admin', 'field_flag' ), Purgebridge_Admin::PAGE, 'purgebridge_front', array( 'name' => 'purgebridge_xkey', 'label' => __( 'Send an xkey header (post-ID, term-ID, author-ID, front)', 'purgebridge' ) ) );
		add_settings_field( 'purgebridge_esi_tag_cloud', __( 'Tag cloud fragment', 'purgebridge' ), array( 'Purgebridge_Admin', 'field_flag' ), Purgebridge_Admin::PAGE, 'purgebridge_front', array( 'name' => 'purgebridge_esi_tag_cloud', 'label' => __( 'Serve the tag cloud as an ESI include', 'purgebridge' ) ) );
		add_settings_field( 'purgebridge_probe_level2', __( 'Load probe, level 2', 'purgebridge' ), array( 'Purgebridge_Admin', 'field_number' ), Purgebridge_Admin::PAGE, 'purgebridge_front', array( 'name' => 'purgebridge_probe_level2', 'default' => 10 ) );
		add_settings_field( 'purgebridge_probe_level3', __( 'Load probe, level 3', 'purgebridge' ), array( 'Purgebridge_Admin', 'field_number' ), Purgebridge_Admin::PAGE, 'purgebridge_front', array( 'name' => 'purgebridge_probe_level3', 'default' => 20 ) );
		add_settings_field( 'purgebridge_queue_max', __( 'Retry queue size', 'purgebridge' ), array( 'Purgebridge_Admin', 'field_number' ), Purgebridge_Admin::PAGE, 'purgebridge_front', array( 'name' => 'purgebridge_queue_max', 'default' => 1000 ) );
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

	/**
	 * Saves the network settings page (network_admin_edit_ action).
	 */
	public static function save_network() {
		check_admin_referer( Purgebridge_Network_Page::PAGE );
		if ( ! current_user_can( 'manage_network_options' ) ) {
			wp_die( esc_html__( 'Only a network administrator may change the relay.', 'purgebridge' ), 403 );
		}
		// sanitize_option() runs the setting's own sanitizer.
		if ( ! Purgebridge_Settings::url_locked() && isset( $_POST['purgebridge_relay_url'] ) ) {
			$url = sanitize_option( 'purgebridge_relay_url', wp_unslash( $_POST['purgebridge_relay_url'] ) );
			update_site_option( 'purgebridge_relay_url', $url );
		}
		if ( ! Purgebridge_Settings::secret_locked() && isset( $_POST['purgebridge_secret'] ) ) {
			$secret = trim( (string) wp_unslash( $_POST['purgebridge_secret'] ) );
			if ( '' !== $secret ) {
				update_site_option( 'purgebridge_secret', $secret );
			}
		}
		wp_safe_redirect( add_query_arg( array( 'page' => Purgebridge_Network_Page::PAGE, 'updated' => 1 ), network_admin_url( 'settings.php' ) ) );
		exit;
	}
}
