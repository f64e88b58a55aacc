"""Is the cache fresh? Compare what every Varnish node serves with what the origin serves now.

``purgebridge audit`` and the relay's continuous sampler (``audit.watch``) both
use this module. For each URL:

1. every node is asked for it (``GET`` with the site's ``Host`` and the scheme
   header the VCL hashes on; anonymous: no cookie is ever sent or kept);
2. the origin is asked directly (PURGEBRIDGE_ORIGIN, or the first ``backend``
   of PURGEBRIDGE_VCL), so no cache can answer;
3. a node's answer is judged:

   ==============  ==========================================================
   ``not_cached``  the node had no copy (X-Cache MISS/PASS, or no Age and one
                   X-Varnish id): it fetched from the origin just now
   ``fresh``       a cached copy whose status, ``Location`` and normalised
                   body equal the origin's
   ``stale``       a cached copy that differs -- twice: a difference is
                   confirmed after ``CONFIRM_DELAY`` with a second fetch of
                   both, so a purge in flight is not reported
   ``error``       the node or the origin gave no usable answer
   ==============  ==========================================================

Normalisation (``BUILTIN_PATTERNS`` plus a site's own, PURGEBRIDGE_AUDIT_IGNORE_FILE
or ``--ignore``) replaces only what WordPress prints differently on every
request for an anonymous visitor; docs/audit.md gives the reason for each.

Concurrency: a pool of ``concurrency`` threads takes URLs in order; before a
thread starts a URL it takes the next start slot of a shared clock (one every
``1/rate`` s), so the origin sees at most ``rate`` URL checks a second. Each
thread fetches the nodes and then the origin one after another, so at most
``concurrency`` requests are in flight against the origin; only the calling
thread gathers results and reports progress.
"""

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from enum import Enum
from http.cookiejar import DefaultCookiePolicy
import html
import json
import logging
import re
import threading
import time
from typing import Callable, Iterable, List, Optional, Sequence, Tuple

import requests

from purgebridge.config.settings import Settings
from purgebridge.core.errors import ConfigError, InvalidURL
from purgebridge.core.invalidation import purge_for_url
from purgebridge.delivery.fanout import fan_out
from purgebridge.core.nodes import Node, parse_node
from purgebridge.core.urls import split_url

log = logging.getLogger(__name__)

USER_AGENT = "purgebridge-audit"
DEFAULT_CONCURRENCY = 4
MAX_CONCURRENCY = 32
MAX_BODY = 8 * 1024 * 1024       # bytes read of one answer; a page larger than this is compared on its start
MIN_READ_TIMEOUT = 10.0          # seconds: an uncached WordPress page can take longer than a purge answer
CONFIRM_DELAY = 0.5              # seconds before a difference is checked again (a purge may be on its way)
CONFIRM_TRIES = 3                # origin answers a differing copy is compared with before it is called stale
RECENT_POSTS = 5                 # recent posts whose term, author and date archives are checked
MAX_SITEMAPS = 50                # sub-sitemaps read from /wp-sitemap.xml
SNIPPET = 60                     # characters shown either side of the first difference


class State(str, Enum):
    FRESH = "fresh"
    STALE = "stale"
    NOT_CACHED = "not_cached"
    ERROR = "error"


# --------------------------------------------------------------------------- settings


@dataclass(frozen=True)
class OriginAddress:
    """Where pages are fetched bypassing every cache."""

    host: str
    port: int

    @property
    def netloc(self):
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"


def resolve_origin(settings: Settings) -> OriginAddress:
    """PURGEBRIDGE_ORIGIN, else the first backend of PURGEBRIDGE_VCL; ConfigError naming the variable."""
    if settings.origin:
        try:
            node = parse_node(settings.origin, default_port=80)
        except ValueError as exc:
            raise ConfigError("PURGEBRIDGE_ORIGIN", settings.origin, f"expected host:port ({exc})") from None
        return OriginAddress(node.host, node.port)
    if settings.vcl:
        from purgebridge.config.vcl_acl import origin_from_vcl

        host, port = origin_from_vcl(settings.vcl)
        return OriginAddress(host, port)
    raise ConfigError("PURGEBRIDGE_ORIGIN", "", "audit needs the origin to compare with: set PURGEBRIDGE_ORIGIN "
                      "(host:port of the web server behind Varnish) or PURGEBRIDGE_VCL (its first backend)")


