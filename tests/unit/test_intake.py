"""The RSGI adapter's signed-event path: answered on the event loop, no request thread held.

Driven with granian's RSGI calls (``scope``, an awaitable ``protocol``,
``response_bytes``) on a plain asyncio loop; the real granian is in
test_slow_clients.py and test_server_integration.py.
"""

import asyncio
import json
import threading
import time

from fixtures.app import encode, event_body, signed_headers

from purgebridge.api.intake import RSGIAdapter


class Scope:
    proto = "http"
    client = "127.0.0.1:40000"
    server = "127.0.0.1:8080"
    query_string = ""
    http_version = "1.1"
    scheme = "http"

    def __init__(self, method, path, headers):
        self.method, self.path = method, path
        self.headers = {name.lower(): value for name, value in headers.items()}


class Protocol:
    """The body at once (``await protocol()``), and the answer kept."""

    def __init__(self, body):
        self.body = body
        self.answers = []

    async def __call__(self):
        return self.body

    def response_bytes(self, status, headers, body):
        self.answers.append((status, dict(headers), body))


def call(adapter, method, path, body=b"", headers=None):
    headers = dict(headers or {})
    headers.setdefault("Content-Length", str(len(body)))
    protocol = Protocol(body)
    asyncio.run(adapter.__rsgi__(Scope(method, path, headers), protocol))
    (answer,) = protocol.answers
    return answer


def adapter_for(app):
    return RSGIAdapter(app, threads=2, max_body=app.config["PURGEBRIDGE_MAX_BODY"],
                       events=app.extensions["purgebridge.events"])


def test_a_signed_event_is_journaled_and_answered_on_the_loop_without_a_request_thread(app):
    adapter = adapter_for(app)
    raw = encode(event_body())
    try:
        status, headers, body = call(adapter, "POST", "/v1/events/wordpress", raw, signed_headers(raw))
        assert status == 202, body
        assert json.loads(body)["queued"] == 1 and headers["Content-Type"] == "application/json"
        assert app.extensions["purgebridge"].queue.journal_pending() == 1
        assert not adapter.pool._threads, "the event took a request thread"
        status, _headers, body = call(adapter, "POST", "/v1/events/wordpress", raw, signed_headers(raw))
        assert status == 409, body  # the replay, caught by the journal's transaction as on the WSGI path
        status, _headers, body = call(adapter, "GET", "/v1/events/wordpress")
        assert status == 405
        status, _headers, _body = call(adapter, "GET", "/healthz")  # everything else: Flask, on the pool
        assert status == 200 and adapter.pool._threads
    finally:
        adapter.close()


def test_refusals_on_the_loop_are_those_of_the_wsgi_path(app, client):
    adapter = adapter_for(app)
    raw = encode(event_body())
    bad = signed_headers(raw, secret="not-the-secret")
    try:
        status, _headers, body = call(adapter, "POST", "/v1/events/wordpress", raw, bad)
        wsgi = client.post("/v1/events/wordpress", data=raw, headers=bad)
        assert (status, json.loads(body)) == (wsgi.status_code, wsgi.get_json()) == (
            401, {"error": "signature does not match"})
        assert app.extensions["purgebridge"].queue.journal_pending() == 0
    finally:
        adapter.close()


def test_an_event_the_journal_cannot_take_in_time_is_answered_503_and_not_stored(app, monkeypatch):
    """The journal's ``wait`` holds on the loop too: withdrawn, 503, and nothing written afterwards."""
    queue = app.extensions["purgebridge"].queue
    monkeypatch.setattr(queue, "append_wait", 0.2)
    disk = threading.Event()
    writer = queue.writer
    real = writer._write_group

    def stuck(db, entries):  # the writer's group cannot finish (a slow disk)
        disk.wait(10)
        return real(db, entries)

    monkeypatch.setattr(writer, "_write_group", stuck)
    adapter = adapter_for(app)
    raw = encode(event_body())
    try:
        blocker = encode(event_body())  # the writer is stuck on this one's group
        blocked = queue.submit_append("wordpress", "blog.example.test", blocker, "sha256=" + "0" * 64, lambda job: None)
        deadline = time.monotonic() + 5
        while writer.pending_appends() and time.monotonic() < deadline:  # the writer took it: stuck in its group
            time.sleep(0.005)
        assert writer.pending_appends() == 0, "the writer never took the blocking event"
        status, _headers, body = call(adapter, "POST", "/v1/events/wordpress", raw, signed_headers(raw))
        assert status == 503 and "not written within 0.2 s" in json.loads(body)["error"]
        disk.set()
        assert blocked.done.acquire(timeout=5)
        assert queue.journal_pending() == 1  # the blocker only: the refused event was never written
    finally:
        disk.set()
        adapter.close()
