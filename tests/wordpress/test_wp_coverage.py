"""Every way a page of a modern WordPress changes, driven as editors drive it.

Real WordPress (Debian's 6.1, block theme twentytwentythree) with the plugin,
the real relay, three real varnishd with vcl/wordpress.vcl -- the set-up of
tests/wordpress/test_wp_e2e.py, whose module-scoped fixtures this module reuses with its
own WordPress. Editors' tools are used as they use them: the block editor's
REST calls with an application password, Quick Edit through admin-ajax.php
with a login cookie and the page's nonce, Bulk Edit and bulk trash through
edit.php, XML-RPC, the Site Editor's and the widget screen's REST routes.

Each test warms the pages it cares about on every node, makes one editor
action, waits until the relay has purged, and checks that each affected page
is no longer served from cache on any node while an untouched page still is
(``check``). docs/wordpress.md's table "what WordPress does -> what is
purged" lists the same cases.
"""

import base64
import re
import xmlrpc.client

import pytest
import requests

from fixtures.wordpress import HarnessError
from fixtures.wp_relay import check, path_of, php, warm

pytestmark = [pytest.mark.integration, pytest.mark.wordpress]

ADMIN_PASSWORD = "admin-password-for-tests"


def php(site, code):
    try:
        return site.php("wp_set_current_user(1);\n" + code)
    except HarnessError as exc:
        pytest.fail(str(exc), pytrace=False)


class Editor:
    """The admin user as the block editor and wp-admin talk to WordPress."""

    def __init__(self, site, relay):
        self.site = site
        self.relay = relay
        # WordPress offers application passwords on plain http only on a
        # "local" environment; a test-only must-use plugin says so.
        (site.root / "wp-content" / "mu-plugins" / "purgebridge-test-app-passwords.php").write_text(
            "<?php add_filter('wp_is_application_passwords_available', '__return_true');\n")
        password = php(site, """
            list($password) = WP_Application_Passwords::create_new_application_password(1, array('name' => 'e2e'));
            return $password;
        """)
        token = base64.b64encode(f"admin:{password}".encode()).decode()
        self.rest_session = requests.Session()
        self.rest_session.headers["Authorization"] = f"Basic {token}"
        self.app_password = password
        self.cookies = None

    def rest(self, method, route, expect=(200, 201), **json_body):
        """One REST call as the block editor makes it; waits until the relay has purged."""
        response = self.rest_session.request(method, f"{self.site.url}/wp-json/{route}", json=json_body or None,
                                             timeout=60)
        assert response.status_code in expect, f"{method} {route}: {response.status_code} {response.text[:800]}"
        self.relay.drained()
        return response.json() if response.content else None

    def admin(self):
        """A logged-in wp-admin session (cookie), as a person's browser has."""
        if self.cookies is None:
            session = requests.Session()
            session.get(self.site.url + "/wp-login.php", timeout=15)
            response = session.post(self.site.url + "/wp-login.php", timeout=30, allow_redirects=False, data={
                "log": "admin", "pwd": ADMIN_PASSWORD, "redirect_to": self.site.url + "/wp-admin/",
                "testcookie": "1"})
            assert response.status_code == 302, response.text[-1500:]
            self.cookies = session
        return self.cookies


@pytest.fixture(scope="module")
def editor(wordpress_site, relay):
    return Editor(wordpress_site, relay)


