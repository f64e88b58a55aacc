"""HTTP routes of the relay. Validation lives in ``validation``, storage in ``queue``.

Every refusal happens before the queue is touched, and the 202 is only sent
after the queue's transaction committed: the caller may forget an event the
moment it sees 202. The order of checks is cheapest-first and never parses
what has not been authenticated: size (413), signature or token (401),
JSON and schema (400), sites (403), replay (409).

Signed WordPress events take the fast path: once validated, the raw event is
appended to the queue's journal, whose writer shares one commit among all
requests waiting at that moment (and checks the signature against the replay
cache in that same transaction); mapping to URLs and the per-node delivery
rows happen in the worker's expander (``journal``). Webhook and admin purges
are rare and small: they are mapped and enqueued directly.

Secrets, tokens and bodies are never logged; refusals are logged with the
route, status and reason only.
"""

from dataclasses import dataclass
import functools
import hmac
import json
import logging
import os
import threading
import time

from flask import Blueprint, Response, current_app, jsonify, request

from purgebridge.delivery import fanout

from purgebridge.core import signing
from purgebridge.config.settings import redact_location
from purgebridge.core.errors import InvalidEvent, InvalidURL, SignatureError
from purgebridge.delivery.fanout import Outcome
from purgebridge.store.journal import JournalError
from purgebridge.core.mapping import map_content
from purgebridge.telemetry.metrics import CONTENT_TYPE
from purgebridge.api.openapi import spec
from purgebridge.api.readiness import Reachability
from purgebridge.config.sites import normalise_host
from purgebridge.core.urls import site_of
from purgebridge.core.events import parse_json, validate_purge, validate_webhook, validate_wordpress_event

log = logging.getLogger(__name__)

bp = Blueprint("relay", __name__)

TIMESTAMP_HEADER = "X-Purgebridge-Timestamp"
SIGNATURE_HEADER = "X-Purgebridge-Signature"
REACHABLE_FOR = 60.0  # a node answered within this many seconds counts as reachable for /readyz


class Refused(Exception):
    """Raised inside a route to answer with ``status`` and queue nothing."""

    def __init__(self, status, message, field=None):
        super().__init__(message)
        self.status = status
        self.message = message
        self.field = field


def service():
    return current_app.extensions["purgebridge"]


class RateLimitedLog:
    """At most ``per_second`` log lines a second on average (bursts up to ``burst``), then one summary.

    Refusals are logged so an operator sees why a sender fails, but a flood
    of bad requests (33,000 lines in 30 s before) must not fill the disk or
    drown the log: past the budget, lines are counted and the next line that
    fits says how many were left out. The metrics still count every refusal.
    """

    def __init__(self, logger: logging.Logger, per_second: float = 5.0, burst: int = 20,
                 clock=time.monotonic) -> None:
        self.logger, self.per_second, self.burst, self.clock = logger, per_second, burst, clock
        self.tokens, self.stamp, self.dropped = float(burst), clock(), 0
        self.lock = threading.Lock()

    def info(self, message: str, *args) -> None:
        with self.lock:
            now = self.clock()
            self.tokens = min(self.burst, self.tokens + (now - self.stamp) * self.per_second)
            self.stamp = now
            if self.tokens < 1:
                self.dropped += 1
                return
            self.tokens -= 1
            dropped, self.dropped = self.dropped, 0
        if dropped:
            self.logger.info(message + " (and %d more refusal(s) not logged)", *args, dropped)
        else:
            self.logger.info(message, *args)


refusal_log = RateLimitedLog(log)


@bp.errorhandler(Refused)
def _refused(exc):
    route = request.endpoint.rsplit(".", 1)[-1] if request.endpoint else (
        "purge_door" if request.method in ("PURGE", "BAN") else "unknown")
    service().metrics.event(route, exc.status)
    refusal_log.info("refused %s %s (route %s, sender %s from %s): %d %s", request.method, request.path, route,
                     sender_kind(request.headers.get("User-Agent", "")), request.remote_addr or "-",
                     exc.status, exc.message)
    body = {"error": exc.message}
    if exc.field:
        body["field"] = exc.field
    headers = {"WWW-Authenticate": "Bearer"} if exc.status == 401 and route != "wordpress_event" else {}
    return jsonify(body), exc.status, headers


