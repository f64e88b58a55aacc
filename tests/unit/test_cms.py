"""Other CMSes' intake, in process: core.cms on the real payloads captured from Ghost, Strapi and Wagtail
(tests/cms/payloads, made by tests/cms/capture.py), and the routes through the Flask app.
"""

import hashlib
import hmac
import json
from pathlib import Path
import time

import pytest

from purgebridge.core import cms
from purgebridge.service.server import check_can_serve

PAYLOADS = Path(__file__).resolve().parents[1] / "cms" / "payloads"
GHOST_SECRET = "ghost-webhook-secret-for-capture"  # what capture.py gave Ghost
SITE_GHOST = "ghost.site.test"
SITE_STRAPI = "strapi.site.test"
SITE_WAGTAIL = "wagtail.site.test"
STRAPI_TOKEN = "strapi-webhook-token-0123456789"


def captured(cms_name, step):
    return json.loads((PAYLOADS / cms_name / f"{step}.json").read_text())


def bodies(cms_name, step):
    return [json.loads(r["body"]) if r["body"] else {} for r in captured(cms_name, step)]


def ghost_union(step, settings=None):
    settings = settings or cms.GhostSettings(secret=GHOST_SECRET)
    paths, bans = set(), set()
    for body in bodies("ghost", step):
        if body == {}:
            continue
        t = cms.ghost_targets(body, settings)
        paths |= set(t.paths)
        bans |= set(t.bans)
    return paths, bans


def sign(secret, body, t_ms=None):
    t_ms = int(time.time() * 1000) if t_ms is None else t_ms
    return f"sha256={hmac.new(secret.encode(), body + str(t_ms).encode(), hashlib.sha256).hexdigest()}, t={t_ms}"


# --- Ghost's signature ---------------------------------------------------------------


def test_ghost_signature_of_a_real_request_verifies_at_its_own_time():
    request = captured("ghost", "01-publish")[2]
    header = request["headers"]["x-ghost-signature"]
    t_ms = int(header.rsplit("t=", 1)[1])
    assert cms.verify_ghost(GHOST_SECRET, header, request["body"].encode(), now_ms=t_ms + 1000) == t_ms


def test_ghost_signature_refuses_replay_wrong_secret_tampering_and_junk():
    request = captured("ghost", "01-publish")[2]
    header, body = request["headers"]["x-ghost-signature"], request["body"].encode()
    t_ms = int(header.rsplit("t=", 1)[1])
    with pytest.raises(cms.GhostSignatureError, match="replay"):
        cms.verify_ghost(GHOST_SECRET, header, body, now_ms=t_ms + 301_000)
    with pytest.raises(cms.GhostSignatureError, match="wrong"):
        cms.verify_ghost("another-secret-of-16-chars", header, body, now_ms=t_ms)
    with pytest.raises(cms.GhostSignatureError, match="wrong"):
        cms.verify_ghost(GHOST_SECRET, header, body.replace(b"Hello", b"Hallo"), now_ms=t_ms)
    for bad in (None, "", "sha256=zz, t=1", "t=1", "sha256=" + "a" * 64):
        with pytest.raises(cms.GhostSignatureError):
            cms.verify_ghost(GHOST_SECRET, bad, body, now_ms=t_ms)


# --- Ghost's bodies to pages -----------------------------------------------------------


def test_ghost_publish_purges_post_home_tags_author_feeds_sitemaps_and_post_cards():
    paths, bans = ghost_union("01-publish")
    assert {"/hello-ghost/", "/", "/page/2/", "/rss/", "/tag/red/", "/tag/red/page/2/", "/tag/red/rss/",
            "/tag/blue/", "/author/owner/", "/author/owner/rss/", "/sitemap-posts.xml"} <= paths
    assert bans == {cms.GHOST_POST_CARDS}


def test_ghost_slug_change_purges_the_old_url_from_previous():
    paths, _ = ghost_union("03-change-slug")
    assert {"/hello-ghost/", "/hello-ghost-moved/"} <= paths


