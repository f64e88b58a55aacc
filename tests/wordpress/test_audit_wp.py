"""`purgebridge audit` on a real WordPress (plugin NOT active) behind three real varnishd.

With the plugin deactivated nothing purges, so every edit leaves stale copies:
the audit must name exactly the pages whose origin answer changed, on every
node, and nothing else; ``--fix`` must make them fresh; a node that alone
kept an old copy must be the only node named; and no real change (title,
body, comment count, menu item, footer) may be normalised away. The set of
changed pages is found independently of the audit: the origin's raw answers
for every URL before and after the edit.
"""

import json
import os
from pathlib import Path
import re
import subprocess
import sys
import time

import pytest
import requests

from fixtures.wordpress import HarnessError, free_port, served_wordpress, wordpress_cluster
from purgebridge.testing import RelayProcess

pytestmark = [pytest.mark.integration, pytest.mark.wordpress]

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def inactive_site(tmp_path_factory):
    """WordPress with purgebridge installed but not activated: edits purge nothing."""
    with served_wordpress(tmp_path_factory.mktemp("wp-audit"), activate=False) as site:
        yield site


@pytest.fixture(scope="module")
def cluster(inactive_site, tmp_path_factory):
    with wordpress_cluster(inactive_site.port, tmp_path_factory.mktemp("wp-audit-cluster")) as running:
        yield running


def php(site, code):
    try:
        return site.php("wp_set_current_user(1);\n" + code)
    except HarnessError as exc:
        pytest.fail(str(exc), pytrace=False)


@pytest.fixture(scope="module")
def content(inactive_site):
    """Posts a minute apart (posts of the same second come in no fixed order: see docs/audit.md)."""
    return php(inactive_site, """
        $news = wp_insert_term('News', 'category');
        $out = array();
        foreach (array('alpha', 'bravo', 'charlie', 'unrelated') as $n => $name) {
            $when = gmdate('Y-m-d H:i:s', time() - 3600 + 60 * $n);
            $id = wp_insert_post(array('post_title' => ucfirst($name) . ' story', 'post_status' => 'publish',
                'post_content' => "<!-- wp:paragraph --><p>$name body</p><!-- /wp:paragraph -->",
                'post_category' => array($news['term_id']), 'tags_input' => array('red'),
                'post_date' => get_date_from_gmt($when), 'post_date_gmt' => $when));
            $out[$name] = array('id' => $id, 'url' => get_permalink($id));
        }
        $out['comment'] = wp_insert_comment(array('comment_post_ID' => $out['charlie']['id'],
            'comment_content' => 'Pending reader comment', 'comment_author' => 'Reader',
            'comment_author_email' => 'reader@example.test', 'comment_approved' => 0));
        return $out;
    """)


def audit(site, cluster, *args, nodes=None):
    """Run the real command; returns (exit status, parsed --json output)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PURGEBRIDGE_")}
    env.update(PURGEBRIDGE_NODES=",".join(nodes or [n.name for n in cluster.nodes]),
               PURGEBRIDGE_ORIGIN=site.host, PURGEBRIDGE_TIMEOUT="5", PYTHONPATH=str(REPO))
    proc = subprocess.run([sys.executable, "-m", "purgebridge", "audit", "--json", "--rate", "500", *args],
                          capture_output=True, text=True, env=env, timeout=300, cwd=REPO)
    assert proc.returncode in (0, 1), proc.stdout + proc.stderr
    return proc.returncode, json.loads(proc.stdout)


def whole_site(site, cluster, *args):
    return audit(site, cluster, "--site", site.url, *args)


def stale_pairs(report):
    return {(c["url"], c["node"]) for c in report["checks"] if c["state"] == "stale"}


def origin_snapshot(site, urls):
    """The origin's raw answer (status, Location, body) for every URL, without any cache or normalisation."""
    found = {}
    for url in urls:
        path = url[len(site.url):]
        response = site.get(path, timeout=30)
        found[url] = (response.status_code, response.headers.get("Location"), response.content)
    return found


def changed_by(site, urls, code):
    """Run an edit; return the URLs whose origin answer it changed."""
    before = origin_snapshot(site, urls)
    php(site, code)
    after = origin_snapshot(site, urls)
    return {url for url in urls if before[url] != after[url]}


