"""The plugin for the people who run the site, in a real WordPress over real HTTP:
the settings page in plain words, "Send test event", "Purge URLs", the admin
bar's "Purge this page" on any page with its capability rules, the
confirmation step of "Purge all", standing admin notices and their dismissal,
Site Health's tests, the relay-URL checks, the load probe and the tag-cloud
fragment answering only when they should, the load guard against a second
copy, and `wp purgebridge` through a stand-in WP_CLI class over the real
operations.

One WordPress and one recording stand-in relay (``recording_relay``) are shared
by the module; the real relay, Varnish and a browser are in
test_wp_browser_admin.py.
"""

import html
import os
from pathlib import Path
import re
import shutil
import subprocess

import pytest
import requests

from fixtures.wp_relay import admin_session, php, settings_page  # noqa: F401

pytestmark = [pytest.mark.integration, pytest.mark.wordpress]

REPO = Path(__file__).resolve().parents[2]
STANDIN = REPO / "wp-plugin" / "tests" / "support" / "wp-cli-standin.php"


@pytest.fixture
def relay(recording_relay):
    recording_relay.clear()
    yield recording_relay
    recording_relay.clear()


@pytest.fixture(scope="module")
def people(wordpress_site, recording_relay):
    """Two published posts by the admin, an author with one post of her own, and a category."""
    ids = php(wordpress_site, """
        $cat = wp_insert_term('Ops', 'category');
        $author = wp_insert_user(array('user_login' => 'ann', 'user_pass' => 'ann-password-for-tests',
            'user_email' => 'ann@example.test', 'role' => 'author'));
        $mine = wp_insert_post(array('post_title' => 'Ops one', 'post_status' => 'publish', 'post_content' => 'x',
            'post_category' => array($cat['term_id'])));
        $other = wp_insert_post(array('post_title' => 'Ops two', 'post_status' => 'publish', 'post_content' => 'y'));
        $hers = wp_insert_post(array('post_title' => 'Ann writes', 'post_status' => 'publish', 'post_content' => 'z',
            'post_author' => $author));
        return array('cat' => $cat['term_id'], 'author' => $author, 'mine' => $mine, 'other' => $other,
                     'hers' => $hers);
    """)
    ids["url"] = {k: php(wordpress_site, "return get_permalink(%d);" % ids[k]) for k in ("mine", "other", "hers")}
    ids["cat_url"] = php(wordpress_site, "return get_term_link(%d, 'category');" % ids["cat"])
    return ids


def login(site, user, password):
    session = requests.Session()
    session.get(site.url + "/wp-login.php", timeout=15)
    response = session.post(site.url + "/wp-login.php", timeout=30, allow_redirects=False, data={
        "log": user, "pwd": password, "redirect_to": site.url + "/wp-admin/", "testcookie": "1"})
    assert response.status_code == 302, response.text[-1000:]
    return session


def bar_link(page, node):
    """The href of an admin bar node, unescaped."""
    found = re.search(r'''id=["']wp-admin-bar-%s["'][^>]*>\s*<a[^>]*href=["']([^"']+)["']''' % node, page)
    return html.unescape(found.group(1)) if found else None


def status_row(page, row):
    found = re.search(r'<tr id="purgebridge-status-%s"[^>]*><th[^>]*>[^<]*</th><td>([^<]*)</td>' % row, page)
    return html.unescape(found.group(1)) if found else None


def notice(page):
    found = re.search(r'id="purgebridge-notice"[^>]*>\s*<p[^>]*>([^<]*)</p>', page)
    return html.unescape(found.group(1)) if found else None


def form_nonce(page, action):
    found = re.search(r'name="action" value="purgebridge_%s" />'
                      r'\s*<input type="hidden" id="_wpnonce" name="_wpnonce" value="([0-9a-f]+)"' % action, page)
    assert found, f"no {action} form"
    return found.group(1)