@dataclass(frozen=True)
class Pattern:
    """One normalisation: every match of ``regex`` becomes ``replacement`` on both sides."""

    name: str
    regex: re.Pattern
    replacement: str
    reason: str = ""


def _pattern(name, regex, replacement, reason):
    return Pattern(name, re.compile(regex), replacement, reason)


# Each one was seen differ between two anonymous requests for the same, unchanged page on
# WordPress 6.1 (Debian) with Twenty Twenty-Three, or is printed by WordPress core or common
# caching plugins with a value that changes without any content change. docs/audit.md has the list.
BUILTIN_PATTERNS = (
    _pattern("gravatar-shard", r"\b[0-2]\.gravatar\.com\b", "N.gravatar.com",
             "get_avatar_url() picks a random Gravatar host (0-2) for a comment without an e-mail address"),
    _pattern("nonce", r"""((?:_wpnonce|_ajax_nonce)=|["']nonce["']\s*:\s*["']|name=["']_wpnonce["'] value=["'])"""
             r"[0-9a-f]{10}\b", r"\1<nonce>",
             "WordPress nonces change every 12 hours (the nonce tick) for anonymous visitors too"),
    _pattern("timing-comment",
             r"<!--(?:(?!-->).){0,300}?(?:\b\d+(?:\.\d+)?\s*(?:seconds|secs|ms)\b|"
             r"\d{4}-\d\d-\d\d[ T]\d\d:\d\d:\d\d)(?:(?!-->).){0,300}?-->",
             "<!-- timing -->",
             "caching plugins (WP Super Cache, W3 Total Cache) and themes stamp an HTML comment with the "
             "generation time or date; a comment is never shown to a visitor"),
)


def load_patterns(path: str = "", extra: Iterable[str] = ()) -> Tuple["Pattern", ...]:
    """The built-in patterns plus one per line of ``path`` (``#`` comments) and ``extra``.

    A site pattern's matches become ``<ignored>``. Raises ConfigError naming
    the file and line (or ``--ignore``) for a pattern that does not compile.
    """
    patterns = list(BUILTIN_PATTERNS)
    lines = []
    if path:
        try:
            with open(path, encoding="utf-8") as handle:
                lines = [(f"{path}:{n}", line.rstrip("\n")) for n, line in enumerate(handle, 1)]
        except OSError as exc:
            raise ConfigError("PURGEBRIDGE_AUDIT_IGNORE_FILE", path, f"cannot read ({exc.strerror})") from None
    lines += [("--ignore", text) for text in extra]
    for where, text in lines:
        if not text.strip() or text.lstrip().startswith("#"):
            continue
        try:
            patterns.append(Pattern(where, re.compile(text), "<ignored>", "site pattern"))
        except re.error as exc:
            variable = "--ignore" if where == "--ignore" else "PURGEBRIDGE_AUDIT_IGNORE_FILE"
            raise ConfigError(variable, text, f"{where}: not a regular expression ({exc})") from None
    return tuple(patterns)


def normalise(text, patterns):
    for pattern in patterns:
        text = pattern.regex.sub(pattern.replacement, text)
    return text


def first_difference(origin_text, node_text):
    """``line N: origin '...' / node '...'`` around the first character that differs."""
    a_lines, b_lines = origin_text.splitlines(), node_text.splitlines()
    for number, (a, b) in enumerate(zip(a_lines, b_lines), 1):
        if a != b:
            at = next((i for i, (x, y) in enumerate(zip(a, b)) if x != y), min(len(a), len(b)))
            start = max(0, at - SNIPPET)
            return (f"line {number}: origin {a[start:at + SNIPPET].strip()!r} / "
                    f"node {b[start:at + SNIPPET].strip()!r}")
    number = min(len(a_lines), len(b_lines)) + 1
    longer = "origin" if len(a_lines) > len(b_lines) else "node"
    extra = (a_lines if longer == "origin" else b_lines)[number - 1:number] or [""]
    return f"line {number}: only the {longer} has {extra[0].strip()[:2 * SNIPPET]!r}"


# --------------------------------------------------------------------------- fetching


