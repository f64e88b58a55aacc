"""What other CMSes' own webhooks and PURGE requests make stale: pure functions, no I/O.

Three intakes share this module (the routes are in ``api.cms``; recipes in docs/cms/):

* **Ghost**, natively: the body of a custom integration's webhook as Ghost
  sends it (``{"post": {"current": {...}, "previous": {...}}}``), signed in
  ``X-Ghost-Signature: sha256=<hex>, t=<ms>`` (:func:`verify_ghost`), mapped
  with Ghost's default routes or the site's own (:func:`ghost_targets`).
* **Templates**, for id-based CMSes (Strapi, Directus, Contentful, Payload...):
  per model, URL templates over the entry's fields and surrogate-key
  templates (:func:`template_targets`).
* **The PURGE front door**: a PURGE of one path also refreshes the listings the
  site names (:func:`also_refresh`).

A site's settings for them live under ``"cms"`` in the sites file and are
checked once, at start, by :func:`parse_cms` (a ``ConfigError`` names the
field).
"""

from __future__ import annotations

from dataclasses import dataclass, field
import hashlib
import hmac
import re
import time
from typing import Any, Dict, Iterable, List, Mapping, Optional, Tuple
from urllib.parse import quote

__all__ = ["GHOST_DEFAULT_ROUTES", "GHOST_SITEMAPS", "GHOST_POST_CARDS", "GHOST_CARD_FIELDS", "GHOST_REPLAY_WINDOW",
           "GHOST_SITE_CHANGED_WINDOW", "CMSConfigError", "GhostSignatureError", "Targets", "GhostSettings",
           "ModelTemplates", "TemplateSettings", "PurgeDoorSettings", "CMSSettings", "TemplateEvent", "parse_cms",
           "verify_ghost", "ghost_kind", "looks_like_ghost", "ghost_targets", "parse_template_event", "render",
           "template_targets", "parents", "also_refresh", "siblings_ban", "known_body_route"]

GHOST_DEFAULT_ROUTES = {
    "post": "/{slug}/",
    "page": "/{slug}/",
    "tag": "/tag/{slug}/",
    "author": "/author/{slug}/",
    "home": "/",
    "rss": "rss/",          # a collection's feed: appended to the collection's path
    "pagination": "page/{n}/",
}
GHOST_SITEMAPS = ("/sitemap.xml", "/sitemap-posts.xml", "/sitemap-pages.xml", "/sitemap-tags.xml",
                  "/sitemap-authors.xml")
# Ghost's default theme (Casper, and most others) shows the newest posts as cards at the foot of
# every post page: a change to what such a card shows makes every post page stale. Those pages are
# the single-segment paths of the default post route; a site with other routes or a theme without
# cards sets cms.ghost.post_cards to its own regular expression, or to "" for none.
GHOST_POST_CARDS = r"^/[^/?]+/$"
GHOST_CARD_FIELDS = frozenset({"title", "slug", "status", "feature_image", "custom_excerpt", "excerpt",
                               "published_at", "tags", "primary_tag", "authors", "primary_author",
                               "featured", "visibility", "reading_time"})
GHOST_REPLAY_WINDOW = 300.0        # seconds either side of X-Ghost-Signature's t
GHOST_SITE_CHANGED_WINDOW = 10.0   # seconds after a content event during which site.changed is its echo

_PLACEHOLDER = re.compile(r"\{([A-Za-z_][A-Za-z0-9_.]*)\}")
_KEY_SAFE = re.compile(r"[^A-Za-z0-9._:/-]+")


class CMSConfigError(ValueError):
    """A site's ``cms`` settings are wrong; ``field`` names where."""

    def __init__(self, field_name: str, message: str) -> None:
        super().__init__(f"{field_name}: {message}")
        self.field = field_name


class GhostSignatureError(ValueError):
    """X-Ghost-Signature is missing, malformed, outside the replay window or wrong."""


@dataclass(frozen=True)
class Targets:
    """What one CMS request makes stale: paths (on the site's host), surrogate keys, or the whole site."""

    paths: Tuple[str, ...] = ()
    keys: Tuple[str, ...] = ()
    whole_site: bool = False
    note: str = ""
    bans: Tuple[str, ...] = ()     # regular expressions on path + query (BAN with X-Ban-Url)

    @property
    def empty(self) -> bool:
        return not (self.paths or self.keys or self.whole_site or self.bans)


