"""WordPress tells the nodes' truth: after a purge, on the settings page, the Dashboard, Site Health and WP-CLI.

    requests (logged-in admin) -> php -S (WordPress + purgebridge) -> real relay -> 3 x varnishd + 1 refusing

Faults are injected for real: a varnishd stopped (down), a varnishd whose acl
refuses the relay (405), the relay stopped, a wrong secret. Each step reads
what the admin sees and compares it with what the nodes hold.
"""

import html
import re

import pytest

from fixtures.wp_relay import WordPressRelay, admin_session, php, settings_page

pytestmark = [pytest.mark.integration, pytest.mark.wordpress]


class NodesRelay(WordPressRelay):
    """The relay WordPress talks to, over the cluster's three nodes plus one more."""

    def __init__(self, workdir, site, cluster, extra):
        super().__init__(workdir, site, cluster)
        self.env["PURGEBRIDGE_NODES"] = ",".join([cluster.nodes_env(), extra])


@pytest.fixture(scope="module")
def refusing(wp_cluster):
    node = wp_cluster.add_node("127.0.0.14", acl=('"192.0.2.1"',))  # RFC 5737 text only: the relay is not in it
    yield node
    node.stop()


@pytest.fixture(scope="module")
def relay(wordpress_site, wp_cluster, refusing, tmp_path_factory):
    with NodesRelay(tmp_path_factory.mktemp("wp-truth-relay"), wordpress_site, wp_cluster,
                    refusing.node.name) as process:
        yield process


@pytest.fixture(scope="module")
def page_url(wordpress_site, relay):
    url = php(wordpress_site, """
        $id = wp_insert_post(array('post_title' => 'Truth page', 'post_status' => 'publish', 'post_content' => 't'));
        return get_permalink($id);
    """)
    relay.drained()
    return url


def notice(page):
    found = re.search(r'<div id="purgebridge-notice" class="notice notice-(\w+)[^"]*" role="(\w+)"><p>([^<]*)</p>', page)
    return (found.group(1), found.group(2), html.unescape(found.group(3))) if found else None


def status_row(page, row):
    found = re.search(r'<tr id="purgebridge-status-%s" class="purgebridge-(\w+)"><th[^>]*>[^<]*</th><td>([^<]*)</td>'
                      % row, page)
    return (found.group(1), html.unescape(found.group(2))) if found else None


def purge_urls(session, site, urls):
    page = settings_page(session, site)
    nonce = re.search(r'name="action" value="purgebridge_purge_url" />\s*<input type="hidden" id="_wpnonce" '
                      r'name="_wpnonce" value="([0-9a-f]+)"', page).group(1)
    return session.post(site.url + "/wp-admin/admin-post.php", timeout=60, data={
        "action": "purgebridge_purge_url", "_wpnonce": nonce, "urls": "\n".join(urls)}).text


def forget(site):
    php(site, "Purgebridge_Node_Truth::forget(); return true;")


