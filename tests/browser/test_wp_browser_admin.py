"""What a site's administrator sees, clicked through in a real browser.

    Chromium (Debian's, headless, via selenium) -> php -S (WordPress; purgebridge installed from
    purgebridge.zip by WordPress's own Plugin_Upgrader) -> relay -> 3 x varnishd (vcl/wordpress.vcl)

The steps share one browser session, one WordPress, one relay and one cluster,
and run in file order: the settings page loads clean (no PHP notice, no
console error); "Send test event" with the relay up shows success and updates
the status table, with the relay stopped shows a clear failure; "Purge this
page" in the admin bar purges that page on every node (and not the front page)
and says so on the page; "Purge all…" asks first; Site Health lists the
purgebridge tests; the refusal notice's close button dismisses it for good.

Screenshots of the settings page with the relay up and down, and of a post
after "Purge this page", are written to
$PURGEBRIDGE_SCREENSHOTS (docs/img to refresh the ones in docs/wordpress.md)
or to the test's temp dir.
"""

import os
from pathlib import Path
import re
import subprocess

import pytest

from fixtures.browser import wp_login
from fixtures.wordpress import served_wordpress
from fixtures.wp_relay import check, path_of, relay, warm, wp_cluster

pytestmark = [pytest.mark.integration, pytest.mark.wordpress]

REPO = Path(__file__).resolve().parents[2]
BUILD_ZIP = REPO / "wp-plugin" / "bin" / "build-zip.sh"
WAIT = 30  # seconds any one page or element may take on a loaded 2-core machine


@pytest.fixture(scope="module")
def wordpress_site(tmp_path_factory):
    """WordPress with purgebridge installed from the built zip through Plugin_Upgrader, then activated.

    It stands in for the shared ``wordpress_site``, so the shared ``wp_cluster``
    and ``relay`` fixtures serve this site.
    """
    base = tmp_path_factory.mktemp("wp-zip")
    built = subprocess.run(["bash", str(BUILD_ZIP), str(base / "purgebridge.zip")], capture_output=True, text=True,
                           timeout=120)
    assert built.returncode == 0, built.stderr
    with served_wordpress(base / "site", extra_config="define('FS_METHOD', 'direct');",
                          plugin_zip=base / "purgebridge.zip") as site:
        # Offline machine: Gravatar images in the admin bar would be console errors that are not ours.
        site.php("update_option('show_avatars', 0); return true;")
        yield site


@pytest.fixture(scope="module")
def posts(wordpress_site, relay):
    site = wordpress_site
    ids = site.php("""
        wp_set_current_user(1);
        $a = wp_insert_post(array('post_title' => 'Browser page one', 'post_status' => 'publish', 'post_content' => 'one'));
        $b = wp_insert_post(array('post_title' => 'Browser page two', 'post_status' => 'publish', 'post_content' => 'two'));
        return array('one' => get_permalink($a), 'two' => get_permalink($b));
    """)
    relay.drained()
    return ids


@pytest.fixture(scope="module")
def admin(browser, wordpress_site, relay):
    wp_login(browser, wordpress_site)
    return browser


@pytest.fixture(scope="module")
def shots(tmp_path_factory):
    where = Path(os.environ.get("PURGEBRIDGE_SCREENSHOTS") or tmp_path_factory.mktemp("screenshots"))
    where.mkdir(parents=True, exist_ok=True)
    return where


def by(kind):
    from selenium.webdriver.common.by import By
    return getattr(By, kind)


def wait_for(driver, css, timeout=WAIT):
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait
    return WebDriverWait(driver, timeout).until(ec.presence_of_element_located((by("CSS_SELECTOR"), css)))


def click_and_wait(driver, css, then):
    """Click an element and wait for the next page's ``then`` element (the old page must go first)."""
    old = driver.find_element(by("TAG_NAME"), "html")
    driver.find_element(by("CSS_SELECTOR"), css).click()
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait
    WebDriverWait(driver, WAIT).until(ec.staleness_of(old))
    return wait_for(driver, then)


def console_errors(driver):
    return [entry for entry in driver.get_log("browser") if entry["level"] == "SEVERE"]


def assert_clean(driver, site):
    source = driver.page_source
    for marker in ("Notice:", "Warning:", "Deprecated:", "Fatal error"):
        assert f"<b>{marker}" not in source and f"{marker}</b>" not in source, marker
    assert console_errors(driver) == []
    assert [line for line in site.debug_log().splitlines() if "purgebridge" in line.lower()
            and "relay refused a batch" not in line] == []


def settings(driver, site):
    driver.get(site.url + "/wp-admin/options-general.php?page=purgebridge")
    wait_for(driver, "#purgebridge-status")
    return driver


def screenshot(driver, path):
    """The settings page from its heading to the end of its actions, as a person sees it."""
    height = driver.execute_script("return document.getElementById('wpwrap').scrollHeight")
    driver.set_window_size(1280, min(max(height + 160, 800), 2600))  # + the window's own frame
    try:
        driver.save_screenshot(str(path))
    finally:
        driver.set_window_size(1400, 1000)


