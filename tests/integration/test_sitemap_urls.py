"""`purgebridge sitemap-urls` as a subprocess against sitemaps a real HTTP server serves on loopback.

The files are laid out as WordPress core serves them: /wp-sitemap.xml is a
sitemap index listing one <urlset> per post type and taxonomy. The output is
piped into `purge -` against three real varnishd nodes, as docs/cli.md shows.
"""

import functools
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
import os
import subprocess
import sys
import threading

import pytest

pytestmark = pytest.mark.integration

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
NS = 'xmlns="http://www.sitemaps.org/schemas/sitemap/0.9"'


def urlset(*urls):
    entries = "".join(f"<url><loc>{u}</loc><lastmod>2026-12-01T00:00:00+00:00</lastmod></url>" for u in urls)
    return f'<?xml version="1.0" encoding="UTF-8"?>\n<urlset {NS}>{entries}</urlset>\n'


def index(*sitemaps):
    entries = "".join(f"<sitemap><loc>{s}</loc></sitemap>" for s in sitemaps)
    return f'<?xml version="1.0" encoding="UTF-8"?>\n<?xml-stylesheet type="text/xsl" href="/x.xsl"?>\n' \
           f"<sitemapindex {NS}>{entries}</sitemapindex>\n"


@pytest.fixture()
def served(tmp_path):
    """A real HTTP server on 127.0.0.1 serving ``tmp_path``; yields (base URL, directory)."""
    handler = functools.partial(SimpleHTTPRequestHandler, directory=str(tmp_path))
    handler.log_message = lambda *args: None
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", tmp_path
    finally:
        server.shutdown()
        server.server_close()


def run(*args, stdin=None, env=None):
    return subprocess.run([sys.executable, "-m", "purgebridge", *args], input=stdin, capture_output=True, text=True,
                          timeout=60, cwd=REPO, env=dict(os.environ, **(env or {})))


def test_wordpress_sitemap_index_is_followed_and_every_url_printed_once(served):
    base, root = served
    pages = [f"{base}/", f"{base}/hello-world/", f"{base}/about/"]
    terms = [f"{base}/category/news/", f"{base}/hello-world/"]  # a duplicate across sitemaps
    (root / "wp-sitemap.xml").write_text(index(f"{base}/wp-sitemap-posts-post-1.xml",
                                               f"{base}/wp-sitemap-taxonomies-category-1.xml"))
    (root / "wp-sitemap-posts-post-1.xml").write_text(urlset(*pages, "https://elsewhere.example/x/"))
    (root / "wp-sitemap-taxonomies-category-1.xml").write_text(urlset(*terms))

    result = run("sitemap-urls", base + "/")

    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == pages + [f"{base}/category/news/"]
    assert "left out 1 URL(s) on other hosts" in result.stderr

    limited = run("sitemap-urls", "--max-urls", "2", base + "/")
    assert limited.stdout.splitlines() == pages[:2]
    assert "stopped at --max-urls 2" in limited.stderr


def test_a_plain_sitemap_xml_is_used_when_wordpress_has_none(served):
    base, root = served
    (root / "sitemap.xml").write_text(urlset(f"{base}/a/", f"{base}/b/"))
    result = run("sitemap-urls", base)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [f"{base}/a/", f"{base}/b/"]


def test_a_missing_child_sitemap_exits_1_and_still_prints_the_rest(served):
    base, root = served
    (root / "wp-sitemap.xml").write_text(index(f"{base}/gone.xml", f"{base}/here.xml"))
    (root / "here.xml").write_text(urlset(f"{base}/kept/"))
    result = run("sitemap-urls", f"{base}/wp-sitemap.xml")
    assert result.returncode == 1
    assert result.stdout.splitlines() == [f"{base}/kept/"]
    assert f"sitemap-urls: {base}/gone.xml: HTTP 404" in result.stderr


def test_no_sitemap_and_not_xml_are_one_line_each(served):
    base, root = served
    result = run("sitemap-urls", base)
    assert result.returncode == 1 and result.stdout == ""
    assert result.stderr.startswith("sitemap-urls: no sitemap found: ") and "Traceback" not in result.stderr
    (root / "wp-sitemap.xml").write_text("<html><body>not a sitemap</body></html>")
    result = run("sitemap-urls", base)
    assert result.returncode == 1
    assert "not a sitemap (root element <html>)" in result.stderr
    bad = run("sitemap-urls", "http://")
    assert bad.returncode == 2 and bad.stderr.startswith("error: ")


def test_the_output_pipes_into_purge(served, cluster, site):
    """The docs' pipe: sitemap-urls | purge - purges each listed page on every node."""
    base, root = served
    paths = ["/", "/hello-world/", "/category/news/"]
    (root / "wp-sitemap.xml").write_text(index(f"{base}/wp-sitemap-posts-post-1.xml"))
    (root / "wp-sitemap-posts-post-1.xml").write_text(urlset(*(f"http://{site}{p}" for p in paths)))
    cluster.warm(paths + ["/unrelated/"], site)

    listed = run("sitemap-urls", "--any-host", base)
    assert listed.returncode == 0, listed.stderr
    nodes = ",".join(vn.node.name for vn in cluster.nodes)
    purged = run("purge", "-", stdin=listed.stdout,
                 env={"PURGEBRIDGE_NODES": nodes, "PURGEBRIDGE_VCL": "", "PURGEBRIDGE_TIMEOUT": "2"})
    assert purged.returncode == 0, purged.stdout + purged.stderr
    for vn in cluster.nodes:
        assert [cluster.xcache(vn, p, site) for p in paths] == ["MISS"] * 3, vn.name
        assert cluster.xcache(vn, "/unrelated/", site) == "HIT", vn.name
