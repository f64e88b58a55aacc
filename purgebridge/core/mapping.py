"""From one content change to every URL (and surrogate key) it made stale.

Why a table: "post 42 changed" touches a dozen kinds of pages (its permalink,
the one it had before, archives of the categories it left, date archives,
feeds, REST routes, sitemaps...). Each kind is one named row of :data:`RULES`
-- ``(name, description, function)`` -- so a site can switch a row off
(``MappingOptions.disabled``), add paths (``MappingOptions.extra_paths``), or
pass its own table (``rules=``), and docs/url-mapping.md documents the same
rows.

A rule function takes a :class:`Context` and yields targets:

- ``"/feed/"`` -- a path relative to the site's home URL (home may be
  ``https://example.test/blog/``; the leading ``/`` means "the home URL");
- ``"https://host/..."`` -- an absolute URL taken from the change (the plugin
  knows permalinks and archive links); it is kept only when it is on the
  site's host, otherwise dropped with a warning;
- :class:`SurrogateKey` -- a surrogate key (``post-42``) for nodes that use xkey.

A rule only runs for the change kinds it declares with :func:`applies_to`
(``post``, ``comment``, ``term``, ``urls``; without it: the first three);
``site`` changes never reach the rules, they mean "ban the whole site": the
whole host (``Invalidations.purge_all``) when the site is the host's root, else
a ban of the site's path only (``Invalidations.bans``, see :func:`site_ban`) --
a WordPress subdirectory network shares one host among many sites. ``urls`` is
the plugin's public API (``purgebridge_purge_urls`` / ``_keys``), its admin
bar and WP-CLI, and an author's old archive: given URLs, archives and keys.

The change dict is one validated "Change" of docs/events.md; this module
trusts its shape and only re-checks what protects the nodes: host and
characters of every URL.
"""

from dataclasses import dataclass
from functools import lru_cache
import logging
import re
from typing import Any, Callable, Dict, FrozenSet, Iterable, List, Optional, Sequence, Set, Tuple
from urllib.parse import urlsplit

from purgebridge.core.errors import InvalidEvent, InvalidURL
from purgebridge.core.events import MAX_POST_PAGES  # pages of one post or of its comments that one change purges
from purgebridge.core.invalidation import KEY_RULE, is_surrogate_key
from purgebridge.core.urls import MAX_BAN_LENGTH, split_url

__all__ = ["CHANGE_KINDS", "DEFAULT_KINDS", "MAX_PAGINATION", "RULES", "SurrogateKey", "Rule", "RuleFunction",
           "MappingOptions", "Invalidations", "Home", "Context", "applies_to", "date_archive_rule", "rule_names",
           "with_rules", "map_change", "map_batch", "map_content", "site_ban"]

log = logging.getLogger(__name__)

Change = Dict[str, Any]  # one decoded change of an event (checked by core.events.Event)
RuleFunction = Callable[["Context"], List[str]]  # URLs (absolute or home-relative) and SurrogateKeys

PUBLISH = "publish"
INHERIT = "inherit"
CHANGE_KINDS = ("post", "comment", "term", "urls")
DEFAULT_KINDS = ("post", "comment", "term")  # a rule without applies_to(...)
MAX_PAGINATION = 50


class SurrogateKey(str):
    """A surrogate key, told apart from a URL target by its type."""


class Rule(Tuple[str, str, RuleFunction]):
    """``(name, description, function)`` -- a plain 3-tuple with names."""

    def __new__(cls, name: str, description: str, function: RuleFunction) -> "Rule":
        return super().__new__(cls, (name, description, function))

    @property
    def name(self) -> str:
        return str(self[0])

    @property
    def description(self) -> str:
        return str(self[1])

    @property
    def function(self) -> RuleFunction:
        function: RuleFunction = self[2]
        return function


def applies_to(*kinds: str) -> Callable[[RuleFunction], RuleFunction]:
    """Mark a rule function with the change kinds it handles (default: post, comment, term)."""
    unknown = set(kinds) - set(CHANGE_KINDS)
    if unknown:
        raise ValueError(f"unknown change kind(s): {sorted(unknown)}")

    def mark(function: RuleFunction) -> RuleFunction:
        setattr(function, "kinds", frozenset(kinds))
        return function
    return mark