def sender_kind(user_agent):
    """The product a request says it comes from (``Ghost``, ``Strapi``, ``Wagtail-frontendcache``...), for logs."""
    token = (user_agent or "").split(" ", 1)[0].split("/", 1)[0]
    return "".join(c for c in token if c.isalnum() or c in "-_.")[:40] or "unknown"


# --- shared checks -------------------------------------------------------------

def _body():
    """The raw body, refusing more than 256 KiB: by Content-Length before reading, else by what was read (413)."""
    limit = current_app.config["PURGEBRIDGE_MAX_BODY"]
    if request.content_length is not None and request.content_length > limit:
        raise Refused(413, f"body over {limit // 1024} KiB")
    try:
        data = request.get_data(cache=True)
    except Exception as exc:  # werkzeug's RequestEntityTooLarge when a chunked body runs past the limit
        if getattr(exc, "code", None) == 413:
            raise Refused(413, f"body over {limit // 1024} KiB") from None
        raise
    if len(data) > limit:
        raise Refused(413, f"body over {limit // 1024} KiB")
    return data


def _bearer(expected, what):
    """Constant-time check of ``Authorization: Bearer <token>`` against a configured token."""
    if not expected:
        raise Refused(401, f"{what} token not configured on this relay")
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Refused(401, f"missing bearer token ({what})")
    if not hmac.compare_digest(token.strip().encode("utf-8"), expected.encode("utf-8")):
        raise Refused(401, f"wrong bearer token ({what})")


def _json():
    try:
        return parse_json(_body())
    except InvalidEvent as exc:
        raise Refused(400, str(exc), exc.field) from None


def _allowed_host(host, what, svc=None):
    if host not in (svc or service()).sites:
        raise Refused(403, f"{what} is not a site this relay may purge")
    return host


@functools.lru_cache(maxsize=8192)
def _host_of(url):
    """site_of, cached: the same front-page and archive URLs come with nearly every event."""
    return site_of(url)


def _url_host(url, field, svc=None):
    try:
        return _allowed_host(_host_of(url), f"host of {url!r} ({field})", svc)
    except InvalidURL as exc:
        raise Refused(400, f"{field}: invalid URL: {exc.reason}", field) from None


def _claimed_host(site):
    """The host of an event's ``site`` for choosing its secret; None when it has none (then 401 or 400)."""
    try:
        return _host_of(site) if isinstance(site, str) else None
    except InvalidURL:
        return None


def _site_host(site):
    try:
        return _allowed_host(normalise_host(site), f"site {site!r}")
    except InvalidURL as exc:
        raise Refused(400, f"site: {exc.reason}", "site") from None


def _nodes(svc=None):
    nodes = (svc or service()).settings.nodes
    if not nodes:
        raise Refused(503, "no Varnish nodes configured")
    return nodes


def _items(urls, keys, purge_all, host, soft=False, ban=None):
    """Invalidations for mapped URLs/keys. A purge_all makes everything else redundant."""
    settings = service().settings
    try:
        if purge_all:
            return [fanout.purge_all_for(host)]
        items = [fanout.purge_for_url(url, settings.proto_header) for url in urls]
        if keys:
            items.extend(fanout.keys_for(host, list(keys), soft=soft))
        if ban:
            items.append(fanout.ban_for(host, ban))
        return items
    except InvalidURL as exc:
        raise Refused(400, str(exc)) from None


def _check_mapped_hosts(urls):
    for url in urls:
        _url_host(url, "mapped URL")


