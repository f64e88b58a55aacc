<?php
/**
 * Snapshots and the event builder over a fake site; the published-post case
 * must reproduce the shared test vector's body byte for byte.
 */

use PHPUnit\Framework\TestCase;

final class EventBuilderTest extends TestCase {

	protected function setUp(): void {
		$home = 'https://blog.example.test';
		purgebridge_fake_reset(
			array(
				'types'        => array(
					'post'    => (object) array( 'name' => 'post', 'public' => true, 'show_in_rest' => true, 'rest_base' => 'posts', '_builtin' => true, 'has_archive' => false ),
					'book'    => (object) array( 'name' => 'book', 'public' => true, 'show_in_rest' => true, 'rest_base' => false, '_builtin' => false, 'has_archive' => true ),
					'secret'  => (object) array( 'name' => 'secret', 'public' => true, 'show_in_rest' => false, '_builtin' => false, 'has_archive' => false ),
				),
				'taxonomies'   => array(
					'category' => (object) array( 'name' => 'category', 'public' => true, 'show_in_rest' => true, 'rest_base' => 'categories', 'object_type' => array( 'post' ) ),
					'post_tag' => (object) array( 'name' => 'post_tag', 'public' => true, 'show_in_rest' => true, 'rest_base' => 'tags', 'object_type' => array( 'post' ) ),
					'internal' => (object) array( 'name' => 'internal', 'public' => false, 'show_in_rest' => false, 'object_type' => array( 'post' ) ),
				),
				'terms'        => array(
					1 => (object) array( 'term_id' => 1, 'taxonomy' => 'category', 'parent' => 0, 'link' => "$home/category/news/" ),
					2 => (object) array( 'term_id' => 2, 'taxonomy' => 'category', 'parent' => 1, 'link' => "$home/category/news/world/" ),
					3 => (object) array( 'term_id' => 3, 'taxonomy' => 'post_tag', 'parent' => 0, 'link' => "$home/tag/alpha/" ),
					4 => (object) array( 'term_id' => 4, 'taxonomy' => 'internal', 'parent' => 0, 'link' => "$home/?internal=x" ),
				),
				'authors'      => array( 1 => "$home/author/admin/" ),
				'permalinks'   => array( 42 => "$home/2026/11/26/hello-world/" ),
				'object_terms' => array( 42 => array( 'category' => array( 1 ) ) ),
			)
		);
	}

	private static function post( $id, $status, $type = 'post', $date = '2026-11-26 09:30:00' ) {
		return (object) array(
			'ID'          => $id,
			'post_type'   => $type,
			'post_status' => $status,
			'post_author' => 1,
			'post_date'   => $date,
			'post_parent' => 0,
		);
	}

	private static function vector() {
		return json_decode( (string) file_get_contents( dirname( __DIR__, 3 ) . '/tests/vectors/signing.json' ), true );
	}

	public function test_publish_reproduces_the_shared_vector() {
		$post   = self::post( 42, 'publish' );
		$old    = Purgebridge_Snapshot::post( $post, 'draft' );
		$new    = Purgebridge_Snapshot::post( $post );
		$change = Purgebridge_Event_Builder::post_change( $old, $new );
		$v      = self::vector();
		$body   = Purgebridge_Event_Builder::encode( 'https://blog.example.test', array( $change ), 1764153600, json_decode( $v['body'], true )['batch_id'] );
		$this->assertSame( $v['body'], $body );
		$this->assertSame( $v['signature'], Purgebridge_Signer::sign( $v['secret'], $v['timestamp'], $body ) );
	}

	public function test_same_changes_in_the_same_second_are_signed_differently() {
		// The relay refuses a signature it has seen (409) and the plugin counts that as delivered,
		// so a second batch with the same changes (a stick then an unstick) must not share a signature.
		$changes = array( Purgebridge_Event_Builder::purge_all( 'sticky' ) );
		$first   = Purgebridge_Event_Builder::encode( 'https://blog.example.test/', $changes, 1764153600 );
		$second  = Purgebridge_Event_Builder::encode( 'https://blog.example.test/', $changes, 1764153600 );
		$this->assertMatchesRegularExpression( '/^[0-9a-f]{32}$/', json_decode( $first, true )['batch_id'] );
		$this->assertNotSame( json_decode( $first, true )['batch_id'], json_decode( $second, true )['batch_id'] );
		$this->assertNotSame( Purgebridge_Signer::sign( 's', '1764153600', $first ), Purgebridge_Signer::sign( 's', '1764153600', $second ) );
	}

	public function test_draft_edit_sends_nothing() {
		$post = self::post( 42, 'draft' );
		$snap = Purgebridge_Snapshot::post( $post );
		$this->assertFalse( $snap['visible'] );
		$this->assertNull( $snap['url'] );
		$this->assertNull( Purgebridge_Event_Builder::post_change( $snap, $snap ) );
		$this->assertNull( Purgebridge_Event_Builder::post_change( null, $snap ) );
		$this->assertNull( Purgebridge_Event_Builder::post_change( $snap, null ) );
	}

