"""A site's URLs from its sitemaps: what ``purgebridge sitemap-urls`` prints for ``purge -`` and ``audit -``.

WordPress (5.5 and later) serves its core sitemap at ``/wp-sitemap.xml``: a
sitemap *index* that lists one sitemap per post type, taxonomy and author
page, each a ``<urlset>``. SEO plugins serve ``/sitemap_index.xml`` or
``/sitemap.xml`` the same way. Both kinds are read with the standard
library's XML parser (namespaced ``<sitemapindex>``/``<urlset>`` per
sitemaps.org), never by pattern matching, so comments and CDATA are what
they are. Every fetch has a timeout, every body a size limit, and the
number of sitemaps and URLs read is bounded.
"""

from dataclasses import dataclass, field
import logging
from typing import List, Optional, Set, Tuple
from xml.etree import ElementTree

import requests

from purgebridge.core.errors import InvalidURL
from purgebridge.audit.compare import site_home
from purgebridge.core.urls import split_url

log = logging.getLogger(__name__)

CANDIDATES = ("wp-sitemap.xml", "sitemap_index.xml", "sitemap.xml")  # tried in order when no sitemap is named
MAX_BYTES = 50 * 1024 * 1024  # the sitemaps.org limit for one file, uncompressed
MAX_SITEMAPS = 1000           # sitemaps read from indexes, in all
MAX_DEPTH = 3                 # an index of indexes of indexes at most


@dataclass
class SitemapURLs:
    """The URLs found (in sitemap order, no duplicates); ``errors``: what could not be read; ``notes``: what was left out."""

    urls: List[str] = field(default_factory=list)
    errors: List[str] = field(default_factory=list)
    notes: List[str] = field(default_factory=list)
    sitemaps: int = 0
    truncated: bool = False


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def _fetch(session: requests.Session, url: str, timeout: float) -> bytes:
    """The body of ``url``; raises ValueError with a one-line reason."""
    try:
        with session.get(url, timeout=timeout, stream=True) as response:
            if response.status_code != 200:
                raise ValueError(f"HTTP {response.status_code}")
            body = bytearray()
            for chunk in response.iter_content(64 * 1024):
                body += chunk
                if len(body) > MAX_BYTES:
                    raise ValueError(f"larger than {MAX_BYTES // (1024 * 1024)} MiB")
            return bytes(body)
    except requests.RequestException as exc:
        raise ValueError(f"{type(exc).__name__}: {exc}") from None


def _parse(body: bytes) -> Tuple[str, List[str]]:
    """``("index"|"urlset", [loc, ...])``; raises ValueError when it is neither."""
    try:
        root = ElementTree.fromstring(body)
    except ElementTree.ParseError as exc:
        raise ValueError(f"not XML ({exc})") from None
    kind = _local(root.tag)
    if kind not in ("sitemapindex", "urlset"):
        raise ValueError(f"not a sitemap (root element <{kind}>)")
    locs = []
    for entry in root:
        for child in entry:
            if _local(child.tag) == "loc" and child.text and child.text.strip():
                locs.append(child.text.strip())
    return ("index" if kind == "sitemapindex" else "urlset"), locs


def read_sitemaps(site: str, sitemap: Optional[str] = None, max_urls: int = 100000, timeout: float = 10.0,
                  any_host: bool = False, session: Optional[requests.Session] = None) -> SitemapURLs:
    """Every page URL the site's sitemaps list, following sitemap indexes.

    ``site`` is a host (https), a home URL or a sitemap's URL; ``sitemap`` names the sitemap (or
    index) to start from, else the first of :data:`CANDIDATES` that answers
    200 is used. URLs on another host than the site's are left out (with a
    note) unless ``any_host``: ``purge -`` could not purge them anyway.
    """
    site = site.strip()
    named = site if "://" in site and site.endswith(".xml") else None  # a sitemap URL given as the site
    base = site_home(site if named is None else site.rsplit("/", 1)[0])
    host = split_url(base)[1]
    session = session or requests.Session()
    found = SitemapURLs()
    seen: Set[str] = set()
    sitemap = sitemap or named
    starts = [sitemap] if sitemap else [base + name for name in CANDIDATES]
    start_notes: List[str] = []
    for url in starts:
        try:
            body = _fetch(session, url, timeout)
        except ValueError as exc:
            start_notes.append(f"{url}: {exc}")
            continue
        _walk(session, url, body, 0, found, seen, host, max_urls, timeout, any_host)
        return found
    found.errors.append("no sitemap found: " + "; ".join(start_notes))
    return found


def _walk(session: requests.Session, url: str, body: bytes, depth: int, found: SitemapURLs, seen: Set[str],
          host: str, max_urls: int, timeout: float, any_host: bool) -> None:
    """Read one sitemap's body into ``found``: its URLs (a urlset), or the sitemaps it lists (an index)."""
    found.sitemaps += 1
    try:
        kind, locs = _parse(body)
    except ValueError as exc:
        found.errors.append(f"{url}: {exc}")
        return
    if kind == "urlset":
        foreign = 0
        for loc in locs:
            if loc in seen:
                continue
            try:
                same_host = split_url(loc)[1] == host
            except InvalidURL:
                found.errors.append(f"{url}: skipped {loc!r} (not a URL)")
                continue
            if not same_host and not any_host:
                foreign += 1
                continue
            if len(found.urls) >= max_urls:
                found.truncated = True
                return
            seen.add(loc)
            found.urls.append(loc)
        if foreign:
            found.notes.append(f"{url}: left out {foreign} URL(s) on other hosts than {host}")
        return
    if depth >= MAX_DEPTH:
        found.notes.append(f"{url}: sitemap index nested deeper than {MAX_DEPTH}; not followed")
        return
    for child in locs:
        if found.truncated:
            return
        if found.sitemaps >= MAX_SITEMAPS:
            found.notes.append(f"read the first {MAX_SITEMAPS} sitemaps only")
            return
        try:
            child_body = _fetch(session, child, timeout)
        except ValueError as exc:
            found.errors.append(f"{child}: {exc}")
            continue
        _walk(session, child, child_body, depth + 1, found, seen, host, max_urls, timeout, any_host)
