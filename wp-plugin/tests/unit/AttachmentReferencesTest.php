<?php
/**
 * Which attachments a post's content names by ID: the extraction both the
 * front end's attachment-<id> keys and the lookup of the posts using an
 * attachment rely on.
 */

use PHPUnit\Framework\TestCase;

final class AttachmentReferencesTest extends TestCase {

	public function test_image_and_media_blocks_classes_and_galleries() {
		$content = '<!-- wp:image {"id":12,"sizeSlug":"large"} --><figure><img class="wp-image-12"/></figure><!-- /wp:image -->'
			. '<!-- wp:media-text {"mediaId":31,"mediaType":"image"} --><!-- /wp:media-text -->'
			. '<!-- wp:cover {"url":"x.jpg","id":40} --><!-- /wp:cover -->'
			. '[gallery columns="2" ids="7, 8,9"]'
			. '<!-- wp:gallery {"ids":[21,22]} --><!-- /wp:gallery -->'
			. '<p><img class="alignleft wp-image-55 size-full" src="y.png"></p>';
		$ids = Purgebridge_Attachment_References::ids_in( $content );
		sort( $ids );
		$this->assertSame( array( 7, 8, 9, 12, 21, 22, 31, 40, 55 ), $ids );
	}

	public function test_ids_that_are_no_attachments_are_not_taken() {
		$content = '<!-- wp:query {"queryId":3} --><!-- /wp:query --><!-- wp:block {"ref":5} /-->'
			. '<p>{"id":99} in a paragraph, wp-image-x, ids="a,b"</p>';
		$this->assertSame( array(), Purgebridge_Attachment_References::ids_in( $content ) );
		$this->assertSame( array(), Purgebridge_Attachment_References::ids_in( '' ) );
	}
}