@pytest.fixture(scope="module")
def blog(wordpress_site, relay, editor):
    """Categories, tags, an author and posts; ``unrelated`` is never touched except by site purges."""
    site = wordpress_site
    ids = php(site, """
        $cat = function ($name) { $t = wp_insert_term($name, 'category'); return $t['term_id']; };
        $news = $cat('News'); $sport = $cat('Sport'); $arts = $cat('Arts'); $quiet = $cat('Quiet');
        $mk = function ($title, $cats, $tags, $author = 1) {
            return wp_insert_post(array('post_title' => $title, 'post_status' => 'publish', 'post_content' => $title,
                'post_category' => $cats, 'tags_input' => $tags, 'post_author' => $author));
        };
        $writer = wp_insert_user(array('user_login' => 'writer', 'user_pass' => 'writer-pass-123',
            'display_name' => 'Wanda Writer', 'user_nicename' => 'wanda', 'role' => 'author'));
        return array(
            'news' => $news, 'sport' => $sport, 'arts' => $arts, 'quiet' => $quiet, 'writer' => $writer,
            'unrelated' => $mk('Unrelated quiet post', array($quiet), array(), 1),
            'alpha' => $mk('Alpha story', array($news), array('red')),
            'bravo' => $mk('Bravo story', array($sport), array('blue')),
            'charlie' => $mk('Charlie story', array($arts), array()),
            'delta' => $mk('Delta story', array($arts), array()),
            'wanda1' => $mk('Wanda first', array($arts), array(), $writer),
        );
    """)
    relay.drained()
    return ids


def url(site, post_id):
    return path_of(site, php(site, "return get_permalink(%d);" % post_id))


def unrelated(site, blog):
    return url(site, blog["unrelated"])


SITE_WIDE_SAMPLE = ["/", "/feed/", "/category/quiet/", "/tag/blue/"]


def site_wide_purge(wp_cluster, site, relay, blog, action):
    """``action()`` must purge every page of the site, the untouched post included."""
    pages = SITE_WIDE_SAMPLE + [unrelated(site, blog)]
    warm(wp_cluster, site, pages)
    action()
    relay.drained()
    check(wp_cluster, site, pages, [])


# -- the block editor (REST with an application password) --------------------

def test_block_editor_update_and_its_meta_box_post(wordpress_site, wp_cluster, relay, editor, blog):
    site = wordpress_site
    alpha, quiet = url(site, blog["alpha"]), unrelated(site, blog)
    warm(wp_cluster, site, [alpha, "/", "/category/news/", "/feed/", quiet])
    editor.rest("POST", f"wp/v2/posts/{blog['alpha']}", content="<!-- wp:paragraph --><p>edited in the block editor</p>"
                "<!-- /wp:paragraph -->")
    check(wp_cluster, site, [alpha, "/", "/category/news/", "/feed/"], [quiet])
    # The block editor then posts the classic meta boxes to post.php; that save must not fail and purges again.
    admin = editor.admin()
    page = admin.get(f"{site.url}/wp-admin/post.php?post={blog['alpha']}&action=edit", timeout=60).text
    nonce = re.search(r'name="_wpnonce" value="([0-9a-f]+)"', page)
    assert nonce, "post.php edit form has a _wpnonce"
    warm(wp_cluster, site, [alpha, quiet])
    response = admin.post(f"{site.url}/wp-admin/post.php", timeout=60, allow_redirects=False, data={
        "post_ID": blog["alpha"], "action": "editpost", "_wpnonce": nonce.group(1), "meta-box-loader": "1",
        "post_type": "post", "original_post_status": "publish", "originalaction": "editpost",
        "post_author": "1", "user_ID": "1"})
    assert response.status_code in (200, 302), response.text[:500]
    relay.drained()
    check(wp_cluster, site, [alpha], [quiet])
    for node in wp_cluster.nodes:
        assert b"edited in the block editor" in node.get(alpha, site.host)[2]


def test_block_editor_new_post_in_a_new_category(wordpress_site, wp_cluster, relay, editor, blog):
    site = wordpress_site
    quiet = unrelated(site, blog)
    warm(wp_cluster, site, ["/", "/feed/", "/category/news/", quiet])
    category = editor.rest("POST", "wp/v2/categories", name="Brand new")
    post = editor.rest("POST", "wp/v2/posts", title="Echo published", content="e", status="publish",
                       categories=[category["id"], blog["news"]])
    check(wp_cluster, site, ["/", "/feed/", "/category/news/"], [quiet])
    assert requests.get(post["link"], timeout=15).status_code == 200
    blog["echo"] = post["id"]


