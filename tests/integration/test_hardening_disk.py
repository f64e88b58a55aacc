"""Issue 25.5: a full disk under a real ``serve`` (a 4 MiB tmpfs) never stops delivery to nodes that are up.

Node B answers the queued purge of ``/slow-page/`` after 3 s: the disk fills
while that batch is on the wire, so its outcome cannot be stored. A signed
event accepted just before the disk filled must still reach B (and C) while
the disk stays full; before the fix B's thread retried the write in place
and the event waited until space was freed (177 s in the report). Meanwhile
``/readyz`` says 503 every time and ``purgebridge queue`` shows the queue.
"""

import json
import os
import subprocess
import sys
import time

import pytest
import requests

from fixtures.faults import FaultServer, fill_disk
from fixtures.relay import free_port
from purgebridge.core import signing
from purgebridge.testing import RelayProcess
from purgebridge.testing.relay import REPO

pytestmark = pytest.mark.integration

SECRET = "hardening-disk-secret-4c9a"
ADMIN = "hardening-disk-admin-d27e"
WEBHOOK = "hardening-disk-hook-81f3"
SITE = "blog.example.test"


def _event(path):
    raw = json.dumps({"schema": 1, "site": f"https://{SITE}/", "changes": [
        {"kind": "urls", "action": "purge", "urls": [f"https://{SITE}{path}"]}]}).encode()
    ts = str(int(time.time()))
    return raw, {"Content-Type": "application/json", "X-Purgebridge-Timestamp": ts,
                 "X-Purgebridge-Signature": signing.sign(SECRET, ts, raw)}


def _seen(server, path, timeout):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with server.lock:
            if any(f" {path} " in request.split("\r\n", 1)[0] for request in server.requests):
                return True
        time.sleep(0.05)
    return False


def test_a_full_disk_never_stops_nodes_that_are_up(tmp_path, small_disk):
    slow = FaultServer(lambda n, line: ("sleep", 3.0, 200) if "/slow-page/" in line else ("status", 200))
    fast = FaultServer(lambda n, line: ("status", 200))
    queue = small_disk / "queue.sqlite3"
    relay = RelayProcess(tmp_path, free_port(), {
        "PURGEBRIDGE_NODES": f"{slow.host}:{slow.port},{fast.host}:{fast.port}", "PURGEBRIDGE_SITES": SITE,
        "PURGEBRIDGE_SECRET": SECRET, "PURGEBRIDGE_WEBHOOK_TOKEN": WEBHOOK, "PURGEBRIDGE_TIMEOUT": "6",
        "PURGEBRIDGE_QUEUE": str(queue)}, ADMIN).start()
    filler = None
    try:
        hook = requests.post(relay.url("/v1/webhook"), json={"urls": [f"https://{SITE}/slow-page/"]},
                             headers={"Authorization": f"Bearer {WEBHOOK}"}, timeout=10)
        assert hook.status_code == 202, hook.text
        assert _seen(slow, "/slow-page/", 10), "node B never got the queued purge"
        raw, headers = _event("/fresh-page/")
        assert requests.post(relay.url("/v1/events/wordpress"), data=raw, headers=headers,
                             timeout=10).status_code == 202
        filler = fill_disk(small_disk)  # while B's batch is on the wire: its outcome cannot be stored
        assert _seen(fast, "/fresh-page/", 10)
        assert _seen(slow, "/fresh-page/", 10), "an accepted event did not reach a node that is up: disk full"
        probes = [requests.get(relay.url("/readyz"), timeout=10) for _ in range(10)]
        assert [p.status_code for p in probes] == [503] * 10, [(p.status_code, p.text) for p in probes]
        shown = subprocess.run([sys.executable, "-m", "purgebridge", "queue", "--queue", str(queue)],
                               capture_output=True, text=True, timeout=30, cwd=tmp_path,
                               env={**os.environ, "PYTHONPATH": str(REPO)})
        assert shown.returncode == 0 and "queue:" in shown.stdout, (shown.stdout, shown.stderr)
        filler.unlink()
        filler = None
        relay.drained(timeout=30)  # the parked outcome was stored once there was room
        with slow.lock:
            resent = sum(" /slow-page/ " in r.split("\r\n", 1)[0] for r in slow.requests)
        assert resent == 1, f"the slow page was sent {resent} times"
    finally:
        if filler is not None:
            filler.unlink()
        relay.stop()
        slow.stop()
        fast.stop()