@dataclass(frozen=True)
class MappingOptions:
    """Per-site switches. Lists (e.g. from a JSON sites file) are accepted and frozen.

    ``pagination`` is the number of *extra* archive pages: 3 means
    ``/page/2/``, ``/page/3/`` and ``/page/4/`` besides the first page.
    """

    pagination: int = 3
    disabled: FrozenSet[str] = frozenset()
    extra_paths: Tuple[str, ...] = ()
    schemes: Tuple[str, ...] = ()
    tag_cloud_path: str = "/?purgebridge-fragment=tag-cloud"
    keys: bool = True
    collection_feed: str = "feed/"  # webhook content: each collection's feed, relative to it ("rss/" for Ghost, "" for none)

    def __post_init__(self) -> None:
        if not isinstance(self.collection_feed, str) or self.collection_feed.startswith("/") \
                or "://" in self.collection_feed or any(c in self.collection_feed for c in " ?#"):
            raise ValueError(f"collection_feed: expected a relative path such as \"feed/\" or \"rss/\", "
                             f"or \"\" for none, got {self.collection_feed!r}")
        if isinstance(self.pagination, bool) or not isinstance(self.pagination, int) \
                or not 0 <= self.pagination <= MAX_PAGINATION:
            raise ValueError(f"pagination: expected a whole number from 0 to {MAX_PAGINATION}, "
                             f"got {self.pagination!r}")
        if isinstance(self.disabled, str):
            raise ValueError("disabled: expected a list of rule names, got a string")
        disabled = frozenset(self.disabled)
        unknown = sorted(disabled - set(rule_names()))
        if unknown:
            raise ValueError(f"disabled: unknown rule name(s) {', '.join(unknown)}; "
                             f"known: {', '.join(rule_names())}")
        object.__setattr__(self, "disabled", disabled)
        if isinstance(self.extra_paths, str):
            raise ValueError("extra_paths: expected a list of paths, got a string")
        extra = tuple(self.extra_paths)
        for path in extra + (self.tag_cloud_path,):
            _check_relative_path(path)
        object.__setattr__(self, "extra_paths", extra)
        if isinstance(self.schemes, str):
            raise ValueError("schemes: expected a list such as [\"http\", \"https\"], got a string")
        schemes = tuple(dict.fromkeys(s.lower() for s in self.schemes))
        if not set(schemes) <= {"http", "https"}:
            raise ValueError(f"schemes: only http and https are allowed, got {list(self.schemes)}")
        object.__setattr__(self, "schemes", schemes)
        if not isinstance(self.keys, bool):
            raise ValueError(f"keys: expected true or false, got {self.keys!r}")


@dataclass(frozen=True)
class Invalidations:
    """What to invalidate: absolute URLs and keys (sorted, unique), or the whole host.

    ``bans`` are regexes on path + query (Varnish's ``req.url``) of the site's
    host, for a site purge that must not reach the host's other sites.
    """

    urls: Tuple[str, ...] = ()
    keys: Tuple[str, ...] = ()
    purge_all: bool = False
    bans: Tuple[str, ...] = ()

    def union(self, other: "Invalidations") -> "Invalidations":
        return Invalidations(
            urls=tuple(sorted(set(self.urls) | set(other.urls))),
            keys=tuple(sorted(set(self.keys) | set(other.keys))),
            purge_all=self.purge_all or other.purge_all,
            bans=tuple(sorted(set(self.bans) | set(other.bans))),
        )


def _check_relative_path(path: object) -> None:
    if not isinstance(path, str) or not path.startswith("/") or path.startswith("//"):
        raise ValueError(f"path {path!r}: expected a path starting with a single '/'")
    if any(ord(c) <= 0x20 or ord(c) == 0x7F for c in path):
        raise ValueError(f"path {path!r}: contains whitespace or a control character")


# ---------------------------------------------------------------------------
# The site: home URL, and how this WordPress spells its URLs


@dataclass(frozen=True)
class Home:
    """The home URL split once: scheme, ``host[:port]`` and a path ending in ``/``."""

    scheme: str
    host: str
    path: str

    @classmethod
    def parse(cls, site_url: str) -> "Home":
        return _parse_site(site_url)

    def resolve(self, target: str, schemes: Tuple[str, ...]) -> Tuple[Tuple[str, ...], Optional[str]]:
        """``(absolute URLs, None)`` for one rule target, or ``((), why)`` when it must be dropped."""
        return _resolve(self, target, schemes)