# --------------------------------------------------------------------------- per-site settings


@dataclass(frozen=True)
class GhostSettings:
    secret: str = field(default="", repr=False)
    routes: Dict[str, str] = field(default_factory=lambda: dict(GHOST_DEFAULT_ROUTES))
    pagination: int = 2            # extra listing pages: page/2/ .. page/(1+pagination)/
    sitemaps: bool = True
    post_cards: str = GHOST_POST_CARDS
    site_changed: str = "ban"      # "ban": whole site unless it echoes a content event; "ignore"
    site_changed_window: float = GHOST_SITE_CHANGED_WINDOW
    replay_window: float = GHOST_REPLAY_WINDOW


@dataclass(frozen=True)
class ModelTemplates:
    urls: Tuple[str, ...] = ()
    keys: Tuple[str, ...] = ()


@dataclass(frozen=True)
class TemplateSettings:
    token: str = field(default="", repr=False)
    models: Dict[str, ModelTemplates] = field(default_factory=dict)
    skip_drafts: bool = True       # a create/update whose entry has publishedAt: null changes no public page


@dataclass(frozen=True)
class PurgeDoorSettings:
    also: Tuple[str, ...] = ()     # "parents", "siblings", or paths such as "/" and "/feed.xml"
    scheme: str = "http"


@dataclass(frozen=True)
class CMSSettings:
    ghost: Optional[GhostSettings] = None
    templates: Optional[TemplateSettings] = None
    purge: PurgeDoorSettings = PurgeDoorSettings()


def _secret(entry: Dict[str, Any], where: str, environ: Mapping[str, str], name: str) -> str:
    value = entry.get(name) or ""
    env_name = entry.get(name + "_env")
    if env_name:
        value = environ.get(env_name, "")
        if not value:
            raise CMSConfigError(f"{where}.{name}_env", f"environment variable {env_name} is not set")
    if not isinstance(value, str):
        raise CMSConfigError(f"{where}.{name}", "expected a string")
    return value


def _paths(value: Any, where: str) -> Tuple[str, ...]:
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise CMSConfigError(where, "expected a list of strings")
    return tuple(value)


def _object(value: Any, where: str) -> Dict[str, Any]:
    if not isinstance(value, dict):
        raise CMSConfigError(where, "expected an object")
    return value


def _long_secret(entry: Dict[str, Any], where: str, environ: Mapping[str, str], name: str, what: str) -> str:
    value = _secret(entry, where, environ, name)
    if len(value) < 16:
        raise CMSConfigError(f"{where}.{name}", f"needs at least 16 characters{what}")
    return value


def parse_cms(data: Any, environ: Mapping[str, str]) -> CMSSettings:
    """Check a site's ``"cms"`` object; raises :class:`CMSConfigError` naming the field."""
    if data in (None, {}):
        return CMSSettings()
    data = _object(data, "cms")
    unknown = sorted(set(data) - {"ghost", "templates", "purge"})
    if unknown:
        raise CMSConfigError("cms", f"unknown key(s) {', '.join(unknown)}; known: ghost, templates, purge")
    return CMSSettings(
        ghost=_parse_ghost(_object(data["ghost"], "cms.ghost"), environ) if "ghost" in data else None,
        templates=(_parse_templates(_object(data["templates"], "cms.templates"), environ)
                   if "templates" in data else None),
        purge=_parse_purge(_object(data["purge"], "cms.purge")) if "purge" in data else PurgeDoorSettings())


