"""The WordPress plugin: its PHP unit tests, and its behaviour inside a real WordPress.

The first test runs the PHP unit suite (no WordPress needed). The others use one
WordPress install shared by this module (``wordpress_site``) and a recording
stand-in relay (``recording_relay``) that checks signatures the way the relay
does, so every event the plugin sends is inspected here. The real relay and
real Varnish nodes are in test_wp_e2e.py.
"""

import json
import os
from pathlib import Path
import re
import shutil
import subprocess
import time

import pytest
import requests

from fixtures.wp_relay import admin_session, settings_page

REPO = Path(__file__).resolve().parents[2]
PHPUNIT_DIR = REPO / "wp-plugin" / "tests"


def run_phpunit(config, env=None):
    phpunit = shutil.which("phpunit")
    if not phpunit:
        pytest.fail("phpunit is missing (apt-get install phpunit)", pytrace=False)
    proc = subprocess.run([phpunit, "-c", str(PHPUNIT_DIR / config)], capture_output=True, text=True,
                          timeout=300, cwd=str(PHPUNIT_DIR), env=dict(os.environ, **(env or {})))
    output = proc.stdout + proc.stderr
    assert proc.returncode == 0, output[-5000:]
    match = re.search(r"OK \((\d+) tests?, (\d+) assertions?\)", output)
    assert match, output[-3000:]
    return int(match.group(1)), output


def test_phpunit_unit_suite():
    tests, output = run_phpunit("phpunit.xml")
    assert tests >= 40, output


# --- real WordPress ---------------------------------------------------------------------------


def only(relay, kind=None):
    """The changes the relay received, optionally of one kind."""
    changes = relay.changes()
    return [c for c in changes if kind is None or c["kind"] == kind]


def php(site, code):
    return site.php("wp_set_current_user(1);\n" + code)


def setup_content(site):
    """Categories (one nested), tags, and two published posts."""
    return php(site, """
        $news  = wp_insert_term('News', 'category');
        $world = wp_insert_term('World', 'category', array('parent' => $news['term_id']));
        $sport = wp_insert_term('Sport', 'category');
        $a = wp_insert_post(array('post_title' => 'Alpha story', 'post_name' => 'alpha-story', 'post_status' => 'publish',
            'post_content' => 'alpha', 'post_category' => array($world['term_id']), 'tags_input' => array('red', 'blue')));
        $b = wp_insert_post(array('post_title' => 'Bravo story', 'post_status' => 'publish', 'post_content' => 'bravo',
            'post_category' => array($sport['term_id'])));
        return array('news' => $news['term_id'], 'world' => $world['term_id'], 'sport' => $sport['term_id'],
                     'a' => $a, 'b' => $b);
    """)


@pytest.fixture(scope="module")
def content(wordpress_site, recording_relay):
    ids = setup_content(wordpress_site)
    return ids


@pytest.fixture
def relay(recording_relay):
    recording_relay.clear()
    yield recording_relay
    recording_relay.clear()


@pytest.mark.integration
@pytest.mark.wordpress
def test_new_post_sends_one_signed_batch(wordpress_site, relay, content):
    site = wordpress_site
    post_id = php(site, """
        return wp_insert_post(array('post_title' => 'Charlie', 'post_status' => 'publish', 'post_content' => 'c',
            'post_category' => array(%d), 'tags_input' => array('red')));
    """ % content["world"])
    assert len(relay.requests) == 1, "one request for the whole PHP request"
    assert relay.bad_signatures == 0
    req = relay.requests[0]
    assert req["path"] == "/v1/events/wordpress"
    assert req["headers"]["Content-Type"] == "application/json"
    batch = relay.batches[0]
    assert batch["schema"] == 1
    assert batch["site"] == site.url + "/"
    assert abs(batch["sent_at"] - time.time()) < 30
    posts = [c for c in batch["changes"] if c["kind"] == "post"]
    assert len(posts) == 1
    change = posts[0]
    assert change["action"] == "publish"
    post = change["post"]
    assert post["id"] == post_id
    assert post["type"] == "post" and post["rest_base"] == "posts"
    assert post["status_old"] is None and post["status_new"] == "publish"
    assert post["url_old"] is None
    assert re.fullmatch(re.escape(site.url) + r"/\d{4}/\d{2}/\d{2}/charlie/", post["url_new"])
    assert post["date_new"] == "-".join(post["url_new"].split("/")[3:6])
    assert post["author"] == {"id": 1, "url": site.url + "/author/admin/"}
    urls = {t["url"] for t in post["terms_new"]}
    assert urls == {site.url + "/category/news/world/", site.url + "/category/news/", site.url + "/tag/red/"}, \
        "categories with ancestors, and tags"
    assert post["terms_old"] == []
    # Every URL the event names is a real page of this WordPress.
    for url in [post["url_new"], post["author"]["url"], *urls]:
        assert requests.get(url, timeout=15, allow_redirects=False).status_code == 200, url


