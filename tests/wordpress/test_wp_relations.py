"""Every relation WordPress keeps, changed from either end, with the whole-site audit as the oracle.

Real WordPress (Debian's 6.1, twentytwentythree) with the plugin, the real
relay, and six real varnishd in front of it, in the two modes a site can run:

- **key mode**: three nodes with vcl/wordpress.vcl (xkey), the plugin's
  surrogate keys on, so pages carry ``xkey`` headers the relay's keys purge;
- **URL-only mode**: three nodes with vcl/wordpress-noxkey.vcl, which answer
  PURGEKEYS with 501: the relay learns that and sends them URL purges and
  bans only. Whatever a key would have reached must be reached by URLs.

Both modes share one WordPress and one relay and are audited together: every
scenario makes one editor action through WordPress's own routes (REST with an
application password, admin-ajax.php with the screen's nonce, wp-admin form
posts; the PHP API only where no screen exists, as for merging terms), waits
until the relay's queue is empty, and then runs ``purgebridge audit`` over the
whole site -- sitemap, listing pages, plus the pages no sitemap lists
(a post's ``/2/`` pages, its comment pages, attachment pages, REST routes) --
on all six nodes. Any cached copy that differs from the origin fails the
scenario, naming node and URL. An untouched post must stay cached (no
scenario may pass by purging everything), except where a site purge is the
documented answer (synced patterns).

The audit also leaves every page cached on every node, so each scenario
starts from a warm site as production does. docs/wordpress.md's table "what
WordPress does -> what is purged" lists the same cases.
"""

import pytest
import requests

from fixtures.wordpress import REPO, wordpress_cluster
from fixtures.wp_relay import Editor, WordPressRelay, path_of, php
from purgebridge.audit import compare as audit
from purgebridge.config.settings import load_settings
from purgebridge.testing import cluster as localcluster

pytestmark = [pytest.mark.integration, pytest.mark.wordpress]

NOXKEY_HOSTS = ("127.0.0.21", "127.0.0.22", "127.0.0.23")
AUDIT_MAX_URLS = 160  # the test site has about 100 URLs; the bound keeps the oracle's run time known


@pytest.fixture(scope="module")
def nodes(wordpress_site, tmp_path_factory):
    """Three xkey nodes (key mode) and three without xkey (URL-only mode), one relay target list."""
    with wordpress_cluster(wordpress_site.port, tmp_path_factory.mktemp("wp-relations")) as cluster:
        for host in NOXKEY_HOSTS:
            cluster.add_node(host, vcl_path=REPO / "vcl" / "wordpress-noxkey.vcl")
            cluster.nodes.append(cluster.extra_nodes.pop())  # into nodes_env(), stopped once with the cluster
        yield cluster


@pytest.fixture(scope="module")
def relay(wordpress_site, nodes, tmp_path_factory):
    with WordPressRelay(tmp_path_factory.mktemp("wp-relations-relay"), wordpress_site, nodes) as process:
        yield process


@pytest.fixture(scope="module")
def editor(wordpress_site, relay):
    return Editor(wordpress_site, relay)


