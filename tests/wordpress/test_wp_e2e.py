"""End to end: a real WordPress with the plugin, the real relay, three real varnishd.

    php -S (WordPress + purgebridge plugin)  --event-->  relay  --PURGE-->  3 x varnishd (vcl/wordpress.vcl)
           ^--------------------------- backend of every node -------------------------------'

Every step edits WordPress the way WordPress does it (its own PHP API in a
fresh PHP process, whose shutdown sends the plugin's batch; WP-Cron through
/wp-cron.php), waits until the relay's queue is empty, and then checks on
every node that each affected URL is a MISS while an unrelated post is still a
HIT. The steps share one WordPress and one cluster and run in file order.
"""

from pathlib import Path
import time

import pytest
import requests

from purgebridge.audit import compare as audit
from purgebridge.config.settings import load_settings
from fixtures.wp_relay import check, path_of, php, warm

pytestmark = [pytest.mark.integration, pytest.mark.wordpress]

REPO = Path(__file__).resolve().parents[2]
AUDIT_MAX_URLS = 60  # the whole test site is about 40 URLs; the bound keeps a growing site's oracle quick


@pytest.fixture(scope="module")
def blog(wordpress_site, relay):
    """Categories, tags and posts; ``unrelated`` is never touched by any step."""
    site = wordpress_site
    ids = php(site, """
        $news  = wp_insert_term('News', 'category');
        $world = wp_insert_term('World', 'category', array('parent' => $news['term_id']));
        $sport = wp_insert_term('Sport', 'category');
        // A minute apart: posts of the same second come in no fixed order, so archives would vary (docs/audit.md).
        $minutes = 10;
        $ago = function () use (&$minutes) {
            $when = gmdate('Y-m-d H:i:s', time() - 60 * $minutes--);
            return array('post_date' => get_date_from_gmt($when), 'post_date_gmt' => $when);
        };
        $mk = function ($title, $cats, $tags) use ($ago) {
            return wp_insert_post(array('post_title' => $title, 'post_status' => 'publish', 'post_content' => $title,
                'post_category' => $cats, 'tags_input' => $tags) + $ago());
        };
        $unrelated = wp_insert_post(array('post_title' => 'Unrelated quiet post', 'post_status' => 'publish',
            'post_content' => 'never touched', 'post_category' => array(1)) + $ago());
        return array(
            'news' => $news['term_id'], 'world' => $world['term_id'], 'sport' => $sport['term_id'],
            'unrelated' => $unrelated,
            'alpha' => $mk('Alpha story', array($world['term_id']), array('red', 'blue')),
            'bravo' => $mk('Bravo story', array($sport['term_id']), array('blue')),
            'charlie' => $mk('Charlie story', array($news['term_id']), array()),
        );
    """)
    relay.drained()
    ids["url"] = {name: php(site, "return get_permalink(%d);" % ids[name])
                  for name in ("unrelated", "alpha", "bravo", "charlie")}
    return ids


def step(site, relay, code):
    """One editor action in its own PHP process; wait until the relay has purged it."""
    result = php(site, code)
    relay.drained()
    return result


def assert_site_fresh(site, cluster):
    """Oracle for every scenario: ``purgebridge audit`` over the whole site finds no stale copy on any node.

    Sitemap plus listing pages, every node against the origin (docs/audit.md).
    Call it at the end of a scenario, after ``relay.drained()``. It also
    caches every page on every node, so the next scenario starts from a warm
    site, as production does.
    """
    settings = load_settings({"PURGEBRIDGE_NODES": cluster.nodes_env(), "PURGEBRIDGE_ORIGIN": site.host,
                              "PURGEBRIDGE_TIMEOUT": "5"}, environ={}, dotenv_path="")
    auditor = audit.Auditor(settings, audit.resolve_origin(settings), rate=1000, concurrency=4)
    try:
        urls, _notes = audit.discover(auditor, site.url, settings.pagination)
        report = auditor.run(urls[:AUDIT_MAX_URLS])
    finally:
        auditor.close()
    assert report.urls >= 10, "the audit found almost nothing to check"
    assert [f"{c.state.value} {c.node} {c.url}: {c.detail}" for c in report.problems()] == []


def test_wordpress_pages_are_cached_by_every_node(wordpress_site, wp_cluster, relay, blog):
    site = wordpress_site
    unrelated = path_of(site, blog["url"]["unrelated"])
    warm(wp_cluster, site, ["/", unrelated, "/category/news/"])
    for node in wp_cluster.nodes:
        status, headers, body = node.get(unrelated, site.host)
        assert status == 200 and b"Unrelated quiet post" in body
    assert_site_fresh(wordpress_site, wp_cluster)


