"""A WordPress network with two sub-sites, end to end: plugin, real relay, three varnishd.

Runs twice, on a subdirectory network (every site on one host, /, /blog2/,
/blog3/) and on a subdomain network (each sub-site on a host of its own); see
tests/fixtures/multisite.py. Every site has a post with the *same id*, so an
edit attributed to the wrong site would purge the wrong page. Pages are
checked on every node: a purged page is a MISS, a neighbour's page still a
HIT. The steps share one network per kind and run in file order; the last
one uninstalls the plugin.
"""

import re

import pytest
import requests

from fixtures.wordpress import ADMIN_PASSWORD, wordpress_cluster
from purgebridge.testing import cluster as localcluster
from purgebridge.testing import RelayProcess
from fixtures.wp_relay import ADMIN_TOKEN, php

pytestmark = [pytest.mark.integration, pytest.mark.wordpress]


@pytest.fixture(scope="module")
def cluster(wordpress_network, tmp_path_factory):
    with wordpress_cluster(wordpress_network.wp.port, tmp_path_factory.mktemp("net-cluster")) as started:
        yield started


@pytest.fixture(scope="module")
def relay(wordpress_network, cluster, tmp_path_factory):
    wp = wordpress_network.wp
    process = RelayProcess(tmp_path_factory.mktemp("net-relay"), int(wp.relay_url.rsplit(":", 1)[1]), {
        "PURGEBRIDGE_NODES": cluster.nodes_env(),
        "PURGEBRIDGE_SITES": ",".join(wordpress_network.hosts),
        "PURGEBRIDGE_SECRET": wp.secret,
        "PURGEBRIDGE_TIMEOUT": "1",
    }, ADMIN_TOKEN)
    process.start()
    # The network was built and activated before the relay listened: every site queued what it sent
    # then and marked the relay down. Deliver that backlog now, so no late retry (WP-Cron runs on
    # the first page views) purges pages in the middle of a step; then every queue must be empty.
    left = php(wordpress_network, DRAIN_EVERY_SITE)
    assert left == {}, f"batches still queued after a forced drain: {left}"
    process.drained()
    try:
        yield process
    finally:
        process.stop()


DRAIN_EVERY_SITE = """
    $left = array();
    foreach (get_sites(array('number' => 0)) as $site) {
        switch_to_blog($site->blog_id);
        Purgebridge_Dispatcher::drain(true, 'request');
        $waiting = Purgebridge_Queue::count('pending');
        if ($waiting) { $left[$site->blog_id] = $waiting; }
        restore_current_blog();
    }
    return (object) $left;
"""


def on(site, code):
    """PHP run for one site from the main site's process, as network code does it."""
    return "switch_to_blog(%d);\n%s\nrestore_current_blog();\n" % (site.blog_id, code)


@pytest.fixture(scope="module")
def stories(wordpress_network, relay):
    """One published post per site, all with the same id; name -> its path on the site's host."""
    network = wordpress_network
    ids = {name: php(network, on(site, "$id = wp_insert_post(array('post_title' => '%s story', "
                                       "'post_status' => 'publish', 'post_content' => 'first', 'import_id' => 100));" % name)
                     + "return $id;")
           for name, site in network.sites.items()}
    assert len(set(ids.values())) == 1, f"the sites' posts should share an id: {ids}"
    relay.drained()
    paths = {}
    for name, site in network.sites.items():
        url = php(network, on(site, "$url = get_permalink(%d);" % ids[name]) + "return $url;")
        assert url.startswith(site.home), url
        paths[name] = site.page(url[len(site.home):])
    return {"id": ids["main"], "path": paths}


def pages(network, stories, name):
    """The pages of one site that every test warms: its home, its feed and its story."""
    site = network.sites[name]
    return [site.page("/"), site.page("/feed/"), stories["path"][name]]


def warm_all(cluster, network, stories):
    for name, site in network.sites.items():
        cluster.warm(pages(network, stories, name), site.host)
        for node in cluster.nodes:
            for path in pages(network, stories, name):
                status = localcluster.xcache(node, path, site.host)
                if status != "HIT":
                    status = localcluster.xcache(node, path, site.host)
                assert status == "HIT", f"{site.host}{path} not cacheable on {node.name}: {status}"


def check(cluster, network, stories, purged, kept):
    """Every page of the ``purged`` sites is fresh on every node; every page of the ``kept`` ones a HIT."""
    problems = []
    for node in cluster.nodes:
        for name in purged:
            for path in pages(network, stories, name):
                status = localcluster.xcache(node, path, network.sites[name].host)
                if status != "MISS":
                    problems.append(f"{node.name} {name} {path}: {status}, expected MISS")
        for name in kept:
            for path in pages(network, stories, name):
                status = localcluster.xcache(node, path, network.sites[name].host)
                if status != "HIT":
                    problems.append(f"{node.name} {name} {path}: {status}, expected HIT")
    assert problems == [], "\n".join(problems)


