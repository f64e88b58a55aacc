<?php
/**
 * What the plugin tells people, where they are (the dismiss button's
 * admin-ajax handler is Purgebridge_Admin_Actions::ajax_dismiss()):
 *
 * - the result of an action they just took (purge, test, retry), shown once
 *   on the page they land on: any wp-admin screen, or the front-end page the
 *   admin bar action started from;
 * - standing admin notices for administrators (manage_options) while the
 *   plugin is not configured or the relay refuses batches. Each can be
 *   dismissed; a dismissal holds until the problem changes (a new refusal,
 *   a different configuration problem).
 *
 * @package Purgebridge
 */

defined( 'ABSPATH' ) || exit;

/**
 * Flash results and admin notices.
 */
final class Purgebridge_Notices {

	const DISMISSED_META = 'purgebridge_dismissed_notices';
	const AJAX_DISMISS   = 'purgebridge_dismiss_notice';

	/**
	 * Registers the hooks.
	 */
	public static function register() {
		add_action( 'admin_notices', array( __CLASS__, 'admin_notices' ) );
		add_action( 'wp_footer', array( __CLASS__, 'front_flash' ), 100 );
	}

	/**
	 * Keeps an action's result for the current user's next page.
	 *
	 * @param bool   $ok   Success.
	 * @param string $text Plain words.
	 */
	public static function flash( $ok, $text ) {
		set_transient(
			self::flash_key(),
			array(
				'ok'   => (bool) $ok,
				'text' => (string) $text,
			),
			300
		);
	}

	/**
	 * The stored result, forgotten as it is read; null when there is none.
	 *
	 * @return array{ok:bool,text:string}|null
	 */
	public static function take_flash() {
		$user = get_current_user_id();
		if ( ! $user ) {
			return null;
		}
		$flash = get_transient( self::flash_key() );
		if ( ! is_array( $flash ) ) {
			return null;
		}
		delete_transient( self::flash_key() );
		return $flash;
	}

	/**
	 * Transient name of the current user's result.
	 *
	 * @return string
	 */
	private static function flash_key() {
		return 'purgebridge_notice_' . get_current_user_id();
	}

	/**
	 * On a front-end page: the admin bar action's result, fixed under the admin bar.
	 */
	public static function front_flash() {
		if ( is_admin() || ! is_admin_bar_showing() ) {
			return;
		}
		$flash = self::take_flash();
		if ( ! $flash ) {
			return;
		}
		printf(
			'<div id="purgebridge-notice" class="purgebridge-notice purgebridge-notice-%1$s" role="status" style="position:fixed;top:40px;right:16px;z-index:100000;max-width:32em;padding:12px 36px 12px 16px;background:#fff;color:#1d2327;border-left:4px solid %2$s;box-shadow:0 2px 8px rgba(0,0,0,.25);font:14px/1.5 -apple-system,BlinkMacSystemFont,sans-serif"><p style="margin:0">%3$s</p><button type="button" aria-label="%4$s" onclick="this.parentNode.remove()" style="position:absolute;top:6px;right:8px;border:0;background:none;font-size:18px;cursor:pointer">&times;</button></div>',
			esc_attr( $flash['ok'] ? 'success' : 'error' ),
			esc_attr( $flash['ok'] ? '#00a32a' : '#d63638' ),
			esc_html( $flash['text'] ),
			esc_attr__( 'Dismiss', 'purgebridge' )
		);
	}

	/**
	 * On wp-admin screens: the last action's result, then the standing notices.
	 */
	public static function admin_notices() {
		$flash = self::take_flash();
		if ( $flash ) {
			printf(
				'<div id="purgebridge-notice" class="notice notice-%1$s is-dismissible"><p>%2$s</p></div>',
				esc_attr( $flash['ok'] ? 'success' : 'error' ),
				esc_html( $flash['text'] )
			);
		}
		if ( ! current_user_can( 'manage_options' ) || self::on_settings_page() ) {
			return; // The settings page shows the same in its status table.
		}
		$dismissed = self::dismissed();
		$printed   = false;
		foreach ( self::standing() as $id => $notice ) {
			if ( isset( $dismissed[ $id ] ) && $dismissed[ $id ] === $notice['fingerprint'] ) {
				continue;
			}
			$printed = true;
			printf(
				'<div class="notice notice-%1$s is-dismissible purgebridge-standing" id="purgebridge-%2$s" data-purgebridge-notice="%2$s" data-fingerprint="%3$s"><p><strong>%4$s</strong> %5$s <a href="%6$s">%7$s</a></p></div>',
				esc_attr( $notice['type'] ),
				esc_attr( $id ),
				esc_attr( $notice['fingerprint'] ),
				esc_html__( 'Purgebridge:', 'purgebridge' ),
				esc_html( $notice['text'] ),
				esc_url( admin_url( 'options-general.php?page=' . Purgebridge_Admin::PAGE ) ),
				esc_html__( 'Open the Purgebridge settings', 'purgebridge' )
			);
		}
		if ( $printed ) {
			self::dismiss_script();
		}
	}

