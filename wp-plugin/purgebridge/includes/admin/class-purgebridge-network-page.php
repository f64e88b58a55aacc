<?php
/**
 * Network Admin → Settings → Purgebridge on a multisite network: the relay
 * URL and secret every site uses (saved by
 * Purgebridge_Admin_Settings::save_network()).
 *
 * @package Purgebridge
 */

defined( 'ABSPATH' ) || exit;

/**
 * The network settings page.
 */
final class Purgebridge_Network_Page {

	const PAGE = 'purgebridge-network';

	/**
	 * Registers the hooks (multisite only).
	 */
	public static function register() {
		if ( ! is_multisite() ) {
			return;
		}
		add_action( 'network_admin_menu', array( __CLASS__, 'menu' ) );
	}

	/**
	 * Network Admin → Settings → Purgebridge.
	 */
	public static function menu() {
		add_submenu_page( 'settings.php', __( 'Purgebridge', 'purgebridge' ), __( 'Purgebridge', 'purgebridge' ), 'manage_network_options', self::PAGE, array( __CLASS__, 'render' ) );
	}

	/**
	 * The network settings page: relay URL and secret for every site.
	 */
	public static function render() {
		if ( ! current_user_can( 'manage_network_options' ) ) {
			return;
		}
		echo '<div class="wrap"><h1>' . esc_html__( 'Purgebridge (network)', 'purgebridge' ) . '</h1>';
		if ( isset( $_GET['updated'] ) ) {
			echo '<div class="notice notice-success"><p>' . esc_html__( 'Network settings saved.', 'purgebridge' ) . '</p></div>';
		}
		echo '<p>' . esc_html__( 'Every site of this network sends its changes to this relay, signed with this secret. Site administrators see these settings but cannot change them.', 'purgebridge' ) . '</p>';
		echo '<form method="post" action="' . esc_url( network_admin_url( 'edit.php?action=' . self::PAGE ) ) . '">';
		wp_nonce_field( self::PAGE );
		echo '<table class="form-table" role="presentation"><tr><th scope="row"><label for="purgebridge_relay_url">' . esc_html__( 'Relay URL', 'purgebridge' ) . '</label></th><td>';
		Purgebridge_Admin::field_url();
		echo '</td></tr><tr><th scope="row"><label for="purgebridge_secret">' . esc_html__( 'Secret', 'purgebridge' ) . '</label></th><td>';
		Purgebridge_Admin::field_secret();
		echo '</td></tr></table>';
		submit_button();
		echo '</form></div>';
	}
}