SETUP_STATE = """
    global $wpdb;
    $out = array();
    foreach (get_sites(array('number' => 0)) as $site) {
        switch_to_blog($site->blog_id);
        $out[$site->blog_id] = array(
            'table' => (bool) $wpdb->get_var("SHOW TABLES LIKE '" . Purgebridge_Queue::table() . "'"),
            'db_version' => get_option('purgebridge_db_version'),
            'cron' => (bool) wp_next_scheduled('purgebridge_drain'),
        );
        restore_current_blog();
    }
    return $out;
"""


def test_network_activation_and_new_sites_set_up_every_site(wordpress_network, relay):
    """blog2 existed at network activation; blog3 was created afterwards (wp_initialize_site)."""
    state = php(wordpress_network, SETUP_STATE)
    want = {"table": True, "db_version": php(wordpress_network, "return Purgebridge_Queue::DB_VERSION;"), "cron": True}
    assert state == {str(site.blog_id): want for site in wordpress_network.sites.values()}


def test_edits_after_switch_to_blog_purge_their_own_site(wordpress_network, cluster, relay, stories):
    network = wordpress_network
    warm_all(cluster, network, stories)
    php(network, on(network.sites["blog2"], "wp_update_post(array('ID' => %d, 'post_content' => 'blog2 edited'));"
                    % stories["id"]) + "return true;")
    relay.drained()
    check(cluster, network, stories, purged=["blog2"], kept=["main", "blog3"])
    for node in cluster.nodes:
        assert b"blog2 edited" in node.get(stories["path"]["blog2"], network.sites["blog2"].host)[2]
    # One request editing the main site, then another site, then the main site again.
    warm_all(cluster, network, stories)
    php(network, "wp_update_post(array('ID' => %d, 'post_content' => 'main edited'));" % stories["id"]
        + on(network.sites["blog3"], "wp_update_post(array('ID' => %d, 'post_content' => 'blog3 edited'));"
             % stories["id"])
        + "wp_update_post(array('ID' => %d, 'post_title' => 'main story again'));" % stories["id"]
        + "return true;")
    relay.drained()
    check(cluster, network, stories, purged=["main", "blog3"], kept=["blog2"])


def test_a_site_purge_never_reaches_the_neighbours(wordpress_network, cluster, relay, stories):
    """blogdescription is shown on every page: a site purge, of that site only (a ban of its path
    on a subdirectory network, of its host on a subdomain one)."""
    network = wordpress_network
    warm_all(cluster, network, stories)
    php(network, on(network.sites["blog2"], "update_option('blogdescription', 'Blog two, renamed');") + "return true;")
    relay.drained()
    check(cluster, network, stories, purged=["blog2"], kept=["main", "blog3"])
    warm_all(cluster, network, stories)
    php(network, "update_option('blogdescription', 'The main site, renamed'); return true;")
    relay.drained()
    check(cluster, network, stories, purged=["main"], kept=["blog2", "blog3"])


def test_a_plugin_update_upgrades_each_sites_table_on_its_next_request(wordpress_network, relay):
    network = wordpress_network
    blog3 = network.sites["blog3"]
    php(network, on(blog3, """
        global $wpdb;
        $wpdb->query('DROP TABLE ' . Purgebridge_Queue::table());
        update_option('purgebridge_db_version', '0');
    """) + "return true;")
    assert network.get(blog3, "/").status_code == 200
    state = php(network, SETUP_STATE)
    assert state[str(blog3.blog_id)]["table"] and state[str(blog3.blog_id)]["db_version"] != "0"


def login(network, site, user, password):
    """A wp-login.php session on one site, cookies kept for that site's Host."""
    session = requests.Session()
    base = f"http://127.0.0.1:{network.wp.port}"
    headers = {"Host": site.host}
    session.get(base + site.page("/wp-login.php"), headers=headers, timeout=15)
    response = session.post(base + site.page("/wp-login.php"), headers=headers, timeout=30, allow_redirects=False,
                            data={"log": user, "pwd": password, "redirect_to": site.home + "wp-admin/",
                                  "testcookie": "1"})
    assert response.status_code == 302, response.text[-2000:]
    return session, base, headers


def form_nonce(page, field="_wpnonce"):
    found = re.search(r'name="%s" value="([0-9a-f]+)"' % field, page)
    assert found, "no nonce on the page"
    return found.group(1)