def test_settings_page_speaks_plainly_and_send_test_event_updates_the_status(wordpress_site, relay):
    site = wordpress_site
    session = admin_session(site)
    page = settings_page(session, site)
    assert status_row(page, "relay") == 'Not checked yet: press "Send test event".'
    assert status_row(page, "queue") == "No changes wait to be sent."
    done = session.post(site.url + "/wp-admin/admin-post.php", timeout=30,
                        data={"action": "purgebridge_test", "_wpnonce": form_nonce(page, "test")})
    assert done.url.endswith("page=purgebridge")
    assert notice(done.text) == ("The relay is running. A signed test event was accepted: the secret matches and "
                                 "the relay serves this site.")
    assert "class=\"notice notice-success" in done.text
    assert status_row(done.text, "relay").endswith("The relay is running. A signed test event was accepted: the "
                                                   "secret matches and the relay serves this site.")
    assert relay.changes() == [{"kind": "site", "action": "ping", "reason": "settings test"}]
    # The relay refuses the signature: said in words, and the status table follows.
    relay.answer = 401
    done = session.post(site.url + "/wp-admin/admin-post.php", timeout=30,
                        data={"action": "purgebridge_test", "_wpnonce": form_nonce(done.text, "test")})
    assert "notice-error" in done.text
    assert "The relay refused the signature: the secret here differs" in notice(done.text)
    assert "The relay refused the signature" in status_row(done.text, "relay")
    for raw in ('{"', "HTTP 0", "retry (", site.secret):
        assert raw not in re.search(r'<table[^>]*id="purgebridge-status".*?</table>', done.text, re.S).group(0)


def test_a_save_refused_by_the_relay_shows_in_words_and_as_a_dismissible_notice(wordpress_site, relay, people):
    site = wordpress_site
    relay.answer = 403
    php(site, "wp_update_post(array('ID' => %d, 'post_content' => 'refused')); return true;" % people["other"])
    session = admin_session(site)
    page = settings_page(session, site)
    assert status_row(page, "last-send").startswith("Not delivered ")
    assert f"add {site.host} to the relay's PURGEBRIDGE_SITES" in status_row(page, "refused")
    assert 'id="purgebridge-refused"' not in page, "the settings page says it in its table, not twice"
    dashboard = session.get(site.url + "/wp-admin/", timeout=30).text
    assert 'id="purgebridge-refused"' in dashboard and "is-dismissible" in dashboard
    nonce = re.search(r'"nonce":"([0-9a-f]+)"', dashboard).group(1)
    fingerprint = re.search(r'id="purgebridge-refused" data-purgebridge-notice="refused" data-fingerprint="(\d+)"',
                            dashboard).group(1)
    dismissed = session.post(site.url + "/wp-admin/admin-ajax.php", timeout=30, data={
        "action": "purgebridge_dismiss_notice", "_ajax_nonce": nonce, "notice": "refused",
        "fingerprint": fingerprint})
    assert dismissed.json() == {"success": True}
    assert 'id="purgebridge-refused"' not in session.get(site.url + "/wp-admin/", timeout=30).text
    # A later refusal is news again.
    php(site, "update_option('purgebridge_last_error', array('time' => time() + 5, 'status' => 403, "
              "'message' => '{\"error\": \"site x\"}')); return true;")
    assert 'id="purgebridge-refused"' in session.get(site.url + "/wp-admin/", timeout=30).text
    # Not for people who cannot fix it.
    author = login(site, "ann", "ann-password-for-tests")
    assert 'id="purgebridge-refused"' not in author.get(site.url + "/wp-admin/", timeout=30).text
    relay.answer = 202
    done = session.post(site.url + "/wp-admin/admin-post.php", timeout=30,
                        data={"action": "purgebridge_retry", "_wpnonce": form_nonce(page, "retry")})
    assert notice(done.text) == "Delivered 1 queued batch; 0 still waiting, 0 refused by the relay."
    assert 'id="purgebridge-refused"' not in session.get(site.url + "/wp-admin/", timeout=30).text


def test_unusable_configuration_is_a_standing_notice_and_nothing_is_sent(wordpress_site, relay, people):
    site = wordpress_site
    php(site, "update_option('purgebridge_test_relay_hosts', array('relay.internal:8787')); return true;")
    try:
        php(site, "wp_update_post(array('ID' => %d, 'post_content' => 'not allowed')); return true;" % people["other"])
        assert relay.requests == [], "a relay URL outside the allow-list gets nothing"
        dashboard = admin_session(site).get(site.url + "/wp-admin/", timeout=30).text
        found = re.search(r'id="purgebridge-unconfigured".*?</strong>([^<]*)<', dashboard, re.S)
        assert found and "is not in this site's allow-list (filter purgebridge_relay_hosts)" in html.unescape(found.group(1))
        health = php(site, "return Purgebridge_Site_Health::test_configuration();")
        assert health["status"] == "critical" and "allow-list" in health["description"]
    finally:
        php(site, "delete_option('purgebridge_test_relay_hosts'); Purgebridge_Operations::flush_queue(); "
                  "Purgebridge_Relay_State::mark_up(); return true;")