@pytest.fixture(scope="module")
def blog(wordpress_site, relay, editor):
    """The site: a menu (so the header shows no page list), paginated comments, terms with a parent,
    posts a minute apart (same-second posts list in no fixed order, see docs/audit.md), a post split
    into pages, media used by ID from other posts, a page hierarchy, a synced pattern. Keys on."""
    site = wordpress_site
    ids = php(site, """
        update_option('purgebridge_xkey', 1);
        update_option('page_comments', 1);
        update_option('comments_per_page', 2);
        update_option('default_comments_page', 'oldest');
        update_option('comment_previously_approved', 0);
        update_option('thread_comments', 0);
        wp_insert_post(array('post_type' => 'wp_navigation', 'post_status' => 'publish', 'post_title' => 'Main',
            'post_content' => '<!-- wp:navigation-link {"label":"Home","url":"/"} /-->'));
        $term = function ($name, $taxonomy, $parent = 0) {
            $t = wp_insert_term($name, $taxonomy, array('parent' => $parent));
            return $t['term_id'];
        };
        $news = $term('News', 'category');
        $world = $term('World', 'category', $news);
        $sport = $term('Sport', 'category');
        $arts = $term('Arts', 'category');
        $quiet = $term('Quiet', 'category');
        $minutes = 40;
        $mk = function ($title, $content, $cats, $tags = array(), $extra = array()) use (&$minutes) {
            $when = gmdate('Y-m-d H:i:s', time() - 60 * $minutes--);
            return wp_insert_post($extra + array('post_title' => $title, 'post_status' => 'publish',
                'post_content' => $content, 'post_category' => $cats, 'tags_input' => $tags,
                'post_date' => get_date_from_gmt($when), 'post_date_gmt' => $when));
        };
        $image = function ($name, $caption, $parent = 0) {
            $upload = wp_upload_bits($name . '.gif', null, base64_decode('R0lGODlhAQABAAAAACw='));
            return wp_insert_attachment(array('post_title' => $name, 'post_excerpt' => $caption,
                'post_mime_type' => 'image/gif', 'post_status' => 'inherit'), $upload['file'], $parent);
        };
        $ids = array('news' => $news, 'world' => $world, 'sport' => $sport, 'arts' => $arts, 'quiet' => $quiet);
        $ids['unrelated'] = $mk('Unrelated quiet post', 'never touched', array($quiet));
        $ids['tagged1'] = $mk('Tagged one', 'first tagged', array($sport), array('doomed', 'kept'));
        $ids['tagged2'] = $mk('Tagged two', 'second tagged', array($arts), array('doomed'));
        $ids['doomed'] = (int) get_term_by('slug', 'doomed', 'post_tag')->term_id;
        $ids['worldpost'] = $mk('World report', 'from the world', array($world));
        $ids['newspost'] = $mk('News brief', 'news only', array($news));
        $ids['merged'] = $mk('Merged away', 'in sport and arts', array($sport, $arts));
        $ids['split'] = $mk('Split story', "Page one text<!--nextpage-->Page two text<!--nextpage-->Page three text",
            array($arts));
        $ids['talk'] = $mk('Talked about', 'many comments', array($sport));
        for ($n = 1; $n <= 5; $n++) {
            wp_insert_comment(array('comment_post_ID' => $ids['talk'], 'comment_content' => "Comment number $n",
                'comment_author' => "Reader $n", 'comment_approved' => 1,
                'comment_date' => get_date_from_gmt(gmdate('Y-m-d H:i:s', time() - 3000 + 60 * $n)),
                'comment_date_gmt' => gmdate('Y-m-d H:i:s', time() - 3000 + 60 * $n)));
        }
        $ids['loose'] = $image('loose', 'Loose caption');          // attached to no post
        $ids['other'] = $image('other', 'Other caption');
        $ids['cover'] = $image('cover', 'Cover caption');
        $ids['gallerypost'] = $mk('Gallery post', '[gallery ids="' . $ids['loose'] . ',' . $ids['other'] . '"]'
            . '<!-- wp:image {"id":' . $ids['loose'] . '} --><figure class="wp-block-image"><img src="'
            . wp_get_attachment_url($ids['loose']) . '" class="wp-image-' . $ids['loose'] . '"/></figure>'
            . '<!-- /wp:image -->', array($arts));
        $ids['featured'] = $mk('Featured post', 'has a cover', array($sport));
        set_post_thumbnail($ids['featured'], $ids['cover']);
        $ids['pattern'] = wp_insert_post(array('post_type' => 'wp_block', 'post_status' => 'publish',
            'post_title' => 'Signup', 'post_content' => '<!-- wp:paragraph --><p>Sign up today</p><!-- /wp:paragraph -->'));
        $ids['patternpost'] = $mk('Pattern post', '<!-- wp:block {"ref":' . $ids['pattern'] . '} /-->', array($arts));
        $page = function ($title, $parent = 0) {
            return wp_insert_post(array('post_type' => 'page', 'post_status' => 'publish', 'post_title' => $title,
                'post_content' => $title . ' text', 'post_parent' => $parent));
        };
        $ids['parentpage'] = $page('Parent page');
        $ids['childpage'] = $page('Child page', $ids['parentpage']);
        return $ids;
    """)
    relay.drained()
    return ids


def url(site, post_id):
    return path_of(site, php(site, "return get_permalink(%d);" % post_id))


def extra_urls(site, blog):
    """The pages the audit's discovery cannot find: paginated posts, comment pages, attachment pages, REST."""
    split, talk = url(site, blog["split"]), url(site, blog["talk"])
    found = [split + "2/", split + "3/", talk + "comment-page-1/", talk + "comment-page-2/",
             talk + "comment-page-3/", "/wp-json/wp/v2/posts", "/wp-json/wp/v2/pages"]
    found += [f"/wp-json/wp/v2/posts/{blog[name]}" for name in ("gallerypost", "featured", "tagged1", "split")]
    found += [url(site, blog[name]) for name in ("loose", "other", "cover") if php(
        site, "return (bool) get_post(%d);" % blog[name])]
    return [site.url + path for path in found]