@pytest.mark.integration
@pytest.mark.wordpress
def test_draft_edits_send_nothing(wordpress_site, relay, content):
    php(wordpress_site, """
        $id = wp_insert_post(array('post_title' => 'Draft only', 'post_status' => 'draft', 'post_content' => 'x'));
        wp_update_post(array('ID' => $id, 'post_content' => 'y'));
        wp_save_post_revision($id);
        return $id;
    """)
    assert relay.requests == []


@pytest.mark.integration
@pytest.mark.wordpress
def test_slug_and_category_change_carry_old_url_and_removed_terms(wordpress_site, relay, content):
    site = wordpress_site
    old_url = php(site, "return get_permalink(%d);" % content["a"])
    php(site, """
        wp_update_post(array('ID' => %d, 'post_name' => 'alpha-renamed', 'post_category' => array(%d)));
        return true;
    """ % (content["a"], content["sport"]))
    (change,) = only(relay, "post")
    assert change["action"] == "update"
    post = change["post"]
    assert post["url_old"] == old_url
    assert post["url_new"].endswith("/alpha-renamed/")
    old_terms = {t["url"] for t in post["terms_old"]}
    new_terms = {t["url"] for t in post["terms_new"]}
    assert site.url + "/category/news/world/" in old_terms and site.url + "/category/news/" in old_terms
    assert site.url + "/category/sport/" in new_terms
    assert site.url + "/category/news/world/" not in new_terms
    assert {site.url + "/tag/red/", site.url + "/tag/blue/"} <= new_terms


@pytest.mark.integration
@pytest.mark.wordpress
def test_terms_set_outside_a_save_report_old_terms(wordpress_site, relay, content):
    php(wordpress_site, "wp_set_post_tags(%d, array('green')); return true;" % content["b"])
    (change,) = only(relay, "post")
    assert change["action"] == "update"
    assert [t["url"] for t in change["post"]["terms_old"] if t["taxonomy"] == "post_tag"] == []
    assert [t["url"] for t in change["post"]["terms_new"] if t["taxonomy"] == "post_tag"] == \
        [wordpress_site.url + "/tag/green/"]


@pytest.mark.integration
@pytest.mark.wordpress
def test_unpublish_trash_and_delete_keep_the_old_permalink(wordpress_site, relay, content):
    site = wordpress_site
    ids = php(site, """
        $ids = array();
        foreach (array('Delta', 'Echo', 'Foxtrot') as $t) {
            $ids[] = wp_insert_post(array('post_title' => $t, 'post_status' => 'publish', 'post_content' => $t));
        }
        return array_map(function ($id) { return array($id, get_permalink($id)); }, $ids);
    """)
    relay.clear()
    php(site, """
        wp_update_post(array('ID' => %d, 'post_status' => 'draft'));
        wp_trash_post(%d);
        wp_delete_post(%d, true);
        return true;
    """ % (ids[0][0], ids[1][0], ids[2][0]))
    assert len(relay.requests) == 1
    by_id = {c["post"]["id"]: c for c in only(relay, "post")}
    expected = {ids[0][0]: ("unpublish", "draft"), ids[1][0]: ("trash", "trash"), ids[2][0]: ("delete", None)}
    for (post_id, url) in ids:
        change = by_id[post_id]
        assert (change["action"], change["post"]["status_new"]) == expected[post_id]
        assert change["post"]["url_old"] == url, "captured before WordPress changed the permalink"
        assert "?p=" not in change["post"]["url_old"]
        assert change["post"]["url_new"] is None