# Cached: a flood maps thousands of events of the same few sites, and most of
# an event's targets (front page, feeds, archives, their pages) are the same
# strings every time; the answers depend on the arguments alone. A site's ~40
# shared targets stay (least recently used goes first); one-off permalinks pass
# through. 16k entries are a few MB.
@lru_cache(maxsize=1024)
def _parse_site(site_url: str) -> Home:
    try:
        scheme, host, target = split_url(site_url)
    except InvalidURL as exc:
        raise InvalidEvent("site", exc.reason) from None
    path = target.split("?", 1)[0]
    return Home(scheme, host, path if path.endswith("/") else path + "/")


@lru_cache(maxsize=16384)
def _resolve(site: Home, target: str, schemes: Tuple[str, ...]) -> Tuple[Tuple[str, ...], Optional[str]]:
    if target.startswith("//"):
        return (), "protocol-relative URL; expected an absolute http(s) URL"
    if target.startswith("/"):
        url = f"{site.scheme}://{site.host}{site.path}{target[1:]}"
    else:
        url = target
    try:
        _scheme, host, request_target = split_url(url)
    except InvalidURL as exc:
        return (), exc.reason
    if host != site.host:
        return (), f"host {host} is not the site's host {site.host}"
    return tuple(f"{scheme}://{site.host}{request_target}" for scheme in (schemes or (site.scheme,))), None