def _parse_ghost(g: Dict[str, Any], environ: Mapping[str, str]) -> GhostSettings:
    secret = _long_secret(g, "cms.ghost", environ, "secret", " (Ghost's webhook secret)")
    routes = dict(GHOST_DEFAULT_ROUTES)
    custom = g.get("routes") or {}
    if not isinstance(custom, dict) or not all(isinstance(v, str) for v in custom.values()):
        raise CMSConfigError("cms.ghost.routes", "expected an object of strings")
    bad = sorted(set(custom) - set(GHOST_DEFAULT_ROUTES))
    if bad:
        raise CMSConfigError("cms.ghost.routes", f"unknown route(s) {', '.join(bad)}; "
                             f"known: {', '.join(GHOST_DEFAULT_ROUTES)}")
    routes.update(custom)
    pagination = g.get("pagination", 2)
    if isinstance(pagination, bool) or not isinstance(pagination, int) or not 0 <= pagination <= 50:
        raise CMSConfigError("cms.ghost.pagination", "expected a whole number from 0 to 50")
    site_changed = g.get("site_changed", "ban")
    if site_changed not in ("ban", "ignore"):
        raise CMSConfigError("cms.ghost.site_changed", 'expected "ban" or "ignore"')
    window = g.get("site_changed_window", GHOST_SITE_CHANGED_WINDOW)
    if isinstance(window, bool) or not isinstance(window, (int, float)) or not 0 <= window <= 600:
        raise CMSConfigError("cms.ghost.site_changed_window", "expected seconds from 0 to 600")
    post_cards = g.get("post_cards", GHOST_POST_CARDS)
    if not isinstance(post_cards, str):
        raise CMSConfigError("cms.ghost.post_cards", "expected a regular expression, or \"\" for none")
    try:
        re.compile(post_cards)
    except re.error as exc:
        raise CMSConfigError("cms.ghost.post_cards", f"not a regular expression ({exc})") from None
    return GhostSettings(secret=secret, routes=routes, pagination=pagination, post_cards=post_cards,
                         sitemaps=bool(g.get("sitemaps", True)), site_changed=site_changed,
                         site_changed_window=float(window))


def _parse_templates(t: Dict[str, Any], environ: Mapping[str, str]) -> TemplateSettings:
    token = _long_secret(t, "cms.templates", environ, "token", "")
    models_in = t.get("models")
    if not isinstance(models_in, dict) or not models_in:
        raise CMSConfigError("cms.templates.models", "expected an object: model -> {urls, keys}")
    models = {}
    for name, spec in models_in.items():
        where = f"cms.templates.models.{name}"
        if not isinstance(spec, dict):
            raise CMSConfigError(where, "expected an object with urls and/or keys")
        urls = _paths(spec.get("urls", []), where + ".urls")
        for u in urls:
            if not u.startswith("/"):
                raise CMSConfigError(where + ".urls", f"{u!r}: a template is a path starting with /")
        models[name] = ModelTemplates(urls=urls, keys=_paths(spec.get("keys", []), where + ".keys"))
    return TemplateSettings(token=token, models=models, skip_drafts=bool(t.get("skip_drafts", True)))


def _parse_purge(p: Dict[str, Any]) -> PurgeDoorSettings:
    also = _paths(p.get("also", []), "cms.purge.also")
    for a in also:
        if a not in ALSO_RULES and not a.startswith("/"):
            raise CMSConfigError("cms.purge.also",
                                 f"{a!r}: expected \"parents\", \"siblings\" or a path starting with /")
    scheme = p.get("scheme", "http")
    if scheme not in ("http", "https"):
        raise CMSConfigError("cms.purge.scheme", 'expected "http" or "https"')
    return PurgeDoorSettings(also=also, scheme=scheme)


# --------------------------------------------------------------------------- Ghost