@pytest.mark.integration
@pytest.mark.wordpress
def test_scheduled_post_published_by_cron(wordpress_site, relay, content):
    site = wordpress_site
    post_id = php(site, """
        $when = time() + 3600;
        return wp_insert_post(array('post_title' => 'Golf scheduled', 'post_status' => 'future',
            'post_content' => 'g', 'post_date' => get_date_from_gmt(gmdate('Y-m-d H:i:s', $when)),
            'post_date_gmt' => gmdate('Y-m-d H:i:s', $when)));
    """)
    assert php(site, "return get_post_status(%d);" % post_id) == "future"
    assert relay.requests == [], "a scheduled post is not public yet"
    # An hour passes: move the post's date and its cron event into the past without any
    # WordPress hook, as if the clock had advanced; then WP-Cron publishes it.
    site.make_due(post_id)
    assert relay.requests == []
    response = site.get("/wp-cron.php", timeout=30)
    assert response.status_code == 200
    deadline = time.monotonic() + 10
    while not only(relay, "post") and time.monotonic() < deadline:
        time.sleep(0.1)
    (change,) = only(relay, "post")
    assert change["action"] == "publish"
    assert change["post"]["id"] == post_id
    assert change["post"]["status_old"] == "future"
    assert change["post"]["url_new"].endswith("/golf-scheduled/")


@pytest.mark.integration
@pytest.mark.wordpress
def test_comment_moderation(wordpress_site, relay, content):
    site = wordpress_site
    comment_id = php(site, """
        return wp_insert_comment(array('comment_post_ID' => %d, 'comment_content' => 'hi',
            'comment_author' => 'Visitor', 'comment_approved' => 0));
    """ % content["b"])
    assert relay.requests == [], "a held comment is on no page"
    php(site, "wp_set_comment_status(%d, 'approve'); return true;" % comment_id)
    php(site, "wp_update_comment(array('comment_ID' => %d, 'comment_content' => 'edited')); return true;" % comment_id)
    php(site, "wp_spam_comment(%d); return true;" % comment_id)
    actions = [(c["action"], c["comment_id"], c["post"]["id"]) for c in only(relay, "comment")]
    assert actions == [("approve", comment_id, content["b"]), ("edit", comment_id, content["b"]),
                       ("spam", comment_id, content["b"])]
    assert len(relay.requests) == 3


@pytest.mark.integration
@pytest.mark.wordpress
def test_term_edit_reports_old_archive_link(wordpress_site, relay, content):
    site = wordpress_site
    php(site, "wp_update_term(%d, 'category', array('slug' => 'sports')); return true;" % content["sport"])
    (change,) = only(relay, "term")
    assert change["action"] == "edit"
    assert change["term"] == {"id": content["sport"], "taxonomy": "category", "rest_base": "categories",
                              "url": site.url + "/category/sports/", "url_old": site.url + "/category/sport/"}
    relay.clear()
    php(site, """
        $t = wp_insert_term('Temporary', 'post_tag');
        return wp_delete_term($t['term_id'], 'post_tag');
    """)
    assert len(relay.requests) == 1
    actions = [(c["action"], c["term"]["url"]) for c in only(relay, "term")]
    assert actions == [("delete", site.url + "/tag/temporary/")], "created and deleted in one request"


@pytest.mark.integration
@pytest.mark.wordpress
def test_site_wide_changes_purge_all(wordpress_site, relay, content):
    site = wordpress_site
    php(site, "update_option('blogname', 'Renamed blog'); return true;")
    php(site, "update_option('blogname', 'Renamed blog'); return true;")  # unchanged: no event
    php(site, """
        $menu = wp_create_nav_menu('Main ' . wp_generate_password(6, false));
        wp_update_nav_menu_item($menu, 0, array('menu-item-title' => 'Home', 'menu-item-url' => home_url('/'),
            'menu-item-status' => 'publish'));
        return $menu;
    """)
    reasons = [c["reason"] for c in only(relay, "site")]
    assert reasons == ["blogname", "wp_update_nav_menu"]
    assert all(c["action"] == "purge_all" for c in only(relay, "site"))
    assert only(relay, "post") == [], "a purge-all makes the request's other changes redundant"


@pytest.mark.integration
@pytest.mark.wordpress
def test_bulk_edit_of_200_posts_is_one_request(wordpress_site, relay, content):
    site = wordpress_site
    ids = php(site, """
        wp_defer_term_counting(true);
        $ids = array();
        for ($i = 0; $i < 200; $i++) {
            $ids[] = wp_insert_post(array('post_title' => "Bulk $i", 'post_status' => 'publish', 'post_content' => 'b'));
        }
        return $ids;
    """)
    assert len(relay.requests) == 1
    assert len(only(relay, "post")) == 200
    relay.clear()
    php(site, """
        foreach (%s as $id) { wp_update_post(array('ID' => $id, 'post_content' => 'bulk edited')); }
        return true;
    """ % json.dumps(ids).replace("[", "array(").replace("]", ")"))
    assert len(relay.requests) == 1
    changes = only(relay, "post")
    assert sorted(c["post"]["id"] for c in changes) == sorted(ids)
    assert {c["action"] for c in changes} == {"update"}
    assert len(relay.requests[0]["body"]) < 256 * 1024