def row(driver, name):
    return driver.find_element(by("CSS_SELECTOR"), f"#purgebridge-status-{name} td").text


def test_plugin_was_installed_from_the_zip_by_wordpress(wordpress_site):
    info = wordpress_site.php("""
        require_once ABSPATH . 'wp-admin/includes/plugin.php';
        $plugins = get_plugins();
        $dir = WP_PLUGIN_DIR . '/purgebridge';
        return array('header' => $plugins['purgebridge/purgebridge.php'], 'active' => is_plugin_active('purgebridge/purgebridge.php'),
            'link' => is_link($dir), 'pot' => is_file($dir . '/languages/purgebridge.pot'), 'file' => PURGEBRIDGE_FILE);
    """)
    assert info["active"] and not info["link"] and info["pot"]
    assert info["file"] == str(wordpress_site.root / "wp-content" / "plugins" / "purgebridge" / "purgebridge.php")
    header = info["header"]
    assert header["Version"] == "0.1.0" and header["RequiresWP"] == "6.1" and header["UpdateURI"]
    assert wordpress_site.php("return get_bloginfo('version');").startswith(header["RequiresWP"]), \
        "Requires at least / Tested up to name the WordPress the tests run"


def test_send_test_event_with_the_relay_up(admin, wordpress_site, relay, shots):
    driver = settings(admin, wordpress_site)
    assert_clean(driver, wordpress_site)
    assert row(driver, "relay") == 'Not checked yet: press "Send test event".'
    click_and_wait(driver, "#purgebridge-test", "#purgebridge-notice")
    notice = driver.find_element(by("ID"), "purgebridge-notice")
    assert "notice-success" in notice.get_attribute("class")
    assert notice.text.startswith("The relay is running. A signed test event was accepted")
    assert re.fullmatch(r"Checked \d+ seconds? ago: The relay is running\. A signed test event was accepted.*",
                        row(driver, "relay"))
    assert_clean(driver, wordpress_site)
    screenshot(driver, shots / "settings-relay-up.png")


def test_send_test_event_with_the_relay_down(admin, wordpress_site, relay, shots):
    relay.stop()
    try:
        driver = settings(admin, wordpress_site)
        click_and_wait(driver, "#purgebridge-test", "#purgebridge-notice")
        notice = driver.find_element(by("ID"), "purgebridge-notice")
        assert "notice-error" in notice.get_attribute("class")
        assert notice.text.startswith(f"Could not reach the relay at {wordpress_site.relay_url}: ")
        assert "Could not reach the relay" in row(driver, "relay")
        assert "{" not in row(driver, "relay")
        assert_clean(driver, wordpress_site)
        screenshot(driver, shots / "settings-relay-down.png")
    finally:
        relay.start()


def hover_menu_and_click(driver, item):
    from selenium.webdriver.common.action_chains import ActionChains
    ActionChains(driver).move_to_element(driver.find_element(by("ID"), "wp-admin-bar-purgebridge")).perform()
    link = driver.find_element(by("CSS_SELECTOR"), f"#wp-admin-bar-{item} a")
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait
    WebDriverWait(driver, WAIT).until(ec.visibility_of(link))
    old = driver.find_element(by("TAG_NAME"), "html")
    link.click()
    WebDriverWait(driver, WAIT).until(ec.staleness_of(old))


def test_purge_this_page_from_the_admin_bar(admin, wordpress_site, wp_cluster, relay, posts, shots):
    site = wordpress_site
    one, two = path_of(site, posts["one"]), path_of(site, posts["two"])
    relay.drained()
    warm(wp_cluster, site, ["/", one, two])
    admin.get(posts["one"])
    wait_for(admin, "#wp-admin-bar-purgebridge")
    hover_menu_and_click(admin, "purgebridge-purge-page")
    notice = wait_for(admin, "#purgebridge-notice")
    assert admin.current_url == posts["one"], "back on the page the purge started from"
    assert notice.find_element(by("TAG_NAME"), "p").text == \
        f"Purge of {posts['one']} sent. Accepted by the relay. 3 of 3 Varnish nodes purged."
    assert notice.is_displayed()
    assert console_errors(admin) == []
    admin.save_screenshot(str(shots / "purge-this-page.png"))
    relay.drained()
    check(wp_cluster, site, purged=[one], kept=["/", two])


def test_purge_all_asks_first_then_purges_every_page(admin, wordpress_site, wp_cluster, relay, posts):
    site = wordpress_site
    two = path_of(site, posts["two"])
    warm(wp_cluster, site, ["/", two])
    admin.get(posts["two"])
    wait_for(admin, "#wp-admin-bar-purgebridge")
    events = relay.status()["totals"].get("events", 0)
    hover_menu_and_click(admin, "purgebridge-purge-all")
    confirm = wait_for(admin, "#purgebridge-confirm")
    assert "Purge every page of this site?" in confirm.text
    assert relay.status()["totals"].get("events", 0) == events, "asking sent nothing"
    check(wp_cluster, site, purged=[], kept=["/", two])
    click_and_wait(admin, "#purgebridge-confirm-purge-all", "#purgebridge-notice")
    assert admin.current_url == posts["two"]
    assert admin.find_element(by("ID"), "purgebridge-notice").text.startswith("Purge of the whole site sent.")
    relay.drained()
    assert relay.status()["totals"].get("events", 0) == events + 1
    check(wp_cluster, site, purged=["/", two], kept=[])


