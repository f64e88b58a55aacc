"""Issue 13.1: slow clients against the real ``purgebridge serve`` never tie the relay up.

Three kinds of slow client, each three times as many as the relay has app
threads: slow headers (never finished), slow bodies (``Content-Length: 100``,
one byte sent), idle keep-alive connections. While they hold their
connections, ``/healthz`` and a signed event answer at once; the slow body
gets 408 once ``PURGEBRIDGE_BODY_TIMEOUT`` has passed. Before the fix eight
slow bodies stopped every route for as long as they stayed open.
"""

import json
import socket
import time

import pytest
import requests

from fixtures.wordpress import free_port
from purgebridge.core import signing
from purgebridge.service.server import THREADS
from purgebridge.testing import RelayProcess

pytestmark = pytest.mark.integration

SECRET = "slow-clients-secret-71c0"
ADMIN = "slow-clients-admin-3f9a"
SLOW = 3 * THREADS  # per kind of slow client


@pytest.fixture(scope="module")
def relay(tmp_path_factory):
    relay = RelayProcess(tmp_path_factory.mktemp("slow"), free_port(), {
        "PURGEBRIDGE_NODES": "127.0.0.1:9", "PURGEBRIDGE_SITES": "blog.example.test",
        "PURGEBRIDGE_SECRET": SECRET, "PURGEBRIDGE_BODY_TIMEOUT": "2"}, ADMIN)
    relay.start()
    yield relay
    relay.stop()


def _connect(relay):
    sock = socket.create_connection(("127.0.0.1", relay.port), timeout=10)
    return sock


def _event():
    body = json.dumps({"schema": 1, "site": "https://blog.example.test/",
                       "changes": [{"kind": "site", "action": "purge_all"}]}).encode()
    ts = str(int(time.time()))
    return body, {"Content-Type": "application/json", "X-Purgebridge-Timestamp": ts,
                  "X-Purgebridge-Signature": signing.sign(SECRET, ts, body)}


def _timed(call):
    started = time.monotonic()
    response = call()
    return response, time.monotonic() - started


def test_slow_clients_hold_no_thread(relay):
    slow_headers, slow_bodies, idle = [], [], []
    try:
        for _ in range(SLOW):
            sock = _connect(relay)
            sock.sendall(b"POST /v1/events/wordpress HTTP/1.1\r\nHost: relay\r\nContent-Le")
            slow_headers.append(sock)
            sock = _connect(relay)
            sock.sendall(b"POST /v1/events/wordpress HTTP/1.1\r\nHost: relay\r\nContent-Type: application/json\r\n"
                         b"Content-Length: 100\r\n\r\n{")
            slow_bodies.append(sock)
            sock = _connect(relay)
            sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: relay\r\n\r\n")
            assert sock.recv(4096).startswith(b"HTTP/1.1 200")
            idle.append(sock)  # kept alive, never used again
        time.sleep(0.3)  # every slow request has reached the relay
        sent_at = time.monotonic()
        health, seconds = _timed(lambda: requests.get(relay.url("/healthz"), timeout=5))
        assert health.status_code == 200 and seconds < 0.5, seconds
        body, headers = _event()
        accepted, seconds = _timed(lambda: requests.post(relay.url("/v1/events/wordpress"), data=body,
                                                         headers=headers, timeout=5))
        assert accepted.status_code == 202 and seconds < 1.0, (accepted.text, seconds)
        readiness, seconds = _timed(lambda: requests.get(relay.url("/readyz"), timeout=5))
        assert seconds < 0.5, seconds
        # The slow bodies are answered 408 once the body deadline (2 s here) has passed, then closed.
        slow_bodies[0].settimeout(10)
        answer = slow_bodies[0].recv(4096)
        assert answer.startswith(b"HTTP/1.1 408"), answer
        assert 1.5 < time.monotonic() - sent_at + 0.3 < 8
    finally:
        for sock in slow_headers + slow_bodies + idle:
            sock.close()
    assert "Traceback" not in relay.log()
