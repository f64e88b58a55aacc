<?php
/**
 * What every page prints beyond its own content: the theme, the Customizer,
 * classic menus, widgets and the options pages print or that decide what a
 * listing shows. Any change purges the whole site.
 *
 * @package Purgebridge
 */

defined( 'ABSPATH' ) || exit;

/**
 * Site-wide settings collector.
 */
final class Purgebridge_Site_Collector extends Purgebridge_Collector {

	/**
	 * Options printed on many pages or deciding what a listing shows: a
	 * change purges the whole site. widget_* and theme_mods_* (menu
	 * locations, Customizer) are matched by prefix in option_updated().
	 */
	const OPTIONS = array(
		'permalink_structure',
		'category_base',
		'tag_base',
		'blogname',
		'blogdescription',
		'show_on_front',
		'page_on_front',
		'page_for_posts',
		'posts_per_page',
		'posts_per_rss',
		'rss_use_excerpt',
		'date_format',
		'time_format',
		'start_of_week',
		'timezone_string',
		'gmt_offset',
		'site_icon',
		'sidebars_widgets',
		'show_avatars',
		'page_comments',
		'comments_per_page',
		'default_comments_page',
		'comment_order',
		'thread_comments',
		'thread_comments_depth',
		'WPLANG',
	);

	/**
	 * Adds the hooks.
	 */
	public function register() {
		add_action( 'switch_theme', array( $this, 'theme_switched' ) );
		add_action( 'customize_save_after', array( $this, 'customized' ) );
		foreach ( array( 'wp_update_nav_menu', 'wp_create_nav_menu', 'wp_delete_nav_menu', 'wp_update_nav_menu_item' ) as $menu_hook ) {
			add_action( $menu_hook, array( $this, 'menu_changed' ) );
		}
		add_action( 'updated_option', array( $this, 'option_updated' ), 10, 3 );
		add_action( 'added_option', array( $this, 'option_added' ), 10, 2 );
	}

	/** Theme switched. */
	public function theme_switched() {
		$this->buffer->site( 'switch_theme' );
	}

	/** Customizer saved. */
	public function customized() {
		$this->buffer->site( 'customize_save' );
	}

	/** A classic menu changed. */
	public function menu_changed() {
		$this->buffer->site( 'wp_update_nav_menu' );
	}

	/**
	 * An option was added or changed (updated_option fires only when the
	 * value differs): options pages print or that decide what listings show,
	 * widgets (widget_*, sidebars_widgets) and theme mods (nav_menu_locations,
	 * custom logo, header) purge the whole site.
	 *
	 * @param string $option    Option name.
	 * @param mixed  $old_value Value before (updated_option).
	 * @param mixed  $value     Value after (updated_option).
	 */
	public function option_updated( $option, $old_value = null, $value = null ) {
		$option = (string) $option;
		if ( 0 === strpos( $option, 'theme_mods_' ) && self::shown_value( $old_value ) === self::shown_value( $value ) ) {
			return;
		}
		if ( in_array( $option, self::OPTIONS, true ) ) {
			$reasons = array(
				'category_base' => 'permalink_structure',
				'tag_base'      => 'permalink_structure',
			);
			$this->buffer->site( isset( $reasons[ $option ] ) ? $reasons[ $option ] : $option );
		} elseif ( 0 === strpos( $option, 'widget_' ) ) {
			$this->buffer->site( 'widgets' );
		} elseif ( 0 === strpos( $option, 'theme_mods_' ) ) {
			$this->buffer->site( 'theme_mods' );
		}
	}

	/**
	 * An option was created. WordPress creates an empty widget_* option the
	 * first time a widget type is loaded on any page view: that shows nothing.
	 *
	 * @param string $option Option name.
	 * @param mixed  $value  Value.
	 */
	public function option_added( $option, $value ) {
		$shown = self::shown_value( $value );
		if ( ! empty( $shown ) ) {
			$this->option_updated( $option, null, $shown );
		}
	}

	/**
	 * An option value without the bookkeeping WordPress writes on page views:
	 * '_multiwidget' of widget options and 'custom_css_post_id' of theme mods
	 * (set to -1 the first time a front page looks for Additional CSS).
	 *
	 * @param mixed $value Option value.
	 * @return mixed
	 */
	private static function shown_value( $value ) {
		if ( is_array( $value ) ) {
			unset( $value['_multiwidget'], $value['custom_css_post_id'] );
		}
		return $value;
	}
}