def _enqueue(items, source, signature=None, site="", route="event"):
    svc = service()
    try:
        queued = svc.queue.enqueue([n.name for n in _nodes()], items, source, signature=signature, site=site)
    except SignatureError as exc:  # lost the race with an identical request
        raise Refused(409, str(exc)) from None
    except Exception as exc:  # noqa: BLE001 - the queue is unreachable: nothing was stored
        raise Refused(503, _queue_unavailable(svc, exc)) from None
    svc.metrics.event(route, 202)
    log.info("accepted %s event %s from %s: %d item(s) x %d node(s), %d merged",
             source, queued.event_id, site or "-", queued.items, len(svc.settings.nodes), queued.merged)
    return jsonify({"event_id": queued.event_id, "queued": queued.items,
                    "nodes": len(svc.settings.nodes), "merged": queued.merged}), 202


# --- routes --------------------------------------------------------------------------

@dataclass(frozen=True)
class CheckedEvent:
    """A signed event that passed every check short of the journal: what to append and what to answer."""

    host: str        # the site's host: the journal row's site and the mapping's options
    signature: str   # normalised; the journal's replay cache holds it
    changes: int
    nodes: int


def check_wordpress_event(svc, body, timestamp, signature) -> CheckedEvent:
    """Every check of a signed event before it is journaled; raises :class:`Refused`, stores nothing.

    Checks in order -- headers and timestamp (401), the secret of the site
    the body claims and one HMAC with it (401), schema (400), site (403),
    nodes (503). The journal's transaction then catches replays (409).

    The body is decoded before the HMAC only to read which site it claims
    (the decoder is C and the body at most 256 KiB): that picks the one
    secret to check, so a site with its own secret never accepts another
    one, and a request costs one HMAC however many secrets are configured.
    """
    try:
        signing.check_headers(timestamp, signature)
    except SignatureError as exc:
        raise Refused(401, str(exc)) from None
    try:
        data, bad_json = parse_json(body), None
    except InvalidEvent as exc:
        data, bad_json = {}, exc
    host = _claimed_host(data.get("site"))
    try:
        signing.verify(svc.sites.secret_for(host), timestamp, signature, body)
    except SignatureError as exc:
        raise Refused(401, str(exc)) from None
    try:
        if bad_json is not None:
            raise bad_json
        validate_wordpress_event(data)
    except InvalidEvent as exc:
        raise Refused(400, str(exc), exc.field) from None
    host = _url_host(data["site"], "site", svc)
    return CheckedEvent(host, signature.strip().lower(), len(data["changes"]), len(_nodes(svc)))


def journal_refusal(svc, exc: BaseException) -> Refused:
    """The answer when journaling a checked event failed: 409 for a replay, else 503 (the sender retries)."""
    if isinstance(exc, SignatureError):  # seen before, or sent twice at once: only one of them is stored
        return Refused(409, str(exc))
    if isinstance(exc, JournalError):
        return Refused(503, str(exc))
    return Refused(503, _queue_unavailable(svc, exc))  # Redis down, a vanished file: never a 500


def event_accepted(svc, event: CheckedEvent, event_id: str) -> bytes:
    """Count a journaled event and return its 202 body."""
    svc.metrics.event("wordpress_event", 202)
    log.debug("accepted wordpress event %s from %s: %d change(s)", event_id, event.host, event.changes)
    return accepted_body(event_id, event.changes, event.nodes)


def accept_wordpress_event(svc, body, timestamp, signature) -> bytes:
    """The accept path of a signed event, blocking until it is journaled; returns the 202 body.

    :func:`check_wordpress_event`, then the journal, which answers only once
    the event is on disk. Raises :class:`Refused`; nothing is stored on any
    refusal. ``fastpath`` serves it as plain WSGI, and without a thread as
    RSGI (``EventFastPath.answer``).
    """
    event = check_wordpress_event(svc, body, timestamp, signature)
    try:
        event_id = svc.queue.append("wordpress", event.host, body, event.signature)
    except Exception as exc:  # noqa: BLE001 - every failure of the journal is a 409 or a 503
        raise journal_refusal(svc, exc) from None
    return event_accepted(svc, event, event_id)