@pytest.fixture(scope="module")
def site_urls(inactive_site, cluster, content):
    """Warm every node with two whole-site audits; the second must find everything cached and fresh."""
    status, first = whole_site(inactive_site, cluster)
    assert status == 0, first["problems"]
    status, second = whole_site(inactive_site, cluster)
    assert status == 0, second["problems"]
    urls = sorted({c["url"] for c in second["checks"]})
    fresh = {(c["url"], c["node"]) for c in second["checks"] if c["state"] == "fresh"}
    pages = {c["url"] for c in second["checks"]}
    assert content["alpha"]["url"] in pages and inactive_site.url + "/feed/" in pages
    assert inactive_site.url + "/category/news/" in pages and inactive_site.url + "/author/admin/" in pages
    # Everything WordPress lets a cache keep is cached and fresh on every node (404s and such are "no-cache").
    assert len(fresh) >= 3 * (len(urls) - 6), second["nodes"]
    return urls


def test_an_edit_without_the_plugin_is_exactly_the_stale_pages_on_every_node(inactive_site, cluster, content,
                                                                              site_urls):
    site = inactive_site
    changed = changed_by(site, site_urls, "wp_update_post(array('ID' => %d, 'post_title' => 'Alpha renamed title',"
                                          " 'post_content' => 'alpha body, edited')); return true;"
                         % content["alpha"]["id"])
    assert content["alpha"]["url"] in changed and content["unrelated"]["url"] not in changed
    assert site.url + "/" in changed  # the front page lists the title
    names = [n.name for n in cluster.nodes]
    status, report = whole_site(site, cluster)
    assert status == 1
    assert stale_pairs(report) == {(url, name) for url in changed for name in names}
    stale = next(c for c in report["checks"] if c["url"] == content["alpha"]["url"] and c["state"] == "stale")
    assert "Alpha renamed title" in stale["detail"] and stale["age"] is not None

    status, fixed = whole_site(site, cluster, "--fix")
    assert status == 0, fixed["problems"]
    assert stale_pairs(fixed) == set()
    assert sum(n["purged"] for f in fixed["fix"] for n in f["nodes"]) == len(changed) * 3
    status, again = whole_site(site, cluster)
    assert status == 0 and stale_pairs(again) == set()
    for node in cluster.nodes:
        assert b"Alpha renamed title" in node.get(content["alpha"]["url"][len(site.url):], site.host)[2]


def test_a_node_that_kept_an_old_copy_is_the_only_node_named(inactive_site, cluster, content, site_urls):
    site = inactive_site
    changed = changed_by(site, site_urls, "wp_update_post(array('ID' => %d, 'post_content' => 'bravo, edited'));"
                                          " return true;" % content["bravo"]["id"])
    assert content["bravo"]["url"] in changed
    old = cluster.nodes[1]
    others = [n.name for n in cluster.nodes if n is not old]
    purge = subprocess.run([sys.executable, "-m", "purgebridge", "purge", *sorted(changed)],
                           env=dict(os.environ, PURGEBRIDGE_NODES=",".join(others), PYTHONPATH=str(REPO)),
                           capture_output=True, text=True, timeout=60, cwd=REPO)
    assert purge.returncode == 0, purge.stdout + purge.stderr
    status, report = whole_site(site, cluster)
    assert status == 1
    assert stale_pairs(report) == {(url, old.name) for url in changed}
    summary = {n["node"]: n for n in report["nodes"]}
    assert summary[old.name]["stale"] == len(changed)
    assert all(summary[name]["stale"] == 0 for name in others)
    status, fixed = whole_site(site, cluster, "--fix")
    assert status == 0 and [f["nodes"][0]["node"] for f in fixed["fix"]] == [old.name]


CHANGES = {
    "title": ("post", "wp_update_post(array('ID' => {alpha}, 'post_title' => 'Alpha title, second edit'));"),
    "body": ("post", "wp_update_post(array('ID' => {alpha}, 'post_content' => 'alpha body, second edit'));"),
    "comment count": ("charlie", "wp_set_comment_status({comment}, 'approve');"),
    "menu item": ("front", "wp_insert_post(array('post_type' => 'page', 'post_status' => 'publish',"
                           " 'post_title' => 'Opening hours'));"),
    "footer": ("front", """
        $part = wp_insert_post(array('post_type' => 'wp_template_part', 'post_status' => 'publish',
            'post_name' => 'footer', 'post_title' => 'Footer',
            'post_content' => '<!-- wp:paragraph --><p>Footer, edited in the site editor</p><!-- /wp:paragraph -->'));
        wp_set_post_terms($part, array('twentytwentythree'), 'wp_theme');
        wp_set_post_terms($part, array('footer'), 'wp_template_part_area');"""),
}


