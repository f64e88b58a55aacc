"""``POST /v1/events/wordpress``, the signed-event route, in front of the Flask app: as RSGI and as WSGI.

The one entry for signed events (there is no Flask route for them). Why not
Flask: measured with bench/accept_probe.py on this 2-core machine, granian,
three varnishd, 3,000 events over 8 connections, the relay accepted 1,346
events/s through this middleware and 804/s through a Flask route doing the
same (the worker in its own process in both): Flask's per-request machinery
(request context, URL matching, response object, error handlers) costs more
than everything the accept path itself does. The checks and their order
live in :func:`routes.check_wordpress_event`; refusals have the JSON body,
metric and log line of the Flask routes' refusals. Every other path goes to
the Flask app.

Two ways in, the same checks and answers:

* :meth:`EventFastPath.answer` (``purgebridge serve``, called by
  ``rsgi.RSGIAdapter`` on granian's event loop): checks the event on the
  loop and awaits the journal's commit there. No thread is held while the
  commit is on the disk, and a request costs two thread hand-offs (loop to
  journal writer and back) instead of four (loop, request thread, writer,
  request thread, loop). Measured back to back on this machine against the
  request-thread version: a flood of 6,000 events over 8 connections was
  accepted at 1,676/s instead of 934/s (1,409 instead of 1,047 in a second
  pair), and isolated events got their 202 0.6-0.9 ms sooner (p50 3.0-3.5
  ms instead of 3.8-4.4; docs/operations.md, "Where an isolated event's
  milliseconds go").
* ``__call__`` (WSGI: the Flask test client, any WSGI server): the same
  checks, blocking on the journal.
"""

import asyncio
import json
import logging
from typing import List, Mapping, Tuple

from purgebridge.api.routes import (SIGNATURE_HEADER, TIMESTAMP_HEADER, Refused, accept_wordpress_event,
                                check_wordpress_event, event_accepted, journal_refusal, refusal_log)

log = logging.getLogger("purgebridge.api.routes")

PATH = "/v1/events/wordpress"
_REASONS = {202: "Accepted", 400: "Bad Request", 401: "Unauthorized", 403: "Forbidden", 405: "Method Not Allowed",
            409: "Conflict", 413: "Content Too Large", 503: "Service Unavailable"}
_JSON = ("Content-Type", "application/json")
Answer = Tuple[int, List[Tuple[str, str]], bytes]  # status, headers, body


def _environ_key(header):
    return "HTTP_" + header.upper().replace("-", "_")


_TIMESTAMP = _environ_key(TIMESTAMP_HEADER)
_SIGNATURE = _environ_key(SIGNATURE_HEADER)
TIMESTAMP_FIELD = TIMESTAMP_HEADER.lower()  # the header names as RSGI (and HTTP/2) give them
SIGNATURE_FIELD = SIGNATURE_HEADER.lower()


class EventFastPath:
    """WSGI middleware answering POST ``PATH`` itself (else ``app``); :meth:`answer` is the same for RSGI."""

    PATH = PATH

    def __init__(self, app, service, max_body):
        self.app = app
        self.service = service
        self.max_body = max_body

    # --- the answers, the same for both ways in --------------------------------------------

    @staticmethod
    def not_allowed() -> Answer:
        payload = json.dumps({"error": "The method is not allowed for the requested URL.", "status": 405})
        return 405, [_JSON, ("Allow", "POST")], payload.encode("utf-8")

    def refused(self, exc: Refused) -> Answer:
        """The refusal's JSON body, counted and logged (rate-limited) as the Flask routes' refusals are."""
        self.service.metrics.event("wordpress_event", exc.status)
        refusal_log.info("refused POST %s: %d %s", PATH, exc.status, exc.message)
        answer = {"error": exc.message}
        if exc.field:
            answer["field"] = exc.field
        return exc.status, [_JSON], json.dumps(answer).encode("utf-8")

    # --- RSGI: on the event loop ---------------------------------------------------------

    async def answer(self, method: str, body: bytes, headers: Mapping[str, str], pool) -> Answer:
        """The signed-event route on the event loop; ``headers`` by lower-case name; ``pool`` runs a blocking journal.

        The body was read whole, within the size limit, by the caller. The
        checks run here (about 0.1 ms of C and a little Python); the journal's
        writer thread settles the entry and wakes this coroutine. A journal
        that cannot take the event within its ``wait`` is answered 503, as
        the blocking path does.
        """
        if method != "POST":
            return self.not_allowed()
        try:
            event = check_wordpress_event(self.service, body, headers.get(TIMESTAMP_FIELD, ""),
                                          headers.get(SIGNATURE_FIELD, ""))
            try:
                event_id = await self._journal(event, body, pool)
            except Exception as exc:  # noqa: BLE001 - every failure of the journal is a 409 or a 503
                raise journal_refusal(self.service, exc) from None
        except Refused as exc:
            return self.refused(exc)
        return 202, [_JSON], event_accepted(self.service, event, event_id)

    async def _journal(self, event, body: bytes, pool) -> str:
        queue = self.service.queue
        submit = getattr(queue, "submit_append", None)  # SQLite: the group commit; Redis appends in one round trip
        loop = asyncio.get_running_loop()
        if submit is None:
            return await loop.run_in_executor(pool, queue.append, "wordpress", event.host, body, event.signature)
        settled = loop.create_future()

        def wake(job) -> None:  # the writer thread; one per event, a group wakes the loop once per event
            loop.call_soon_threadsafe(_settle, settled, job)

        job = submit("wordpress", event.host, body, event.signature, wake)
        timer = loop.call_later(queue.append_wait, _withdraw, queue, job, settled)
        try:
            await settled
        finally:
            timer.cancel()
        if job.error is not None:
            raise job.error
        return job.entry.event_id

    # --- WSGI ------------------------------------------------------------------------------

    def __call__(self, environ, start_response):
        if environ.get("PATH_INFO") != PATH:
            return self.app(environ, start_response)
        if environ.get("REQUEST_METHOD") != "POST":
            status, headers, payload = self.not_allowed()
        else:
            try:
                status, headers, payload = 202, [_JSON], accept_wordpress_event(
                    self.service, self._body(environ), environ.get(_TIMESTAMP, ""), environ.get(_SIGNATURE, ""))
            except Refused as exc:
                status, headers, payload = self.refused(exc)
        start_response(f"{status} {_REASONS.get(status, '')}".rstrip(),
                       [*headers, ("Content-Length", str(len(payload)))])
        return [payload]

    def _body(self, environ):
        """The raw body, refusing more than ``max_body``: by Content-Length before reading, else by what was read."""
        too_large = Refused(413, f"body over {self.max_body // 1024} KiB")
        stream = environ["wsgi.input"]
        try:
            length = int(environ.get("CONTENT_LENGTH") or -1)
        except ValueError:
            length = -1
        if length > self.max_body:
            raise too_large
        if length >= 0:
            data = stream.read(length)
        elif environ.get("wsgi.input_terminated"):  # chunked: the server tells where the body ends
            data = stream.read(self.max_body + 1)
        else:  # neither a length nor a terminated stream: no body can be read safely (as werkzeug does)
            data = b""
        if len(data) > self.max_body:
            raise too_large
        return data


def _settle(settled: "asyncio.Future", entry) -> None:
    if not settled.done():
        settled.set_result(entry)


def _withdraw(queue, job, settled: "asyncio.Future") -> None:
    """``append_wait`` passed: a request still waiting for a transaction is answered 503 (nothing of it is stored)."""
    if queue.withdraw_append(job):
        _settle(settled, job)