class Context:
    """What a rule may read: the change, the options, and URL spelling helpers.

    Spelling is inferred from the URLs the plugin sent, because the relay does
    not know the permalink structure: WordPress adds a trailing slash to
    archive links exactly when the structure ends in ``/``, and with plain
    permalinks (``/?p=42``) archives are query strings (``/?cat=3&paged=2``).
    """

    def __init__(self, site: Home, change: Change, options: MappingOptions) -> None:
        self.site = site
        self.change = change
        self.options = options
        self.kind: Optional[str] = change.get("kind")
        self.post: Dict[str, Any] = change.get("post") or {}
        self.term: Dict[str, Any] = change.get("term") or {}
        self.given_urls: List[str] = list(change.get("urls") or []) if self.kind == "urls" else []
        self.given_archives: List[str] = list(change.get("archives") or []) if self.kind == "urls" else []
        self.plain, self.slash = self._spelling()

    # -- facts about the change ------------------------------------------------

    # An attachment is public in status "inherit" (its parent is published);
    # the plugin sends its URL exactly then.
    @property
    def was_public(self) -> bool:
        status = self.post.get("status_old")
        return status == PUBLISH or (status == INHERIT and bool(self.post.get("url_old")))

    @property
    def is_public(self) -> bool:
        status = self.post.get("status_new")
        return status == PUBLISH or (status == INHERIT and bool(self.post.get("url_new")))

    @property
    def post_type(self) -> str:
        return str(self.post.get("type") or "post")

    def post_terms(self) -> List[Dict[str, Any]]:
        """terms_old ∪ terms_new, one entry per term id (the new one wins)."""
        merged: Dict[Any, Dict[str, Any]] = {}
        for term in list(self.post.get("terms_old") or []) + list(self.post.get("terms_new") or []):
            merged[term.get("id")] = term
        return [merged[k] for k in sorted(merged, key=str)]

    def changed_terms(self) -> List[Dict[str, Any]]:
        """Terms a rule should treat as touched: the post's (old and new) or the edited term."""
        if self.kind == "term":
            return [self.term] if self.term else []
        return self.post_terms()

    # -- spelling ---------------------------------------------------------------

    def _spelling(self) -> Tuple[bool, bool]:
        candidates = [self.post.get("url_new"), self.post.get("url_old"),
                      (self.post.get("author") or {}).get("url"),
                      self.term.get("url"), self.term.get("url_old")]
        candidates += [t.get("url") for t in self.post_terms()]
        candidates += self.given_archives + self.given_urls
        home_paths = (self.site.path, self.site.path + "index.php")
        for url in candidates:
            if not isinstance(url, str) or not url:
                continue
            try:
                parts = urlsplit(url)
            except ValueError:
                continue
            path = parts.path or "/"
            if path in home_paths or path + "/" == self.site.path:
                if parts.query:
                    return True, True
                continue  # the home page itself (static front page) says nothing
            return False, path.endswith("/")
        return False, True

    def _tail(self, path: str) -> str:
        return path + "/" if self.slash and not path.endswith("/") else path

    def _add_query(self, url: str, pair: str, first: bool = False) -> str:
        if "?" not in url:
            return f"{url}?{pair}"
        base, query = url.split("?", 1)
        return f"{base}?{pair}&{query}" if first else f"{url}&{pair}"

    def pages(self, url: str) -> List[str]:
        """Pages 2 .. pagination+1 of an archive (a home-relative path or an absolute URL)."""
        count = self.options.pagination
        if self.plain:
            return [self._add_query(url, f"paged={n}") for n in range(2, count + 2)]
        return [self._tail(url.rstrip("/") + f"/page/{n}") for n in range(2, count + 2)]

    def post_page(self, url: str, n: int) -> str:
        """Page ``n`` of a post split with ``<!--nextpage-->``: ``<permalink>n/`` or ``?p=42&page=n``."""
        if self.plain or "?" in url:
            return self._add_query(url, f"page={n}")
        return self._tail(url.rstrip("/") + f"/{n}")

    def comment_page(self, url: str, n: int) -> str:
        """Comment page ``n`` of a post: ``<permalink>comment-page-n/`` or ``?p=42&cpage=n``."""
        if self.plain or "?" in url:
            return self._add_query(url, f"cpage={n}")
        return self._tail(url.rstrip("/") + f"/comment-page-{n}")

    def feed(self, url: str, name: str = "rss2") -> str:
        """Feed of an archive or of a post (its comments feed): ``url + feed/``."""
        if self.plain:
            return self._add_query(url, f"feed={name}", first=True)
        suffix = "/feed" if name == "rss2" else f"/feed/{name}"
        return self._tail(url.rstrip("/") + suffix)

    def archive(self, url: str) -> List[str]:
        """An archive with its pagination and its main feed."""
        return [url, *self.pages(url), self.feed(url)]

    def site_feed(self, name: str) -> str:
        if self.plain:
            return "/?feed=" + ("comments-rss2" if name == "comments" else name)
        path = {"rss2": "/feed", "comments": "/comments/feed"}.get(name, f"/feed/{name}")
        return self._tail(path)

    def date_archives(self, date: object, prefix: str = "/") -> List[str]:
        """Year, month and day archives of a ``YYYY-MM-DD`` date."""
        if not isinstance(date, str) or len(date) < 10:
            return []
        year, month, day = date[:4], date[5:7], date[8:10]
        if not (year + month + day).isdigit():
            return []
        if self.plain:
            return [f"/?m={year}", f"/?m={year}{month}", f"/?m={year}{month}{day}"]
        base = prefix.rstrip("/")
        return [self._tail(f"{base}/{year}"), self._tail(f"{base}/{year}/{month}"),
                self._tail(f"{base}/{year}/{month}/{day}")]

    def rest(self, route: str, query: str = "") -> str:
        """A REST route under ``/wp-json/`` (plain permalinks: ``index.php?rest_route=``)."""
        if self.plain:
            return f"/index.php?rest_route=/{route}" + (f"&{query}" if query else "")
        return f"/wp-json/{route}" + (f"?{query}" if query else "")

    def sitemap(self, provider: Optional[str] = None, subtype: Optional[str] = None) -> str:
        """Core sitemaps (WordPress 5.5+): the index, or page 1 of one provider."""
        if provider is None:
            return "/?sitemap=index" if self.plain else "/wp-sitemap.xml"
        if self.plain:
            sub = f"&sitemap-subtype={subtype}" if subtype else ""
            return f"/?sitemap={provider}{sub}&paged=1"
        return f"/wp-sitemap-{provider}-{subtype}-1.xml" if subtype else f"/wp-sitemap-{provider}-1.xml"


# ---------------------------------------------------------------------------
# The rules


@applies_to("post", "comment")
def post_permalink(ctx: Context) -> List[str]:
    url = ctx.post.get("url_new")
    return [url] if ctx.is_public and url else []