def audit_site(site, nodes, blog):
    """The oracle: ``purgebridge audit`` over the whole site finds no stale copy on any of the six nodes.

    Sitemap and listing pages (docs/audit.md) plus :func:`extra_urls`. Also
    caches every page on every node, so the next scenario starts warm.
    """
    settings = load_settings({"PURGEBRIDGE_NODES": nodes.nodes_env(), "PURGEBRIDGE_ORIGIN": site.host,
                              "PURGEBRIDGE_TIMEOUT": "5"}, environ={}, dotenv_path="")
    auditor = audit.Auditor(settings, audit.resolve_origin(settings), rate=1000, concurrency=4)
    try:
        urls, _notes = audit.discover(auditor, site.url, settings.pagination)
        urls = list(dict.fromkeys(urls + extra_urls(site, blog)))
        assert len(urls) <= AUDIT_MAX_URLS, f"{len(urls)} URLs: raise AUDIT_MAX_URLS knowingly"
        report = auditor.run(urls)
        problems = [f"{c.state.value} {c.node} {path_of(site, c.url)}: {c.detail}" for c in report.problems()]
        if report.stale():
            auditor.fix(report)  # a failed scenario must not leave its stale copies to the next one
    finally:
        auditor.close()
    assert report.urls >= 30, "the audit found almost nothing to check"
    return problems


def still_cached(site, nodes, blog):
    """The untouched post is still a HIT on every node: the scenario was not answered by a site purge."""
    quiet = url(site, blog["unrelated"])
    return [f"{node.name} {quiet}: {status}" for node in nodes.nodes
            if (status := localcluster.xcache(node, quiet, site.host)) != "HIT"]


def settle(site, nodes, blog, precise=True):
    """End of a scenario: the untouched post kept (when ``precise``), then the whole-site audit."""
    lost = still_cached(site, nodes, blog) if precise else []
    problems = audit_site(site, nodes, blog)
    assert not (lost or problems), "\n".join(
        [f"purged though untouched: {line}" for line in lost]
        + [f"{len(problems)} problem(s) on {len({p.split()[1] for p in problems})} node(s):"] + problems)


def test_warm_site_is_fresh_everywhere_and_keys_are_on(wordpress_site, nodes, relay, blog):
    site = wordpress_site
    keys = requests.get(site.url + url(site, blog["gallerypost"]), timeout=15).headers.get("xkey", "").split()
    assert {f"post-{blog['gallerypost']}", f"attachment-{blog['loose']}", f"attachment-{blog['other']}"} <= set(keys)
    listing = requests.get(site.url + "/", timeout=15).headers.get("xkey", "").split()
    assert f"attachment-{blog['cover']}" in listing, "the front page shows the featured image"
    assert audit_site(site, nodes, blog) == []  # first pass caches, second judges
    assert audit_site(site, nodes, blog) == []


# -- post <-> term ------------------------------------------------------------

def test_deleting_a_tag_posts_carry(wordpress_site, nodes, relay, editor, blog):
    """The posts print their tag links; every listing showing them prints them too."""
    editor.rest("DELETE", f"wp/v2/tags/{blog['doomed']}?force=true")
    settle(wordpress_site, nodes, blog)


def test_a_tag_removed_from_a_post_by_code(wordpress_site, nodes, relay, editor, blog):
    """wp_remove_object_terms() (plugins, importers, WP-CLI) writes no post and sets no terms."""
    php(wordpress_site, "wp_remove_object_terms(%d, 'kept', 'post_tag'); return true;" % blog["tagged1"])
    relay.drained()
    settle(wordpress_site, nodes, blog)


def test_merging_a_category_into_another(wordpress_site, nodes, relay, editor, blog):
    """No screen merges terms: wp_delete_term() with a forced default moves every post to the target."""
    php(wordpress_site, "wp_delete_term(%d, 'category', array('default' => %d, 'force_default' => true));"
        " return true;" % (blog["sport"], blog["arts"]))
    relay.drained()
    settle(wordpress_site, nodes, blog)


# -- term <-> parent term -------------------------------------------------------