def test_block_editor_slug_change_and_unpublish(wordpress_site, wp_cluster, relay, editor, blog):
    site = wordpress_site
    old, quiet = url(site, blog["charlie"]), unrelated(site, blog)
    warm(wp_cluster, site, [old, "/", "/category/arts/", quiet])
    editor.rest("POST", f"wp/v2/posts/{blog['charlie']}", slug="charlie-renamed")
    check(wp_cluster, site, [old, "/", "/category/arts/"], [quiet])
    new = url(site, blog["charlie"])
    assert new.endswith("/charlie-renamed/")
    warm(wp_cluster, site, [new, "/", "/category/arts/", quiet])
    editor.rest("POST", f"wp/v2/posts/{blog['charlie']}", status="draft")
    check(wp_cluster, site, [new, "/", "/category/arts/"], [quiet])
    editor.rest("POST", f"wp/v2/posts/{blog['charlie']}", status="publish")


# -- terms changed outside the save -------------------------------------------

def test_categories_set_before_the_post_update(wordpress_site, wp_cluster, relay, editor, blog):
    """wp_set_post_categories() first, wp_update_post() second: the category left stays purged."""
    site = wordpress_site
    quiet = unrelated(site, blog)
    archives = ["/category/sport/", "/category/arts/"]
    warm(wp_cluster, site, archives + [quiet])
    php(site, "wp_set_post_categories(%d, array(%d)); wp_update_post(array('ID' => %d)); return true;"
        % (blog["bravo"], blog["arts"], blog["bravo"]))
    relay.drained()
    check(wp_cluster, site, archives, [quiet])
    # The REST controller sets terms after its wp_update_post(): moved back and forth.
    for category in (blog["sport"], blog["arts"]):
        warm(wp_cluster, site, archives + [quiet])
        editor.rest("POST", f"wp/v2/posts/{blog['bravo']}", categories=[category])
        check(wp_cluster, site, archives, [quiet])


def inline_edit_nonce(page):
    found = re.search(r'id="_inline_edit" name="_inline_edit" value="([0-9a-f]+)"', page)
    assert found, "edit.php carries the Quick Edit nonce"
    return found.group(1)


def test_quick_edit_moves_a_post_and_renames_its_slug(wordpress_site, wp_cluster, relay, editor, blog):
    site = wordpress_site
    delta, quiet = url(site, blog["delta"]), unrelated(site, blog)
    archives = ["/category/arts/", "/category/sport/"]
    warm(wp_cluster, site, [delta] + archives + [quiet])
    admin = editor.admin()
    nonce = inline_edit_nonce(admin.get(site.url + "/wp-admin/edit.php", timeout=60).text)
    data = {"action": "inline-save", "_inline_edit": nonce, "post_ID": blog["delta"], "post_type": "post",
            "screen": "edit-post", "post_title": "Delta story", "post_name": "delta-quick", "_status": "publish",
            "post_author": "1", "post_category[]": ["0", str(blog["sport"])], "tax_input[post_tag]": "",
            "comment_status": "open", "ping_status": "open"}
    response = admin.post(site.url + "/wp-admin/admin-ajax.php", data=data, timeout=60)
    assert response.status_code == 200 and "delta-quick" in response.text, response.text[:500]
    relay.drained()
    check(wp_cluster, site, [delta] + archives, [quiet])


def bulk_nonce(page):
    found = re.search(r'id="_wpnonce" name="_wpnonce" value="([0-9a-f]+)"', page)
    assert found, "edit.php carries the bulk-posts nonce"
    return found.group(1)


