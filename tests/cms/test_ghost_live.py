"""Ghost 5, live: a custom integration's webhooks, signed with its secret, to /v1/ghost/<site>.

Configured only as Ghost's admin would (Settings › Integrations › Add custom
integration › Add webhook, one per event, each with the same secret) and the
relay's sites file (``cms.ghost.secret``). Ghost renders its own pages
(Casper), cached for an hour (``caching.frontend.maxAge``).
"""

import time

import pytest

import instances
from live import assert_fresh, cms_cluster, cms_relay, require_or_fail, warm

pytestmark = [pytest.mark.integration, pytest.mark.cms]

HOST = "ghost.site.test"
SECRET = "ghost-webhook-secret-for-live-tests"
WINDOW = 5  # seconds: a site.changed this soon after a content event is that event's echo


@pytest.fixture(scope="module")
def ghost_live(tmp_path_factory):
    require_or_fail("ghost")
    work = tmp_path_factory.mktemp("ghost-live")
    with instances.Ghost(work / "ghost", site_url=f"http://{HOST}/") as ghost:
        ghost.setup_owner()
        with cms_cluster(ghost.port, work / "cluster") as cluster:
            sites = [{"host": HOST, "cms": {"ghost": {"secret": SECRET, "site_changed_window": WINDOW}}}]
            with cms_relay(work / "relay", cluster, sites) as relay:
                ghost.add_integration(relay.url(f"/v1/ghost/{HOST}"), SECRET, instances.GHOST_EVENTS)
                yield ghost, cluster, relay


def test_ghost_publish_edit_slug_tags_unpublish_delete_settings_fresh_on_three_nodes(ghost_live):
    ghost, cluster, relay = ghost_live

    def fresh(paths):
        assert_fresh(relay, cluster, HOST, ghost.port, paths)

    ghost.create_post("Quiet Ghost post", tags=["Grey"])
    post = ghost.create_post("Hello Ghost", tags=["Red", "Blue"])
    pages = ["/", "/hello-ghost/", "/quiet-ghost-post/", "/tag/red/", "/tag/blue/", "/tag/green/", "/tag/grey/",
             "/rss/", "/tag/red/rss/", "/tag/blue/rss/", "/author/owner/", "/sitemap-posts.xml"]
    fresh(pages)

    warm(cluster, HOST, pages, must_hit=pages)
    post = ghost.edit_post(post, title="Hello Ghost, edited")
    fresh(pages)

    warm(cluster, HOST, pages, must_hit=pages)
    post = ghost.edit_post(post, slug="hello-ghost-moved")  # previous.slug: the old URL
    pages.append("/hello-ghost-moved/")
    fresh(pages)

    warm(cluster, HOST, pages, must_hit=pages)
    post = ghost.edit_post(post, tags=["Blue", "Green"])  # previous.tags: /tag/red/
    fresh(pages)

    warm(cluster, HOST, pages, must_hit=pages)
    post = ghost.edit_post(post, status="draft")  # current.url is the /p/<uuid>/ preview: the slug is used
    fresh(pages)
    assert ghost.get("/hello-ghost-moved/").status_code == 404

    post = ghost.edit_post(post, status="published")
    fresh(pages)
    warm(cluster, HOST, pages, must_hit=pages)
    ghost.delete_post(post)
    fresh(pages)

    time.sleep(WINDOW + 1)  # a settings change alone: only site.changed arrives, and the whole site is banned
    warm(cluster, HOST, pages, must_hit=pages)
    ghost.edit_settings(title="Renamed Ghost site")
    fresh(pages)
    assert "Renamed Ghost site" in ghost.get("/").text
    assert instances.outside_connections(ghost.proc) == [], "the CMS talks to a non-loopback address"