def test_only_a_network_admin_sets_the_relay(wordpress_network, relay):
    """The relay URL and secret are network settings; a sub-site admin can neither see a field nor
    post one (options.php) nor reach the network page."""
    network = wordpress_network
    blog2, main = network.sites["blog2"], network.sites["main"]
    relay_url = network.wp.relay_url
    php(network, """
        $id = wp_create_user('siteadmin', 'siteadmin-password', 'siteadmin@example.test');
        add_user_to_blog(%d, $id, 'administrator');
        remove_user_from_blog($id, 1);
        return $id;
    """ % blog2.blog_id)
    session, base, headers = login(network, blog2, "siteadmin", "siteadmin-password")
    page = session.get(base + blog2.page("/wp-admin/options-general.php?page=purgebridge"), headers=headers,
                       timeout=30)
    assert page.status_code == 200 and "network administrator" in page.text
    assert 'name="purgebridge_relay_url"' not in page.text and relay_url in page.text
    posted = session.post(base + blog2.page("/wp-admin/options.php"), headers=headers, timeout=30,
                          allow_redirects=False,
                          data={"option_page": "purgebridge", "action": "update", "_wpnonce": form_nonce(page.text),
                                "purgebridge_relay_url": "http://127.0.0.1:9/evil", "purgebridge_secret": "stolen",
                                "purgebridge_queue_max": "500"})
    assert posted.status_code == 302, posted.text[-1500:]
    state = php(network, on(blog2, "$s = array(Purgebridge_Settings::relay_url(), Purgebridge_Settings::secret(), "
                                   "(int) get_option('purgebridge_queue_max'));") + "return $s;")
    assert state == [relay_url, network.wp.secret, 500], "the site's own settings saved, the relay untouched"
    denied = session.post(base + "/wp-admin/network/edit.php?action=purgebridge-network", headers={
        "Host": main.host}, timeout=30, allow_redirects=False, data={"purgebridge_relay_url": "http://127.0.0.1:9/"})
    assert denied.status_code in (302, 403) and "127.0.0.1:9" not in php(
        network, "return get_site_option('purgebridge_relay_url');")
    # The network admin changes it on Network Admin -> Settings -> Purgebridge.
    session, base, headers = login(network, main, "admin", ADMIN_PASSWORD)
    page = session.get(base + "/wp-admin/network/settings.php?page=purgebridge-network", headers=headers, timeout=30)
    assert page.status_code == 200 and 'name="purgebridge_relay_url"' in page.text
    assert network.wp.secret not in page.text, "the secret is never printed"
    saved = session.post(base + "/wp-admin/network/edit.php?action=purgebridge-network", headers=headers, timeout=30,
                         allow_redirects=False, data={"_wpnonce": form_nonce(page.text),
                                                      "purgebridge_relay_url": relay_url + "/",
                                                      "purgebridge_secret": ""})
    assert saved.status_code == 302, saved.text[-1500:]
    assert php(network, on(blog2, "$u = Purgebridge_Settings::relay_url();") + "return $u;") == relay_url + "/"
    assert php(network, "return Purgebridge_Settings::secret();") == network.wp.secret, "empty keeps the secret"


def test_plugin_logged_no_php_warnings(wordpress_network):
    lines = [line for line in wordpress_network.wp.debug_log().splitlines() if "purgebridge" in line.lower()]
    assert lines == []


def test_deleting_a_site_and_uninstalling_clean_every_site(wordpress_network, relay):
    """Last in the module: it removes the plugin's data from the whole network."""
    network = wordpress_network
    host, path = (network.sites["blog2"].host.replace("blog2", "blog4"), "/") \
        if network.kind == "subdomain" else (network.wp.host, "/blog4/")
    result = php(network, """
        global $wpdb;
        $id = wp_insert_site(array('domain' => '%s', 'path' => '%s', 'title' => 'Blog4', 'user_id' => 1));
        $table = $wpdb->get_blog_prefix($id) . 'purgebridge_queue';
        $created = (bool) $wpdb->get_var("SHOW TABLES LIKE '$table'");
        wp_delete_site($id);
        return array($created, (bool) $wpdb->get_var("SHOW TABLES LIKE '$table'"));
    """ % (host, path))
    assert result == [True, False], "a new site gets the table; deleting the site drops it"
    left = php(network, """
        global $wpdb;
        deactivate_plugins('purgebridge/purgebridge.php', false, true);
        uninstall_plugin('purgebridge/purgebridge.php');
        $left = array();
        foreach (get_sites(array('number' => 0)) as $site) {
            switch_to_blog($site->blog_id);
            foreach ($wpdb->get_col("SELECT option_name FROM {$wpdb->options} WHERE option_name LIKE 'purgebridge\\_%'") as $o) {
                $left[] = $site->blog_id . ':' . $o;
            }
            if ($wpdb->get_var("SHOW TABLES LIKE '{$wpdb->prefix}purgebridge_queue'")) { $left[] = $site->blog_id . ':table'; }
            if (wp_next_scheduled('purgebridge_drain')) { $left[] = $site->blog_id . ':cron'; }
            restore_current_blog();
        }
        foreach ($wpdb->get_col("SELECT meta_key FROM {$wpdb->sitemeta} WHERE meta_key LIKE 'purgebridge\\_%'") as $m) {
            $left[] = 'network:' . $m;
        }
        return $left;
    """)
    assert left == []
