<?php
/**
 * A short notice in the block editor after "Update": "Cache purge sent." or
 * "Cache purge queued: the relay is unreachable ...", next to WordPress's own
 * "Post updated." snackbar.
 *
 * The batch leaves at the end of the save request, after (or while) the
 * editor gets its answer, so the editor asks afterwards: a small script
 * watches the editor's save finish and asks admin-ajax what the last send of
 * this site did since the save started (Purgebridge_Relay_State). It asks at
 * most four times in three seconds, and only after saving a published post
 * (a draft's save purges nothing).
 *
 * @package Purgebridge
 */

defined( 'ABSPATH' ) || exit;

/**
 * The block editor's purge notice.
 */
final class Purgebridge_Editor_Notice {

	/** Script handle and admin-ajax action. */
	const HANDLE = 'purgebridge-editor-notice';
	const AJAX   = 'purgebridge_send_state';

	/**
	 * Registers the hooks.
	 */
	public static function register() {
		add_action( 'enqueue_block_editor_assets', array( __CLASS__, 'enqueue' ) );
		add_action( 'wp_ajax_' . self::AJAX, array( __CLASS__, 'ajax' ) );
	}

	/**
	 * The script, inline (a few lines; no build step, no extra request).
	 */
	public static function enqueue() {
		if ( ! Purgebridge_Settings::configured() ) {
			return;
		}
		wp_register_script( self::HANDLE, false, array( 'wp-data', 'wp-notices', 'wp-editor' ), PURGEBRIDGE_VERSION, true );
		wp_enqueue_script( self::HANDLE );
		$config = array(
			'ajax'   => admin_url( 'admin-ajax.php' ),
			'action' => self::AJAX,
			'nonce'  => wp_create_nonce( self::AJAX ),
		);
		wp_add_inline_script( self::HANDLE, 'window.purgebridgeEditor = ' . wp_json_encode( $config ) . ';' . self::script() );
	}

	/**
	 * The watcher.
	 *
	 * @return string
	 */
	private static function script() {
		return <<<'JS'
( function ( wp, cfg ) {
	var wasSaving = false, since = 0;
	function ask( tries ) {
		setTimeout( function () {
			var body = new FormData();
			body.append( 'action', cfg.action );
			body.append( '_ajax_nonce', cfg.nonce );
			body.append( 'since', String( since ) );
			fetch( cfg.ajax, { method: 'POST', credentials: 'same-origin', body: body } )
				.then( function ( r ) { return r.json(); } )
				.then( function ( res ) {
					if ( ! res || ! res.success ) { return; }
					if ( 'unknown' === res.data.state ) {
						if ( tries < 3 ) { ask( tries + 1 ); }
						return;
					}
					wp.data.dispatch( 'core/notices' ).createNotice(
						'sent' === res.data.state ? 'success' : 'warning',
						res.data.text,
						{ id: 'purgebridge-send', type: 'snackbar', isDismissible: true }
					);
				} )
				.catch( function () {} );
		}, tries ? 800 : 300 );
	}
	wp.data.subscribe( function () {
		var editor = wp.data.select( 'core/editor' );
		if ( ! editor || ! editor.isSavingPost ) { return; }
		var saving = editor.isSavingPost() && ! editor.isAutosavingPost();
		if ( saving && ! wasSaving ) { since = Math.floor( Date.now() / 1000 ) - 1; }
		// Only a published post's save purges anything (a draft's does not: nothing to say).
		if ( wasSaving && ! saving && editor.didPostSaveRequestSucceed() && 'publish' === editor.getCurrentPostAttribute( 'status' ) ) { ask( 0 ); }
		wasSaving = saving;
	} );
} )( window.wp, window.purgebridgeEditor );
JS;
	}

	/**
	 * admin-ajax: what the last send since the save did.
	 */
	public static function ajax() {
		check_ajax_referer( self::AJAX );
		if ( ! current_user_can( 'edit_posts' ) ) {
			wp_send_json_error( null, 403 );
		}
		$since = isset( $_POST['since'] ) ? absint( $_POST['since'] ) : 0;
		wp_send_json_success( self::state( $since ) );
	}

	/**
	 * state ('sent', 'queued' or 'unknown': nothing sent since $since yet) and text.
	 *
	 * @param int $since Unix time the save started.
	 * @return array{state:string,text:string}
	 */
	public static function state( $since ) {
		$last = Purgebridge_Relay_State::last_delivery();
		$time = isset( $last['time'] ) ? (int) $last['time'] : 0;
		// A run of deliveries is written once a minute (Relay_State::record()), any other answer at once:
		// a "delivered" record under a minute old also stands for the sends since.
		$recent = isset( $last['outcome'] ) && Purgebridge_Outcome::DELIVERED === $last['outcome'] ? $since - 60 : $since;
		if ( $time >= $recent && isset( $last['outcome'] ) && ! Purgebridge_Relay_State::is_down() ) {
			if ( Purgebridge_Outcome::DELIVERED === $last['outcome'] ) {
				return array(
					'state' => 'sent',
					'text'  => __( 'Cache purge sent.', 'purgebridge' ),
				);
			}
			return array(
				'state' => 'queued',
				'text'  => __( 'Cache purge queued: the relay did not take it; it is sent again automatically.', 'purgebridge' ),
			);
		}
		if ( Purgebridge_Relay_State::is_down() && Purgebridge_Operations::queue_state()['pending'] > 0 ) {
			return array(
				'state' => 'queued',
				'text'  => __( 'Cache purge queued: the relay is unreachable; it is sent when the relay is back.', 'purgebridge' ),
			);
		}
		return array(
			'state' => 'unknown',
			'text'  => '',
		);
	}
}
