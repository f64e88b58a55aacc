"""Issue 25.1, 25.2, 25.4: connection floods, long paths, forged log lines and odd framing against a real ``serve``.

Each test talks to the relay over real sockets: silent connections held
open, raw request lines and headers, a text log read back from the
relay's output.
"""

import json
import socket
import time

import pytest
import requests

from fixtures.relay import free_port
from purgebridge.core import signing
from purgebridge.service.server import HEADER_DEADLINE
from purgebridge.testing import RelayProcess

pytestmark = pytest.mark.integration

SECRET = "hardening-intake-secret-9d2c"
ADMIN = "hardening-intake-admin-41fa"
FLOOD = 1_100  # silent connections: more than granian's default cap of 1,024 (backlog / workers)


@pytest.fixture(scope="module")
def relay(tmp_path_factory):
    with RelayProcess(tmp_path_factory.mktemp("intake"), free_port(), {
            "PURGEBRIDGE_NODES": "127.0.0.1:9", "PURGEBRIDGE_SITES": "blog.example.test",
            "PURGEBRIDGE_SECRET": SECRET, "PURGEBRIDGE_BODY_TIMEOUT": "1",
            "PURGEBRIDGE_LOG_FORMAT": "text"}, ADMIN) as relay:
        yield relay


def _signed_event():
    body = json.dumps({"schema": 1, "site": "https://blog.example.test/",
                       "changes": [{"kind": "site", "action": "purge_all"}]}).encode()
    ts = str(int(time.time()))
    return body, {"Content-Type": "application/json", "X-Purgebridge-Timestamp": ts,
                  "X-Purgebridge-Signature": signing.sign(SECRET, ts, body)}


def _raw(relay, request: bytes, timeout: float = 5.0) -> bytes:
    """Send ``request`` on a new connection; everything the relay answers until it closes (or ``timeout``)."""
    with socket.create_connection(("127.0.0.1", relay.port), timeout=timeout) as sock:
        sock.sendall(request)
        answer = b""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                chunk = sock.recv(65536)
            except socket.timeout:
                break
            if not chunk:
                return answer
            answer += chunk
        return answer + b"<still open>"


def test_held_idle_connections_do_not_starve_signed_events(relay):
    held = []
    try:
        for _ in range(FLOOD):
            held.append(socket.create_connection(("127.0.0.1", relay.port), timeout=5))
        time.sleep(0.5)  # the relay has accepted what it will accept
        body, headers = _signed_event()
        started = time.monotonic()
        answer = requests.post(relay.url("/v1/events/wordpress"), data=body, headers=headers, timeout=15)
        seconds = time.monotonic() - started
        assert answer.status_code == 202, answer.text
        assert seconds < 1.0, f"a signed event waited {seconds:.1f} s behind {FLOOD} idle connections"
        # and a silent connection is closed once the header deadline has passed
        held[0].settimeout(HEADER_DEADLINE + 3)
        started = time.monotonic()
        assert held[0].recv(1) == b""
        assert time.monotonic() - started < HEADER_DEADLINE + 2
    finally:
        for sock in held:
            sock.close()


def test_long_paths_are_refused_and_not_logged_whole(relay):
    path = "/v1/events/" + "p" * 58_000
    answer = _raw(relay, f"GET {path} HTTP/1.1\r\nHost: relay\r\n\r\n".encode())
    assert answer.startswith(b"HTTP/1.1 414"), answer[:200]
    assert "p" * 1000 not in relay.log()


def test_timed_out_body_cannot_forge_a_log_line_or_flood_the_log(relay):
    before = len(relay.log_path.read_bytes())
    forged = "FORGED-LINE level=error everything is fine"
    request = (f"POST /v1/events/wordpress%0a{forged.replace(' ', '%20')} HTTP/1.1\r\nHost: relay\r\n"
               "Content-Type: application/json\r\nContent-Length: 100\r\n\r\n{").encode()
    for _round in range(3):  # 3 x 30: under the per-address cap of bodies being read (32)
        socks = [socket.create_connection(("127.0.0.1", relay.port), timeout=5) for _ in range(30)]
        try:
            for sock in socks:
                sock.sendall(request)
            for sock in socks:
                sock.settimeout(5)
                assert sock.recv(4096).startswith(b"HTTP/1.1 408")
        finally:
            for sock in socks:
                sock.close()
    time.sleep(0.3)
    written = relay.log_path.read_bytes()[before:].decode(errors="replace")
    assert not any(line.startswith(forged) for line in written.splitlines()), written[-2000:]
    assert 0 < written.count(" 408 ") <= 50, f"{written.count(' 408 ')} lines for 90 refusals: not rate-limited"


@pytest.mark.parametrize("coding", ["identity, chunked", "gzip, chunked", "chunked, identity"])
def test_transfer_codings_other_than_chunked_are_refused_and_closed(relay, coding):
    body, headers = _signed_event()
    head = "".join(f"{name}: {value}\r\n" for name, value in headers.items())
    chunked = f"{len(body):x}\r\n".encode() + body + b"\r\n0\r\n\r\n"
    answer = _raw(relay, f"POST /v1/events/wordpress HTTP/1.1\r\nHost: relay\r\n{head}"
                         f"Transfer-Encoding: {coding}\r\n\r\n".encode() + chunked)
    assert answer.split(b"\r\n", 1)[0] in (b"HTTP/1.1 501 Not Implemented", b"HTTP/1.1 400 Bad Request"), answer[:300]
    assert not answer.endswith(b"<still open>"), "the connection was kept after a refused transfer coding"
