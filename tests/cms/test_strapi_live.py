"""Strapi 5, live: its own webhook (Settings › Webhooks, with an Authorization: Bearer header) to /v1/cms/<site>.

The site's templates say which pages an article is on; its pages carry
``xkey: article-<documentId>``, so a moved slug and a removed tag are
refreshed by key. Nothing is written for Strapi but settings: an admin user,
the Article type, a read-only token for the frontend, the webhook.
"""

import pytest

import instances
from live import assert_fresh, cms_cluster, cms_relay, require_or_fail, warm
from strapi_site import StrapiSite

pytestmark = [pytest.mark.integration, pytest.mark.cms]

HOST = "strapi.site.test"
TOKEN = "strapi-webhook-token-for-live-tests"
TEMPLATES = {
    "token": TOKEN,
    "models": {"article": {
        "urls": ["/articles/{slug}/", "/articles/", "/", "/tags/{tags}/", "/feed.xml"],
        "keys": ["article-{documentId}"],
    }},
}


@pytest.fixture(scope="module")
def strapi_live(tmp_path_factory):
    require_or_fail("strapi")
    work = tmp_path_factory.mktemp("strapi-live")
    with instances.Strapi(work / "strapi") as strapi:
        strapi.register_admin()
        strapi.create_article_type()
        strapi.create_read_token()
        with StrapiSite(strapi, HOST) as site:
            with cms_cluster(site.port, work / "cluster") as cluster:
                with cms_relay(work / "relay", cluster, [{"host": HOST, "cms": {"templates": TEMPLATES}}]) as relay:
                    strapi.add_webhook(relay.url(f"/v1/cms/{HOST}"), {"Authorization": f"Bearer {TOKEN}"},
                                       instances.STRAPI_EVENTS)
                    yield strapi, site, cluster, relay


def test_strapi_publish_edit_slug_tags_unpublish_delete_fresh_on_three_nodes(strapi_live):
    strapi, site, cluster, relay = strapi_live

    def fresh(paths):
        assert_fresh(relay, cluster, HOST, site.port, paths)

    quiet = strapi.create_article("Quiet Strapi article", tags=["grey"])
    doc = strapi.create_article("Hello Strapi", tags=["red", "blue"])
    pages = ["/", "/articles/", "/articles/hello-strapi/", "/articles/quiet-strapi-article/", "/tags/red/",
             "/tags/blue/", "/tags/green/", "/tags/grey/", "/feed.xml"]
    fresh(pages)

    warm(cluster, HOST, pages, must_hit=pages)
    strapi.update_article(doc["documentId"], title="Hello Strapi, edited")
    fresh(pages)

    warm(cluster, HOST, pages, must_hit=pages)
    strapi.update_article(doc["documentId"], slug="hello-strapi-moved")  # the old URL is refreshed by key
    pages.append("/articles/hello-strapi-moved/")
    fresh(pages)

    warm(cluster, HOST, pages, must_hit=pages)
    strapi.update_article(doc["documentId"], tags=["blue", "green"])  # /tags/red/ by key
    fresh(pages)

    warm(cluster, HOST, pages, must_hit=pages)
    strapi.unpublish(doc["documentId"])
    fresh(pages)

    strapi.publish(doc["documentId"])
    fresh(pages)
    warm(cluster, HOST, pages, must_hit=pages)
    strapi.delete_article(doc["documentId"])
    fresh(pages)
    assert quiet["documentId"]
    assert instances.outside_connections(strapi.proc) == [], "the CMS talks to a non-loopback address"