@dataclass(frozen=True)
class Page:
    """One answer, as far as the comparison needs it."""

    status: Optional[int] = None
    location: str = ""
    text: str = ""
    cached: bool = False
    age: Optional[int] = None
    error: str = ""


def _cached(headers):
    """Did a cache answer from a stored copy? X-Cache if the VCL sets one, else X-Varnish / Age."""
    x_cache = headers.get("X-Cache")
    if x_cache:
        return x_cache.split(",")[0].strip().upper().startswith("HIT")
    if len(headers.get("X-Varnish", "").split()) > 1:
        return True
    return _age(headers) not in (None, 0)


def _age(headers):
    try:
        return int(headers.get("Age", ""))
    except ValueError:
        return None


class Fetcher:
    """Anonymous GETs with one keep-alive ``requests`` session per thread.

    Sessions hold connections only: the cookie policy refuses every cookie,
    so no answer's ``Set-Cookie`` turns a later request into a logged-in or
    commenter one (which the VCL would pass).
    """

    def __init__(self, settings):
        self.proto_header = settings.proto_header
        self.timeout = (settings.timeout, max(settings.timeout, MIN_READ_TIMEOUT))
        self.local = threading.local()
        self.lock = threading.Lock()
        self.sessions = []

    def _session(self):
        session = getattr(self.local, "session", None)
        if session is None:
            session = requests.Session()
            session.cookies.set_policy(DefaultCookiePolicy(allowed_domains=[]))
            session.trust_env = False  # never through an HTTP proxy from the environment
            self.local.session = session
            with self.lock:
                self.sessions.append(session)
        return session

    def get(self, netloc, url):
        """GET ``url`` from the server at ``netloc`` (a node or the origin) as the site's visitor would."""
        scheme, host, target = split_url(url)
        headers = {"Host": host, "User-Agent": USER_AGENT, "Accept-Encoding": "gzip"}
        if self.proto_header:
            headers[self.proto_header] = scheme
        try:
            with self._session().get(f"http://{netloc}{target}", headers=headers, timeout=self.timeout,
                                     allow_redirects=False, stream=True) as response:
                body = response.raw.read(MAX_BODY, decode_content=True)
                text = body.decode(response.encoding or "utf-8", errors="replace")
                return Page(response.status_code, response.headers.get("Location", ""), text,
                            _cached(response.headers), _age(response.headers))
        except (requests.RequestException, OSError) as exc:
            return Page(error=_short(exc))
        except Exception as exc:  # noqa: BLE001 - urllib3 decode errors etc.: report, never crash the audit
            return Page(error=f"{type(exc).__name__}: {exc}"[:200])

    def close(self):
        with self.lock:
            for session in self.sessions:
                session.close()
            self.sessions.clear()


def _short(exc):
    text = str(exc)
    for marker in ("Connection refused", "timed out", "Read timed out", "Name or service not known",
                   "Connection reset"):
        if marker in text:
            return marker.lower()
    return text[:200]


# --------------------------------------------------------------------------- checking


@dataclass
class Check:
    """The verdict for one (URL, node)."""

    url: str
    node: str
    state: State
    age: Optional[int] = None
    detail: str = ""

    def to_dict(self):
        return {"url": self.url, "node": self.node, "state": self.state.value, "age": self.age,
                "detail": self.detail}


@dataclass
class AuditReport:
    nodes: list
    checks: list = field(default_factory=list)
    urls: int = 0
    seconds: float = 0.0
    origin_requests: int = 0
    notes: list = field(default_factory=list)
    fixed: list = field(default_factory=list)  # purge Report.to_dict() of --fix, per node

    @property
    def ok(self):
        return all(c.state in (State.FRESH, State.NOT_CACHED) for c in self.checks)

    def problems(self):
        return [c for c in self.checks if c.state in (State.STALE, State.ERROR)]

    def stale(self):
        """``{node name: [url, ...]}`` of every stale copy."""
        found = {}
        for check in self.checks:
            if check.state is State.STALE:
                found.setdefault(check.node, []).append(check.url)
        return found

    def summary(self):
        rows = []
        for name in self.nodes:
            counts = {state.value: 0 for state in State}
            for check in self.checks:
                if check.node == name:
                    counts[check.state.value] += 1
            rows.append({"node": name, **counts})
        return rows

    def replace_checks(self, newer):
        """Put re-check results in place of the earlier verdicts for the same (URL, node)."""
        by_key = {(c.url, c.node): c for c in newer}
        self.checks = [by_key.pop((c.url, c.node), c) for c in self.checks] + list(by_key.values())

    def to_dict(self):
        return {"ok": self.ok, "urls": self.urls, "seconds": round(self.seconds, 3),
                "urls_per_second": round(self.urls / self.seconds, 2) if self.seconds else None,
                "origin_requests": self.origin_requests, "nodes": self.summary(),
                "problems": [c.to_dict() for c in self.problems()],
                "checks": [c.to_dict() for c in self.checks], "notes": list(self.notes),
                "fix": list(self.fixed)}


