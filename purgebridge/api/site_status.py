"""``POST /v1/sites/status``: what every node did with ONE site's purges, for that site's own plugin.

The WordPress plugin must tell an editor the nodes' truth ("accepted; 2 of 3
nodes purged, node X is down since 10:42 and will be purged when it
returns"), but it holds no admin token: only its site's secret. So this
route is authenticated exactly like an event -- ``X-Purgebridge-Timestamp``
and ``X-Purgebridge-Signature`` (HMAC-SHA256 over ``timestamp.body`` with
the secret of the site the body names) -- and answers only about that site:

* the site's undelivered purges, per node, come from the queue filtered by
  the site's host (``Store.site_deliveries``): nothing of another tenant
  (its URLs, its counts, its errors) is ever in the answer;
* what the nodes themselves are doing (up, down since when, refusing, key
  purges supported) is the relay's, shared by all sites on it, and given as
  is.

The body is ``{"site": "<the site URL or host>"}`` and nothing else, so no
event body (which carries ``changes``) can be replayed here and no status
body can be replayed as an event. The route only reads: its signatures do
not enter the replay cache, so a plugin may ask every few seconds.

Per node, ``state`` is the worst that applies to this site:

==============  ==============================================================
dead_lettered   purges of this site the relay gave up on (``refused`` when the
                node refused them: 403/405, its acl does not let the relay in)
waiting         purges of this site queued because the node is down (since
                ``down_since``); sent when it answers again
sending         purges of this site queued for a retry, or accepted and not
                sent yet, while the node answers
down            nothing of this site waits, but the node does not answer: the
                next purge will wait
unknown         the relay has not sent the node anything since it started
delivered       every purge of this site was confirmed by the node
==============  ==============================================================
"""

import logging
import time
from typing import Any, Optional

from flask import Blueprint, jsonify, request

from purgebridge.api.refusals import Refused, queue_unavailable, refusal_log
from purgebridge.api.routes import service
from purgebridge.api.signed_events import SIGNATURE_HEADER, TIMESTAMP_HEADER, claimed_host
from purgebridge.core import signing
from purgebridge.core.errors import InvalidEvent, SignatureError
from purgebridge.core.events import parse_json

log = logging.getLogger(__name__)

bp = Blueprint("site_status", __name__)

REFUSALS = ("HTTP 403", "HTTP 405")  # how a dead letter's reason starts when the node refused the purge


@bp.errorhandler(Refused)
def _refused(exc: Refused):
    service().metrics.event("site_status", exc.status)
    refusal_log.info("refused %s %s: %d %s", request.method, request.path, exc.status, exc.message)
    body = {"error": exc.message}
    if exc.field:
        body["field"] = exc.field
    return jsonify(body), exc.status


def _checked_site(svc: Any) -> str:
    """The host of the signed body's ``site``: 401 before anything else, then 400, then 403."""
    body = request.get_data(cache=True)  # read (bounded, with its deadline) by the intake
    timestamp = request.headers.get(TIMESTAMP_HEADER, "")
    signature = request.headers.get(SIGNATURE_HEADER, "")
    try:
        signing.check_headers(timestamp, signature)
        data: dict = parse_json(body)
    except SignatureError as exc:
        raise Refused(401, str(exc)) from None
    except InvalidEvent:
        data = {}
    host = claimed_host(data.get("site"))
    try:
        signing.verify(svc.sites.secret_for(host), timestamp, signature, body)
    except SignatureError as exc:
        raise Refused(401, str(exc)) from None
    if not isinstance(data.get("site"), str) or host is None:
        raise Refused(400, "site: required, the site's URL or host", "site")
    extra = sorted(set(data) - {"site"})
    if extra:
        raise Refused(400, f"{extra[0]}: unknown field (the body is {{\"site\": ...}} only)", extra[0])
    if host not in svc.sites:
        raise Refused(403, f"site {data['site']!r} is not a site this relay may purge", "site")
    return host


def node_state(worker: dict, mine: dict, journal_pending: int) -> str:
    """One node's state for one site (module docstring): the worst that applies."""
    if mine.get("dead"):
        refused = worker.get("refusing") or str(mine.get("dead_reason", "")).startswith(REFUSALS)
        return "refused" if refused else "dead_lettered"
    if mine.get("pending"):
        return "waiting" if worker.get("up") is False else "sending"
    if worker.get("up") is False:
        return "down"
    if journal_pending:
        return "sending"
    if worker.get("up") is None:
        return "unknown"
    return "delivered"


def site_report(svc: Any, host: str, now: Optional[float] = None) -> dict:
    """The answer of the route for ``host`` (also what tests compare with the nodes)."""
    now = time.time() if now is None else now
    try:
        mine = svc.queue.site_deliveries(host, now=now)
    except Exception as exc:  # noqa: BLE001 - Redis down, a vanished file: say which queue, never a 500
        raise Refused(503, queue_unavailable(svc, exc)) from None
    snapshot = svc.worker.snapshot() if svc.worker else None
    running = bool(snapshot and snapshot.get("running"))
    workers = {s["node"]: s for s in (snapshot or {}).get("nodes", [])} if running else {}
    nodes = []
    for node in svc.settings.nodes:
        worker = workers.get(node.name, {})
        queued = mine["nodes"].get(node.name, {})
        entry = {
            "node": node.name,
            "state": node_state(worker, queued, mine["journal_pending"]),
            "up": worker.get("up"),
            "down_since": worker.get("down_since"),
            "refusing": bool(worker.get("refusing")),
            "keys": None if worker.get("refusing") else worker.get("keys"),  # a 405 to all says nothing of xkey
            "last_contact": worker.get("last_contact"),
            "pending": queued.get("pending", 0),
            "oldest_pending_age": _round(queued.get("oldest_pending_age")),
            # the row's own error, else -- for a node that does not answer -- why (a connection error, no URL)
            "last_error": queued.get("last_error") or (worker.get("last_error", "") if worker.get("up") is False
                                                       else ""),
            "dead": queued.get("dead", 0),
            "dead_reason": queued.get("dead_reason", ""),
        }
        nodes.append(entry)
    states = [n["state"] for n in nodes]
    from purgebridge import __version__

    return {
        "site": host,
        "checked_at": round(now, 3),
        "relay": {"version": __version__, "worker": running},
        "accepted_not_sent": mine["journal_pending"],
        "nodes": nodes,
        "summary": {"nodes": len(nodes), **{state: states.count(state) for state in
                                            ("delivered", "sending", "waiting", "down", "refused",
                                             "dead_lettered", "unknown")},
                    "dead_letters": sum(n["dead"] for n in nodes), "pending": sum(n["pending"] for n in nodes),
                    "keys_unsupported": sum(1 for n in nodes if n["keys"] is False)},
    }


def _round(value: Optional[float]) -> Optional[float]:
    return None if value is None else round(value, 3)


@bp.post("/v1/sites/status")
def site_status():
    """Signed with the site's secret, like an event; answers about that site only (module docstring)."""
    svc = service()
    host = _checked_site(svc)
    report = site_report(svc, host)
    svc.metrics.event("site_status", 200)
    return jsonify(report)