def test_bulk_edit_and_bulk_trash_from_the_posts_screen(wordpress_site, wp_cluster, relay, editor, blog):
    site = wordpress_site
    quiet = unrelated(site, blog)
    ids = php(site, """
        $a = wp_insert_post(array('post_title' => 'Bulk one', 'post_status' => 'publish', 'post_content' => 'b'));
        $b = wp_insert_post(array('post_title' => 'Bulk two', 'post_status' => 'publish', 'post_content' => 'b'));
        return array($a, $b);
    """)
    relay.drained()
    posts = [url(site, i) for i in ids]
    warm(wp_cluster, site, posts + ["/category/news/", quiet])
    admin = editor.admin()
    nonce = bulk_nonce(admin.get(site.url + "/wp-admin/edit.php", timeout=60).text)
    params = [("_wpnonce", nonce), ("action", "edit"), ("bulk_edit", "Update"), ("post_type", "post"),
              ("post_category[]", "0"), ("post_category[]", str(blog["news"])), ("_status", "-1"),
              ("post_author", "-1"), ("comment_status", ""), ("ping_status", ""), ("sticky", "-1"),
              ("post_format", "-1"), ("tax_input[post_tag]", "")] + [("post[]", str(i)) for i in ids]
    response = admin.get(site.url + "/wp-admin/edit.php", params=params, timeout=60, allow_redirects=False)
    assert response.status_code == 302 and "updated=2" in response.headers.get("Location", ""), response.text[:500]
    relay.drained()
    check(wp_cluster, site, posts + ["/category/news/"], [quiet])
    warm(wp_cluster, site, posts + ["/", quiet])
    params = [("_wpnonce", nonce), ("action", "trash"), ("post_type", "post")] + [("post[]", str(i)) for i in ids]
    response = admin.get(site.url + "/wp-admin/edit.php", params=params, timeout=60, allow_redirects=False)
    assert response.status_code == 302 and "trashed=2" in response.headers.get("Location", ""), response.text[:500]
    relay.drained()
    check(wp_cluster, site, posts + ["/"], [quiet])


def test_xmlrpc_edit_post(wordpress_site, wp_cluster, relay, editor, blog):
    site = wordpress_site
    alpha, quiet = url(site, blog["alpha"]), unrelated(site, blog)
    warm(wp_cluster, site, [alpha, "/", quiet])
    server = xmlrpc.client.ServerProxy(site.url + "/xmlrpc.php")
    assert server.wp.editPost(1, "admin", ADMIN_PASSWORD, blog["alpha"], {"post_title": "Alpha via XML-RPC"}) is True
    relay.drained()
    check(wp_cluster, site, [alpha, "/"], [quiet])
    for node in wp_cluster.nodes:
        assert b"Alpha via XML-RPC" in node.get(alpha, site.host)[2]


# -- comments -------------------------------------------------------------------

def test_visitor_comment_through_the_form_purges_the_post_and_feeds(wordpress_site, wp_cluster, relay, editor, blog):
    """A returning visitor's comment is approved at once (wp-comments-post.php, as the comment form posts it)."""
    site = wordpress_site
    php(site, "update_option('comment_previously_approved', 0); return true;")
    bravo, quiet = url(site, blog["bravo"]), unrelated(site, blog)
    feeds = ["/feed/", "/category/arts/feed/"]
    warm(wp_cluster, site, [bravo] + feeds + [quiet])
    response = requests.post(site.url + "/wp-comments-post.php", timeout=60, allow_redirects=False, data={
        "comment_post_ID": blog["bravo"], "author": "Visitor", "email": "visitor@example.test",
        "comment": "Posted through the form", "submit": "Post Comment"})
    assert response.status_code == 302, response.text[:500]
    relay.drained()
    check(wp_cluster, site, [bravo] + feeds, [quiet])
    for node in wp_cluster.nodes:
        assert b"Posted through the form" in node.get(bravo, site.host)[2]


def test_comments_through_rest_purge_the_feeds_that_count_them(wordpress_site, wp_cluster, relay, editor, blog):
    site = wordpress_site
    bravo, quiet = url(site, blog["bravo"]), unrelated(site, blog)
    # bravo is in Arts now (test_categories_set_before_the_post_update)
    feeds = ["/feed/", "/category/arts/feed/"]
    for step in ("create", "edit", "delete"):
        warm(wp_cluster, site, [bravo] + feeds + [quiet])
        if step == "create":
            comment = editor.rest("POST", "wp/v2/comments", post=blog["bravo"], content="Nice one")
        elif step == "edit":
            editor.rest("POST", f"wp/v2/comments/{comment['id']}", content="Nice one, edited")
        else:
            editor.rest("DELETE", f"wp/v2/comments/{comment['id']}?force=true")
        check(wp_cluster, site, [bravo] + feeds, [quiet])