	public function test_trash_keeps_old_url_terms_and_date() {
		$old = Purgebridge_Snapshot::post( self::post( 42, 'publish' ) );
		$GLOBALS['purgebridge_fake']['permalinks'][42] = 'https://blog.example.test/?p=42';
		$new    = Purgebridge_Snapshot::post( self::post( 42, 'trash' ) );
		$change = Purgebridge_Event_Builder::post_change( $old, $new );
		$this->assertSame( 'trash', $change['action'] );
		$this->assertSame( 'https://blog.example.test/2026/11/26/hello-world/', $change['post']['url_old'] );
		$this->assertNull( $change['post']['url_new'] );
		$this->assertSame( '2026-11-26', $change['post']['date_old'] );
		$this->assertNull( $change['post']['date_new'] );
		$this->assertSame( 'publish', $change['post']['status_old'] );
		$this->assertSame( 'trash', $change['post']['status_new'] );
		$this->assertSame( array( 1 ), array_column( $change['post']['terms_old'], 'id' ) );
		$this->assertSame( array(), $change['post']['terms_new'] );
	}

	public function test_delete_has_null_new_status() {
		$old    = Purgebridge_Snapshot::post( self::post( 42, 'publish' ) );
		$change = Purgebridge_Event_Builder::post_change( $old, null );
		$this->assertSame( 'delete', $change['action'] );
		$this->assertNull( $change['post']['status_new'] );
		$this->assertSame( 42, $change['post']['id'] );
		$this->assertSame( 'posts', $change['post']['rest_base'] );
	}

	public function test_unpublish_to_private() {
		$old    = Purgebridge_Snapshot::post( self::post( 42, 'publish' ) );
		$new    = Purgebridge_Snapshot::post( self::post( 42, 'private' ) );
		$change = Purgebridge_Event_Builder::post_change( $old, $new );
		$this->assertSame( 'unpublish', $change['action'] );
	}

	public function test_category_change_keeps_removed_term_and_ancestors() {
		$old = Purgebridge_Snapshot::post( self::post( 42, 'publish' ) );
		$GLOBALS['purgebridge_fake']['object_terms'][42] = array(
			'category' => array( 2 ),
			'post_tag' => array( 3 ),
			'internal' => array( 4 ),
		);
		$GLOBALS['purgebridge_fake']['permalinks'][42] = 'https://blog.example.test/2026/11/26/new-slug/';
		$new    = Purgebridge_Snapshot::post( self::post( 42, 'publish', 'post', '2026-11-27 08:00:00' ) );
		$change = Purgebridge_Event_Builder::post_change( $old, $new );
		$this->assertSame( 'update', $change['action'] );
		$this->assertSame( array( 1 ), array_column( $change['post']['terms_old'], 'id' ) );
		$this->assertSame( array( 2, 1, 3 ), array_column( $change['post']['terms_new'], 'id' ), 'child, its parent, the tag; never the non-public taxonomy' );
		$this->assertSame( 'https://blog.example.test/2026/11/26/hello-world/', $change['post']['url_old'] );
		$this->assertSame( 'https://blog.example.test/2026/11/26/new-slug/', $change['post']['url_new'] );
		$this->assertSame( '2026-11-26', $change['post']['date_old'] );
		$this->assertSame( '2026-11-27', $change['post']['date_new'] );
		$this->assertSame( 'tags', $change['post']['terms_new'][2]['rest_base'] );
	}

	public function test_override_terms_replace_stored_ones() {
		$terms = Purgebridge_Snapshot::post_terms( self::post( 42, 'publish' ), array( 'category' => array( 2 ) ) );
		$this->assertSame( array( 2, 1 ), array_column( $terms, 'id' ) );
	}

	public function test_custom_type_rest_base_and_archive() {
		$book = Purgebridge_Snapshot::post( self::post( 7, 'publish', 'book' ) );
		$this->assertSame( 'book', $book['rest_base'], 'show_in_rest without rest_base uses the type name' );
		$this->assertSame( 'https://blog.example.test/book/', $book['type_archive_url'] );
		$hidden = Purgebridge_Snapshot::post( self::post( 8, 'publish', 'secret' ) );
		$this->assertNull( $hidden['rest_base'] );
		$this->assertNull( $hidden['type_archive_url'] );
		$post = Purgebridge_Snapshot::post( self::post( 42, 'publish' ) );
		$this->assertNull( $post['type_archive_url'], 'built-in types have no type archive' );
	}

	public function test_attachment_visible_with_published_parent() {
		$GLOBALS['purgebridge_fake']['posts'][42] = self::post( 42, 'publish' );
		$att              = self::post( 9, 'inherit', 'attachment' );
		$att->post_parent = 42;
		$this->assertTrue( Purgebridge_Snapshot::is_visible( $att ) );
		$GLOBALS['purgebridge_fake']['posts'][42] = self::post( 42, 'draft' );
		$this->assertFalse( Purgebridge_Snapshot::is_visible( $att ) );
		$att->post_parent = 0;
		$this->assertTrue( Purgebridge_Snapshot::is_visible( $att ) );
	}

