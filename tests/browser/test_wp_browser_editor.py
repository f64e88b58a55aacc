"""An editor in a real browser: headless Chromium logs in, edits a post in the
block editor, clicks Update, waits for "Post updated"; then every node of the
cluster (three varnishd, vcl/wordpress.vcl) serves the new page.

The save goes the way WordPress's own JavaScript sends it (the REST API, with
the editor's nonce and cookies); the plugin's batch leaves at the end of that
request, and the real relay purges the nodes. What the plugin adds to the
click → "Post updated" time is measured by bench/editor_click.py, not here.
"""

import pytest

from fixtures.block_editor import click_update, open_editor, retype_title
from fixtures.browser import wp_login
from fixtures.wp_relay import check, path_of, php, warm

pytestmark = [pytest.mark.integration, pytest.mark.wordpress]


def test_update_in_the_block_editor_purges_every_node(wordpress_site, wp_cluster, relay, browser):
    site = wordpress_site
    post_id = php(site, """return wp_insert_post(array('post_title' => 'Browser story', 'post_status' => 'publish',
        'post_content' => '<!-- wp:paragraph --><p>Written before the browser came.</p><!-- /wp:paragraph -->'));""")
    relay.drained()
    story = path_of(site, php(site, "return get_permalink(%d);" % post_id))
    warm(wp_cluster, site, [story, "/"])
    wp_login(browser, site)
    open_editor(browser, site, post_id)
    retype_title(browser, "Browser story, edited in Chromium")
    click_update(browser)
    relay.drained()
    check(wp_cluster, site, [story, "/"], [])
    for node in wp_cluster.nodes:
        status, _headers, body = node.get(story, site.host)
        assert status == 200 and b"Browser story, edited in Chromium" in body, node.name
    severe = [entry["message"] for entry in browser.get_log("browser")
              if entry["level"] == "SEVERE" and "127.0.0.1" in entry["message"]]
    assert severe == [], "the editor logged errors about the site"