class Auditor:
    """Checks URLs against every node and the origin, at most ``rate`` URLs a second."""

    def __init__(self, settings: Settings, origin: OriginAddress, patterns: Sequence[Pattern] = BUILTIN_PATTERNS,
                 rate: Optional[float] = None, concurrency: int = DEFAULT_CONCURRENCY,
                 nodes: Optional[Iterable[Node]] = None, sleep: Callable[[float], None] = time.sleep,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.settings = settings
        self.nodes = tuple(settings.nodes if nodes is None else nodes)
        self.origin = origin
        self.patterns = patterns
        self.interval = 1.0 / (rate or settings.audit_rate)
        self.concurrency = max(1, min(MAX_CONCURRENCY, concurrency))
        self.fetcher = Fetcher(settings)
        self.sleep, self.clock = sleep, clock
        self._next_slot = 0.0
        self._lock = threading.Lock()
        self.origin_requests = 0

    # -- pacing and origin access

    def _wait_for_slot(self):
        with self._lock:
            now = self.clock()
            start = max(now, self._next_slot)
            self._next_slot = start + self.interval
        if start > now:
            self.sleep(start - now)

    def from_origin(self, url):
        with self._lock:
            self.origin_requests += 1
        return self.fetcher.get(self.origin.netloc, url)

    # -- one URL

    def _differs(self, node_page, origin_page):
        """None when the node's copy matches the origin's, else what differs (for the report)."""
        if node_page.status != origin_page.status:
            return f"status: origin {origin_page.status} / node {node_page.status}"
        if node_page.location != origin_page.location:
            return f"Location: origin {origin_page.location!r} / node {node_page.location!r}"
        a, b = normalise(origin_page.text, self.patterns), normalise(node_page.text, self.patterns)
        return None if a == b else first_difference(a, b)

    def check_url(self, url: str, nodes: Optional[Sequence[Node]] = None) -> List["Check"]:
        """One verdict per node for ``url`` (paced: takes one start slot)."""
        nodes = self.nodes if nodes is None else nodes
        self._wait_for_slot()
        pages = {node: self.fetcher.get(node.netloc, url) for node in nodes}
        origin_page = self.from_origin(url)
        if origin_page.error or origin_page.status >= 500:
            reason = origin_page.error or f"HTTP {origin_page.status}"
            return [Check(url, node.name, State.ERROR, detail=f"origin: {reason}") for node in nodes]
        verdicts, suspects = {}, []
        for node, page in pages.items():
            if page.error:
                verdicts[node] = Check(url, node.name, State.ERROR, detail=page.error)
            elif page.status >= 500 and not page.cached:
                verdicts[node] = Check(url, node.name, State.ERROR, detail=f"HTTP {page.status}")
            elif not page.cached:
                verdicts[node] = Check(url, node.name, State.NOT_CACHED)
            elif self._differs(page, origin_page) is None:
                verdicts[node] = Check(url, node.name, State.FRESH, page.age)
            else:
                suspects.append(node)
        if suspects:
            verdicts.update(self._confirm(url, suspects, origin_page))
        return [verdicts[node] for node in nodes]

    def _confirm(self, url, suspects, first_origin):
        """Verdicts for nodes whose copy differed: fetched again after CONFIRM_DELAY with the origin.

        The origin is asked up to CONFIRM_TRIES times: a node copy equal to
        any of its answers is fresh (WordPress itself may answer differently,
        e.g. posts with the same date come in no fixed order). A copy that
        matches none while the origin's own answers disagree cannot be judged:
        an error naming the origin's difference, so it is never silently fresh.
        """
        self.sleep(CONFIRM_DELAY)
        origin_pages = [self.from_origin(url) for _ in range(CONFIRM_TRIES)]
        origin_pages = [p for p in origin_pages if not p.error and p.status < 500] or [first_origin]
        verdicts = {}
        for node in suspects:
            page = self.fetcher.get(node.netloc, url)
            if page.error:
                verdicts[node] = Check(url, node.name, State.ERROR, detail=page.error)
                continue
            if not page.cached:
                verdicts[node] = Check(url, node.name, State.NOT_CACHED)
                continue
            differences = [self._differs(page, origin) for origin in origin_pages]
            if None in differences:
                verdicts[node] = Check(url, node.name, State.FRESH, page.age)
                continue
            unstable = next((d for d in (self._differs(p, first_origin) for p in origin_pages) if d), None)
            if unstable:
                verdicts[node] = Check(url, node.name, State.ERROR, page.age,
                                       f"the origin answers differently each time ({unstable}); "
                                       "a site pattern (docs/audit.md) can ignore what varies")
            else:
                verdicts[node] = Check(url, node.name, State.STALE, page.age, differences[0])
        return verdicts

    # -- many URLs

    def run(self, urls, progress=None, report=None):
        """Check every URL on every node; ``progress(n)`` is called in this thread as URLs finish."""
        report = report or AuditReport([n.name for n in self.nodes])
        started = time.monotonic()
        with ThreadPoolExecutor(max_workers=self.concurrency, thread_name_prefix="audit") as pool:
            for checks in pool.map(self.check_url, urls):
                report.checks.extend(checks)
                if progress:
                    progress(1)
        report.urls += len(urls)
        report.seconds += time.monotonic() - started
        report.origin_requests = self.origin_requests
        return report

    def fix(self, report):
        """Purge exactly the stale (node, URL) pairs through the normal fan-out, then check them again."""
        by_node = {node.name: node for node in self.nodes}
        recheck = []
        for name, urls in sorted(report.stale().items()):
            items = [purge_for_url(url, self.settings.proto_header) for url in urls]
            result = fan_out([by_node[name]], items, self.settings)
            report.fixed.append(result.to_dict())
            recheck += [(url, by_node[name]) for url in urls]
        newer = []
        for url, node in recheck:
            newer += self.check_url(url, nodes=(node,))
        report.replace_checks(newer)
        report.origin_requests = self.origin_requests
        return report

    def close(self):
        self.fetcher.close()


# --------------------------------------------------------------------------- what to check


def site_home(text):
    """``--site`` text -> the home URL with a trailing slash: a bare host means https."""
    text = text.strip()
    url = text if "://" in text else f"https://{text}/"
    split_url(url)  # InvalidURL for anything a node could not be asked for
    return url if url.endswith("/") else url + "/"


_LOC = re.compile(r"<loc>\s*([^<\s]+)\s*</loc>")


def _locs(text):
    return [html.unescape(loc) for loc in _LOC.findall(text)]


def discover(auditor: Auditor, site: str, pagination: int = 3,
             sitemap_only: bool = False) -> Tuple[List[str], List[str]]:
    """Every URL of a site worth checking, read from the origin: ``(urls, notes)``.

    The sitemap (WordPress core's /wp-sitemap.xml and the sitemaps it lists)
    plus the listing pages no sitemap holds: the front page and its next
    ``pagination`` pages, the feeds, and the term, author and date archives
    of the ``RECENT_POSTS`` most recent posts (from the REST API). Only URLs
    on the site's own host are kept; listing pages come first.
    """
    home = site_home(site)
    host = split_url(home)[1]
    notes, from_sitemap = [], []
    index = auditor.from_origin(home + "wp-sitemap.xml")
    if index.status == 200:
        sitemaps = _locs(index.text)
        if sitemaps:
            # The sitemaps carry the home URL WordPress itself prints (its scheme and path).
            home = sitemaps[0].rsplit("/", 1)[0] + "/"
        if len(sitemaps) > MAX_SITEMAPS:
            notes.append(f"read the first {MAX_SITEMAPS} of {len(sitemaps)} sitemaps")
        for sitemap in sitemaps[:MAX_SITEMAPS]:
            page = auditor.from_origin(sitemap)
            if page.status == 200:
                from_sitemap += _locs(page.text)
            else:
                notes.append(f"sitemap {sitemap}: {page.error or 'HTTP %s' % page.status}")
    else:
        notes.append(f"no sitemap at {home}wp-sitemap.xml ({index.error or 'HTTP %s' % index.status})")
    listing = []
    if not sitemap_only:
        listing = [home] + [f"{home}page/{n}/" for n in range(2, pagination + 2)]
        listing += [f"{home}feed/", f"{home}comments/feed/"]
        listing += _recent_archives(auditor, home, notes)
    urls = []
    for url in dict.fromkeys(listing + from_sitemap):
        try:
            if split_url(url)[1] == host:
                urls.append(url)
        except InvalidURL:
            notes.append(f"skipped {url!r}: not a URL a node could be asked for")
    return urls, notes


def _recent_archives(auditor, home, notes):
    """Term, author and date archives of the most recent posts, from the REST API."""
    page = auditor.from_origin(f"{home}?rest_route=/wp/v2/posts&per_page={RECENT_POSTS}&_embed=author,wp:term")
    try:
        posts = json.loads(page.text) if page.status == 200 else None
    except ValueError:
        posts = None
    if not isinstance(posts, list):
        notes.append(f"no recent posts from the REST API ({page.error or 'HTTP %s' % page.status}): "
                     "term, author and date archives not checked")
        return []
    found = []
    for post in posts:
        embedded = post.get("_embedded") or {}
        for author in embedded.get("author") or []:
            found.append(author.get("link"))
        for terms in embedded.get("wp:term") or []:
            found += [term.get("link") for term in terms or []]
        date = str(post.get("date") or "")
        if re.match(r"^\d{4}-\d\d-\d\d", date):
            year, month, day = date[:4], date[5:7], date[8:10]
            found += [f"{home}{year}/", f"{home}{year}/{month}/", f"{home}{year}/{month}/{day}/"]
    return [url for url in found if isinstance(url, str) and url]


# --------------------------------------------------------------------------- reporting


STATE_LABEL = {State.FRESH: "fresh", State.STALE: "STALE", State.NOT_CACHED: "not cached", State.ERROR: "ERROR"}


def render_text(report):
    """Problems first (URL, node, age, first difference), then the per-node table and totals."""
    lines = []
    problems = report.problems()
    if problems:
        lines.append("not fresh:")
        for check in problems:
            age = f"  age {check.age}s" if check.age is not None else ""
            lines.append(f"  {STATE_LABEL[check.state]:<5}  {check.node}  {check.url}{age}")
            if check.detail:
                lines.append(f"         {check.detail}")
        lines.append("")
    headers = ["node", "fresh", "stale", "not cached", "error"]
    rows = [[r["node"], r["fresh"], r["stale"], r["not_cached"], r["error"]] for r in report.summary()]
    widths = [max(len(str(v)) for v in col) for col in zip(headers, *rows)]
    for row in [headers] + rows:
        lines.append("  ".join(str(v).ljust(w) if i == 0 else str(v).rjust(w)
                               for i, (v, w) in enumerate(zip(row, widths))))
    rate = f" ({report.urls / report.seconds:.1f}/s)" if report.seconds else ""
    lines.append(f"\n{report.urls} URL(s) on {len(report.nodes)} node(s) in {report.seconds:.1f}s{rate}, "
                 f"{report.origin_requests} request(s) to the origin")
    for fixed in report.fixed:
        for node in fixed["nodes"]:
            lines.append(f"fix: purged {node['purged'] + node['not_cached']} URL(s) on {node['node']}"
                         f"{', %d failed' % (node['failed'] + node['refused']) if not fixed['ok'] else ''}")
    for note in report.notes:
        lines.append(f"note: {note}")
    lines.append("everything fresh" if report.ok else
                 f"{sum(1 for c in problems if c.state is State.STALE)} stale, "
                 f"{sum(1 for c in problems if c.state is State.ERROR)} error(s)")
    return "\n".join(lines)