def verify_ghost(secret: str, header: Optional[str], body: bytes, now_ms: Optional[float] = None,
                 window: float = GHOST_REPLAY_WINDOW) -> int:
    """Check ``X-Ghost-Signature`` (``sha256=<hex>, t=<ms>``, HMAC-SHA256 of body + t); returns t.

    Constant-time comparison; ``t`` must be within ``window`` seconds of now
    (a captured request cannot be replayed later).
    """
    if not secret:
        raise GhostSignatureError("no Ghost webhook secret configured for this site")
    if not header:
        raise GhostSignatureError("missing X-Ghost-Signature (set the webhook's secret in Ghost)")
    parts = {}
    for piece in header.split(","):
        name, _, value = piece.strip().partition("=")
        parts[name.strip().lower()] = value.strip()
    digest, stamp = parts.get("sha256", ""), parts.get("t", "")
    if not re.fullmatch(r"[0-9a-fA-F]{64}", digest) or not stamp.isdigit() or len(stamp) > 16:
        raise GhostSignatureError("malformed X-Ghost-Signature (expected 'sha256=<hex>, t=<ms>')")
    now_ms = time.time() * 1000 if now_ms is None else now_ms
    if abs(now_ms - int(stamp)) > window * 1000:
        raise GhostSignatureError(f"X-Ghost-Signature t is more than {window:.0f} s from now (replay or clock skew)")
    expected = hmac.new(secret.encode("utf-8"), body + stamp.encode("ascii"), hashlib.sha256).hexdigest()
    if not hmac.compare_digest(expected, digest.lower()):
        raise GhostSignatureError("wrong X-Ghost-Signature")
    return int(stamp)


def _fill(template: str, values: Dict[str, Any]) -> Optional[str]:
    try:
        return template.format(**values)
    except (KeyError, IndexError, ValueError):
        return None


def _collection(path: str, settings: GhostSettings, feed: bool = True) -> List[str]:
    """A listing, its pages and its feed."""
    base = path if path.endswith("/") else path + "/"
    out = [path]
    for n in range(2, 2 + settings.pagination):
        out.append(base + settings.routes["pagination"].format(n=n))
    if feed and settings.routes.get("rss"):
        out.append(base + settings.routes["rss"])
    return out


def _slugs(items: Any) -> List[str]:
    return [i["slug"] for i in items or () if isinstance(i, dict) and isinstance(i.get("slug"), str) and i["slug"]]


def _path_of_url(url: Any) -> Optional[str]:
    if not isinstance(url, str) or "://" not in url:
        return None
    rest = url.split("://", 1)[1]
    slash = rest.find("/")
    return rest[slash:] if slash >= 0 else "/"


def ghost_kind(body: Any) -> Optional[str]:
    """``post``, ``page``, ``tag``, ``member``..., or ``site`` for site.changed's empty body; None if not Ghost's."""
    if body == {}:
        return "site"
    if isinstance(body, dict) and len(body) == 1:
        (kind, value), = body.items()
        if isinstance(value, dict) and ("current" in value or "previous" in value):
            return str(kind)
    return None


def looks_like_ghost(body: Any) -> bool:
    kind = ghost_kind(body)
    return kind is not None and kind != "site"