def test_comment_approval_purges_the_feeds(wordpress_site, wp_cluster, relay, editor, blog):
    site = wordpress_site
    bravo, quiet = url(site, blog["bravo"]), unrelated(site, blog)
    comment_id = php(site, "return wp_insert_comment(array('comment_post_ID' => %d, 'comment_content' => 'Held',"
                           " 'comment_author' => 'Reader', 'comment_approved' => 0));" % blog["bravo"])
    relay.drained()
    warm(wp_cluster, site, [bravo, "/feed/", "/category/arts/feed/", quiet])
    php(site, "wp_set_comment_status(%d, 'approve'); return true;" % comment_id)
    relay.drained()
    check(wp_cluster, site, [bravo, "/feed/", "/category/arts/feed/"], [quiet])


# -- terms and authors ----------------------------------------------------------

def test_term_rename_reaches_every_post_carrying_it(wordpress_site, wp_cluster, relay, editor, blog):
    site = wordpress_site
    carrying = [url(site, blog["alpha"]), url(site, blog["echo"])]  # both in News
    quiet = unrelated(site, blog)
    warm(wp_cluster, site, carrying + ["/category/news/", "/feed/", "/", quiet])
    editor.rest("POST", f"wp/v2/categories/{blog['news']}", name="Headlines", slug="headlines")
    check(wp_cluster, site, carrying + ["/category/news/", "/feed/", "/"], [quiet])
    for node in wp_cluster.nodes:
        assert b"Headlines" in node.get(carrying[0], site.host)[2]


def test_author_profile_change_purges_old_and_new_archive_and_their_posts(wordpress_site, wp_cluster, relay,
                                                                          editor, blog):
    site = wordpress_site
    post, quiet = url(site, blog["wanda1"]), unrelated(site, blog)
    warm(wp_cluster, site, [post, "/author/wanda/", quiet])
    editor.rest("POST", f"wp/v2/users/{blog['writer']}", name="Wanda W. Writer", slug="wanda-w")
    check(wp_cluster, site, [post, "/author/wanda/"], [quiet])
    warm(wp_cluster, site, ["/author/wanda-w/"])
    for node in wp_cluster.nodes:
        assert b"Wanda W. Writer" in node.get(post, site.host)[2]


# -- pages, attachments, sticky ------------------------------------------------

def test_parent_page_slug_change_purges_its_childrens_old_urls(wordpress_site, wp_cluster, relay, editor, blog):
    site = wordpress_site
    ids = php(site, """
        $parent = wp_insert_post(array('post_type' => 'page', 'post_title' => 'Parent', 'post_name' => 'parent',
            'post_status' => 'publish', 'post_content' => 'p'));
        $child = wp_insert_post(array('post_type' => 'page', 'post_title' => 'Child', 'post_name' => 'child',
            'post_parent' => $parent, 'post_status' => 'publish', 'post_content' => 'c'));
        $grandchild = wp_insert_post(array('post_type' => 'page', 'post_title' => 'Grandchild',
            'post_name' => 'grandchild', 'post_parent' => $child, 'post_status' => 'publish', 'post_content' => 'g'));
        return array($parent, $child, $grandchild);
    """)
    relay.drained()
    quiet = unrelated(site, blog)
    old = ["/parent/", "/parent/child/", "/parent/child/grandchild/"]
    warm(wp_cluster, site, old + [quiet])
    editor.rest("POST", f"wp/v2/pages/{ids[0]}", slug="elder")
    check(wp_cluster, site, old, [quiet])
    assert requests.get(site.url + "/elder/child/grandchild/", timeout=15).status_code == 200


def test_attachment_edit_purges_its_page_and_the_post_it_belongs_to(wordpress_site, wp_cluster, relay, editor, blog):
    site = wordpress_site
    attachment = php(site, """
        $upload = wp_upload_bits('pixel.gif', null, base64_decode('R0lGODlhAQABAAAAACw='));
        $id = wp_insert_attachment(array('post_title' => 'Pixel', 'post_mime_type' => 'image/gif',
            'post_status' => 'inherit'), $upload['file'], %d);
        return $id;
    """ % blog["delta"])
    relay.drained()
    page, parent, quiet = url(site, attachment), url(site, blog["delta"]), unrelated(site, blog)
    warm(wp_cluster, site, [page, parent, quiet])
    editor.rest("POST", f"wp/v2/media/{attachment}", title="Pixel renamed", caption="A caption")
    check(wp_cluster, site, [page, parent], [quiet])