def test_ghost_tag_change_purges_the_removed_tag_from_previous():
    paths, _ = ghost_union("04-change-tags")
    assert {"/tag/red/", "/tag/green/", "/tag/blue/"} <= paths


def test_ghost_unpublish_uses_the_slug_not_the_preview_url():
    paths, bans = ghost_union("05-unpublish")
    assert "/hello-ghost-moved/" in paths and not any(p.startswith("/p/") for p in paths)
    assert bans


def test_ghost_delete_purges_from_previous():
    paths, _ = ghost_union("07-delete")
    assert {"/hello-ghost-moved/", "/", "/tag/blue/", "/tag/green/"} <= paths


def test_ghost_page_purges_the_page_but_no_listing():
    paths, bans = ghost_union("08-page-publish")
    assert "/about-ghost/" in paths and "/" not in paths and not bans


def test_ghost_draft_edit_changes_nothing_and_site_changed_is_whole_site():
    draft = {"post": {"current": {"status": "draft", "slug": "x", "title": "T"}, "previous": {"title": "S"}}}
    assert cms.ghost_targets(draft, cms.GhostSettings()).empty
    assert cms.ghost_targets({}, cms.GhostSettings()).whole_site
    assert bodies("ghost", "09-settings") == [{}]


def test_ghost_custom_routes_and_no_cards():
    settings = cms.parse_cms({"ghost": {"secret": GHOST_SECRET, "routes": {"post": "/blog/{slug}/",
                                                                          "tag": "/topics/{slug}/"},
                                        "post_cards": "", "pagination": 0}}, {}).ghost
    paths, bans = ghost_union("04-change-tags", settings)
    assert {"/topics/red/", "/topics/red/rss/"} <= paths and "/tag/red/" not in paths and not bans
    assert not any(p.endswith("page/2/") for p in paths)


# --- templates (Strapi, Directus) ----------------------------------------------------------


TEMPLATES = cms.parse_cms({"templates": {"token": STRAPI_TOKEN, "models": {"article": {
    "urls": ["/articles/{slug}/", "/articles/", "/tags/{tags}/"], "keys": ["article-{documentId}"]}}}}, {}).templates


def strapi_union(step):
    paths, keys = set(), set()
    for body in bodies("strapi", step):
        t = cms.template_targets(cms.parse_template_event(body), TEMPLATES)
        paths |= set(t.paths)
        keys |= set(t.keys)
    return paths, keys


def test_strapi_publish_by_templates_and_draft_saves_skipped():
    paths, keys = strapi_union("01-publish")
    assert paths == {"/articles/hello-strapi/", "/articles/", "/tags/red/", "/tags/blue/"}
    assert keys == {"article-m1uhnyhjayrl33e871uw4wo4"}
    draft = cms.parse_template_event(bodies("strapi", "01-publish")[0])  # entry.create, publishedAt null
    assert cms.template_targets(draft, TEMPLATES).empty


def test_strapi_unpublish_and_delete_purge():
    assert "/articles/hello-strapi-moved/" in strapi_union("05-unpublish")[0]
    paths, keys = strapi_union("07-delete")
    assert "/articles/hello-strapi-moved/" in paths and keys


def test_strapi_unknown_model_names_the_known_ones():
    body = dict(bodies("strapi", "01-publish")[2], model="product")
    with pytest.raises(ValueError, match="known: article"):
        cms.template_targets(cms.parse_template_event(body), TEMPLATES)


def test_directus_trigger_shape():
    event = cms.parse_template_event({"event": "articles.items.update", "collection": "articles",
                                      "keys": ["7", "9"], "payload": {"title": "New"}})
    settings = cms.parse_cms({"templates": {"token": STRAPI_TOKEN, "models": {"articles": {
        "urls": ["/articles/{slug}/"], "keys": ["articles-{id}"]}}}}, {}).templates
    t = cms.template_targets(event, settings)
    assert t.paths == () and t.keys == ("articles-7", "articles-9")