def accepted_body(event_id, changes, nodes):
    """The 202 body (docs/events.md): ``queued`` counts the changes accepted, mapped later."""
    return json.dumps({"event_id": event_id, "queued": changes, "nodes": nodes}).encode("utf-8")


def _checked_request(validator):
    """Schema-check the JSON body, then refuse (403) a site or URL on a host this relay may not purge."""
    try:
        req = validator(_json())
    except InvalidEvent as exc:
        raise Refused(400, str(exc), exc.field) from None
    host = _site_host(req.site) if req.site else None
    for index, url in enumerate(req.urls):
        _url_host(url, f"urls[{index}]")
    return req, host


@bp.post("/v1/webhook")
def webhook():
    """URLs, keys or a content object from any CMS, with the webhook bearer token (docs/webhook.md)."""
    svc = service()
    _bearer(svc.settings.webhook_token, "webhook")
    from purgebridge.core.cms import known_body_route

    right_route = known_body_route(_json())
    if right_route:
        raise Refused(400, f"this is another CMS's own webhook body, which /v1/webhook does not read: "
                           f"send it to {right_route}")
    req, host = _checked_request(validate_webhook)
    urls, keys, purge_all = list(req.urls), list(req.keys), req.purge_all
    if req.content:
        content_urls = [req.content.get("url"), req.content.get("old_url")] + list(req.content.get("collections") or [])
        content_hosts = [_url_host(u, "content") for u in content_urls if u]
        content_host = content_hosts[0] if content_hosts else host
        if content_host is None:
            raise Refused(400, "site: required when content has only keys", "site")
        try:
            mapped = map_content(req.content, svc.mapping_options(content_host))
        except InvalidEvent as exc:
            raise Refused(400, f"content.{exc.field}: {exc.message}", f"content.{exc.field}") from None
        _check_mapped_hosts(mapped.urls)
        urls.extend(mapped.urls)
        if mapped.keys:
            if host is None:
                host = content_host
            keys.extend(mapped.keys)
        purge_all = purge_all or mapped.purge_all
        host = host or content_host
    if purge_all and not svc.settings.webhook_purge_all:
        raise Refused(403, "purge_all needs the admin token (POST /v1/purge), or PURGEBRIDGE_WEBHOOK_PURGE_ALL=true",
                      "purge_all")
    _nodes()
    items = _items(list(dict.fromkeys(urls)), list(dict.fromkeys(keys)), purge_all, host, soft=req.soft)
    return _enqueue(items, "webhook", site=host or "", route="webhook")


@bp.post("/v1/purge")
def purge():
    """Admin purge: queued like the rest, or with ``"wait": true`` sent now and answered with the report."""
    svc = service()
    _bearer(svc.settings.admin_token, "admin")
    req, host = _checked_request(validate_purge)
    nodes = _nodes()
    items = _items(req.urls, req.keys, req.purge_all, host, soft=req.soft, ban=req.ban)
    if not req.wait:
        return _enqueue(items, "admin", site=host or "", route="purge")
    return _purge_now(nodes, items, host)


def _purge_now(nodes, items, host):
    """Fan out synchronously; anything that failed but may succeed later goes to the queue."""
    svc = service()
    report = fanout.fan_out(list(nodes), items, svc.settings)
    retry = {}
    for node_report in report.nodes:
        for result in node_report.results:
            if result.outcome is Outcome.FAILED and (result.status is None or fanout.classify(result.status)[1]):
                retry.setdefault(node_report.node.name, []).append(result.item)
            svc.metrics.purged(node_report.node.name, result.outcome.value)
    queued = 0
    for node_name, node_items in retry.items():
        queued += svc.queue.enqueue([node_name], node_items, "admin-retry", site=host or "").rows
    svc.metrics.event("purge", 200 if report.ok else 502)
    body = report.to_dict()
    body["queued_for_retry"] = queued
    return jsonify(body), 200 if report.ok else 502


