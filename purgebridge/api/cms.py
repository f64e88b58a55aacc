"""Routes for other CMSes' own requests: Ghost's webhooks, id-based CMSes by templates, and PURGE/BAN.

* ``POST /v1/ghost/<site>`` -- a Ghost custom integration's webhook, as Ghost
  sends it, signed with the site's ``cms.ghost.secret`` (``X-Ghost-Signature``).
* ``POST /v1/cms/<site>`` -- Strapi's webhook body (``Authorization: Bearer``
  with the site's ``cms.templates.token``), or a Directus Flow's ``$trigger``;
  mapped by the site's templates.
* ``PURGE``/``BAN`` on any path -- the front door for tools that only know how
  to purge one Varnish (Wagtail, Proxy Cache Purge, Drupal purgers): from an
  address in ``PURGEBRIDGE_PURGE_ALLOW``, for a listed site (the ``Host``),
  queued durably and fanned out to every node; answered as Varnish does
  (``200 Purged`` / ``200 Ban added``).

Each is checked cheapest-first like the other routes: size (413), the
sender's credentials (401/403), the body (400), then queued (202). The
mapping itself is in ``core.cms``. Recipes: docs/cms/.
"""

import ipaddress
import re
import threading
import time

from flask import Response, jsonify, request

from purgebridge.api.refusals import Refused
from purgebridge.api.routes import _bearer, _enqueue, _json, _nodes, _refused, bp, service
from purgebridge.config.sites import normalise_host
from purgebridge.core import cms
from purgebridge.core.errors import InvalidURL
from purgebridge.core.invalidation import ban_for, keys_for, purge_all_for, purge_for_url

def _body():
    """The raw body; its size limit and read deadline are the intake's (``api.intake``), before any route."""
    return request.get_data(cache=True)


_recent_lock = threading.Lock()
_recent_content: dict = {}  # host -> monotonic time of the last Ghost content event (site.changed echo detection)
_KEYS_SPLIT = re.compile(r"[\s,]+")


def _site(site_text):
    try:
        host = normalise_host(site_text)
    except InvalidURL as exc:
        raise Refused(400, f"site in the path: {exc.reason}") from None
    site = service().sites.get(host)
    if site is None:
        raise Refused(403, f"site {host!r} is not a site this relay may purge")
    return host, site


def _url_items(host, paths, scheme):
    settings = service().settings
    try:
        return [purge_for_url(f"{scheme}://{host}{path}", settings.proto_header) for path in paths]
    except InvalidURL as exc:
        raise Refused(400, f"mapped URL: {exc}") from None


def _nothing(note):
    service().metrics.event(request.endpoint.rsplit(".", 1)[-1], 200)
    return jsonify({"queued": 0, "note": note}), 200


# --- Ghost -------------------------------------------------------------------------


@bp.post("/v1/ghost/<site>")
def ghost_webhook(site):
    """A Ghost custom integration's webhook (docs/cms/ghost.md)."""
    body = _body()
    host, entry = _site(site)
    ghost = entry.cms.ghost
    if ghost is None:
        raise Refused(401, f"no Ghost webhook secret for {host} (cms.ghost in the sites file)")
    try:
        cms.verify_ghost(ghost.secret, request.headers.get("X-Ghost-Signature"), body, window=ghost.replay_window)
    except cms.GhostSignatureError as exc:
        raise Refused(401, str(exc)) from None
    data = _json()
    kind = cms.ghost_kind(data)
    if kind is None:
        hint = cms.known_body_route(data)
        raise Refused(400, "not a Ghost webhook body" + (f": send it to {hint}" if hint else ""))
    _nodes()
    now = time.monotonic()
    if kind == "site":
        with _recent_lock:
            last = _recent_content.get(host)
        if ghost.site_changed == "ignore":
            return _nothing("site.changed ignored (cms.ghost.site_changed = ignore)")
        if last is not None and now - last <= ghost.site_changed_window:
            return _nothing("site.changed after a content event: that event's purge covers it")
        return _enqueue([purge_all_for(host)], "ghost", site=host, route="ghost_webhook")
    try:
        targets = cms.ghost_targets(data, ghost)
    except ValueError as exc:
        raise Refused(400, str(exc)) from None
    with _recent_lock:
        _recent_content[host] = now
    if targets.empty:
        return _nothing(targets.note)
    current = (data.get(kind) or {}).get("current") or (data.get(kind) or {}).get("previous") or {}
    url = current.get("url") if isinstance(current, dict) else None
    scheme = "https" if isinstance(url, str) and url.startswith("https://") else entry.cms.purge.scheme
    items = _url_items(host, targets.paths, scheme)
    try:
        items += [ban_for(host, regex) for regex in targets.bans]
    except InvalidURL as exc:
        raise Refused(400, f"cms.ghost.post_cards: {exc}") from None
    return _enqueue(items, "ghost", site=host, route="ghost_webhook")