def test_parent_category_slug_change_moves_its_children(wordpress_site, nodes, relay, editor, blog):
    """/category/news/world/ becomes /category/headlines/world/: the child's posts print the new link."""
    editor.rest("POST", f"wp/v2/categories/{blog['news']}", slug="headlines")
    settle(wordpress_site, nodes, blog)


def test_deleting_a_parent_category_lifts_its_children(wordpress_site, nodes, relay, editor, blog):
    """Its child moves to the top (/category/world/); the child's posts print the new link."""
    editor.ajax_delete_term(blog["news"], "category")
    settle(wordpress_site, nodes, blog)


# -- a post's own pages -----------------------------------------------------------

def test_editing_the_second_page_of_a_split_post(wordpress_site, nodes, relay, editor, blog):
    editor.rest("POST", f"wp/v2/posts/{blog['split']}",
                content="Page one text<!--nextpage-->Page two, edited<!--nextpage-->Page three text")
    settle(wordpress_site, nodes, blog)


def test_renaming_a_category_reaches_every_page_of_a_split_post(wordpress_site, nodes, relay, editor, blog):
    editor.rest("POST", f"wp/v2/categories/{blog['arts']}", name="Arts and letters")
    settle(wordpress_site, nodes, blog)


def test_a_visitor_comment_reaches_every_comment_page(wordpress_site, nodes, relay, editor, blog):
    """Comments are paginated (2 a page): every comment page prints the count, the last one the comment."""
    site = wordpress_site
    response = requests.post(site.url + "/wp-comments-post.php", timeout=60, allow_redirects=False, data={
        "comment_post_ID": blog["talk"], "author": "Visitor", "email": "visitor@example.test",
        "comment": "Sixth, through the form", "submit": "Post Comment"})
    assert response.status_code == 302, response.text[:500]
    relay.drained()
    settle(site, nodes, blog)


# -- post <-> attachment ------------------------------------------------------------

def test_caption_of_an_unattached_image_shown_by_a_gallery(wordpress_site, nodes, relay, editor, blog):
    editor.rest("POST", f"wp/v2/media/{blog['loose']}", caption="Loose caption, edited")
    settle(wordpress_site, nodes, blog)


def test_alt_text_of_a_featured_image(wordpress_site, nodes, relay, editor, blog):
    editor.rest("POST", f"wp/v2/media/{blog['cover']}", alt_text="A cover, described")
    settle(wordpress_site, nodes, blog)


def test_deleting_a_featured_image(wordpress_site, nodes, relay, editor, blog):
    """WordPress removes the _thumbnail_id of every post using it: those posts lose their image."""
    editor.rest("DELETE", f"wp/v2/media/{blog['cover']}?force=true")
    settle(wordpress_site, nodes, blog)


# -- post <-> parent / children -------------------------------------------------------

def test_moving_a_child_page_to_the_top_level(wordpress_site, nodes, relay, editor, blog):
    """The former parent is no longer a parent (its body class page-parent goes)."""
    editor.rest("POST", f"wp/v2/pages/{blog['childpage']}", parent=0)
    settle(wordpress_site, nodes, blog)


def test_a_new_child_page_makes_its_parent_a_parent(wordpress_site, nodes, relay, editor, blog):
    editor.rest("POST", "wp/v2/pages", title="New child", status="publish", parent=blog["parentpage"])
    settle(wordpress_site, nodes, blog)


# -- post <-> synced pattern ----------------------------------------------------------

def test_editing_a_synced_pattern_a_post_shows(wordpress_site, nodes, relay, editor, blog):
    """A synced pattern can be in any post or template: the documented answer is a site purge."""
    editor.rest("POST", f"wp/v2/blocks/{blog['pattern']}",
                content="<!-- wp:paragraph --><p>Sign up tomorrow</p><!-- /wp:paragraph -->")
    settle(wordpress_site, nodes, blog, precise=False)


def test_deleting_a_synced_pattern_a_post_shows(wordpress_site, nodes, relay, editor, blog):
    editor.rest("DELETE", f"wp/v2/blocks/{blog['pattern']}?force=true")
    settle(wordpress_site, nodes, blog, precise=False)


def test_every_batch_was_accepted_and_no_php_warnings(wordpress_site, relay):
    """Runs last: nothing waits in the plugin's retry queue or was refused; no PHP notice from the plugin."""
    site = wordpress_site
    assert php(site, "return array(Purgebridge_Queue::count('pending'), Purgebridge_Queue::count('dead'));") \
        == [0, 0]
    assert [line for line in site.debug_log().splitlines() if "purgebridge" in line.lower()] == []