@applies_to("post", "comment")
def post_pages(ctx: Context) -> List[str]:
    """A post's own further pages, wherever the post is purged: ``<!--nextpage-->`` pages 2..N of
    ``page_count`` and, where the site paginates comments, comment pages 1..``comment_pages``
    (every one prints the comment count and the post's terms and byline), at the permalink
    before and after. A comment change adds one page: the plugin counts after the change, and a
    page that the removed comment emptied is stale too."""
    page_count = _count(ctx.post.get("page_count"))
    comment_pages = _count(ctx.post.get("comment_pages"))
    if comment_pages and ctx.kind == "comment":
        comment_pages = min(comment_pages + 1, MAX_POST_PAGES)
    urls = [u for u, public in ((ctx.post.get("url_new"), ctx.is_public), (ctx.post.get("url_old"), ctx.was_public))
            if u and public]
    found = []
    for url in dict.fromkeys(urls):
        found += [ctx.post_page(url, n) for n in range(2, page_count + 1)]
        found += [ctx.comment_page(url, n) for n in range(1, comment_pages + 1)]
    return found


def _count(value: object) -> int:
    """A page count from the change: a whole number, capped at MAX_POST_PAGES (anything else: 0)."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        return 0
    return min(value, MAX_POST_PAGES)


@applies_to("post")
def old_permalink(ctx: Context) -> List[str]:
    old, new = ctx.post.get("url_old"), ctx.post.get("url_new")
    if not old or not ctx.was_public:
        return []
    if old != new or not ctx.is_public:
        return [old, ctx.feed(old)]
    return []


@applies_to("post")
def front_page(ctx: Context) -> List[str]:
    return ["/", *ctx.pages("/")]  # the main feeds are the site_feeds rule


@applies_to("post", "comment")
def site_feeds(ctx: Context) -> List[str]:
    # Comments too: each feed item carries its post's comment count (slash:comments, thr:total) and a
    # #comments / #respond link (found by the audit oracle in tests/wordpress/test_wp_e2e.py).
    return [ctx.site_feed("rss2"), ctx.site_feed("atom"), ctx.site_feed("rdf")]


@applies_to("post", "comment")
def comment_feeds(ctx: Context) -> List[str]:
    url = ctx.post.get("url_new")
    return [ctx.site_feed("comments")] + ([ctx.feed(url)] if ctx.is_public and url else [])


@applies_to("comment")
def listing_feeds(ctx: Context) -> List[str]:
    """Feeds listing the post print its comment count (RSS2 ``slash:comments``)."""
    author = (ctx.post.get("author") or {}).get("url")
    urls = [t.get("url") for t in ctx.post_terms()] + ([author] if author and ctx.post_type != "page" else [])
    return [ctx.feed(url) for url in urls if url]


@applies_to("post", "term")
def term_archives(ctx: Context) -> List[str]:
    found = []
    for term in ctx.changed_terms():
        for url in (term.get("url"), term.get("url_old")):
            if url:
                found += ctx.archive(url)
    return found


@applies_to("post", "term")
def tag_cloud(ctx: Context) -> List[str]:
    cloud = [ctx.options.tag_cloud_path, SurrogateKey("tag-cloud")]  # the ESI fragment, and pages tagged tag-cloud
    if ctx.kind == "term":
        return cloud if ctx.term.get("taxonomy") == "post_tag" else []

    def tag_ids(field: str) -> Set[Any]:
        return {t.get("id") for t in ctx.post.get(field) or [] if t.get("taxonomy") == "post_tag"}
    old, new = tag_ids("terms_old"), tag_ids("terms_new")
    visibility_changed = ctx.was_public != ctx.is_public
    if (old ^ new) or (visibility_changed and (old | new)):
        return cloud
    return []


@applies_to("post")
def author_archive(ctx: Context) -> List[str]:
    url = (ctx.post.get("author") or {}).get("url")
    if not url or ctx.post_type == "page":
        return []
    return ctx.archive(url)


def date_archive_rule(prefix: str = "/") -> RuleFunction:
    """Build the date-archive rule for a site whose date archives live under ``prefix``.

    WordPress moves them to ``<front>/date/`` when ``%post_id%`` is one of the
    first three tags of the permalink structure (e.g. ``/archives/%post_id%``
    -> ``/archives/date/2026/``), which the relay cannot see; such a site
    passes ``rules=with_rules(Rule("date_archives", ..., date_archive_rule("/archives/date/")))``.
    """
    @applies_to("post")
    def date_archives(ctx: Context) -> List[str]:
        if ctx.post_type == "page":
            return []
        found = []
        for date in {ctx.post.get("date_old"), ctx.post.get("date_new")} - {None}:
            for url in ctx.date_archives(date, prefix):
                found.append(url)
                found += ctx.pages(url)
        return found
    return date_archives


@applies_to("post")
def type_archive(ctx: Context) -> List[str]:
    url = ctx.post.get("type_archive_url")
    return ctx.archive(url) if url else []


@applies_to("post", "comment")
def rest_post(ctx: Context) -> List[str]:
    base, post_id = ctx.post.get("rest_base"), ctx.post.get("id")
    if not base or post_id is None:
        return []
    found = [ctx.rest(f"wp/v2/{base}/{post_id}")]
    if ctx.kind == "post":
        found.append(ctx.rest(f"wp/v2/{base}"))
    return found


@applies_to("comment")
def rest_comments(ctx: Context) -> List[str]:
    post_id = ctx.post.get("id")
    return [ctx.rest("wp/v2/comments", f"post={post_id}")] if post_id is not None else []


@applies_to("post", "term")
def rest_terms(ctx: Context) -> List[str]:
    found = []
    for term in ctx.changed_terms():
        base, term_id = term.get("rest_base"), term.get("id")
        if base and term_id is not None:
            found.append(ctx.rest(f"wp/v2/{base}/{term_id}"))
            if ctx.kind == "term":
                found.append(ctx.rest(f"wp/v2/{base}"))
    return found


@applies_to("post", "term")
def sitemaps(ctx: Context) -> List[str]:
    found = [ctx.sitemap()]
    if ctx.kind == "post":
        found.append(ctx.sitemap("posts", ctx.post_type))
        found.append(ctx.sitemap("users"))
    taxonomies = {str(t["taxonomy"]) for t in ctx.changed_terms() if t.get("taxonomy")}
    found += [ctx.sitemap("taxonomies", tax) for tax in sorted(taxonomies)]
    return found


@applies_to("post", "comment", "term")
def surrogate_keys(ctx: Context) -> List[str]:
    if ctx.kind == "term":
        return [SurrogateKey(f"term-{ctx.term['id']}")] if ctx.term.get("id") is not None else []
    found: List[str] = [SurrogateKey(f"post-{ctx.post['id']}")] if ctx.post.get("id") is not None else []
    if ctx.post_type == "attachment" and ctx.post.get("id") is not None:
        # Every page that shows the attachment (image block, gallery, featured image) carries it.
        found.append(SurrogateKey(f"attachment-{ctx.post['id']}"))
    if ctx.kind == "post":
        found += [SurrogateKey(f"term-{t['id']}") for t in ctx.post_terms() if t.get("id") is not None]
        author_id = (ctx.post.get("author") or {}).get("id")
        if author_id is not None:
            found.append(SurrogateKey(f"author-{author_id}"))
        found.append(SurrogateKey("front"))
    return found


@applies_to("urls")
def given_targets(ctx: Context) -> List[str]:
    keys = [SurrogateKey(k) for k in ctx.change.get("keys") or [] if _valid_key(k)]
    return ctx.given_urls + [url for archive in ctx.given_archives for url in ctx.archive(archive)] + keys


@applies_to("post", "comment", "term")
def extra_paths(ctx: Context) -> List[str]:
    return list(ctx.options.extra_paths)


RULES = (
    Rule("post_permalink", "the post's permalink (post, comment)", post_permalink),
    Rule("post_pages", "the post's pages 2..page_count (<!--nextpage-->) and comment pages 1..comment_pages, before and after", post_pages),
    Rule("old_permalink", "the permalink it had before and its comments feed, when it changed or the post left publish", old_permalink),
    Rule("front_page", "home page and its pages /page/2/ .. /page/N+1/", front_page),
    Rule("site_feeds", "main feeds /feed/, /feed/atom/, /feed/rdf/ (post, comment)", site_feeds),
    Rule("comment_feeds", "/comments/feed/ and the post's comments feed (permalink + feed/)", comment_feeds),
    Rule("listing_feeds", "comment: the feeds of the post's terms and author (they print its comment count)", listing_feeds),
    Rule("term_archives", "every term archive before and after (url, url_old) with pages and feed", term_archives),
    Rule("tag_cloud", "the tag-cloud ESI fragment and key tag-cloud when the post's tags or their counts changed, or a tag was edited", tag_cloud),
    Rule("author_archive", "author archive with pages and feed (not for pages)", author_archive),
    Rule("date_archives", "year, month, day archives of date_old and date_new with pages (not for pages)", date_archive_rule("/")),
    Rule("type_archive", "post type archive (type_archive_url) with pages and feed", type_archive),
    Rule("rest_post", "/wp-json/wp/v2/<rest_base>/<id> and the collection /wp-json/wp/v2/<rest_base>", rest_post),
    Rule("rest_comments", "/wp-json/wp/v2/comments?post=<id> (comment)", rest_comments),
    Rule("rest_terms", "/wp-json/wp/v2/<term rest_base>/<id> (and the collection for a term change)", rest_terms),
    Rule("sitemaps", "/wp-sitemap.xml, posts-<type>-1, taxonomies-<taxonomy>-1, users-1", sitemaps),
    Rule("surrogate_keys", "keys post-<id>, attachment-<id> (attachments), term-<id>, author-<id>, front", surrogate_keys),
    Rule("given_targets", "urls: the given URLs, each given archive with pages and feed, the given keys", given_targets),
    Rule("extra_paths", "MappingOptions.extra_paths, on every post, comment and term change", extra_paths),
)


def rule_names(rules: Optional[Iterable[Sequence[Any]]] = None) -> Tuple[str, ...]:
    return tuple(rule[0] for rule in (RULES if rules is None else rules))


def with_rules(*extra: Sequence[Any], base: Optional[Iterable[Rule]] = None) -> Tuple[Rule, ...]:
    """A copy of ``base`` (default :data:`RULES`) where rules of the same name are
    replaced by ``extra`` ones and new names are appended -- a site's own table."""
    replacing = {rule[0]: Rule(*rule) for rule in extra}
    table = [replacing.pop(rule[0], rule) for rule in (RULES if base is None else base)]
    return tuple(table) + tuple(replacing.values())


