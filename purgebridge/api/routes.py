"""The Flask routes of the api process: webhook, admin purge, status, health, readiness, metrics, OpenAPI.

Signed WordPress events are not here: ``signed_events`` answers them on the
event loop. Webhook and admin purges are rare and small: they are mapped
and enqueued directly, and the 202 is only sent after the queue's
transaction committed. The body was read whole, within the size limit, by
``intake.RSGIAdapter``; the checks are cheapest-first: token (401), JSON and
schema (400), sites (403), nodes (503). A refusal is answered by
:func:`refusals.refusal`.
"""

import hmac
import logging
import os
import time

from typing import Any, Callable, Dict, Iterable, List, Optional, Sequence, Tuple

from flask import Blueprint, Response, current_app, jsonify, request
from flask.typing import ResponseReturnValue

from purgebridge.api.accepted import log_accepted
from purgebridge.api.openapi import spec
from purgebridge.api.readiness import Reachability, WorkerReadiness
from purgebridge.api.service import Service
from purgebridge.api.refusals import Refused, allowed_host, configured_nodes, queue_unavailable, refusal, url_host
from purgebridge.core import bounds
from purgebridge.config.sites import normalise_host
from purgebridge.core import invalidation
from purgebridge.core.errors import InvalidEvent, InvalidURL, SignatureError
from purgebridge.core.events import PurgeRequest, parse_json, validate_purge, validate_webhook
from purgebridge.core.invalidation import Invalidation
from purgebridge.core.mapping import map_content
from purgebridge.core.nodes import Node
from purgebridge.delivery import fanout
from purgebridge.delivery.fanout import Outcome
from purgebridge.telemetry.metrics import CONTENT_TYPE

log = logging.getLogger(__name__)

bp = Blueprint("relay", __name__)

REACHABLE_FOR = 60.0  # a node answered within this many seconds counts as reachable for /readyz


def service() -> Service:
    svc: Service = current_app.extensions["purgebridge"]
    return svc


@bp.errorhandler(Refused)
def _refused(exc: Refused) -> Response:
    route = request.endpoint.rsplit(".", 1)[-1] if request.endpoint else (
        "purge_door" if request.method in ("PURGE", "BAN") else "unknown")
    status, headers, body = refusal(service().metrics, route, request.method, request.path, exc,
                                    [("WWW-Authenticate", "Bearer")] if exc.status == 401 else [],
                                    sender=f"{sender_kind(request.headers.get('User-Agent', ''))} from "
                                           f"{request.remote_addr or '-'}")
    return Response(body, status, headers)


def sender_kind(user_agent: str) -> str:
    """The product a request says it comes from (``Ghost``, ``Strapi``, ``Wagtail-frontendcache``...), for logs."""
    token = (user_agent or "").split(" ", 1)[0].split("/", 1)[0]
    return "".join(c for c in token if c.isalnum() or c in "-_.")[:40] or "unknown"


# --- shared checks -------------------------------------------------------------

def _bearer(expected: str, what: str) -> None:
    """Constant-time check of ``Authorization: Bearer <token>`` against a configured token."""
    if not expected:
        raise Refused(401, f"{what} token not configured on this relay")
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Refused(401, f"missing bearer token ({what})")
    if not hmac.compare_digest(token.strip().encode("utf-8"), expected.encode("utf-8")):
        raise Refused(401, f"wrong bearer token ({what})")


def _json() -> Dict[str, Any]:
    try:
        return parse_json(request.get_data(cache=True))
    except InvalidEvent as exc:
        raise Refused(400, str(exc), exc.field) from None


def _url_host(url: str, field: str) -> str:
    return url_host(service(), url, field)


def _site_host(site: str) -> str:
    try:
        return allowed_host(service(), normalise_host(site), f"site {site!r}")
    except InvalidURL as exc:
        raise Refused(400, f"site: {exc.reason}", "site") from None


def _nodes() -> Sequence[Node]:
    return configured_nodes(service())


def _items(urls: Sequence[str], keys: Sequence[str], purge_all: bool, host: Optional[str], soft: bool = False,
           ban: Optional[str] = None) -> List[Invalidation]:
    """Invalidations for mapped URLs/keys. A purge_all makes everything else redundant."""
    settings = service().settings
    if host is None:
        if purge_all or keys or ban:  # the request models require a site for these; never trust that twice
            raise Refused(400, "site: required with keys, ban or purge_all", "site")
        host = ""
    try:
        if purge_all:
            return [invalidation.purge_all_for(host)]
        items = [invalidation.purge_for_url(url, settings.proto_header) for url in urls]
        if keys:
            items.extend(invalidation.keys_for(host, list(keys), soft=soft))
        if ban:
            items.append(invalidation.ban_for(host, ban))
        return items
    except InvalidURL as exc:
        raise Refused(400, str(exc)) from None


def _check_mapped_hosts(urls: Iterable[str]) -> None:
    for url in urls:
        _url_host(url, "mapped URL")


def _enqueue(items: List[Invalidation], source: str, signature: Optional[str] = None, site: str = "",
             route: str = "event") -> ResponseReturnValue:
    svc = service()
    try:
        queued = svc.queue.enqueue([n.name for n in _nodes()], items, source, signature=signature, site=site)
    except SignatureError as exc:  # lost the race with an identical request
        raise Refused(409, str(exc)) from None
    except Exception as exc:  # noqa: BLE001 - the queue is unreachable: nothing was stored
        raise Refused(503, queue_unavailable(svc, exc)) from None
    svc.metrics.event(route, 202)
    log_accepted(source, site, queued.event_id, items=items, nodes=len(svc.settings.nodes))
    return jsonify({"event_id": queued.event_id, "queued": queued.items,
                    "nodes": len(svc.settings.nodes), "merged": queued.merged}), 202