def cron_delivers_both_posts(site, relay, content):
    """Run WP-Cron as a visitor's request would; the relay must then hold both posts' events."""
    assert site.get("/wp-cron.php", timeout=30).status_code == 200
    deadline = time.monotonic() + 10
    while len(only(relay, "post")) < 2 and time.monotonic() < deadline:
        time.sleep(0.1)
    assert sorted(c["post"]["id"] for c in only(relay, "post")) == sorted([content["a"], content["b"]])


@pytest.mark.integration
@pytest.mark.wordpress
def test_relay_errors_queue_and_cron_delivers(wordpress_site, relay, content):
    site = wordpress_site
    relay.answer = 503
    php(site, "wp_update_post(array('ID' => %d, 'post_content' => 'while relay fails')); return true;" % content["b"])
    assert relay.batches == [] and len(relay.requests) == 1
    queued = php(site, "return Purgebridge_Queue::count('pending');")
    assert queued == 1
    # A second save while the relay is marked down costs no request at all.
    php(site, "wp_update_post(array('ID' => %d, 'post_content' => 'again')); return true;" % content["a"])
    assert len(relay.requests) == 1
    assert php(site, "return Purgebridge_Queue::count('pending');") == 2
    relay.answer = 202
    # Time passes: rows and the drain event come due; then cron runs as WordPress runs it.
    php(site, """
        global $wpdb;
        $wpdb->query('UPDATE ' . Purgebridge_Queue::table() . ' SET next_attempt = 0');
        update_option('purgebridge_relay_down_until', 0);
        wp_schedule_single_event(time() - 1, 'purgebridge_drain_soon', array('forced'));
        return true;
    """)
    cron_delivers_both_posts(site, relay, content)
    assert php(site, "return Purgebridge_Queue::count('pending');") == 0


@pytest.mark.integration
@pytest.mark.wordpress
def test_blackholed_relay_costs_one_short_timeout_then_cron_delivers(wordpress_site, relay, content):
    """A relay that accepts and never answers: the save pays the 0.5 s editor
    timeout once, the batch is queued, the next save does not touch the network,
    and WP-Cron delivers both once the relay answers again."""
    site = wordpress_site
    php(site, "update_option('purgebridge_relay_down_until', 0); update_option('purgebridge_relay_failures', 0); "
              "return true;")
    relay.hang()
    save = """
        $t = microtime(true);
        wp_update_post(array('ID' => %d, 'post_content' => %s));
        $results = Purgebridge_Plugin::buffer()->flush(false);
        return array('ms' => (microtime(true) - $t) * 1000, 'results' => $results,
                     'down' => (int) get_option('purgebridge_relay_down_until') - time(),
                     'failures' => (int) get_option('purgebridge_relay_failures'),
                     'queued' => Purgebridge_Queue::count('pending'));
    """
    first = php(site, save % (content["a"], "'while the relay hangs'"))
    (result,) = first["results"]
    assert result["queued"] is True and result["status"] == 0, result
    assert "No answer after" in result["message"], result
    assert len(relay.requests) == 1 and relay.batches == [], "the relay got the request and never answered"
    assert 450 <= first["ms"] < 1500, f"one editor timeout (0.5 s), took {first['ms']:.0f} ms"
    assert first["failures"] == 1 and 28 <= first["down"] <= 30, first
    assert first["queued"] == 1
    second = php(site, save % (content["b"], "'still hanging'"))
    assert second["results"][0]["queued"] is True
    assert second["ms"] < 300, f"marked down: no network try, took {second['ms']:.0f} ms"
    assert len(relay.requests) == 1, "no request while the relay is marked down"
    assert second["queued"] == 2
    relay.clear()  # the relay answers 202 again
    php(site, """
        global $wpdb;
        $wpdb->query('UPDATE ' . Purgebridge_Queue::table() . ' SET next_attempt = 0');
        wp_schedule_single_event(time() - 1, 'purgebridge_drain_soon', array('blackhole'));
        return true;
    """)
    cron_delivers_both_posts(site, relay, content)
    state = php(site, "return array(Purgebridge_Queue::count('pending'), (int) get_option('purgebridge_relay_down_until'),"
                      " (int) get_option('purgebridge_relay_failures'));")
    assert state == [0, 0, 0], "delivered, and the cron run's success cleared the down window"