@pytest.mark.parametrize("kind", list(CHANGES))
def test_a_real_change_is_never_normalised_away(inactive_site, cluster, content, site_urls, kind):
    site = inactive_site
    which, code = CHANGES[kind]
    url = {"post": content["alpha"]["url"], "charlie": content["charlie"]["url"], "front": site.url + "/"}[which]
    status, warm = audit(site, cluster, url, "--fix")  # earlier edits may have left this page stale
    assert status == 0, warm["problems"]
    status, warm = audit(site, cluster, url)
    assert {c["state"] for c in warm["checks"]} == {"fresh"}, warm["checks"]
    changed = changed_by(site, [url], code.format(alpha=content["alpha"]["id"], comment=content["comment"])
                         + " return true;")
    assert changed == {url}, f"the {kind} edit did not change {url} at the origin"
    status, report = audit(site, cluster, url)
    assert status == 1
    assert stale_pairs(report) == {(url, n.name) for n in cluster.nodes}, report["checks"]
    status, fixed = audit(site, cluster, url, "--fix")
    assert status == 0 and stale_pairs(fixed) == set()


def test_origin_down_is_an_error_and_exit_1(inactive_site, cluster, content, site_urls):
    env = {k: v for k, v in os.environ.items() if not k.startswith("PURGEBRIDGE_")}
    env.update(PURGEBRIDGE_NODES=",".join(n.name for n in cluster.nodes), PYTHONPATH=str(REPO),
               PURGEBRIDGE_TIMEOUT="1")
    proc = subprocess.run([sys.executable, "-m", "purgebridge", "audit", "--origin", f"127.0.0.1:{free_port()}",
                           content["alpha"]["url"]], capture_output=True, text=True, env=env, timeout=60, cwd=REPO)
    assert proc.returncode == 1
    assert "ERROR" in proc.stdout and "origin: connection refused" in proc.stdout


def test_continuous_audit_in_the_relay_counts_and_logs_a_stale_page_once(inactive_site, cluster, content,
                                                                         site_urls, tmp_path):
    site = inactive_site
    relay = RelayProcess(tmp_path, free_port(), {
        "PURGEBRIDGE_NODES": ",".join(n.name for n in cluster.nodes), "PURGEBRIDGE_SITES": site.host,
        "PURGEBRIDGE_SECRET": "s" * 32, "PURGEBRIDGE_ORIGIN": site.host, "PURGEBRIDGE_AUDIT_SAMPLE": "600",
        "PURGEBRIDGE_TIMEOUT": "5"}, "audit-admin-token")
    status, fixed = whole_site(site, cluster, "--fix")  # earlier tests left pages stale: only charlie's now
    assert status == 0, fixed["problems"]
    changed = changed_by(site, [content["charlie"]["url"]],
                         "wp_update_post(array('ID' => %d, 'post_content' => 'charlie, edited for the sampler'));"
                         " return true;" % content["charlie"]["id"])
    assert changed
    relay.start()
    try:
        stale_line = re.compile(r'purgebridge_audit_stale_total\{node="([^"]+)"\} ([0-9.]+)')
        deadline = time.monotonic() + 120
        seen = {}
        while time.monotonic() < deadline:
            text = requests.get(relay.url("/metrics"), timeout=5).text
            seen = {node: float(n) for node, n in stale_line.findall(text)}
            checked = re.search(r"^purgebridge_audit_checked_total ([0-9.]+)", text, re.M)
            if checked and float(checked.group(1)) >= 2 * len(site_urls) + 2 and seen and all(seen.values()):
                break
            time.sleep(0.5)
        assert set(seen) == {n.name for n in cluster.nodes} and all(seen.values()), text
        stalest = float(re.search(r"^purgebridge_audit_stalest_age_seconds ([0-9.]+)", text, re.M).group(1))
        assert stalest > 0
        log = relay.log_path.read_text()
        for node in cluster.nodes:
            lines = [line for line in log.splitlines()
                     if "stale copy of " + content["charlie"]["url"] in line and node.name in line]
            assert len(lines) == 1, log[-3000:]
    finally:
        relay.stop()