@bp.get("/v1/status")
def status():
    """Nodes (up/down, last error, latency), queue depth, oldest pending age, dead letters, totals."""
    svc = service()
    _bearer(svc.settings.admin_token, "admin")
    try:
        stats = svc.queue.stats()
        dead_letters = svc.queue.dead_letters(limit=20)
    except Exception as exc:  # noqa: BLE001 - Redis down, a vanished file: say which queue, never a 500
        raise Refused(503, _queue_unavailable(svc, exc)) from None
    worker_states = {s["node"]: s for s in svc.worker.node_status()} if svc.worker else {}
    nodes = []
    for node in svc.settings.nodes:
        entry = {"node": node.name, "up": None, "last_contact": None, "latency_ms": None,
                 "last_error": "", "last_error_at": None}
        entry.update(worker_states.get(node.name, {}))
        queue_entry = stats["nodes"].get(node.name, {})
        entry.update({"pending": queue_entry.get("pending", 0), "in_flight": queue_entry.get("in_flight", 0),
                      "dead": queue_entry.get("dead", 0),
                      "oldest_pending_age": queue_entry.get("oldest_pending_age")})
        nodes.append(entry)
    return jsonify({
        "version": _version(),
        "uptime": round(time.time() - svc.started_at, 1),
        "worker": bool(svc.worker and svc.worker.running),
        "processes": {"api": os.getpid(), "worker": svc.worker.pid if svc.worker else None},
        "sites": svc.sites.hosts,
        "queue_writable": svc.queue.writable(),  # a real write: a full disk shows here and in /readyz
        "nodes": nodes,
        "queue": {k: stats[k] for k in ("depth", "journal_pending", "pending", "in_flight", "dead",
                                        "oldest_pending_age")},
        "dead_letters": dead_letters,
        "totals": stats["totals"],
    })


@bp.get("/healthz")
def healthz():
    """The process answers. Says nothing about the queue or the nodes (that is /readyz)."""
    return jsonify({"status": "ok"})


@bp.get("/readyz")
def readyz():
    """Ready when the queue takes writes and at least one node is reachable (checked in the background)."""
    svc = service()
    problems = []
    queue_ok = svc.queue.writable()
    if not queue_ok:
        problems.append("queue not writable")
    reachable = _reachable_nodes(svc)
    if reachable is None:
        problems.append("node reachability not checked yet")
    elif not reachable:
        problems.append("no node reachable")
    body = {"ready": not problems, "queue_writable": queue_ok, "reachable_nodes": reachable or [],
            "problems": problems}
    return jsonify(body), 200 if not problems else 503


def _reachable_nodes(svc):
    """Nodes the worker talked to lately, plus those the background check reached; None before any check.

    Nothing here waits for the network: a request thread must not be held by
    a node that does not answer (``readiness``).
    """
    now = time.time()
    states = {s["node"]: s for s in svc.worker.node_status()} if svc.worker else {}
    recent = {node.name for node in svc.settings.nodes
              if (state := states.get(node.name)) and state["up"] and state["last_contact"]
              and now - state["last_contact"] < REACHABLE_FOR}
    if len(recent) == len(svc.settings.nodes):
        return [node.name for node in svc.settings.nodes]
    checker = current_app.extensions.setdefault("purgebridge.api.readiness", Reachability(
        svc.settings.nodes, timeout=min(1.0, svc.settings.timeout)))
    probed = checker.reachable()
    if probed is None and not recent:
        return None
    return [node.name for node in svc.settings.nodes if node.name in recent or (probed or {}).get(node.name)]


@bp.get("/metrics")
def metrics():
    return Response(service().metrics.render(), mimetype=CONTENT_TYPE)


@bp.get("/openapi.json")
def openapi():
    return jsonify(spec())


def _queue_unavailable(svc, exc):
    return f"queue unreachable (PURGEBRIDGE_QUEUE={redact_location(svc.settings.queue)}): {type(exc).__name__}: {exc}"


def _version():
    from purgebridge import __version__

    return __version__