def test_relay_url_setting_refuses_unsafe_urls(wordpress_site, relay):
    site = wordpress_site
    checks = php(site, """
        $urls = array('http://127.0.0.1:8787', 'https://relay.example.test/base/', 'ftp://relay.test/',
            'http://user:pw@relay.test/', 'http://169.254.169.254/latest/meta-data/?', 'http://relay.test/#x',
            'relay.test:8787', 'http://relay.test /x', 'javascript://relay.test/');
        $out = array();
        foreach ($urls as $u) { $out[$u] = Purgebridge_Settings::check_relay_url($u); }
        add_filter('purgebridge_relay_hosts', function () { return array('127.0.0.1:8787'); });
        $out['allowed'] = Purgebridge_Settings::check_relay_url('http://127.0.0.1:8787/');
        $out['not allowed'] = Purgebridge_Settings::check_relay_url('http://127.0.0.1:9999/');
        return $out;
    """)
    assert checks.pop("http://127.0.0.1:8787") == "" and checks.pop("https://relay.example.test/base/") == ""
    assert checks.pop("allowed") == ""
    assert "allow-list" in checks.pop("not allowed")
    assert "query (?)" in checks["http://169.254.169.254/latest/meta-data/?"]
    assert "user name or password" in checks["http://user:pw@relay.test/"]
    assert all(checks.values()), checks
    # Through the settings form (options.php), as an administrator does it.
    session = admin_session(site)
    page = settings_page(session, site)
    form = re.search(r'<form method="post" action="options.php">(.*?)</form>', page, re.S).group(1)
    fields = {name: html.unescape(value) for tag in re.findall(r"<input[^>]*>", form)
              for name, value in re.findall(r"""name=['"]([^'"]+)['"][^>]*value=['"]([^'"]*)['"]""", tag)
              if 'type="checkbox"' not in tag}
    fields["purgebridge_relay_url"] = "http://169.254.169.254/latest/meta-data/?"
    saved = session.post(site.url + "/wp-admin/options.php", timeout=30, data=fields)
    assert "query (?) or fragment (#)" in saved.text and "The relay URL was not changed." in saved.text
    assert php(site, "return get_option('purgebridge_relay_url');") == ""
    # A logged-in user who may not repoint the relay (the one capability check) keeps the stored URL.
    kept = php(site, """
        $ann = get_user_by('login', 'ann');
        wp_set_current_user($ann->ID);
        update_option('purgebridge_relay_url', 'http://127.0.0.1:9/');
        $as_author = get_option('purgebridge_relay_url');
        wp_set_current_user(0);
        update_option('purgebridge_relay_url', 'http://127.0.0.1:9/');
        $by_code = get_option('purgebridge_relay_url');
        update_option('purgebridge_relay_url', '');
        return array($as_author, $by_code);
    """)
    assert kept == ["", "http://127.0.0.1:9/"]


def test_purge_urls_box_purges_exactly_those_urls(wordpress_site, relay, people):
    site = wordpress_site
    session = admin_session(site)
    page = settings_page(session, site)
    nonce = form_nonce(page, "purge_url")
    refused = session.post(site.url + "/wp-admin/admin-post.php", timeout=30, data={
        "action": "purgebridge_purge_url", "_wpnonce": nonce,
        "urls": f"{people['url']['mine']}\nhttp://evil.example.test/x/"})
    assert "http://evil.example.test/x/ is not a URL of this site" in notice(refused.text)
    assert relay.requests == []
    done = session.post(site.url + "/wp-admin/admin-post.php", timeout=30, data={
        "action": "purgebridge_purge_url", "_wpnonce": nonce, "urls": f"{people['url']['mine']}\r\n/about/\n\n"})
    assert notice(done.text).startswith("Purge of 2 URLs sent. Accepted by the relay")
    assert relay.changes() == [{"kind": "urls", "action": "purge", "reason": "settings",
                                "urls": [people["url"]["mine"], site.url + "/about/"], "keys": []}]