def press(session, site, page, action):
    nonce = re.search(r'name="action" value="purgebridge_%s" />\s*<input type="hidden" id="_wpnonce" name="_wpnonce" '
                      r'value="([0-9a-f]+)"' % action, page)
    assert nonce, f"no {action} form on the settings page"
    return session.post(site.url + "/wp-admin/admin-post.php", timeout=30,
                        data={"action": "purgebridge_" + action, "_wpnonce": nonce.group(1)})


@pytest.mark.integration
@pytest.mark.wordpress
def test_settings_page_test_event_and_refused_signature(wordpress_site, relay, content):
    site = wordpress_site
    session = admin_session(site)
    page = settings_page(session, site)
    assert "PURGEBRIDGE_RELAY_URL" in page and site.relay_url in page
    assert site.secret not in page, "the secret is never printed"
    # "Send test event": reachability and a signed ping that purges nothing.
    done = press(session, site, page, "test")
    assert done.status_code == 200
    assert "The relay is running." in done.text
    assert "A signed test event was accepted" in done.text
    (ping,) = relay.changes()
    assert ping == {"kind": "site", "action": "ping", "reason": "settings test"}
    # A relay refusing the signature: visible on the page, kept as refused, not retried forever.
    relay.clear()
    relay.answer = 401
    php(site, "wp_update_post(array('ID' => %d, 'post_content' => 'refused')); return true;" % content["b"])
    page = settings_page(session, site)
    assert "The relay refused the signature" in page
    assert "1 batch was refused and is kept" in page
    assert php(site, "return Purgebridge_Dispatcher::drain(true);")["sent"] == 0
    # Fixed: "Retry now" sends the refused batch again.
    relay.answer = 202
    done = press(session, site, page, "retry")
    assert "Delivered 1 queued batch; 0 still waiting, 0 refused" in done.text
    assert [c["post"]["id"] for c in only(relay, "post")] == [content["b"]]
    # "Purge all" from the settings page, after its confirmation step.
    relay.clear()
    confirm = session.get(site.url + "/wp-admin/options-general.php?page=purgebridge&confirm=purge_all", timeout=30)
    done = press(session, site, confirm.text, "purge_all")
    assert "Accepted by the relay" in done.text
    assert relay.changes() == [{"kind": "site", "action": "purge_all", "reason": "manual"}]
    # Actions need a valid nonce.
    relay.clear()
    forged = session.post(site.url + "/wp-admin/admin-post.php", timeout=30,
                          data={"action": "purgebridge_purge_all", "_wpnonce": "0000000000"})
    assert forged.status_code == 403 and relay.requests == []


@pytest.mark.integration
@pytest.mark.wordpress
def test_admin_bar_purge_this_page(wordpress_site, relay, content):
    site = wordpress_site
    session = admin_session(site)
    url = php(site, "return get_permalink(%d);" % content["a"])
    page = session.get(url, timeout=30).text
    link = re.search(r'''id=["']wp-admin-bar-purgebridge-purge-page["'][^>]*>\s*<a[^>]*href=["']([^"']+)["']''', page)
    assert link, "admin bar entry on a single post"
    href = link.group(1).replace("&amp;", "&").replace("&#038;", "&")
    done = session.get(href, timeout=30, allow_redirects=False)
    assert done.status_code == 302
    (change,) = relay.changes()
    assert change == {"kind": "urls", "action": "purge", "reason": "post", "urls": [url], "keys": []}, \
        "the page itself, not the front page and archives a post update would purge"
    anonymous = requests.get(href, timeout=30, allow_redirects=False)
    assert anonymous.status_code != 302 or "wp-login.php" in anonymous.headers.get("Location", "")
    assert len(relay.requests) == 1, "no purge without login and nonce"