# ---------------------------------------------------------------------------
# Entry points


def _finish(site: Optional[Home], targets: Iterable[str], options: MappingOptions) -> Invalidations:
    urls: Set[str] = set()
    keys: Set[str] = set()
    dropped: Dict[str, List[str]] = {}
    for target in targets:
        if isinstance(target, SurrogateKey):
            if options.keys:
                keys.add(str(target))
        elif isinstance(target, str) and target and site is not None:  # no site: keys only (map_content)
            resolved, why = site.resolve(target, options.schemes)
            urls.update(resolved)
            if why:
                dropped.setdefault(why, []).append(target)
    for why, examples in dropped.items():
        # One line per reason, not per derived URL: a foreign term link
        # yields its pages and feed too.
        log.warning("mapping: dropped %d URL(s), e.g. %r: %s", len(examples), examples[0], why)
    return Invalidations(urls=tuple(sorted(urls)), keys=tuple(sorted(keys)), purge_all=False)


def map_change(site_url: str, change: Change, options: MappingOptions = MappingOptions(), *,
               rules: Optional[Iterable[Rule]] = None) -> Invalidations:
    """Every URL and key one change made stale on the site whose home URL is ``site_url``."""
    site = Home.parse(site_url)
    kind = change.get("kind")
    if kind == "site":
        # "ping" is the plugin's settings-page test: signed and accepted, stale nothing.
        if change.get("action") == "ping":
            return Invalidations()
        ban = site_ban(site.path, change.get("keep_paths") or ())
        return Invalidations(bans=(ban,)) if ban else Invalidations(purge_all=True)
    if kind not in CHANGE_KINDS:
        raise InvalidEvent("kind", f"expected one of post, comment, term, urls, site, got {kind!r}")
    ctx = Context(site, change, options)
    if kind == "post" and not (ctx.was_public or ctx.is_public):
        return Invalidations()  # never visible before or after: nothing public is stale
    targets: List[str] = []
    for name, _description, function in (RULES if rules is None else rules):
        if name in options.disabled or kind not in getattr(function, "kinds", DEFAULT_KINDS):
            continue
        targets.extend(function(ctx))
    return _finish(site, targets, options)