def test_admin_bar_purge_this_page_on_any_page_with_the_right_capability(wordpress_site, relay, people):
    site = wordpress_site
    admin = admin_session(site)
    # A single post: exactly its page, back where we were, with the result shown there.
    post = admin.get(people["url"]["mine"], timeout=30).text
    href = bar_link(post, "purgebridge-purge-page")
    assert href and f"post_id={people['mine']}" in href
    done = admin.get(href, timeout=30)
    assert done.url == people["url"]["mine"]
    assert notice(done.text).startswith(f"Purge of {people['url']['mine']} sent. Accepted by the relay")
    assert relay.changes() == [{"kind": "urls", "action": "purge", "reason": "post",
                                "urls": [people["url"]["mine"]], "keys": []}]
    assert notice(admin.get(people["url"]["mine"], timeout=30).text) is None, "shown once"
    # Any other front-end page: a category archive, the front page, a search.
    for path in (people["cat_url"][len(site.url):], "/", "/?s=ops"):
        relay.clear()
        page = admin.get(site.url + path, timeout=30).text
        href = bar_link(page, "purgebridge-purge-page")
        assert href and "post_id" not in href, path
        done = admin.get(href, timeout=30)
        assert done.url == site.url + path and notice(done.text).startswith(f"Purge of {site.url + path} sent.")
        assert [c["urls"] for c in relay.changes()] == [[site.url + path]]
    # An author: her own post yes; someone else's post and archives no; no "Purge all" or settings.
    relay.clear()
    ann = login(site, "ann", "ann-password-for-tests")
    hers = ann.get(people["url"]["hers"], timeout=30).text
    assert bar_link(hers, "purgebridge-purge-all") is None
    assert bar_link(ann.get(people["url"]["other"], timeout=30).text, "purgebridge-purge-page") is None
    assert 'wp-admin-bar-purgebridge"' not in ann.get(people["cat_url"], timeout=30).text
    done = ann.get(bar_link(hers, "purgebridge-purge-page"), timeout=30)
    assert notice(done.text).startswith(f"Purge of {people['url']['hers']} sent.")
    assert [c["urls"] for c in relay.changes()] == [[people["url"]["hers"]]]
    # Her nonce does not stretch to another's post, nor to a page without a post.
    relay.clear()
    nonce = re.search(r"_wpnonce=([0-9a-f]+)", bar_link(hers, "purgebridge-purge-page")).group(1)
    for query in (f"post_id={people['other']}", f"redirect_to={site.url}/"):
        forged = ann.get(f"{site.url}/wp-admin/admin-post.php?action=purgebridge_purge_page&_wpnonce={nonce}&{query}",
                         timeout=30)
        assert forged.status_code == 403, query
    assert relay.requests == []


def test_purge_all_asks_first(wordpress_site, relay, people):
    site = wordpress_site
    admin = admin_session(site)
    href = bar_link(admin.get(people["url"]["other"], timeout=30).text, "purgebridge-purge-all")
    assert "confirm=purge_all" in href and "_wpnonce" not in href
    confirm = admin.get(href, timeout=30)
    assert "Purge every page of this site?" in confirm.text and relay.requests == []
    cancel = re.search(r'<a class="button" href="([^"]+)">Cancel</a>', confirm.text).group(1)
    assert html.unescape(cancel) == people["url"]["other"]
    nonce = form_nonce(confirm.text, "purge_all")
    done = admin.post(site.url + "/wp-admin/admin-post.php", timeout=30, data={
        "action": "purgebridge_purge_all", "_wpnonce": nonce, "redirect_to": people["url"]["other"]})
    assert done.url == people["url"]["other"]
    assert notice(done.text).startswith("Purge of the whole site sent. Accepted by the relay")
    assert relay.changes() == [{"kind": "site", "action": "purge_all", "reason": "manual"}]
    # The settings page's button leads to the same step.
    page = settings_page(admin, site)
    assert re.search(r'id="purgebridge-purge-all" href="[^"]*confirm=purge_all"', page)


def test_plugins_screen_links_to_the_settings(wordpress_site):
    page = admin_session(wordpress_site).get(wordpress_site.url + "/wp-admin/plugins.php", timeout=30).text
    row = re.search(r'<tr[^>]*data-plugin="purgebridge/purgebridge.php".*?</tr>', page, re.S).group(0)
    assert 'options-general.php?page=purgebridge">Settings</a>' in row


