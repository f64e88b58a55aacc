"""A small site in front of Strapi (as a Next.js or Astro frontend would be), served on loopback.

Pages (each built from Strapi's content API with a read-only token, so a
published change shows at once on the origin):

    /                  the five newest articles
    /articles/         every article
    /articles/<slug>/  one article (404 when none is published with that slug)
    /tags/<tag>/       the articles with that tag
    /feed.xml          RSS of the newest articles

Every page says which articles it shows in an ``xkey`` header
(``article-<documentId>``), so a key purge reaches the page an article
*was* on too: its old slug, a tag it no longer has.
"""

import html
import http.server
import threading
from urllib.parse import unquote

CACHEABLE = "public, max-age=3600"


class StrapiSite:
    def __init__(self, strapi, host="strapi.site.test"):
        self.strapi = strapi
        self.host = host
        site = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, fmt, *args):
                pass

            def do_GET(self):
                status, body, keys, ctype = site.page(self.path.split("?", 1)[0])
                data = body.encode()
                self.send_response(status)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(data)))
                self.send_header("Cache-Control", CACHEABLE)
                if keys:
                    self.send_header("xkey", " ".join(sorted(keys)))
                self.end_headers()
                self.wfile.write(data)

            def do_HEAD(self):
                self.do_GET()

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.server.shutdown()
        self.server.server_close()

    @staticmethod
    def _list(title, articles):
        items = "".join(f'<li><a href="/articles/{html.escape(a["slug"])}/">{html.escape(a["title"])}</a> '
                        f'{" ".join("[" + html.escape(t) + "]" for t in a.get("tags") or [])}</li>' for a in articles)
        return f"<!doctype html><html><head><title>{html.escape(title)}</title></head><body><h1>{html.escape(title)}</h1><ul>{items}</ul></body></html>"

    def page(self, path):
        keys = set()
        def key(a):
            keys.add(f"article-{a['documentId']}")
        if path == "/":
            arts = self.strapi.articles(**{"pagination[pageSize]": 5})
            [key(a) for a in arts]
            return 200, self._list("Home", arts), keys, "text/html"
        if path == "/articles/":
            arts = self.strapi.articles(**{"pagination[pageSize]": 100})
            [key(a) for a in arts]
            return 200, self._list("Articles", arts), keys, "text/html"
        if path == "/feed.xml":
            arts = self.strapi.articles(**{"pagination[pageSize]": 10})
            [key(a) for a in arts]
            items = "".join(f"<item><title>{html.escape(a['title'])}</title><link>http://{self.host}/articles/{a['slug']}/</link></item>" for a in arts)
            return 200, f'<?xml version="1.0"?><rss version="2.0"><channel><title>Strapi site</title>{items}</channel></rss>', keys, "application/rss+xml"
        parts = [p for p in path.split("/") if p]
        if len(parts) == 2 and parts[0] == "articles" and path.endswith("/"):
            arts = self.strapi.articles(**{"filters[slug][$eq]": unquote(parts[1])})
            if not arts:
                return 404, "<h1>Not found</h1>", keys, "text/html"
            a = arts[0]
            key(a)
            tags = " ".join(html.escape(t) for t in a.get("tags") or [])
            body = f"<!doctype html><html><head><title>{html.escape(a['title'])}</title></head><body><h1>{html.escape(a['title'])}</h1><p>{html.escape(a.get('body') or '')}</p><p>Tags: {tags}</p></body></html>"
            return 200, body, keys, "text/html"
        if len(parts) == 2 and parts[0] == "tags" and path.endswith("/"):
            tag = unquote(parts[1])
            arts = [a for a in self.strapi.articles(**{"pagination[pageSize]": 100}) if tag in (a.get("tags") or [])]
            [key(a) for a in arts]
            return 200, self._list(f"Tag {tag}", arts), keys, "text/html"
        return 404, "<h1>Not found</h1>", keys, "text/html"