def test_sticky_on_and_off_purge_the_front_page(wordpress_site, wp_cluster, relay, editor, blog):
    site = wordpress_site
    quiet = unrelated(site, blog)
    warm(wp_cluster, site, ["/", "/page/2/", quiet])
    editor.rest("POST", f"wp/v2/posts/{blog['delta']}", sticky=True)  # the block editor's toggle (saves the post)
    check(wp_cluster, site, ["/", "/page/2/"], [quiet])
    warm(wp_cluster, site, ["/", "/page/2/", quiet])
    php(site, "unstick_post(%d); return true;" % blog["delta"])  # no save at all: only the sticky_posts option
    relay.drained()
    check(wp_cluster, site, ["/", "/page/2/"], [quiet])


# -- site-wide: Site Editor, navigation, patterns, widgets, settings ----------

def test_site_editor_template_part_save_purges_every_page(wordpress_site, wp_cluster, relay, editor, blog):
    site = wordpress_site
    footer = editor.rest("GET", "wp/v2/template-parts/twentytwentythree//footer", context="edit")
    content = footer["content"]["raw"] + "<!-- wp:paragraph --><p>Site Editor footer</p><!-- /wp:paragraph -->"
    site_wide_purge(wp_cluster, site, relay, blog, lambda: editor.rest(
        "POST", "wp/v2/template-parts/twentytwentythree//footer", content=content))
    for node in wp_cluster.nodes:
        assert b"Site Editor footer" in node.get(unrelated(site, blog), site.host)[2]


def test_global_styles_save_purges_every_page(wordpress_site, wp_cluster, relay, editor, blog):
    site = wordpress_site
    theme = editor.rest("GET", "wp/v2/themes?status=active")[0]
    styles_id = int(theme["_links"]["wp:user-global-styles"][0]["href"].rstrip("/").rsplit("/", 1)[1])
    site_wide_purge(wp_cluster, site, relay, blog, lambda: editor.rest(
        "POST", f"wp/v2/global-styles/{styles_id}", settings={}, styles={"color": {"background": "#fafaf0"}}))


def test_navigation_and_synced_pattern_saves_purge_every_page(wordpress_site, wp_cluster, relay, editor, blog):
    site = wordpress_site
    site_wide_purge(wp_cluster, site, relay, blog, lambda: editor.rest(
        "POST", "wp/v2/navigation", title="Main", status="publish",
        content='<!-- wp:navigation-link {"label":"News","url":"/category/news/"} /-->'))
    site_wide_purge(wp_cluster, site, relay, blog, lambda: editor.rest(
        "POST", "wp/v2/blocks", title="Signup", status="publish",
        content="<!-- wp:paragraph --><p>Sign up</p><!-- /wp:paragraph -->"))


def test_widget_save_purges_every_page(wordpress_site, wp_cluster, relay, editor, blog):
    site = wordpress_site
    site_wide_purge(wp_cluster, site, relay, blog, lambda: editor.rest(
        "POST", "wp/v2/widgets", id_base="block", sidebar="wp_inactive_widgets",
        instance={"raw": {"content": "<!-- wp:paragraph --><p>widget</p><!-- /wp:paragraph -->"}}))


def test_reading_settings_and_menu_locations_purge_every_page(wordpress_site, wp_cluster, relay, editor, blog):
    site = wordpress_site
    site_wide_purge(wp_cluster, site, relay, blog, lambda: editor.rest(
        "POST", "wp/v2/settings", posts_per_page=4, date_format="Y-m-d", description="A new tagline"))
    site_wide_purge(wp_cluster, site, relay, blog, lambda: php(
        site, "set_theme_mod('nav_menu_locations', array('primary' => 7)); return true;"))


# -- large change sets, imports, long processes, the public API ----------------