def ghost_targets(body: Any, settings: GhostSettings) -> Targets:
    """The paths a Ghost webhook body makes stale, with the site's routes.

    Posts: the post (its ``url`` unless that is the ``/p/<uuid>/`` preview of
    an unpublished post: then its slug), its old slug, the home page, every
    tag and author listing it is or was on (pages and feed), the site feed and
    the sitemaps. Only when the post is or was public: a draft's edits change
    no page. Pages: the page and its old slug. Tags and authors: their
    listing. ``site`` (site.changed, body ``{}``) is decided by the caller.
    """
    kind = ghost_kind(body)
    if kind is None:
        raise ValueError("not a Ghost webhook body")
    if kind == "site":
        return Targets(whole_site=True, note="site.changed")
    data = body[kind]
    current = data.get("current") or {}
    previous = data.get("previous") or {}
    if not isinstance(current, dict) or not isinstance(previous, dict):
        raise ValueError(f"{kind}.current and {kind}.previous must be objects")
    routes = settings.routes
    paths: List[str] = []
    if kind in ("post", "page"):
        was = previous.get("status", current.get("status"))
        public_now = current.get("status") == "published"
        public_before = was == "published" or (not current and previous.get("status") == "published")
        if not (public_now or public_before):
            return Targets(note=f"{kind} is a draft: no public page changed")
        merged = {**previous, **current} if current else previous
        route = routes[kind]
        url_path = _path_of_url(current.get("url"))
        if url_path and not url_path.startswith("/p/"):
            paths.append(url_path)
        for slug in {merged.get("slug"), previous.get("slug")}:
            if isinstance(slug, str) and slug:
                fields = {k: v for k, v in merged.items() if isinstance(v, str)}
                filled = _fill(route, {**fields, "slug": slug})
                if filled:
                    paths.append(filled)
        if kind == "post":
            paths += _collection(routes["home"], settings)
            for slug in dict.fromkeys(_slugs(current.get("tags")) + _slugs(previous.get("tags"))):
                paths += _collection(routes["tag"].format(slug=slug), settings)
            for slug in dict.fromkeys(_slugs(current.get("authors")) + _slugs(previous.get("authors"))):
                paths += _collection(routes["author"].format(slug=slug), settings)
        if settings.sitemaps:
            paths += list(GHOST_SITEMAPS)
        card_changed = kind == "post" and (not previous or not current or bool(GHOST_CARD_FIELDS & set(previous)))
        if card_changed and settings.post_cards:
            bans = (settings.post_cards,)
            return Targets(paths=tuple(dict.fromkeys(p for p in paths if p.startswith("/"))), bans=bans)
    elif kind in ("tag", "author", "user"):
        route = routes["tag" if kind == "tag" else "author"]
        for slug in dict.fromkeys(s for s in (current.get("slug"), previous.get("slug")) if isinstance(s, str) and s):
            paths += _collection(route.format(slug=slug), settings)
        if settings.sitemaps:
            paths += list(GHOST_SITEMAPS)
        if current and previous and {"name", "slug"} & set(previous):
            # a renamed tag or author is printed on the cards of the home page and of every post page
            paths += _collection(routes["home"], settings)
            tag_bans: Tuple[str, ...] = (settings.post_cards,) if settings.post_cards else ()
            return Targets(paths=tuple(dict.fromkeys(p for p in paths if p.startswith("/"))), bans=tag_bans)
    else:
        return Targets(note=f"{kind} events change no public page")
    return Targets(paths=tuple(dict.fromkeys(p for p in paths if p.startswith("/"))))


# --------------------------------------------------------------------------- templates (Strapi, Directus, ...)


@dataclass(frozen=True)
class TemplateEvent:
    """One id-based CMS request, in the shape the templates read."""

    event: str
    model: str
    entries: Tuple[Dict[str, Any], ...]


def parse_template_event(body: Any) -> TemplateEvent:
    """Strapi's native body, a Directus Flow's ``{{$trigger}}``, or a plain ``{"model", "entry"}``.

    Strapi: ``{"event": "entry.update", "model": "article", "uid": ..., "entry": {...}}``.
    Directus: ``{"event": "articles.items.update", "collection": "articles",
    "keys": [...], "payload": {...}}`` (``key`` for create).
    """
    if not isinstance(body, dict):
        raise ValueError("expected a JSON object")
    event = body.get("event")
    event = event if isinstance(event, str) else ""
    model, entry = body.get("model"), body.get("entry")
    if isinstance(model, str) and isinstance(entry, dict):
        return TemplateEvent(event, model, (entry,))
    collection = body.get("collection")
    if isinstance(collection, str):
        payload = body.get("payload")
        payload = payload if isinstance(payload, dict) else {}
        keys = body.get("keys")
        keys = keys if isinstance(keys, list) else []
        if "key" in body and not isinstance(body["key"], (dict, list)):
            keys = [body["key"]]
        entries: Tuple[Dict[str, Any], ...] = tuple({**payload, "id": k} for k in keys) or (payload,)
        return TemplateEvent(event, collection, entries)
    raise ValueError('expected a Strapi body ({"model", "entry"}) or a Directus one ({"collection", "keys"})')


def _values(entry: Dict[str, Any], name: str, extra: Dict[str, Any]) -> List[str]:
    value: Any = extra.get(name, entry) if name in extra else entry
    if name not in extra:
        for part in name.split("."):
            if isinstance(value, dict) and part in value:
                value = value[part]
            else:
                return []
    items = value if isinstance(value, list) else [value]
    out = []
    for item in items:
        if isinstance(item, dict):
            item = item.get("slug", item.get("id"))
        if isinstance(item, bool) or item is None or isinstance(item, (dict, list)):
            continue
        text = str(item)
        if text:
            out.append(text)
    return out


