"""An editor in a real browser: headless Chromium logs in, edits a post in the
block editor, clicks Update, waits for "Post updated"; then every node of the
cluster (three varnishd, vcl/wordpress.vcl) serves the new page.

The save goes the way WordPress's own JavaScript sends it (the REST API, with
the editor's nonce and cookies); the plugin's batch leaves at the end of that
request, and the real relay purges the nodes. What the plugin adds to the
click → "Post updated" time is measured by bench/editor_click.py, not here.
"""

import os
from pathlib import Path

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


def snackbar(browser, text, timeout=20):
    """Wait for a block-editor snackbar containing ``text``; returns every snackbar's text."""
    from selenium.webdriver.support.ui import WebDriverWait

    def shown(driver):
        found = [el.text for el in driver.find_elements("css selector", ".components-snackbar")]
        return found if any(text in t for t in found) else False
    return WebDriverWait(browser, timeout).until(shown)


def test_after_update_the_editor_says_whether_the_purge_was_sent_or_queued(wordpress_site, wp_cluster, relay,
                                                                             browser, tmp_path):
    site = wordpress_site
    post_id = php(site, """return wp_insert_post(array('post_title' => 'Snackbar story', 'post_status' => 'publish',
        'post_content' => '<!-- wp:paragraph --><p>Told.</p><!-- /wp:paragraph -->'));""")
    relay.drained()
    wp_login(browser, site)
    open_editor(browser, site, post_id)
    retype_title(browser, "Snackbar story, sent")
    click_update(browser)
    assert any(t.startswith("Cache purge sent.") for t in snackbar(browser, "Cache purge sent."))
    relay.drained()
    relay.stop()
    try:
        retype_title(browser, "Snackbar story, queued")
        click_update(browser)
        texts = snackbar(browser, "Cache purge queued")
        assert any("Cache purge queued: the relay" in t for t in texts), texts
        assert not any("Cache purge sent." in t for t in texts[-1:]), texts
        shots = Path(os.environ.get("PURGEBRIDGE_SCREENSHOTS") or tmp_path)
        browser.save_screenshot(str(shots / "editor-purge-queued.png"))
    finally:
        relay.start()
    php(site, "Purgebridge_Relay_State::mark_up(); Purgebridge_Dispatcher::drain(true); return true;")
    relay.drained()