def test_large_change_set_is_one_site_purge(wordpress_site, wp_cluster, relay, editor, blog):
    site = wordpress_site

    def update_many():
        result = php(site, """
            add_filter('purgebridge_site_purge_threshold', function () { return 20; });
            wp_defer_term_counting(true);
            for ($i = 0; $i < 21; $i++) {
                wp_insert_post(array('post_title' => "Imported $i", 'post_status' => 'publish', 'post_content' => 'i'));
            }
            return Purgebridge_Plugin::buffer()->pending();
        """)
        assert result == 0, "over the threshold nothing more is kept one by one"
    site_wide_purge(wp_cluster, site, relay, blog, update_many)


def test_import_start_to_end_is_one_site_purge(wordpress_site, wp_cluster, relay, editor, blog):
    site = wordpress_site

    def run_import():
        php(site, """
            do_action('import_start');
            wp_insert_post(array('post_title' => 'From the importer', 'post_status' => 'publish',
                'post_content' => 'i'));
            do_action('import_end');
            return true;
        """)
    site_wide_purge(wp_cluster, site, relay, blog, run_import)


def test_long_cli_process_flushes_periodically(wordpress_site, wp_cluster, relay, editor, blog):
    site = wordpress_site
    alpha, delta, quiet = url(site, blog["alpha"]), url(site, blog["delta"]), unrelated(site, blog)
    warm(wp_cluster, site, [alpha, delta, quiet])
    pending = php(site, """
        add_filter('purgebridge_flush_interval', function () { return 1; });
        wp_update_post(array('ID' => %d, 'post_content' => 'cli one'));
        $first = Purgebridge_Plugin::buffer()->pending();
        sleep(1);
        wp_update_post(array('ID' => %d, 'post_content' => 'cli two'));
        return array($first, Purgebridge_Plugin::buffer()->pending());
    """ % (blog["alpha"], blog["delta"]))
    assert pending == [1, 1], "the first post was sent when the second came after the interval"
    relay.drained()
    check(wp_cluster, site, [alpha, delta], [quiet])


def test_public_api_purges_urls_posts_and_keys(wordpress_site, wp_cluster, relay, editor, blog):
    site = wordpress_site
    alpha, delta, quiet = url(site, blog["alpha"]), url(site, blog["delta"]), unrelated(site, blog)
    warm(wp_cluster, site, [alpha, delta, quiet, "/category/quiet/"])
    php(site, "do_action('purgebridge_purge_urls', array(home_url('/category/quiet/'))); return true;")
    relay.drained()
    check(wp_cluster, site, ["/category/quiet/"], [alpha, delta, quiet])
    php(site, "do_action('purgebridge_purge_post', %d); return true;" % blog["alpha"])
    relay.drained()
    check(wp_cluster, site, [alpha], [delta, quiet])


# -- surrogate keys: terms shown on pages, the tag cloud -----------------------

@pytest.fixture
def xkey_on(wordpress_site, relay):
    # Pages cached before carry no keys: start from an empty cache, as a site
    # owner does when switching keys on.
    php(wordpress_site, "update_option('purgebridge_xkey', 1); Purgebridge_Plugin::buffer()->site('xkey on'); return true;")
    relay.drained()
    try:
        yield
    finally:
        php(wordpress_site, "update_option('purgebridge_xkey', 0); return true;")


def test_tag_cloud_block_pages_are_fresh_when_a_post_gains_or_loses_a_tag(wordpress_site, wp_cluster, relay,
                                                                           editor, blog, xkey_on):
    site = wordpress_site
    page = editor.rest("POST", "wp/v2/pages", title="Tags", status="publish",
                       content="<!-- wp:tag-cloud /-->")
    cloud, quiet = path_of(site, page["link"]), unrelated(site, blog)
    assert "tag-cloud" in requests.get(page["link"], timeout=15).headers.get("xkey", "").split()
    tag_ids = {t: php(site, "$t = term_exists(%r, 'post_tag') ?: wp_insert_term(%r, 'post_tag');"
                            " return (int) $t['term_id'];" % (t, t)) for t in ("red", "green")}
    relay.drained()
    for tags in ([tag_ids["red"], tag_ids["green"]], [tag_ids["red"]]):
        warm(wp_cluster, site, [cloud, quiet])
        editor.rest("POST", f"wp/v2/posts/{blog['alpha']}", tags=tags)
        check(wp_cluster, site, [cloud], [quiet])
    for node in wp_cluster.nodes:
        assert b"/tag/green/" not in node.get(cloud, site.host)[2]