def test_site_health_shows_the_purgebridge_tests(admin, wordpress_site, relay):
    admin.get(wordpress_site.url + "/wp-admin/site-health.php")
    label = "The Purgebridge relay answers and accepts this site's signature"
    from selenium.webdriver.support.ui import WebDriverWait
    WebDriverWait(admin, WAIT).until(lambda d: label in d.page_source.replace("&#039;", "'").replace("’", "'"))
    source = admin.page_source
    for direct in ("Purgebridge is configured", "No Purgebridge changes are waiting",
                   "The Purgebridge relay refused no changes", "WP-Cron runs the Purgebridge retry queue"):
        assert direct in source, direct
    assert console_errors(admin) == []


def test_refusal_notice_is_dismissed_for_good_by_its_close_button(admin, wordpress_site, relay):
    site = wordpress_site
    site.php("""
        global $wpdb;
        $wpdb->insert(Purgebridge_Queue::table(), array('created_at' => time(), 'next_attempt' => time(),
            'attempts' => 1, 'state' => 'dead', 'kind' => 'batch', 'changes' => 1, 'last_status' => 401,
            'last_error' => '{"error": "bad signature"}', 'body' => '{}'));
        update_option('purgebridge_last_error', array('time' => time(), 'status' => 401,
            'message' => '{"error": "bad signature"}'));
        return true;
    """)
    try:
        admin.get(site.url + "/wp-admin/")
        notice = wait_for(admin, "#purgebridge-refused")
        assert "The relay refused 1 batch of changes" in notice.text and "refused the signature" in notice.text
        notice.find_element(by("CSS_SELECTOR"), ".notice-dismiss").click()
        from selenium.webdriver.support.ui import WebDriverWait
        WebDriverWait(admin, WAIT).until(lambda d: site.php(
            "return get_user_meta(1, 'purgebridge_dismissed_notices', true);"))
        admin.get(site.url + "/wp-admin/")
        wait_for(admin, "#wpbody-content")
        assert admin.find_elements(by("ID"), "purgebridge-refused") == []
        assert console_errors(admin) == []
    finally:
        site.php("Purgebridge_Operations::flush_queue(); return true;")


def test_purge_row_action_with_a_node_down_tells_which_nodes_purged(admin, wordpress_site, wp_cluster, relay, posts, shots):
    """A varnishd stopped: the posts list's "Purge" says 2 of 3 purged and names the down node; so does the settings page."""
    site = wordpress_site
    one = path_of(site, posts["one"])
    down = wp_cluster.nodes[1]
    warm(wp_cluster, site, [one])
    down.stop()
    try:
        admin.get(site.url + "/wp-admin/edit.php")
        link = wait_for(admin, '#the-list .row-actions .purgebridge_purge a[aria-label="Purge “Browser page one” from Varnish"]')
        old = admin.find_element(by("TAG_NAME"), "html")
        admin.execute_script("arguments[0].click()", link)  # row actions show on hover; the link is the same
        from selenium.webdriver.support import expected_conditions as ec
        from selenium.webdriver.support.ui import WebDriverWait
        WebDriverWait(admin, WAIT).until(ec.staleness_of(old))
        notice = wait_for(admin, "#purgebridge-notice")
        assert "/wp-admin/edit.php" in admin.current_url, "back on the list"
        assert "notice-warning" in notice.get_attribute("class") and notice.get_attribute("role") == "alert"
        text = notice.find_element(by("TAG_NAME"), "p").text
        assert text.startswith(f"Purge of {posts['one']} sent. Accepted by the relay. 2 of 3 Varnish nodes purged. "
                               f"Node {down.node.name} is down since "), text
        assert text.endswith("sent when it returns."), text
        for node in (wp_cluster.nodes[0], wp_cluster.nodes[2]):
            assert wp_cluster.xcache(node, one, site.host) == "MISS"
        assert admin.find_elements(by("ID"), "purgebridge-nodes") == [], "the same sentences once, not twice"
        assert console_errors(admin) == []
        screenshot(admin, shots / "purge-row-action-node-down.png")
        driver = settings(admin, site)
        nodes_row = driver.find_element(by("ID"), "purgebridge-status-nodes")
        assert "purgebridge-warning" in nodes_row.get_attribute("class")
        assert row(driver, "nodes").startswith("2 of 3 Varnish nodes purged.") and down.node.name in row(driver, "nodes")
        screenshot(driver, shots / "settings-node-down.png")
    finally:
        down.start()
    relay.drained()