def render(template: str, entry: Dict[str, Any], extra: Dict[str, Any], quote_values: bool = True) -> List[str]:
    """Every filling of ``template``: a list field gives one result per item; a missing field gives none."""
    names = _PLACEHOLDER.findall(template)
    results = [template]
    for name in dict.fromkeys(names):
        values = _values(entry, name, extra)
        if not values:
            return []
        if quote_values:
            values = [quote(v, safe="-_.~") for v in values]
        results = [r.replace("{" + name + "}", v) for r in results for v in values]
    return results


def template_targets(event: TemplateEvent, settings: TemplateSettings) -> Targets:
    """Paths and keys from the model's templates; an unknown model is a ``ValueError`` naming the known ones."""
    spec = settings.models.get(event.model)
    if spec is None:
        raise ValueError(f"model {event.model!r} has no templates for this site "
                         f"(known: {', '.join(sorted(settings.models)) or 'none'})")
    draft_only = event.event.endswith((".create", ".update")) and event.event.startswith("entry.")
    paths: List[str] = []
    keys: List[str] = []
    for entry in event.entries:
        if settings.skip_drafts and draft_only and "publishedAt" in entry and entry["publishedAt"] is None:
            continue
        extra = {"model": event.model, "event": event.event}
        for t in spec.urls:
            paths += render(t, entry, extra)
        for t in spec.keys:
            keys += [_KEY_SAFE.sub("-", k)[:200] for k in render(t, entry, extra, quote_values=False)]
    if not paths and not keys and draft_only:
        return Targets(note="draft only: no public page changed")
    return Targets(paths=tuple(dict.fromkeys(paths)), keys=tuple(dict.fromkeys(keys)))


# --------------------------------------------------------------------------- the PURGE front door


def parents(path: str) -> List[str]:
    """``/blog/2024/hello/`` -> ``/blog/2024/``, ``/blog/``, ``/``."""
    clean = path.split("?", 1)[0]
    parts = [p for p in clean.split("/") if p]
    return ["/" + "/".join(parts[:i]) + ("/" if i else "") for i in range(len(parts) - 1, -1, -1)]


ALSO_RULES = ("parents", "siblings")


def also_refresh(path: str, also: Iterable[str]) -> List[str]:
    """The listings a purged ``path`` also refreshes, by the site's ``purge.also``."""
    out: List[str] = []
    for rule in also:
        if rule == "parents":
            out += parents(path)
        elif rule not in ALSO_RULES:
            out.append(rule)
    return [p for p in dict.fromkeys(out) if p != path]


def siblings_ban(path: str, also: Iterable[str]) -> Optional[str]:
    """With ``"siblings"`` in ``purge.also``: a ban regex for every page beside ``path`` under its parent.

    Tools such as Wagtail purge only a page's new URL when its slug changes
    and send nothing for the old one, which is a sibling of the new one. One
    ban of the parent's direct children (``/blog/x/`` -> ``^/blog/[^/?]+/?([?]|$)``)
    refreshes it, at the price of re-fetching the other pages of that level.
    """
    if "siblings" not in also or not path.split("?", 1)[0].strip("/"):
        return None                     # the home page has no siblings
    parent = (parents(path) or ["/"])[0]
    return "^" + _literal(parent) + "[^/?]+/?([?]|$)"


def _literal(text: str) -> str:
    """``text`` as a regex matching itself, in brackets rather than backslashes (a ban travels unquoted)."""
    return "".join(f"[{c}]" if c in ".$*+?()[{}|" else "\\" + c if c in "^\\]" else c for c in text)


# --------------------------------------------------------------------------- which route a body belongs to


def known_body_route(body: Any) -> Optional[str]:
    """For a body sent to the wrong route: the route and recipe it belongs to, or None."""
    if looks_like_ghost(body):
        return "POST /v1/ghost/<site host> (docs/cms/ghost.md)"
    if isinstance(body, dict) and isinstance(body.get("model"), str) and isinstance(body.get("entry"), dict):
        return "POST /v1/cms/<site host> (docs/cms/strapi.md)"
    if isinstance(body, dict) and isinstance(body.get("collection"), str) and "event" in body:
        return "POST /v1/cms/<site host> (docs/cms/directus.md)"
    return None