def test_site_health_tests(wordpress_site, relay):
    site = wordpress_site
    results = php(site, """
        $tests = WP_Site_Health::get_tests();
        $out = array('direct' => array_keys($tests['direct']), 'async' => array_keys($tests['async']));
        foreach (array('configuration', 'queue', 'refused', 'cron') as $n) {
            $out[$n] = call_user_func(array('Purgebridge_Site_Health', 'test_' . $n));
        }
        global $wpdb;
        $wpdb->insert(Purgebridge_Queue::table(), array('created_at' => time() - 900, 'next_attempt' => time(),
            'attempts' => 3, 'state' => 'pending', 'kind' => 'batch', 'changes' => 1, 'last_status' => 0,
            'last_error' => 'Connection refused', 'body' => '{}'));
        $out['old queue'] = Purgebridge_Site_Health::test_queue();
        Purgebridge_Operations::flush_queue();
        wp_clear_scheduled_hook('purgebridge_drain');
        wp_schedule_event(time() - 1200, 'purgebridge_minute', 'purgebridge_drain');
        $out['late cron'] = Purgebridge_Site_Health::test_cron();
        wp_clear_scheduled_hook('purgebridge_drain');
        $out['no cron'] = Purgebridge_Site_Health::test_cron();
        wp_schedule_event(time() + 60, 'purgebridge_minute', 'purgebridge_drain');
        return $out;
    """)
    assert {"purgebridge_configuration", "purgebridge_queue", "purgebridge_refused", "purgebridge_cron"} \
        <= set(results["direct"])
    assert "purgebridge-relay" in results["async"]
    assert [results[n]["status"] for n in ("configuration", "queue", "refused", "cron")] == ["good"] * 4
    assert results["old queue"]["status"] == "recommended"
    assert "1 batch of changes waits to be sent; the oldest is 15 mins old" in results["old queue"]["description"]
    assert results["late cron"]["status"] == "critical" and "system cron" in results["late cron"]["description"]
    assert results["no cron"]["status"] == "critical"
    # The asynchronous relay test, as Site Health's script calls it.
    session = admin_session(site)
    screen = session.get(site.url + "/wp-admin/site-health.php", timeout=30).text
    nonce = re.search(r'"site_status":"([0-9a-f]+)"', screen).group(1)
    answer = session.post(site.url + "/wp-admin/admin-ajax.php", timeout=30,
                          data={"action": "health-check-purgebridge-relay", "_wpnonce": nonce}).json()
    assert answer["success"] and answer["data"]["status"] == "good", answer
    assert answer["data"]["label"] == "The Purgebridge relay answers and accepts this site's signature"
    relay.answer = 401
    answer = session.post(site.url + "/wp-admin/admin-ajax.php", timeout=30,
                          data={"action": "health-check-purgebridge-relay", "_wpnonce": nonce}).json()
    assert answer["data"]["status"] == "critical" and "PURGEBRIDGE_SECRET" in answer["data"]["description"]


def test_load_probe_answers_only_varnish(wordpress_site, relay):
    site = wordpress_site
    php(site, "update_option('purgebridge_test_fake_load', '1'); return true;")  # the shared machine's load varies
    ok = site.get("/?purgebridge-probe=2")
    assert ok.text == "level 2 ok\n", "no load, no thresholds"
    visitor = site.get("/?purgebridge-probe=2", headers={"X-Forwarded-For": "203.0.113.9"})
    assert "level 2" not in visitor.text and "<html" in visitor.text.lower(), "a request relayed for a visitor"
    php(site, "update_option('purgebridge_test_probe_token', 'probe-token-1'); return true;")
    try:
        assert "level 2" not in site.get("/?purgebridge-probe=2").text
        assert "level 2" not in site.get("/?purgebridge-probe=2", headers={"X-Purgebridge-Probe": "wrong"}).text
        with_token = site.get("/?purgebridge-probe=2", headers={"X-Purgebridge-Probe": "probe-token-1",
                                                                "X-Forwarded-For": "203.0.113.9"})
        assert with_token.text == "level 2 ok\n"
    finally:
        php(site, "delete_option('purgebridge_test_probe_token'); delete_option('purgebridge_test_fake_load'); "
                  "return true;")
    assert relay.requests == []


def test_tag_cloud_fragment_only_when_the_feature_is_on(wordpress_site, relay, people):
    site = wordpress_site
    off = site.get("/?purgebridge-fragment=tag-cloud")
    assert "xkey" not in off.headers and "<html" in off.text.lower(), "off: an ordinary page, not the fragment"
    php(site, "update_option('purgebridge_esi_tag_cloud', 1); return true;")
    try:
        on = site.get("/?purgebridge-fragment=tag-cloud")
        assert on.status_code == 200 and "<html" not in on.text.lower()
    finally:
        php(site, "update_option('purgebridge_esi_tag_cloud', 0); return true;")


