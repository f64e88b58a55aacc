"""The RSGI adapter's signed-event path: answered on the event loop, no request thread held.

The ``client`` fixture drives the adapter ``purgebridge serve`` runs
(``purgebridge.api.testing``); the real granian is in test_slow_clients.py
and test_server_integration.py.
"""

import threading
import time

from fixtures.app import encode, event_body, signed_headers

from purgebridge.api import testing


def test_a_signed_event_is_journaled_and_answered_on_the_loop_without_a_request_thread(app, client):
    raw = encode(event_body())
    response = client.post("/v1/events/wordpress", data=raw, headers=signed_headers(raw))
    assert response.status_code == 202, response.get_data(as_text=True)
    assert response.json["queued"] == 1 and response.headers["Content-Type"] == "application/json"
    assert app.extensions["purgebridge"].queue.journal_pending() == 1
    adapter = testing.served(app).adapter
    assert not adapter.pool._threads, "the event took a request thread"
    response = client.post("/v1/events/wordpress", data=raw, headers=signed_headers(raw))
    assert response.status_code == 409, response.get_data(as_text=True)  # the replay, caught by the journal
    response = client.get("/v1/events/wordpress")
    assert response.status_code == 405 and response.headers["Allow"] == "POST"
    assert client.get("/healthz").status_code == 200  # everything else: Flask, on the pool
    assert adapter.pool._threads


def test_a_refusal_on_the_loop_is_json_counted_and_stores_nothing(app, client):
    raw = encode(event_body())
    response = client.post("/v1/events/wordpress", data=raw, headers=signed_headers(raw, secret="not-the-secret"))
    assert (response.status_code, response.get_json()) == (401, {"error": "signature does not match"})
    assert "WWW-Authenticate" not in response.headers  # a signed route, not a bearer one
    assert app.extensions["purgebridge"].queue.journal_pending() == 0
    metrics = client.get("/metrics").get_data(as_text=True)
    assert 'purgebridge_events_total{result="401",route="wordpress_event"} 1.0' in metrics


def test_an_event_the_journal_cannot_take_in_time_is_answered_503_and_not_stored(app, client, monkeypatch):
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
    raw = encode(event_body())
    try:
        blocker = encode(event_body())  # the writer is stuck on this one's group
        blocked = queue.submit_append("wordpress", "blog.example.test", blocker, "sha256=" + "0" * 64, lambda job: None)
        deadline = time.monotonic() + 5
        while writer.pending_appends() and time.monotonic() < deadline:  # the writer took it: stuck in its group
            time.sleep(0.005)
        assert writer.pending_appends() == 0, "the writer never took the blocking event"
        response = client.post("/v1/events/wordpress", data=raw, headers=signed_headers(raw))
        assert response.status_code == 503 and "not written within 0.2 s" in response.json["error"]
        disk.set()
        assert blocked.done.acquire(timeout=5)
        assert queue.journal_pending() == 1  # the blocker only: the refused event was never written
    finally:
        disk.set()