def test_template_values_are_path_quoted():
    assert cms.render("/t/{tags}/", {"tags": ["a b", "c/d"]}, {}) == ["/t/a%20b/", "/t/c%2Fd/"]
    assert cms.render("/x/{missing}/", {}, {}) == []


# --- the front door's listings ----------------------------------------------------------------


def test_parents_and_also_refresh():
    assert cms.parents("/blog/2024/hello/") == ["/blog/2024/", "/blog/", "/"]
    assert cms.also_refresh("/hello-wagtail/", ["parents", "/feed.xml"]) == ["/", "/feed.xml"]
    assert cms.also_refresh("/", ["parents"]) == []
    assert cms.also_refresh("/a/b/", ["siblings"]) == []          # a ban, not a path


def test_siblings_ban_covers_the_old_slug_beside_the_new_one():
    """Wagtail sends nothing for a page's old URL after a slug change; the old URL is a sibling of the new one."""
    import re

    ban = cms.siblings_ban("/blog/new-slug/", ["parents", "siblings"])
    assert ban == "^/blog/[^/?]+/?([?]|$)" and "\\" not in ban           # no backslash: the VCL ban is unquoted
    matches = [u for u in ["/blog/old-slug/", "/blog/old-slug/?p=2", "/blog/", "/blog/old/deeper/", "/", "/other/x/"]
               if re.search(ban, u)]
    assert matches == ["/blog/old-slug/", "/blog/old-slug/?p=2"]
    assert cms.siblings_ban("/a.b(1)/x/", ["siblings"]) == "^/a[.]b[(]1[)]/[^/?]+/?([?]|$)"
    assert re.search(cms.siblings_ban("/a.b(1)/x/", ["siblings"]), "/a.b(1)/y/")
    assert not re.search(cms.siblings_ban("/a.b(1)/x/", ["siblings"]), "/aXb(1)/y/")
    assert cms.siblings_ban("/", ["siblings"]) is None and cms.siblings_ban("/blog/x/", ["parents"]) is None
    assert cms.parse_cms({"purge": {"also": ["siblings"]}}, {}).purge.also == ("siblings",)


def test_parse_cms_names_the_field():
    with pytest.raises(cms.CMSConfigError, match="cms.ghost.secret"):
        cms.parse_cms({"ghost": {"secret": "short"}}, {})
    with pytest.raises(cms.CMSConfigError, match="cms.ghost.secret_env"):
        cms.parse_cms({"ghost": {"secret_env": "NOT_SET_ANYWHERE"}}, {})
    with pytest.raises(cms.CMSConfigError, match="cms.templates.models"):
        cms.parse_cms({"templates": {"token": STRAPI_TOKEN}}, {})
    with pytest.raises(cms.CMSConfigError, match="cms.purge.also"):
        cms.parse_cms({"purge": {"also": ["feed/"]}}, {})
    with pytest.raises(cms.CMSConfigError, match="unknown key"):
        cms.parse_cms({"wordpress": {}}, {})


# --- the routes --------------------------------------------------------------------------


@pytest.fixture
def cms_app(tmp_path):
    from purgebridge.api.app import create_app

    sites = {"sites": [
        {"host": SITE_GHOST, "cms": {"ghost": {"secret": GHOST_SECRET}}},
        {"host": SITE_STRAPI, "cms": {"templates": {"token": STRAPI_TOKEN, "models": {"article": {
            "urls": ["/articles/{slug}/", "/"], "keys": ["article-{documentId}"]}}}}},
        {"host": SITE_WAGTAIL, "cms": {"purge": {"also": ["parents"]}}},
        {"host": "sections.wagtail.test", "cms": {"purge": {"also": ["parents", "siblings"]}}},
    ]}
    (tmp_path / "sites.json").write_text(json.dumps(sites))
    app = create_app({"PURGEBRIDGE_SITES_FILE": str(tmp_path / "sites.json"), "PURGEBRIDGE_NODES": "127.0.0.1:9",
                      "PURGEBRIDGE_QUEUE": str(tmp_path / "queue.sqlite3"), "PURGEBRIDGE_WEBHOOK_TOKEN":
                      "webhook-token-0123456789", "PURGEBRIDGE_PURGE_ALLOW": "127.0.0.0/8"}, environ={})
    app.config["TESTING"] = True
    yield app
    app.extensions["purgebridge"].close()