def cli(site, commands):
    """Run Purgebridge_CLI subcommands through the stand-in WP_CLI; returns [{exit, out}]."""
    calls = ",\n".join(f"WP_CLI::run('purgebridge', {sub!r}, {php_array(args)}, {php_array(assoc)})"
                       for sub, args, assoc in commands)
    return php(site, f"""
        require_once {str(STANDIN)!r};
        if (!Purgebridge_CLI::register()) {{ return 'not registered'; }}
        return array({calls});
    """)


def php_array(value):
    if isinstance(value, dict):
        return "array(" + ", ".join(f"{k!r} => {php_array(v)}" for k, v in value.items()) + ")"
    if isinstance(value, (list, tuple)):
        return "array(" + ", ".join(php_array(v) for v in value) + ")"
    if isinstance(value, bool):
        return "true" if value else "false"
    return repr(value)


def test_wp_cli_adapter(wordpress_site, relay, people):
    site = wordpress_site
    assert php(site, "return Purgebridge_CLI::register();") is False, "not registered outside WP-CLI"
    urls, post, related, everything, refused_all, nothing, bad = cli(site, [
        ("purge", [people["url"]["mine"], "/contact/"], {}),
        ("purge", [], {"post": str(people["other"])}),
        ("purge", [], {"post": str(people["other"]), "related": True}),
        ("purge", [], {"all": True, "yes": True}),
        ("purge", [], {"all": True}),
        ("purge", [], {}),
        ("purge", ["https://evil.example.test/"], {}),
    ])
    assert urls["exit"] == 0 and urls["out"][0].startswith("Success: Purge of 2 URLs sent.")
    assert post["exit"] == 0 and related["exit"] == 0 and everything["exit"] == 0
    assert refused_all["exit"] == 1 and "not confirmed" in refused_all["out"][0]
    assert nothing["exit"] == 1 and bad["exit"] == 1 and "is not a URL of this site" in bad["out"][0]
    changes = relay.changes()
    assert changes[0]["urls"] == [people["url"]["mine"], site.url + "/contact/"]
    assert changes[1] == {"kind": "urls", "action": "purge", "reason": "post", "urls": [people["url"]["other"]],
                          "keys": []}
    assert changes[2]["kind"] == "post" and changes[2]["post"]["id"] == people["other"]
    assert changes[3] == {"kind": "site", "action": "purge_all", "reason": "wp-cli"}
    assert len(changes) == 4
    # Queue: a refused batch is listed, retried, flushed; status and test say what happened.
    relay.clear()
    relay.answer = 401
    php(site, "wp_update_post(array('ID' => %d, 'post_content' => 'cli refused')); return true;" % people["other"])
    relay.answer = 202
    listing, status, as_json, test, flush_no, flush, retried = cli(site, [
        ("queue", ["list"], {}), ("status", [], {}), ("status", [], {"format": "json"}), ("test", [], {}),
        ("queue", ["flush"], {}), ("queue", ["flush"], {"refused": True, "yes": True}), ("queue", ["retry"], {}),
    ])
    assert listing["exit"] == 0 and re.match(r"#\d+ refused, 1 change\(s\), queued .* ago, 1 attempt\(s\): The relay "
                                             r"refused the signature", listing["out"][0])
    assert listing["out"][-1] == "1 batch(es) in the retry queue."
    assert "Relay now:     The relay is running." in status["out"]
    assert any(line.startswith("Queue:         0 waiting (oldest -), 1 refused") for line in status["out"])
    assert any(line.startswith("Last refusal:") and "refused the signature" in line for line in status["out"])
    import json
    data = json.loads(as_json["out"][0])
    assert data["queue"]["refused"] == 1 and data["configured"] is True and data["relay"]["reachable"] is True
    assert site.secret not in as_json["out"][0] and site.secret not in "\n".join(status["out"])
    assert test["exit"] == 0 and test["out"][0].startswith("Success: The relay is running.")
    assert flush_no["exit"] == 1
    assert flush["out"] == ["Success: Deleted 1 batch(es)."]
    assert retried["out"][0] == "Success: Delivered 0 queued batches; 0 still waiting, 0 refused by the relay."


