"""Wagtail, live: wagtail.contrib.frontend_cache's HTTPBackend sends its PURGEs to the relay's front door.

Wagtail purges only the page itself; the site's ``cms.purge.also = ["parents",
"siblings"]`` makes the relay refresh the blog index (``/``) that lists the post
too, and the post's old URL after a slug change (Wagtail sends nothing for it).
Configuration is Wagtail's own setting (WAGTAILFRONTENDCACHE LOCATION = the
relay), nothing else.
"""

import pytest

import instances
from live import assert_fresh, cms_cluster, cms_relay, require_or_fail, warm

pytestmark = [pytest.mark.integration, pytest.mark.cms]

HOST = instances.Wagtail.HOST


@pytest.fixture(scope="module")
def wagtail_live(tmp_path_factory):
    require_or_fail("wagtail")
    work = tmp_path_factory.mktemp("wagtail-live")
    relay_port = instances.free_port()
    cms = instances.Wagtail(work / "wagtail", purge_location=f"http://127.0.0.1:{relay_port}")
    with cms:
        with cms_cluster(cms.port, work / "cluster") as cluster:
            relay = cms_relay(work / "relay", cluster, [{"host": HOST, "cms": {"purge": {"also": ["parents", "siblings"]}}}],
                              {"PURGEBRIDGE_PURGE_ALLOW": "127.0.0.1"}, port=relay_port)
            with relay:
                yield cms, cluster, relay


def fresh(live, paths):
    cms, cluster, relay = live
    assert_fresh(relay, cluster, HOST, cms.port, paths)


def test_wagtail_publish_edit_tags_unpublish_delete_fresh_on_three_nodes(wagtail_live):
    cms, cluster, relay = wagtail_live
    quiet = cms.publish_post("Quiet Wagtail post", tags=["grey"])
    post = cms.publish_post("Hello Wagtail", tags=["red", "blue"])
    pages = ["/", post["path"], quiet["path"]]
    fresh(wagtail_live, pages)

    warm(cluster, HOST, pages, must_hit=pages)
    cms.edit_post(post["id"], title="Hello Wagtail, edited")
    fresh(wagtail_live, pages)
    assert "Hello Wagtail, edited" in cms.get("/").text

    warm(cluster, HOST, pages, must_hit=pages)
    cms.edit_post(post["id"], tags=["blue", "green"])
    fresh(wagtail_live, pages)

    # A slug change: Wagtail purges the new URL only; the old one is a sibling, banned with it.
    warm(cluster, HOST, pages, must_hit=pages)
    old_path = post["path"]
    post = cms.edit_post(post["id"], slug="hello-wagtail-moved")
    assert post["path"] != old_path and cms.get(old_path).status_code in (301, 302, 404)
    pages = ["/", post["path"], old_path, quiet["path"]]
    fresh(wagtail_live, pages)

    warm(cluster, HOST, pages, must_hit=pages)
    cms.unpublish_post(post["id"])
    fresh(wagtail_live, pages)
    assert cms.get(post["path"]).status_code == 404

    cms.republish_post(post["id"])
    fresh(wagtail_live, pages)
    warm(cluster, HOST, pages, must_hit=pages)
    cms.delete_post(post["id"])
    fresh(wagtail_live, pages)
    assert "Hello Wagtail" not in cms.get("/").text
    assert instances.outside_connections(cms.proc) == [], "the CMS talks to a non-loopback address"
