"""``POST /v1/events/wordpress``: the signed-event route, answered on granian's event loop.

The one module of the signed-event path: its checks, their order, the
journal hand-off and the answers. ``intake.RSGIAdapter`` reads the body (the
one body reader, with its size limit and deadline) and calls
:meth:`SignedEvents.answer` for this path; every other path goes to the Flask
app (``routes``). There is no WSGI way in: in-process tests drive the same
adapter (``purgebridge.api.testing``).

Why not a Flask route: measured with bench/accept_probe.py on this 2-core
machine, granian, three varnishd, 3,000 events over 8 connections, the relay
accepted 1,346 events/s through a route like this and 804/s through a Flask
route doing the same: Flask's per-request machinery (request context, URL
matching, response object, error handlers) cost more than the accept path
itself. Why on the loop rather than a request thread: no thread is held
while the commit is on the disk, and a request costs two thread hand-offs
(loop to journal writer and back) instead of four; a flood of 6,000 events
over 8 connections was accepted at 1,676/s instead of 934/s, and isolated
events got their 202 0.6-0.9 ms sooner (docs/operations.md, "Where an
isolated event's milliseconds go").

The 202 is only sent after the journal's transaction committed: the sender
may forget an event the moment it sees 202. The checks are cheapest-first
and never parse what has not been authenticated: headers and timestamp
(401), one HMAC with the claimed site's secret (401), schema (400), site
(403), nodes (503); the journal's transaction catches replays (409).
"""

import asyncio
from concurrent.futures import Executor
from dataclasses import dataclass
import json
import logging
from typing import Any, Mapping, Optional

from purgebridge.api.refusals import (JSON_HEADER, Answer, Refused, configured_nodes, host_of, queue_unavailable,
                                      refusal, url_host)
from purgebridge.api.service import Service
from purgebridge.core import signing
from purgebridge.core.errors import InvalidEvent, InvalidURL, QueueError, SignatureError
from purgebridge.core.events import parse_json, validate_wordpress_event

log = logging.getLogger(__name__)

PATH = "/v1/events/wordpress"
ROUTE = "wordpress_event"  # the route label of the metrics
TIMESTAMP_HEADER = "X-Purgebridge-Timestamp"
SIGNATURE_HEADER = "X-Purgebridge-Signature"
_TIMESTAMP_FIELD = TIMESTAMP_HEADER.lower()  # header names as RSGI (and HTTP/2) give them
_SIGNATURE_FIELD = SIGNATURE_HEADER.lower()


@dataclass(frozen=True)
class CheckedEvent:
    """A signed event that passed every check short of the journal: what to append and what to answer."""

    host: str        # the site's host: the journal row's site and the mapping's options
    signature: str   # normalised; the journal's replay cache holds it
    changes: int
    nodes: int


def check_wordpress_event(svc: Service, body: bytes, timestamp: str, signature: str) -> CheckedEvent:
    """Every check of a signed event before it is journaled; raises :class:`Refused`, stores nothing.

    The body is decoded before the HMAC only to read which site it claims
    (the decoder is C and the body at most 256 KiB): that picks the one
    secret to check, so a site with its own secret never accepts another
    one, and a request costs one HMAC however many secrets are configured.
    """
    try:
        signing.check_headers(timestamp, signature)
    except SignatureError as exc:
        raise Refused(401, str(exc)) from None
    bad_json: Optional[InvalidEvent] = None
    try:
        data = parse_json(body)
    except InvalidEvent as exc:
        data, bad_json = {}, exc
    try:
        signing.verify(svc.sites.secret_for(_claimed_host(data.get("site"))), timestamp, signature, body)
    except SignatureError as exc:
        raise Refused(401, str(exc)) from None
    try:
        if bad_json is not None:
            raise bad_json
        validate_wordpress_event(data)
    except InvalidEvent as exc:
        raise Refused(400, str(exc), exc.field) from None
    host = url_host(svc, data["site"], "site")
    return CheckedEvent(host, signature.strip().lower(), len(data["changes"]), len(configured_nodes(svc)))