def test_queue_stays_bounded_when_the_relay_refuses_for_good(wordpress_site, relay):
    """Real sends to a relay answering 401: past the bound, one purge-all row, never more."""
    site = wordpress_site
    relay.answer = 401
    rows = php(site, """
        Purgebridge_Operations::flush_queue();
        update_option('purgebridge_queue_max', 10);
        for ($i = 0; $i < 25; $i++) {
            $body = Purgebridge_Event_Builder::encode(home_url('/'), array(Purgebridge_Event_Builder::purge_all("r$i")), time());
            Purgebridge_Dispatcher::deliver($body, false, 'background');
            Purgebridge_Dispatcher::drain(true);
        }
        global $wpdb;
        $rows = $wpdb->get_results('SELECT kind, state FROM ' . Purgebridge_Queue::table(), ARRAY_A);
        Purgebridge_Operations::flush_queue();
        delete_option('purgebridge_queue_max');
        return $rows;
    """)
    assert len(rows) == 11, rows
    assert sum(1 for r in rows if r["kind"] == "purge_all") == 1


def test_a_second_copy_of_the_plugin_does_not_break_the_site(wordpress_site, relay):
    site = wordpress_site
    mu = site.root / "wp-content" / "mu-plugins"
    copy = mu / "purgebridge-copy"
    shutil.copytree(REPO / "wp-plugin" / "purgebridge", copy)
    loader = mu / "purgebridge-copy.php"
    loader.write_text("<?php require __DIR__ . '/purgebridge-copy/purgebridge.php';\n")
    try:
        assert site.get("/").status_code == 200
        active = php(site, "return PURGEBRIDGE_FILE;")
        assert active.endswith("mu-plugins/purgebridge-copy/purgebridge.php"), "mu-plugins load first"
        dashboard = admin_session(site).get(site.url + "/wp-admin/", timeout=30).text
        assert 'id="purgebridge-second-copy"' in dashboard and "Purgebridge is installed twice" in dashboard
        assert "Fatal" not in site.debug_log()
    finally:
        loader.unlink()
        shutil.rmtree(copy)
    assert php(site, "return PURGEBRIDGE_FILE;") == str(REPO / "wp-plugin" / "purgebridge" / "purgebridge.php")


def test_no_php_notices_from_the_plugin(wordpress_site):
    lines = [line for line in wordpress_site.debug_log().splitlines()
             if "purgebridge" in line.lower() and "relay refused a batch" not in line]
    assert lines == []


def pot_entries(path):
    """(msgctxt, msgid, msgid_plural) of every entry of a .pot, the header left out."""
    text = Path(path).read_text()
    entries = set()
    for block in text.split("\n\n"):
        fields = dict(re.findall(r'^(msgctxt|msgid|msgid_plural) "((?:[^"\\]|\\.)*)"$', block, re.M))
        if fields.get("msgid"):
            entries.add((fields.get("msgctxt"), fields["msgid"], fields.get("msgid_plural")))
    return entries


def test_pot_is_generated_from_the_sources(tmp_path):
    fresh = tmp_path / "fresh.pot"
    made = subprocess.run(["bash", str(REPO / "wp-plugin" / "bin" / "make-pot.sh"), str(fresh)], capture_output=True,
                          text=True, timeout=60)
    assert made.returncode == 0, made.stderr
    committed = REPO / "wp-plugin" / "purgebridge" / "languages" / "purgebridge.pot"
    assert pot_entries(committed) == pot_entries(fresh), \
        "languages/purgebridge.pot is out of date: run bash wp-plugin/bin/make-pot.sh"
    strings = {entry[1] for entry in pot_entries(fresh)}
    assert {"Purge this page", "Purgebridge is configured", "Send test event"} <= strings
    assert any(entry[2] for entry in pot_entries(fresh)), "plural forms (_n) are extracted"
    text = fresh.read_text()
    assert "#. translators: 1: relay URL, 2: why the connection failed" in text
    checked = subprocess.run(["msgfmt", "--check-format", "-o", os.devnull, str(fresh)], capture_output=True,
                             text=True, timeout=60)
    assert checked.returncode == 0, checked.stderr
    again = tmp_path / "again.pot"
    subprocess.run(["bash", str(REPO / "wp-plugin" / "bin" / "make-pot.sh"), str(again)], check=True,
                   capture_output=True, timeout=60)
    assert again.read_bytes() == fresh.read_bytes(), "no dates or line numbers: the same sources give the same file"