def test_serve_needs_no_wordpress_secret_for_cms_sites(cms_app):
    svc = cms_app.extensions["purgebridge"]
    check_can_serve(svc.settings, svc.sites)  # no PURGEBRIDGE_SECRET: no ConfigError


def test_ghost_route_signed_202_unsigned_401_stale_401(cms_app):
    client = cms_app.test_client()
    body = captured("ghost", "01-publish")[2]["body"].encode()
    ok = client.post(f"/v1/ghost/{SITE_GHOST}", data=body, content_type="application/json",
                     headers={"X-Ghost-Signature": sign(GHOST_SECRET, body)})
    assert ok.status_code == 202 and ok.get_json()["queued"] > 10
    assert client.post(f"/v1/ghost/{SITE_GHOST}", data=body, content_type="application/json").status_code == 401
    old = sign(GHOST_SECRET, body, int(time.time() * 1000) - 3_600_000)
    stale = client.post(f"/v1/ghost/{SITE_GHOST}", data=body, headers={"X-Ghost-Signature": old})
    assert stale.status_code == 401 and "replay" in stale.get_json()["error"]
    other = client.post(f"/v1/ghost/{SITE_STRAPI}", data=body, headers={"X-Ghost-Signature": sign(GHOST_SECRET, body)})
    assert other.status_code == 401 and "cms.ghost" in other.get_json()["error"]


def test_ghost_site_changed_right_after_a_post_event_is_not_a_whole_site_ban(cms_app):
    client = cms_app.test_client()
    post = captured("ghost", "02-edit-title")[0]["body"].encode()
    assert client.post(f"/v1/ghost/{SITE_GHOST}", data=post,
                       headers={"X-Ghost-Signature": sign(GHOST_SECRET, post)}).status_code == 202
    echo = client.post(f"/v1/ghost/{SITE_GHOST}", data=b"{}", headers={"X-Ghost-Signature": sign(GHOST_SECRET, b"{}")})
    assert echo.status_code == 200 and echo.get_json()["queued"] == 0


def test_strapi_route_with_its_bearer_header(cms_app):
    client = cms_app.test_client()
    body = captured("strapi", "01-publish")[2]["body"]
    ok = client.post(f"/v1/cms/{SITE_STRAPI}", data=body, content_type="application/json",
                     headers={"Authorization": f"Bearer {STRAPI_TOKEN}"})
    assert ok.status_code == 202 and ok.get_json()["queued"] == 3
    assert client.post(f"/v1/cms/{SITE_STRAPI}", data=body,
                       headers={"Authorization": "Bearer wrong-token-0123456789"}).status_code == 401


def test_a_cms_body_on_the_generic_webhook_names_its_route(cms_app):
    client = cms_app.test_client()
    auth = {"Authorization": "Bearer webhook-token-0123456789"}
    strapi = client.post("/v1/webhook", data=captured("strapi", "01-publish")[2]["body"],
                         content_type="application/json", headers=auth)
    assert strapi.status_code == 400 and "/v1/cms/" in strapi.get_json()["error"]
    ghost = client.post("/v1/webhook", data=captured("ghost", "01-publish")[2]["body"],
                        content_type="application/json", headers=auth)
    assert ghost.status_code == 400 and "/v1/ghost/" in ghost.get_json()["error"]