def _claimed_host(site: object) -> Optional[str]:
    """The host of an event's ``site`` for choosing its secret; None when it has none (then 401 or 400)."""
    try:
        return host_of(site) if isinstance(site, str) else None
    except InvalidURL:
        return None


def journal_refusal(svc: Service, exc: BaseException) -> Refused:
    """The answer when journaling a checked event failed: 409 for a replay, else 503 (the sender retries)."""
    if isinstance(exc, SignatureError):  # seen before, or sent twice at once: only one of them is stored
        return Refused(409, str(exc))
    if isinstance(exc, QueueError):
        return Refused(503, str(exc))
    return Refused(503, queue_unavailable(svc, exc))  # Redis down, a vanished file: never a 500


def accepted_body(event_id: str, changes: int, nodes: int) -> bytes:
    """The 202 body (docs/events.md): ``queued`` counts the changes accepted, mapped later."""
    return json.dumps({"event_id": event_id, "queued": changes, "nodes": nodes}).encode("utf-8")


class SignedEvents:
    """The signed-event route of one app's :class:`~purgebridge.api.service.Service`."""

    PATH = PATH

    def __init__(self, service: Service) -> None:
        self.service = service

    async def answer(self, method: str, body: bytes, headers: Mapping[str, str], pool: Optional[Executor]) -> Answer:
        """The answer to ``method`` :data:`PATH` with the whole ``body`` (read within the size limit by the caller).

        ``headers`` by lower-case name; ``pool`` runs a journal without a
        group commit (Redis). The checks run here (about 0.1 ms of C and a
        little Python); the journal's writer thread settles the entry and
        wakes this coroutine. A journal that cannot take the event within
        its ``append_wait`` is answered 503.
        """
        if method != "POST":
            payload = json.dumps({"error": "The method is not allowed for the requested URL.", "status": 405})
            return 405, [JSON_HEADER, ("Allow", "POST")], payload.encode("utf-8")
        svc = self.service
        try:
            event = check_wordpress_event(svc, body, headers.get(_TIMESTAMP_FIELD, ""), headers.get(_SIGNATURE_FIELD, ""))
            try:
                event_id = await self._journal(event, body, pool)
            except Exception as exc:  # noqa: BLE001 - every failure of the journal is a 409 or a 503
                raise journal_refusal(svc, exc) from None
        except Refused as exc:
            return refusal(svc.metrics, ROUTE, method, PATH, exc)
        svc.metrics.event(ROUTE, 202)
        log.debug("accepted wordpress event %s from %s: %d change(s)", event_id, event.host, event.changes)
        return 202, [JSON_HEADER], accepted_body(event_id, event.changes, event.nodes)

    async def _journal(self, event: CheckedEvent, body: bytes, pool: Optional[Executor]) -> str:
        queue: Any = self.service.queue  # the group commit (submit_append, append_wait) is SQLite's, not the contract's
        submit = getattr(queue, "submit_append", None)  # SQLite: the group commit; Redis appends in one round trip
        loop = asyncio.get_running_loop()
        if submit is None:
            event_id: str = await loop.run_in_executor(pool, queue.append, "wordpress", event.host, body,
                                                       event.signature)
            return event_id
        settled: "asyncio.Future[Any]" = loop.create_future()

        def wake(job: Any) -> None:  # the writer thread; one per event, a group wakes the loop once per event
            loop.call_soon_threadsafe(_settle, settled, job)

        job = submit("wordpress", event.host, body, event.signature, wake)
        timer = loop.call_later(queue.append_wait, _withdraw, queue, job, settled)
        try:
            await settled
        finally:
            timer.cancel()
        if job.error is not None:
            raise job.error
        return str(job.entry.event_id)


def _settle(settled: "asyncio.Future[Any]", job: Any) -> None:
    if not settled.done():
        settled.set_result(job)


def _withdraw(queue: Any, job: Any, settled: "asyncio.Future[Any]") -> None:
    """``append_wait`` passed: a request still waiting for a transaction is answered 503 (nothing of it is stored)."""
    if queue.withdraw_append(job):
        _settle(settled, job)