# --- id-based CMSes by templates (Strapi, Directus, ...) -------------------------------


@bp.post("/v1/cms/<site>")
def cms_webhook(site):
    """Strapi's own webhook body, or a Directus Flow's trigger, mapped by the site's templates."""
    _body()
    host, entry = _site(site)
    templates = entry.cms.templates
    if templates is None:
        raise Refused(401, f"no templates token for {host} (cms.templates in the sites file)")
    _bearer(templates.token, f"cms templates of {host}")
    data = _json()
    if cms.looks_like_ghost(data):
        raise Refused(400, f"this is Ghost's webhook body: send it to {cms.known_body_route(data)}")
    try:
        event = cms.parse_template_event(data)
        targets = cms.template_targets(event, templates)
    except ValueError as exc:
        raise Refused(400, str(exc)) from None
    if targets.empty:
        return _nothing(targets.note or "nothing to purge")
    _nodes()
    items = _url_items(host, targets.paths, entry.cms.purge.scheme)
    if targets.keys:
        try:
            items += keys_for(host, list(targets.keys))
        except InvalidURL as exc:
            raise Refused(400, f"mapped key: {exc}") from None
    return _enqueue(items, "cms", site=host, route="cms_webhook")


# --- the PURGE front door --------------------------------------------------------------


def _allowed(address, allow):
    try:
        ip = ipaddress.ip_address((address or "").split("%", 1)[0])
    except ValueError:
        return False
    for entry in allow:
        try:
            if ip in ipaddress.ip_network(entry.strip(), strict=False):
                return True
        except ValueError:
            continue
    return False


def _varnish_answer(status, reason):
    """What Varnish's own synth answer looks like, so purge clients read it as they read a node's."""
    text = (f'<!DOCTYPE html>\n<html>\n  <head>\n    <title>{status} {reason}</title>\n  </head>\n  <body>\n'
            f'    <h1>Error {status} {reason}</h1>\n    <p>{reason}</p>\n  </body>\n</html>\n')
    return Response(text, status=f"{status} {reason}", mimetype="text/html")


@bp.before_app_request
def _purge_methods():
    """PURGE and BAN on any path go to the front door before routing (no URL rule: GET /nope stays a 404)."""
    if request.method not in ("PURGE", "BAN"):
        return None
    try:
        return purge_door()
    except Refused as exc:
        return _refused(exc)


def purge_door():
    """PURGE (a path, or xkey-purge keys) and BAN from an allowed sender, fanned out to every node."""
    svc = service()
    allow = svc.settings.purge_allow
    if not allow:
        raise Refused(403, "the PURGE front door is closed: set PURGEBRIDGE_PURGE_ALLOW to the senders' addresses")
    if not _allowed(request.remote_addr, allow):
        raise Refused(403, f"{request.method} from {request.remote_addr} not allowed (not in PURGEBRIDGE_PURGE_ALLOW)")
    _body()
    try:
        host = normalise_host(request.headers.get("Host", ""))
    except InvalidURL as exc:
        raise Refused(400, f"Host: {exc.reason}") from None
    entry = svc.sites.get(host)
    if entry is None:
        raise Refused(403, f"Host {host!r} is not a site this relay may purge")
    _nodes()
    target = request.full_path if request.query_string else request.path
    door = entry.cms.purge
    if request.method == "BAN":
        regex = request.headers.get("X-Ban-Url") or "^" + re.escape(request.path)
        try:
            items = [ban_for(host, regex)]
        except InvalidURL as exc:
            raise Refused(400, f"X-Ban-Url: {exc}") from None
        _enqueue(items, "purge-door", site=host, route="purge_door")
        return _varnish_answer(200, "Ban added")
    soft = bool(request.headers.get("xkey-softpurge"))
    key_text = request.headers.get("xkey-purge") or request.headers.get("xkey-softpurge") or request.headers.get("xkey")
    if key_text:
        keys = [k for k in _KEYS_SPLIT.split(key_text) if k]
        try:
            items = keys_for(host, keys, soft=soft)
        except InvalidURL as exc:
            raise Refused(400, f"xkey: {exc}") from None
    else:
        items = _url_items(host, [target] + cms.also_refresh(request.path, door.also), door.scheme)
        siblings = cms.siblings_ban(request.path, door.also)
        if siblings:
            try:
                items.append(ban_for(host, siblings))
            except InvalidURL as exc:   # a path too long to ban its level within MAX_BAN_LENGTH
                raise Refused(400, f"cms.purge.also siblings: {exc.reason}") from None
    _enqueue(items, "purge-door", site=host, route="purge_door")
    return _varnish_answer(200, "Purged")
