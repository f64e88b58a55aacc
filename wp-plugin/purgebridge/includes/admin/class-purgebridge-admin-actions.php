<?php
/**
 * The buttons of the settings page and the admin bar (test, retry now,
 * purge URLs, purge all, purge this page), as admin-post.php handlers. Every
 * action needs a nonce and a capability: manage_options, except "Purge this
 * page" on a post, which needs edit_post for that post. The work itself is
 * Purgebridge_Operations'; the result is flashed (Purgebridge_Notices) on
 * the page the user returns to.
 *
 * @package Purgebridge
 */

defined( 'ABSPATH' ) || exit;

/**
 * Admin action handlers.
 */
final class Purgebridge_Admin_Actions {

	/**
	 * Registers the admin-post.php and admin-ajax.php handlers.
	 */
	public static function register() {
		foreach ( array( 'test', 'retry', 'purge_all', 'purge_page', 'purge_url' ) as $action ) {
			add_action( 'admin_post_purgebridge_' . $action, array( __CLASS__, 'action_' . $action ) );
		}
		add_action( 'wp_ajax_' . Purgebridge_Notices::AJAX_DISMISS, array( __CLASS__, 'ajax_dismiss' ) );
	}

	/**
	 * Shows the result where the action started and ends the request.
	 *
	 * @param array  $result   ok, message.
	 * @param string $redirect Where to go ('' = the settings page).
	 */
	private static function finish( array $result, $redirect = '' ) {
		Purgebridge_Notices::flash( $result['ok'], $result['message'] );
		wp_safe_redirect( '' !== $redirect ? $redirect : Purgebridge_Admin::page_url() );
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
		self::finish( Purgebridge_Operations::purge_all( 'manual' ), Purgebridge_Admin::redirect_target() );
	}

	/** The "Purge URLs" box. */
	public static function action_purge_url() {
		self::guard( 'purge_url' );
		$lines = isset( $_POST['urls'] ) ? preg_split( '/[\r\n]+/', (string) wp_unslash( $_POST['urls'] ) ) : array(); // Each line is checked by site_urls()
		self::finish( Purgebridge_Operations::purge_urls( (array) $lines, array(), 'settings' ) );
	}

	/**
	 * Admin bar "Purge this page": a post's page needs edit_post for it; any
	 * other page (archives, search, the front page) needs manage_options.
	 */
	public static function action_purge_page() {
		$post_id = isset( $_GET['post_id'] ) ? absint( $_GET['post_id'] ) : 0; // The nonce is checked by guard().
		if ( $post_id ) {
			self::guard( 'purge_page', 'edit_post', $post_id );
			self::finish( Purgebridge_Operations::purge_post( $post_id ), Purgebridge_Admin::redirect_target() );
		}
		self::guard( 'purge_page' );
		$back = Purgebridge_Admin::redirect_target();
		self::finish( Purgebridge_Operations::purge_urls( array( $back ), array(), 'admin_bar' ), $back );
	}

	/**
	 * admin-ajax: a standing notice's close button was pressed.
	 */
	public static function ajax_dismiss() {
		check_ajax_referer( Purgebridge_Notices::AJAX_DISMISS );
		if ( ! current_user_can( 'manage_options' ) ) {
			wp_send_json_error( null, 403 );
		}
		$id          = isset( $_POST['notice'] ) ? sanitize_key( wp_unslash( $_POST['notice'] ) ) : '';
		$fingerprint = isset( $_POST['fingerprint'] ) ? sanitize_text_field( wp_unslash( $_POST['fingerprint'] ) ) : '';
		Purgebridge_Notices::dismiss( $id, $fingerprint );
		wp_send_json_success();
	}
}