@pytest.mark.integration
@pytest.mark.wordpress
def test_load_probe(wordpress_site, relay):
    site = wordpress_site
    php(site, "update_option('purgebridge_test_fake_load', '1'); return true;")  # the shared machine's load varies
    ok = site.get("/?purgebridge-probe=2")
    assert ok.status_code == 200 and ok.text == "level 2 ok\n", "no load or thresholds shown"
    assert "<html" not in ok.text.lower(), "answered before the theme"
    assert "no-cache" in ok.headers.get("Cache-Control", "")
    php(site, "update_option('purgebridge_test_fake_load', '15'); return true;")
    try:
        assert site.get("/?purgebridge-probe=2").status_code == 503
        assert site.get("/?purgebridge-probe=3").status_code == 200
        php(site, "update_option('purgebridge_test_fake_load', '25'); return true;")
        assert site.get("/?purgebridge-probe=3").status_code == 503
        php(site, "update_option('purgebridge_probe_level3', 30); return true;")
        assert site.get("/?purgebridge-probe=3").status_code == 200
    finally:
        php(site, "delete_option('purgebridge_test_fake_load'); update_option('purgebridge_probe_level3', 20); "
                  "return true;")
    assert site.get("/?purgebridge-probe=9").status_code == 404
    assert relay.requests == []


@pytest.mark.integration
@pytest.mark.wordpress
def test_xkey_headers_and_tag_cloud_fragment(wordpress_site, relay, content):
    site = wordpress_site
    assert "xkey" not in site.get("/").headers, "off by default"
    php(site, "update_option('purgebridge_xkey', 1); update_option('purgebridge_esi_tag_cloud', 1); return true;")
    try:
        url = php(site, "return get_permalink(%d);" % content["a"])
        single = requests.get(url, timeout=15)
        assert single.status_code == 200
        keys = single.headers["xkey"].split()
        assert keys[0] == f"post-{content['a']}" and keys[1:] and all(re.fullmatch(r"term-\d+", k) for k in keys[1:]), \
            "a single post also carries the terms it shows"
        assert 'ESI/1.0' in single.headers.get("Surrogate-Control", "")
        front = site.get("/")
        keys = front.headers["xkey"].split()
        assert keys[0] == "front" and all(re.fullmatch(r"(post|term)-\d+", k) for k in keys[1:]) and len(keys) > 1
        category = site.get("/category/news/")
        assert category.status_code == 200
        assert category.headers["xkey"].split()[0] == f"term-{content['news']}"
        author = site.get("/author/admin/")
        assert author.headers["xkey"].split()[0] == "author-1"
        fragment = site.get("/?purgebridge-fragment=tag-cloud")
        assert fragment.status_code == 200
        assert "/tag/red/" in fragment.text and "<html" not in fragment.text.lower()
        assert fragment.headers["xkey"] == "tag-cloud"
        cloud = php(site, "wp_set_current_user(0); return wp_tag_cloud(array('echo' => false));")
        assert cloud == '<esi:include src="/?purgebridge-fragment=tag-cloud"/>'
        assert "/tag/red/" in php(site, "return wp_tag_cloud(array('echo' => false));"), \
            "logged-in users bypass the cache and get the cloud inline"
    finally:
        php(site, "update_option('purgebridge_xkey', 0); update_option('purgebridge_esi_tag_cloud', 0); return true;")
    assert relay.requests == []


@pytest.mark.integration
@pytest.mark.wordpress
def test_phpunit_queue_suite_against_real_wordpress(wordpress_site, relay):
    site = wordpress_site
    tests, output = run_phpunit("phpunit-wp.xml", {"PURGEBRIDGE_WP_ROOT": str(site.root),
                                                    "PURGEBRIDGE_WP_URL": site.url})
    assert tests >= 10, output
    assert relay.requests == [], "the queue suite answers with a filter, never the network"


@pytest.mark.integration
@pytest.mark.wordpress
def test_plugin_logged_no_php_warnings(wordpress_site):
    lines = [line for line in wordpress_site.debug_log().splitlines()
             if "purgebridge" in line.lower() and "relay refused a batch" not in line]
    assert lines == []


@pytest.mark.integration
@pytest.mark.wordpress
def test_uninstall_removes_options_and_table(wordpress_site, relay):
    """Last in the module: it removes the plugin's data."""
    result = php(wordpress_site, """
        global $wpdb;
        deactivate_plugins('purgebridge/purgebridge.php');
        uninstall_plugin('purgebridge/purgebridge.php');
        $left = $wpdb->get_col("SELECT option_name FROM {$wpdb->options} WHERE option_name LIKE 'purgebridge\\_%'");
        $left = array_values(array_diff($left, array('purgebridge_test_fake_load')));
        return array('options' => $left,
                     'table' => $wpdb->get_var("SHOW TABLES LIKE '{$wpdb->prefix}purgebridge_queue'"),
                     'cron' => wp_next_scheduled('purgebridge_drain'));
    """)
    assert result == {"options": [], "table": None, "cron": False}