def test_publish(wordpress_site, wp_cluster, relay, blog):
    site = wordpress_site
    unrelated = path_of(site, blog["url"]["unrelated"])
    affected = ["/", "/feed/", "/category/news/", "/category/news/world/", "/tag/red/", "/author/admin/"]
    warm(wp_cluster, site, affected + [unrelated, "/category/sport/"])
    url = step(site, relay, """
        $id = wp_insert_post(array('post_title' => 'Delta published', 'post_status' => 'publish',
            'post_content' => 'd', 'post_category' => array(%d), 'tags_input' => array('red')));
        return get_permalink($id);
    """ % blog["world"])
    check(wp_cluster, site, affected, [unrelated, "/category/sport/"])
    assert requests.get(url, timeout=15).status_code == 200
    assert_site_fresh(wordpress_site, wp_cluster)


def test_update(wordpress_site, wp_cluster, relay, blog):
    site = wordpress_site
    unrelated = path_of(site, blog["url"]["unrelated"])
    alpha = path_of(site, blog["url"]["alpha"])
    warm(wp_cluster, site, [alpha, "/", "/category/news/world/", unrelated])
    step(site, relay, "wp_update_post(array('ID' => %d, 'post_content' => 'updated text')); return true;"
         % blog["alpha"])
    check(wp_cluster, site, [alpha, "/", "/category/news/world/"], [unrelated])
    for node in wp_cluster.nodes:
        assert b"updated text" in node.get(alpha, site.host)[2]
    assert_site_fresh(wordpress_site, wp_cluster)


def test_the_same_change_twice_in_one_second_is_sent_twice(wordpress_site, relay, blog):
    """Two batches with the same changes signed in the same second (the block editor's REST save and
    its meta-box post; stick_post() then unstick_post()) both reach the relay: each batch has its own
    batch_id, so the second is not refused as a replay (409), which the plugin would count as delivered."""
    answers = php(wordpress_site, """
        $snap = Purgebridge_Snapshot::post(get_post(%d));
        $changes = array(Purgebridge_Event_Builder::post_change($snap, $snap));
        for ($try = 0; $try < 3; $try++) {  // both sends inside one second, so both share a timestamp
            $second = time();
            $answers = array();
            foreach (array(1, 2) as $n) {
                $result = Purgebridge_Dispatcher::deliver(Purgebridge_Event_Builder::encode(home_url('/'), $changes, $second));
                $answers[] = array($result['status'], $result['message']);
            }
            if (time() === $second) {
                return $answers;
            }
        }
        return 'no two sends fitted in one second';
    """ % blog["alpha"])
    assert isinstance(answers, list), answers
    assert [status for status, _message in answers] == [202, 202], answers
    relay.drained()


def test_slug_change_purges_the_old_permalink(wordpress_site, wp_cluster, relay, blog):
    site = wordpress_site
    unrelated = path_of(site, blog["url"]["unrelated"])
    old = path_of(site, blog["url"]["bravo"])
    warm(wp_cluster, site, [old, "/", unrelated])
    new_url = step(site, relay, """
        wp_update_post(array('ID' => %d, 'post_name' => 'bravo-renamed'));
        return get_permalink(%d);
    """ % (blog["bravo"], blog["bravo"]))
    assert new_url.endswith("/bravo-renamed/")
    check(wp_cluster, site, [old, "/"], [unrelated])
    blog["url"]["bravo"] = new_url
    assert_site_fresh(wordpress_site, wp_cluster)


def test_category_change_purges_old_and_new_archives(wordpress_site, wp_cluster, relay, blog):
    site = wordpress_site
    unrelated = path_of(site, blog["url"]["unrelated"])
    alpha = path_of(site, blog["url"]["alpha"])
    archives = ["/category/news/world/", "/category/news/", "/category/sport/"]
    warm(wp_cluster, site, archives + [alpha, unrelated])
    step(site, relay, "wp_set_post_categories(%d, array(%d)); return true;" % (blog["alpha"], blog["sport"]))
    check(wp_cluster, site, archives + [alpha], [unrelated])
    assert_site_fresh(wordpress_site, wp_cluster)


def test_unpublish(wordpress_site, wp_cluster, relay, blog):
    site = wordpress_site
    unrelated = path_of(site, blog["url"]["unrelated"])
    alpha = path_of(site, blog["url"]["alpha"])
    warm(wp_cluster, site, [alpha, "/", "/tag/red/", unrelated])
    step(site, relay, "wp_update_post(array('ID' => %d, 'post_status' => 'draft')); return true;" % blog["alpha"])
    check(wp_cluster, site, [alpha, "/", "/tag/red/"], [unrelated])
    assert requests.get(site.url + alpha, timeout=15, allow_redirects=False).status_code == 404
    assert_site_fresh(wordpress_site, wp_cluster)