def test_api_keys_and_term_keys_on_pages(wordpress_site, wp_cluster, relay, editor, blog, xkey_on):
    site = wordpress_site
    alpha, quiet = url(site, blog["alpha"]), unrelated(site, blog)
    keys = requests.get(site.url + alpha, timeout=15).headers.get("xkey", "").split()
    assert f"term-{blog['news']}" in keys, keys
    warm(wp_cluster, site, [alpha, quiet])
    php(site, "do_action('purgebridge_purge_keys', array('term-%d')); return true;" % blog["news"])
    relay.drained()
    check(wp_cluster, site, [alpha], [quiet])


CLASSIC_THEME = {
    "style.css": "/*\nTheme Name: Purgebridge Classic Test\n*/\n",
    "functions.php": "<?php add_action('widgets_init', function () {"
                     " register_sidebar(array('id' => 'sidebar-1', 'name' => 'Sidebar')); });\n",
    "index.php": "<!DOCTYPE html><html><head><?php wp_head(); ?></head><body>"
                 "<?php while (have_posts()) { the_post(); the_title('<h1>', '</h1>'); the_content(); }"
                 " dynamic_sidebar('sidebar-1'); wp_footer(); ?></body></html>\n",
}


def test_classic_tag_cloud_widget_pages_are_fresh_when_a_post_gains_a_tag(wordpress_site, wp_cluster, relay,
                                                                           editor, blog, xkey_on):
    """A classic theme prints its sidebar after the headers are sent: the widget is known up front."""
    site = wordpress_site
    theme = site.root / "wp-content" / "themes" / "purgebridge-classic"
    theme.mkdir(exist_ok=True)
    for name, text in CLASSIC_THEME.items():
        (theme / name).write_text(text)
    php(site, "switch_theme('purgebridge-classic'); return true;")
    relay.drained()
    try:
        # (Debian's WordPress 6.1 files a classic widget created over /wp/v2/widgets under
        # wp_inactive_widgets right after a theme switch, so it is placed as the widgets screen stores it.)
        php(site, """
            $tag_clouds = get_option('widget_tag_cloud', array());
            $tag_clouds[9] = array('title' => 'Tags', 'taxonomy' => 'post_tag', 'count' => 0);
            $tag_clouds['_multiwidget'] = 1;
            update_option('widget_tag_cloud', $tag_clouds);
            $sidebars = wp_get_sidebars_widgets();
            $sidebars['sidebar-1'][] = 'tag_cloud-9';
            wp_set_sidebars_widgets($sidebars);
            return true;
        """)
        relay.drained()
        page, quiet_feed = unrelated(site, blog), "/category/quiet/feed/"
        shown = requests.get(site.url + page, timeout=15)
        assert "/tag/blue/" in shown.text and "tag-cloud" in shown.headers.get("xkey", "").split()
        warm(wp_cluster, site, [page, quiet_feed])
        tag = php(site, "$t = wp_insert_term('violet', 'post_tag'); return $t['term_id'];")
        relay.drained()
        warm(wp_cluster, site, [page, quiet_feed])
        editor.rest("POST", f"wp/v2/posts/{blog['alpha']}", tags=[tag])
        check(wp_cluster, site, [page], [quiet_feed])
        for node in wp_cluster.nodes:
            assert b"/tag/violet/" in node.get(page, site.host)[2]
    finally:
        php(site, "switch_theme('twentytwentythree'); return true;")
        relay.drained()


def test_every_batch_was_accepted_and_no_php_warnings(wordpress_site, relay):
    """Runs last: nothing of this module's editing waits in the plugin's retry queue or was refused."""
    site = wordpress_site
    assert php(site, "return array(Purgebridge_Queue::count('pending'), Purgebridge_Queue::count('dead'));") \
        == [0, 0]
    lines = [line for line in site.debug_log().splitlines() if "purgebridge" in line.lower()]
    assert lines == []