def test_purge_front_door_answers_like_varnish_and_refuses_clearly(cms_app):
    client = cms_app.test_client()
    ok = client.open("/hello-wagtail/", method="PURGE", headers={"Host": SITE_WAGTAIL},
                     environ_base={"REMOTE_ADDR": "127.0.0.1"})
    assert ok.status_code == 200 and b"200 Purged" in ok.data  # Varnish's synth body
    svc = cms_app.extensions["purgebridge"]
    assert svc.queue.stats()["depth"] >= 2  # the page and its parent "/"
    outsider = client.open("/hello-wagtail/", method="PURGE", headers={"Host": SITE_WAGTAIL},
                           environ_base={"REMOTE_ADDR": "192.0.2.7"})
    assert outsider.status_code == 403 and "not allowed" in outsider.get_json()["error"]
    unknown = client.open("/x/", method="PURGE", headers={"Host": "other.example"},
                          environ_base={"REMOTE_ADDR": "127.0.0.1"})
    assert unknown.status_code == 403
    ban = client.open("/blog/", method="BAN", headers={"Host": SITE_WAGTAIL}, environ_base={"REMOTE_ADDR": "127.0.0.1"})
    assert ban.status_code == 200
    keys = client.open("/", method="PURGE", headers={"Host": SITE_WAGTAIL, "xkey-purge": "post-1 post-2"},
                       environ_base={"REMOTE_ADDR": "127.0.0.1"})
    assert keys.status_code == 200


def test_purge_front_door_with_siblings_queues_one_ban_of_the_level(cms_app):
    svc = cms_app.extensions["purgebridge"]
    client = cms_app.test_client()
    ok = client.open("/blog/new-slug/", method="PURGE", headers={"Host": "sections.wagtail.test"},
                     environ_base={"REMOTE_ADDR": "127.0.0.1"})
    assert ok.status_code == 200
    node = svc.settings.nodes[0].name
    queued = sorted((c.item["method"], c.item["target"], dict(map(tuple, c.item["headers"])).get("X-Ban-Url", ""))
                    for c in svc.queue.claim(node))
    assert queued == [("BAN", "/", "^/blog/[^/?]+/?([?]|$)"), ("PURGE", "/", ""), ("PURGE", "/blog/", ""),
                      ("PURGE", "/blog/new-slug/", "")]
    # A level whose ban would pass the ban length limit: a clear 400, nothing queued (never a 500).
    dots = "/" + "." * 1500 + "/x/"
    refused = client.open(dots, method="PURGE", headers={"Host": "sections.wagtail.test"},
                          environ_base={"REMOTE_ADDR": "127.0.0.1"})
    assert refused.status_code == 400 and "siblings" in refused.get_json()["error"]
    assert svc.queue.claim(node) == []


def test_webhook_content_feed_suffix_is_per_site():
    from purgebridge.core.mapping import MappingOptions, map_content

    ghost = map_content({"collections": ["https://b.test/tag/x/"]}, MappingOptions(collection_feed="rss/"))
    assert "https://b.test/tag/x/rss/" in ghost.urls and "https://b.test/tag/x/feed/" not in ghost.urls
    none = map_content({"collections": ["https://b.test/tag/x/"]}, MappingOptions(collection_feed=""))
    assert not any(u.endswith(("rss/", "feed/")) for u in none.urls)
    assert "https://b.test/tag/x/feed/" in map_content({"collections": ["https://b.test/tag/x/"]}).urls
    with pytest.raises(ValueError, match="collection_feed"):
        MappingOptions(collection_feed="/feed")


def test_a_model_listed_without_templates_purges_nothing():
    settings = cms.parse_cms({"templates": {"token": STRAPI_TOKEN, "models": {"user": {}}}}, {}).templates
    event = cms.TemplateEvent("entry.update", "user", ({"id": 1, "username": "x"},))
    assert cms.template_targets(event, settings).empty


def test_a_renamed_tag_refreshes_its_old_and_new_listing_the_home_page_and_the_post_pages():
    body = {"tag": {"current": {"slug": "crimson", "name": "Crimson"}, "previous": {"slug": "red", "name": "Red"}}}
    t = cms.ghost_targets(body, cms.GhostSettings())
    assert {"/tag/red/", "/tag/crimson/", "/tag/crimson/rss/", "/"} <= set(t.paths) and t.bans
    added = {"tag": {"current": {"slug": "new"}, "previous": {}}}
    assert not cms.ghost_targets(added, cms.GhostSettings()).bans