	/**
	 * The standing notices that apply now: id => type, text, fingerprint.
	 *
	 * @return array<string,array{type:string,text:string,fingerprint:string}>
	 */
	public static function standing() {
		$notices = array();
		$problem = Purgebridge_Operations::configuration_problem();
		if ( '' !== $problem ) {
			$notices['unconfigured'] = array(
				'type'        => 'warning',
				'text'        => $problem,
				'fingerprint' => md5( $problem ),
			);
		}
		$state = Purgebridge_Operations::queue_state();
		$error = Purgebridge_Relay_State::last_error();
		if ( $state['refused'] > 0 ) {
			$time               = isset( $error['time'] ) ? (int) $error['time'] : 0;
			$why                = isset( $error['status'] ) ? Purgebridge_Answer::describe(
				array(
					'outcome' => Purgebridge_Outcome::PERMANENT,
					'status'  => (int) $error['status'],
					'message' => (string) $error['message'],
				)
			) : '';
			$notices['refused'] = array(
				'type'        => 'error',
				'text'        => sprintf(
					/* translators: 1: number of batches, 2: the relay's reason */
					_n( 'The relay refused %1$d batch of changes, so those pages were not purged. %2$s Fix the cause, then press "Retry now".', 'The relay refused %1$d batches of changes, so those pages were not purged. %2$s Fix the cause, then press "Retry now".', $state['refused'], 'purgebridge' ),
					$state['refused'],
					$why
				),
				'fingerprint' => (string) $time,
			);
		}
		return $notices;
	}

	/**
	 * Dismissals of the current user: notice id => fingerprint.
	 *
	 * @return array<string,string>
	 */
	private static function dismissed() {
		$dismissed = get_user_meta( get_current_user_id(), self::DISMISSED_META, true );
		return is_array( $dismissed ) ? $dismissed : array();
	}

	/**
	 * Remembers that the current user dismissed a notice in its present form.
	 *
	 * @param string $id          Notice id.
	 * @param string $fingerprint What the notice said when dismissed.
	 * @return bool
	 */
	public static function dismiss( $id, $fingerprint ) {
		$dismissed                        = self::dismissed();
		$dismissed[ sanitize_key( $id ) ] = (string) $fingerprint;
		return (bool) update_user_meta( get_current_user_id(), self::DISMISSED_META, $dismissed );
	}

	/**
	 * Sends the close button's click to admin-ajax, so the dismissal lasts.
	 */
	private static function dismiss_script() {
		$data = wp_json_encode(
			array(
				'url'   => admin_url( 'admin-ajax.php' ),
				'nonce' => wp_create_nonce( self::AJAX_DISMISS ),
			)
		);
		echo '<script>document.addEventListener("click",function(e){var b=e.target.closest?e.target.closest(".purgebridge-standing .notice-dismiss"):null;if(!b){return;}var n=b.closest(".purgebridge-standing"),d=' . $data . ',f=new FormData();f.append("action","' . esc_js( self::AJAX_DISMISS ) . '");f.append("_ajax_nonce",d.nonce);f.append("notice",n.getAttribute("data-purgebridge-notice"));f.append("fingerprint",n.getAttribute("data-fingerprint"));fetch(d.url,{method:"POST",body:f,credentials:"same-origin"});});</script>'; // JSON from wp_json_encode
	}

	/**
	 * Whether the current screen is the plugin's settings page.
	 *
	 * @return bool
	 */
	private static function on_settings_page() {
		global $pagenow;
		return 'options-general.php' === $pagenow && isset( $_GET['page'] ) && Purgebridge_Admin::PAGE === $_GET['page'];
	}
}