def test_trash(wordpress_site, wp_cluster, relay, blog):
    site = wordpress_site
    unrelated = path_of(site, blog["url"]["unrelated"])
    charlie = path_of(site, blog["url"]["charlie"])
    warm(wp_cluster, site, [charlie, "/", "/category/news/", unrelated])
    step(site, relay, "wp_trash_post(%d); return true;" % blog["charlie"])
    check(wp_cluster, site, [charlie, "/", "/category/news/"], [unrelated])
    assert_site_fresh(wordpress_site, wp_cluster)


def test_scheduled_post_published_by_cron(wordpress_site, wp_cluster, relay, blog):
    site = wordpress_site
    unrelated = path_of(site, blog["url"]["unrelated"])
    post_id = php(site, """
        $when = time() + 3600;
        return wp_insert_post(array('post_title' => 'Echo scheduled', 'post_status' => 'future',
            'post_content' => 'e', 'post_category' => array(%d),
            'post_date' => get_date_from_gmt(gmdate('Y-m-d H:i:s', $when)), 'post_date_gmt' => gmdate('Y-m-d H:i:s', $when)));
    """ % blog["sport"])
    relay.drained()
    warm(wp_cluster, site, ["/", "/category/sport/", unrelated])
    # The hour passes (dates moved without any hook), then WP-Cron runs as WordPress runs it.
    site.make_due(post_id)
    check(wp_cluster, site, [], ["/", "/category/sport/", unrelated])
    assert site.get("/wp-cron.php", timeout=30).status_code == 200
    relay.drained()
    assert php(site, "return get_post_status(%d);" % post_id) == "publish"
    check(wp_cluster, site, ["/", "/category/sport/"], [unrelated])
    assert_site_fresh(wordpress_site, wp_cluster)


def test_comment_approval(wordpress_site, wp_cluster, relay, blog):
    site = wordpress_site
    unrelated = path_of(site, blog["url"]["unrelated"])
    bravo = path_of(site, blog["url"]["bravo"])
    comment_id = step(site, relay, """
        return wp_insert_comment(array('comment_post_ID' => %d, 'comment_content' => 'First!',
            'comment_author' => 'Reader', 'comment_approved' => 0));
    """ % blog["bravo"])
    warm(wp_cluster, site, [bravo, unrelated])
    step(site, relay, "wp_set_comment_status(%d, 'approve'); return true;" % comment_id)
    check(wp_cluster, site, [bravo], [unrelated])
    for node in wp_cluster.nodes:
        assert b"First!" in node.get(bravo, site.host)[2]
    assert_site_fresh(wordpress_site, wp_cluster)


def test_term_edit(wordpress_site, wp_cluster, relay, blog):
    site = wordpress_site
    unrelated = path_of(site, blog["url"]["unrelated"])
    warm(wp_cluster, site, ["/category/sport/", unrelated])
    step(site, relay, "wp_update_term(%d, 'category', array('name' => 'Sports', 'slug' => 'sports')); return true;"
         % blog["sport"])
    check(wp_cluster, site, ["/category/sport/"], [unrelated])
    assert requests.get(site.url + "/category/sports/", timeout=15).status_code == 200


def test_term_edit_leaves_the_whole_site_fresh(wordpress_site, wp_cluster, relay, blog):
    """A renamed term is printed on every page listing its posts (front page, feeds,
    the posts, date and tag archives): the plugin sends those posts as updated."""
    assert_site_fresh(wordpress_site, wp_cluster)


def test_relay_down_then_cron_delivers(wordpress_site, wp_cluster, relay, blog):
    site = wordpress_site
    unrelated = path_of(site, blog["url"]["unrelated"])
    bravo = path_of(site, blog["url"]["bravo"])
    warm(wp_cluster, site, [bravo, "/", unrelated])
    relay.stop()
    started = time.monotonic()
    php(site, "wp_update_post(array('ID' => %d, 'post_content' => 'edited while the relay was down')); return true;"
        % blog["bravo"])
    assert time.monotonic() - started < 15, "the editor is not held up by a dead relay"
    assert php(site, "return Purgebridge_Queue::count('pending');") == 1
    check(wp_cluster, site, [], [bravo, "/", unrelated])
    relay.start()
    # Time passes (backoff and the cron event come due), then WP-Cron runs.
    php(site, """
        global $wpdb;
        $wpdb->query('UPDATE ' . Purgebridge_Queue::table() . ' SET next_attempt = 0');
        wp_schedule_single_event(time() - 1, 'purgebridge_drain_soon', array('e2e'));
        return true;
    """)
    assert site.get("/wp-cron.php", timeout=30).status_code == 200
    relay.drained()
    assert php(site, "return Purgebridge_Queue::count('pending');") == 0
    check(wp_cluster, site, [bravo, "/"], [unrelated])
    for node in wp_cluster.nodes:
        assert b"edited while the relay was down" in node.get(bravo, site.host)[2]
    assert_site_fresh(wordpress_site, wp_cluster)