	public function test_comment_change_only_on_visible_post() {
		$visible = Purgebridge_Snapshot::post( self::post( 42, 'publish' ) );
		$change  = Purgebridge_Event_Builder::comment_change( 'approve', 5, $visible );
		$this->assertSame( 'comment', $change['kind'] );
		$this->assertSame( 5, $change['comment_id'] );
		$this->assertSame( $change['post']['url_old'], $change['post']['url_new'] );
		$this->assertNull( Purgebridge_Event_Builder::comment_change( 'approve', 5, Purgebridge_Snapshot::post( self::post( 42, 'draft' ) ) ) );
	}

	public function test_term_change_url_old_only_when_it_moved() {
		$term = Purgebridge_Snapshot::term( 2, 'category' );
		$same = Purgebridge_Event_Builder::term_change( 'edit', $term, $term['url'] );
		$this->assertNull( $same['term']['url_old'] );
		$moved = Purgebridge_Event_Builder::term_change( 'edit', $term, 'https://blog.example.test/category/world/' );
		$this->assertSame( 'https://blog.example.test/category/world/', $moved['term']['url_old'] );
		$this->assertSame( 'https://blog.example.test/category/news/world/', $moved['term']['url'] );
		$this->assertNull( Purgebridge_Snapshot::term( 99, 'category' ) );
	}

	public function test_purge_all_makes_other_changes_redundant() {
		$post   = Purgebridge_Event_Builder::post_change( null, Purgebridge_Snapshot::post( self::post( 42, 'publish' ) ) );
		$bodies = Purgebridge_Event_Builder::bodies( 'https://blog.example.test/', array( $post, Purgebridge_Event_Builder::purge_all( 'switch_theme' ), $post ), 5 );
		$this->assertCount( 1, $bodies );
		$batch = json_decode( $bodies[0], true );
		$this->assertSame( array( array( 'kind' => 'site', 'action' => 'purge_all', 'reason' => 'switch_theme' ) ), $batch['changes'] );
		$this->assertSame( 1, $batch['schema'] );
		$this->assertSame( 5, $batch['sent_at'] );
		$this->assertSame( 'https://blog.example.test/', $batch['site'] );
	}

	public function test_bulk_edit_is_few_valid_batches() {
		$changes = array();
		for ( $i = 1; $i <= 1200; $i++ ) {
			$GLOBALS['purgebridge_fake']['permalinks'][ $i ] = "https://blog.example.test/2026/11/26/post-$i/";
			$snap      = Purgebridge_Snapshot::post( self::post( $i, 'publish' ) );
			$changes[] = Purgebridge_Event_Builder::post_change( $snap, $snap );
		}
		$bodies = Purgebridge_Event_Builder::bodies( 'https://blog.example.test/', $changes, 1 );
		$this->assertGreaterThanOrEqual( 3, count( $bodies ) );
		$seen = array();
		foreach ( $bodies as $body ) {
			$this->assertLessThan( 256 * 1024, strlen( $body ) );
			$batch = json_decode( $body, true );
			$this->assertLessThanOrEqual( 500, count( $batch['changes'] ) );
			$this->assertGreaterThanOrEqual( 1, count( $batch['changes'] ) );
			foreach ( $batch['changes'] as $c ) {
				$seen[] = $c['post']['id'];
			}
		}
		$this->assertSame( range( 1, 1200 ), $seen );
	}

	public function test_unicode_and_slashes_are_not_escaped() {
		$body = Purgebridge_Event_Builder::encode( 'https://blog.example.test/', array( Purgebridge_Event_Builder::purge_all( 'blogname é' ) ), 1 );
		$this->assertStringContainsString( 'https://blog.example.test/', $body );
		$this->assertStringContainsString( 'é', $body );
	}

	public function test_targets_change_of_the_public_api() {
		$change = Purgebridge_Event_Builder::targets_change( array( 'https://blog.example.test/landing/' ), array( 'https://blog.example.test/author/old/' ), array( 'campaign-7' ) );
		$this->assertSame( 'urls', $change['kind'] );
		$this->assertSame( 'purge', $change['action'] );
		$this->assertSame( array( 'https://blog.example.test/landing/' ), $change['urls'] );
		$this->assertSame( array( 'https://blog.example.test/author/old/' ), $change['archives'] );
		$this->assertSame( array( 'campaign-7' ), $change['keys'] );
	}

	public function test_merge_terms_keeps_each_term_once() {
		$news  = array( 'id' => 1, 'taxonomy' => 'category', 'rest_base' => 'categories', 'url' => 'https://blog.example.test/category/news/' );
		$alpha = array( 'id' => 3, 'taxonomy' => 'post_tag', 'rest_base' => 'tags', 'url' => 'https://blog.example.test/tag/alpha/' );
		$this->assertSame( array( $news, $alpha ), Purgebridge_Snapshot::merge_terms( array( $news ), array( $news, $alpha ) ) );
	}
}