def site_ban(path: str, keep_paths: Iterable[str] = ()) -> Optional[str]:
    """The ban regex (on path + query) of a site purge, or None for "the whole host".

    A site at ``/`` with nothing to keep is the whole host. A site at
    ``/blog2/`` is ``^/blog2(?:/|\\?|$)`` -- its pages, and ``/blog2`` itself,
    never ``/blog22/``. ``keep_paths`` are the paths of other sites *inside*
    this one (the main site ``/`` of a subdirectory network keeps ``/blog2/``
    and ``/blog3/``): they are cut out with a negative lookahead, which
    Varnish's PCRE2 supports. Paths outside this site are ignored.
    """
    base = path.rstrip("/")
    inside = sorted({p.rstrip("/")[len(base) + 1:] for p in keep_paths
                     if p.startswith(base + "/") and p.rstrip("/") != base})
    if not base and not inside:
        return None
    end = r"(?:/|\?|$)"
    keep = "|".join(re.escape(p) for p in inside)
    regex = "^" + re.escape(base) + (f"(?!/(?:{keep}){end})" if keep else "") + (end if base else "/")
    if len(regex) > MAX_BAN_LENGTH:
        # Too many neighbours for one X-Ban-Url header (Varnish's http_req_hdr_len is
        # 8 KB): ban the site and its neighbours rather than leave the site stale.
        log.warning("mapping: site purge of %s keeps %d paths, too many for one ban; banning %s",
                    path, len(inside), "the whole host" if not base else path)
        return None if not base else "^" + re.escape(base) + end
    return regex