# --- routes --------------------------------------------------------------------------

def _checked_request(validator: Callable[[Dict[str, Any]], PurgeRequest]) -> Tuple[PurgeRequest, Optional[str]]:
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
def webhook() -> ResponseReturnValue:
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
    expansion = len(set(urls)) + len(set(keys))
    if expansion > bounds.MAX_EXPANSION and not purge_all:  # issue 25.3: the site's purge, or a clear 413
        if not svc.settings.webhook_purge_all:
            raise Refused(413, f"this request means {expansion} invalidations per node, over "
                               f"{bounds.MAX_EXPANSION}: split it, or purge the site (purge_all)", "content")
        purge_all = True
    if purge_all and not svc.settings.webhook_purge_all:
        raise Refused(403, "purge_all needs the admin token (POST /v1/purge), or PURGEBRIDGE_WEBHOOK_PURGE_ALL=true",
                      "purge_all")
    _nodes()
    items = _items(list(dict.fromkeys(urls)), list(dict.fromkeys(keys)), purge_all, host, soft=req.soft)
    return _enqueue(items, "webhook", site=host or "", route="webhook")


@bp.post("/v1/purge")
def purge() -> ResponseReturnValue:
    """Admin purge: queued like the rest, or with ``"wait": true`` sent now and answered with the report."""
    svc = service()
    _bearer(svc.settings.admin_token, "admin")
    req, host = _checked_request(validate_purge)
    nodes = _nodes()
    items = _items(req.urls, req.keys, req.purge_all, host, soft=req.soft, ban=req.ban)
    if not req.wait:
        return _enqueue(items, "admin", site=host or "", route="purge")
    return _purge_now(nodes, items, host)


def _purge_now(nodes: Sequence[Node], items: List[Invalidation], host: Optional[str]) -> ResponseReturnValue:
    """Fan out synchronously; anything that failed but may succeed later goes to the queue."""
    svc = service()
    report = fanout.fan_out(list(nodes), items, svc.settings)
    retry: Dict[str, List[Invalidation]] = {}
    for node_report in report.nodes:
        for result in node_report.results:
            if result.outcome is Outcome.FAILED and (result.status is None or fanout.classify(result.status)[1]):
                retry.setdefault(node_report.node.name, []).append(result.item)
            svc.metrics.purged(node_report.node.name, result.outcome.value)
    queued = 0
    for node_name, node_items in retry.items():
        queued += svc.queue.enqueue([node_name], node_items, "admin-retry", site=host or "").rows
    svc.metrics.event("purge", 200 if report.ok else 502)
    log_accepted("admin-wait", host or "", "-", items=items, nodes=len(nodes))
    body = report.to_dict()
    body["queued_for_retry"] = queued
    return jsonify(body), 200 if report.ok else 502


@bp.get("/v1/status")
def status() -> ResponseReturnValue:
    """Nodes (up/down, last error, latency), queue depth, oldest pending age, dead letters, totals."""
    svc = service()
    _bearer(svc.settings.admin_token, "admin")
    try:
        stats = svc.queue.stats()
        dead_letters = svc.queue.dead_letters(limit=20)
    except Exception as exc:  # noqa: BLE001 - Redis down, a vanished file: say which queue, never a 500
        raise Refused(503, queue_unavailable(svc, exc)) from None
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
        "worker_starting": bool(svc.worker and not svc.worker.running and svc.worker.starting),
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
def healthz() -> ResponseReturnValue:
    """The process answers. Says nothing about the queue or the nodes (that is /readyz)."""
    return jsonify({"status": "ok"})


@bp.get("/readyz")
def readyz() -> ResponseReturnValue:
    """Ready when the queue takes writes and at least one node is reachable (checked in the background)."""
    svc = service()
    problems = []
    queue_ok = svc.queue.writable()
    if not queue_ok:
        problems.append("queue not writable")
    reachable = _reachable_nodes(svc)
    if svc.worker is not None and not current_app.extensions.setdefault(
            "purgebridge.api.worker_readiness", WorkerReadiness(svc.worker, svc.started_at)).running():
        problems.append("purge worker process not running (see the relay log)")
    if reachable is None:
        problems.append("node reachability not checked yet")
    elif not reachable:
        problems.append("no node reachable")
    body = {"ready": not problems, "queue_writable": queue_ok, "reachable_nodes": reachable or [],
            "problems": problems}
    return jsonify(body), 200 if not problems else 503


def _reachable_nodes(svc: Service) -> Optional[List[str]]:
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
    probed = checker.reachable(wait=checker.timeout + 0.5)  # waits only for the first round after a start
    if probed is None and not recent:
        return None
    return [node.name for node in svc.settings.nodes if node.name in recent or (probed or {}).get(node.name)]


@bp.get("/metrics")
def metrics() -> ResponseReturnValue:
    return Response(service().metrics.render(), mimetype=CONTENT_TYPE)


@bp.get("/openapi.json")
def openapi() -> ResponseReturnValue:
    return jsonify(spec())


def _version() -> str:
    from purgebridge import __version__

    return __version__