def test_a_purge_says_which_nodes_purged_and_why_the_others_did_not(wordpress_site, wp_cluster, refusing, relay,
                                                                       page_url):
    site = wordpress_site
    path = page_url[len(site.url):]
    good, down, good2 = wp_cluster.nodes
    for node in (good, good2):
        node.get(path, site.host)
    down.stop()
    try:
        session = admin_session(site)
        level, role, text = notice(purge_urls(session, site, [page_url]))
        # What the nodes hold: purged on the two that answer ...
        for node in (good, good2):
            assert wp_cluster.xcache(node, path, site.host) == "MISS"
        # ... and what the admin reads says exactly that, with the down and the refusing node named.
        assert text.startswith(f"Purge of {page_url} sent. Accepted by the relay. 2 of 4 Varnish nodes purged."), text
        assert f"Node {down.node.name} is down since" in text and "sent when it returns" in text
        # (the page's creation was refused there too: every refused purge of this site is counted)
        assert re.search(re.escape(f"Node {refusing.node.name} refused ") + r"\d+ purges? \(HTTP 405", text), text
        assert "which purges it on" not in text
        assert (level, role) == ("error", "alert")
        # The settings page drawn right after says the same in its nodes row; the flash was asked a moment before.
        page = settings_page(session, site)
        state, row = status_row(page, "nodes")
        assert state == "error" and row.startswith("2 of 4 Varnish nodes purged.") and down.node.name in row
        # The Dashboard carries a standing notice naming the nodes.
        dashboard = session.get(site.url + "/wp-admin/index.php", timeout=30).text
        assert 'id="purgebridge-nodes"' in dashboard and refusing.node.name in dashboard
        # Site Health: not "good".
        health = php(site, "return Purgebridge_Site_Health::test_nodes();")
        assert health["status"] == "critical" and down.node.name in health["description"]
        # WP-CLI: the same sentences, and exit 1.
        cli = php(site, """
            require_once %r;
            Purgebridge_CLI::register();
            return WP_CLI::run('purgebridge', 'status', array(), array());
        """ % str(__import__("pathlib").Path(__file__).resolve().parents[2] / "wp-plugin" / "tests" / "support"
                  / "wp-cli-standin.php"))
        out = "\n".join(cli["out"])
        assert cli["exit"] == 1, cli
        assert "Varnish nodes: 2 of 4 Varnish nodes purged." in out
        assert re.search(re.escape(down.node.name) + r"\s+waiting", out), out
        assert re.search(re.escape(refusing.node.name) + r"\s+refused", out), out
    finally:
        down.start()
    # The node is back: its purges are delivered and the page says so (re-checked, never the old answer).
    relay.wait(lambda s: s["nodes"][1]["up"] is True and s["nodes"][1]["pending"] == 0, what="node back")
    assert wp_cluster.xcache(down, path, site.host) in ("MISS", "PASS")
    forget(site)
    state, row = status_row(settings_page(admin_session(site), site), "nodes")
    assert "3 of 4 Varnish nodes purged." in row and down.node.name not in row, row


def test_relay_down_is_a_notice_on_the_dashboard_and_not_a_passed_queue(wordpress_site, relay, page_url):
    site = wordpress_site
    session = admin_session(site)
    relay.stop()
    try:
        text = notice(purge_urls(session, site, [page_url]))
        assert text[0] == "error" and "retry queue" in text[2], text
        dashboard = session.get(site.url + "/wp-admin/index.php", timeout=30).text
        assert 'id="purgebridge-relay-down"' in dashboard and "cannot be reached" in dashboard
        queue = php(site, "return Purgebridge_Site_Health::test_queue();")
        assert queue["status"] != "good", queue
    finally:
        relay.start()
    php(site, "Purgebridge_Relay_State::mark_up(); Purgebridge_Dispatcher::drain(true); return true;")
    relay.drained()


def test_a_wrong_secret_says_the_relay_did_not_accept_the_signature(wordpress_site, relay):
    """The relay restarted with another secret: the plugin says it was refused, never a node state it did not get."""
    site = wordpress_site
    relay.stop()
    right = relay.env["PURGEBRIDGE_SECRET"]
    relay.env["PURGEBRIDGE_SECRET"] = "another-secret-the-site-does-not-know"
    relay.start()
    try:
        forget(site)
        text = php(site, """
            $truth = Purgebridge_Node_Truth::get(true);
            $summary = Purgebridge_Node_Truth_Text::summary($truth);
            return array($truth['status'], $summary['level'], $summary['text']);
        """)
        assert text[0] == 401 and text[1] == "error", text
        assert text[2] == "The relay did not accept this site's signature, so it does not say what the Varnish nodes did."
        assert php(site, "return Purgebridge_Site_Health::test_nodes();")["status"] == "critical"
    finally:
        relay.stop()
        relay.env["PURGEBRIDGE_SECRET"] = right
        relay.start()
        forget(site)


def test_purge_urls_box_keeps_what_was_typed_and_says_nothing_was_purged(wordpress_site, relay, page_url):
    site = wordpress_site
    session = admin_session(site)
    typed = f"{page_url}\nhttp://elsewhere.example.test/x/"
    page = purge_urls(session, site, typed.split("\n"))
    level, role, text = notice(page)
    assert (level, role) == ("error", "alert")
    assert text.startswith("Nothing was purged. http://elsewhere.example.test/x/ is not a URL of this site"), text
    box = re.search(r'<textarea id="purgebridge-urls"[^>]*>([^<]*)</textarea>', page).group(1)
    assert html.unescape(box) == typed
    again = settings_page(session, site)  # given back once, not forever
    assert re.search(r'<textarea id="purgebridge-urls"[^>]*></textarea>', again)