def map_batch(site_url: str, changes: Iterable[Change], options: MappingOptions = MappingOptions(), *,
              rules: Optional[Iterable[Rule]] = None) -> Invalidations:
    """The union of :func:`map_change` over a batch."""
    result = Invalidations()
    for change in changes:
        result = result.union(map_change(site_url, change, options, rules=rules))
    return result


def map_content(obj: Dict[str, Any], options: MappingOptions = MappingOptions(), *,
                site_url: Optional[str] = None) -> Invalidations:
    """The generic webhook "content" object through the same machinery.

    ``{"url", "old_url", "collections": [urls], "keys": [..]}``: the URL, the
    old URL, every collection with its pages and its feed (``feed/``, or the
    site's ``collection_feed``), the keys given,
    and ``extra_paths``. Pretty ``/page/N/`` pagination is assumed (WordPress,
    Ghost and Hugo all use it). With ``site_url`` only URLs on that host are
    kept; without it the home is the origin of ``url`` (or of the first
    collection) and so is the host check -- the caller must still check that
    host against the relay's configured sites.
    """
    urls = [u for u in [obj.get("url"), obj.get("old_url")] if u]
    collections = [u for u in obj.get("collections") or [] if u]
    keys = [SurrogateKey(k) for k in obj.get("keys") or [] if _valid_key(k)]
    if site_url is None and not (urls or collections):
        return _finish(None, keys, options)  # keys only: no URL, so no host to resolve against
    if site_url is None:
        try:
            scheme, host, _target = split_url((urls + collections)[0])
        except InvalidURL as exc:
            raise InvalidEvent("url", exc.reason) from None
        site_url = f"{scheme}://{host}/"
    ctx = Context(Home.parse(site_url), {"kind": "content"}, options)
    if options.collection_feed == "feed/":
        listed = [url for c in collections for url in ctx.archive(c)]
    else:  # the site's own feed suffix (Ghost: rss/), or none
        feed = options.collection_feed
        listed = [url for c in collections
                  for url in [c, *ctx.pages(c)] + ([c.rstrip("/") + "/" + feed] if feed else [])]
    targets = urls + listed
    return _finish(ctx.site, targets + list(options.extra_paths) + keys, options)


def _valid_key(key: object) -> bool:
    """Keys reach the mapping already checked by the request models; one that is not a key is dropped, said once."""
    ok = is_surrogate_key(key)
    if not ok:
        log.warning("mapping: dropped surrogate key %r: expected %s", key, KEY_RULE)
    return ok
