"""Issue 13, items 8, 9 and 11: every fault is visible and survivable.

- a full filesystem (a 2 MiB tmpfs) under the real ``purgebridge serve``;
- Redis killed under an app that uses it;
- the queue file deleted while the relay runs, or corrupt / missing at start.

docs/operations.md, "Faults and what you see", lists the same cases.
"""

import json
import os
from pathlib import Path
import subprocess
import sys
import time

import pytest
import requests

from fixtures.app import ADMIN_TOKEN, app_overrides, bearer, event_body, post_change, send_event
from fixtures.faults import fill_disk
from fixtures.redis_server import start_redis
from fixtures.wordpress import free_port
from purgebridge.core import signing
from purgebridge.testing import RelayProcess

pytestmark = pytest.mark.integration

SECRET = "faults-secret-0d7e51aa"
ADMIN = "faults-admin-token-4c2b"
REPO = Path(__file__).resolve().parents[2]


def _cli(*args, cwd, env=None):
    environ = {k: v for k, v in os.environ.items() if not k.startswith("PURGEBRIDGE_")}
    environ.update({"PYTHONPATH": str(REPO)}, **(env or {}))
    return subprocess.run([sys.executable, "-m", "purgebridge", *args], capture_output=True, text=True,
                          cwd=cwd, env=environ, timeout=60)


def _one_line(done, *needles):
    assert "Traceback" not in done.stderr, done.stderr
    assert len(done.stderr.strip().splitlines()) == 1, done.stderr
    for needle in needles:
        assert needle in done.stderr, done.stderr


def _event(site="blog.example.test", post=1):
    body = json.dumps({"schema": 1, "site": f"https://{site}/", "changes": [
        {"kind": "post", "action": "update", "post": {"id": post, "url_new": f"https://{site}/p{post}/"}}]}).encode()
    ts = str(int(time.time()))
    return body, {"Content-Type": "application/json", "X-Purgebridge-Timestamp": ts,
                  "X-Purgebridge-Signature": signing.sign(SECRET, ts, body)}


def _relay(workdir, queue, nodes="127.0.0.1:9"):
    relay = RelayProcess(workdir, free_port(), {"PURGEBRIDGE_NODES": nodes, "PURGEBRIDGE_SITES": "blog.example.test",
                                                "PURGEBRIDGE_SECRET": SECRET, "PURGEBRIDGE_QUEUE": str(queue)}, ADMIN)
    return relay


def _readyz(relay):
    return requests.get(relay.url("/readyz"), timeout=5)


# --- item 11: the queue file ----------------------------------------------------------------

def test_queue_command_opens_an_existing_queue_only(tmp_path):
    done = _cli("queue", cwd=tmp_path)
    assert done.returncode == 2
    _one_line(done, "PURGEBRIDGE_QUEUE", "no queue file")
    assert list(tmp_path.iterdir()) == []  # no empty queue created in the current directory


@pytest.mark.parametrize("make", ["garbage", "directory", "unreadable"])
def test_a_bad_queue_file_stops_serve_with_one_line(tmp_path, make):
    path = tmp_path / "queue.sqlite3"
    if make == "garbage":
        path.write_bytes(b"this is not SQLite" * 100)
    elif make == "directory":
        path.mkdir()
    else:
        path.write_bytes(b"")
        path.chmod(0)
        if os.access(path, os.R_OK):  # root reads anything: make it a broken symlink into a file instead
            path.unlink()
            (tmp_path / "sub").write_text("x")
            path.symlink_to(tmp_path / "sub" / "queue.sqlite3")
    done = _cli("serve", cwd=tmp_path, env={"PURGEBRIDGE_NODES": "127.0.0.1:9", "PURGEBRIDGE_SITES": "a.test",
                                           "PURGEBRIDGE_SECRET": SECRET, "PURGEBRIDGE_QUEUE": str(path),
                                           "PURGEBRIDGE_LISTEN": f"127.0.0.1:{free_port()}"})
    assert done.returncode == 2, done.stderr
    _one_line(done, "PURGEBRIDGE_QUEUE", str(path))
    assert "crash loop" not in done.stderr


def test_a_deleted_queue_file_fails_readiness_and_refuses_events(tmp_path):
    """The API's answers in the moments before ``serve`` stops (test_hardening_worker checks the stop).

    In-process, because a real ``serve`` stops within about 0.3 s of the
    deletion: asked from outside, these answers race the stop.
    """
    from purgebridge.api.app import create_app
    queue = tmp_path / "queue.sqlite3"
    app = create_app(app_overrides(tmp_path, PURGEBRIDGE_QUEUE=str(queue)), environ={})
    try:
        client = app.test_client()
        assert send_event(client).status_code == 202
        queue.unlink()
        ready = client.get("/readyz")
        assert ready.status_code == 503 and "queue not writable" in ready.json["problems"]
        refused = send_event(client, body=event_body([post_change(post_id=2)]))
        assert refused.status_code == 503, refused.get_data(as_text=True)  # never a 202 that no node will see
        status = client.get("/v1/status", headers=bearer(ADMIN_TOKEN))
        assert status.status_code == 503 and "PURGEBRIDGE_QUEUE" in status.json["error"]
        assert "deleted or replaced" in status.json["error"]
        metrics = client.get("/metrics")
        assert metrics.status_code == 200 and "purgebridge_queue_up 0.0" in metrics.get_data(as_text=True)
    finally:
        app.extensions["purgebridge"].close()


# --- item 9: Redis down -----------------------------------------------------------------------

def test_redis_down_keeps_metrics_and_names_the_queue(tmp_path):
    from purgebridge.api.app import create_app

    server = start_redis(tmp_path / "redis")
    url = server.url(0)
    app = create_app(app_overrides(tmp_path, PURGEBRIDGE_QUEUE=url), environ={})
    try:
        client = app.test_client()
        assert "purgebridge_queue_up 1.0" in client.get("/metrics").get_data(as_text=True)
        server.stop()
        metrics = client.get("/metrics")
        assert metrics.status_code == 200 and "purgebridge_queue_up 0.0" in metrics.get_data(as_text=True)
        status = client.get("/v1/status", headers=bearer(ADMIN_TOKEN))
        assert status.status_code == 503 and "PURGEBRIDGE_QUEUE=redis://" in status.json["error"]
        assert client.get("/readyz").status_code == 503
        event = send_event(client)
        assert event.status_code == 503, event.get_data(as_text=True)
        hook = client.post("/v1/webhook", json={"urls": ["https://blog.example.test/a/"]},
                           headers=bearer("webhook-token-4d1a"))
        assert hook.status_code == 503 and "PURGEBRIDGE_QUEUE" in hook.json["error"]
        done = _cli("queue", "--queue", url, cwd=tmp_path)
        assert done.returncode == 2
        _one_line(done, "PURGEBRIDGE_QUEUE", "redis://")
    finally:
        app.extensions["purgebridge"].close()


# --- item 8: a full disk -------------------------------------------------------------------------

def test_a_full_disk_shows_in_readiness_and_status_and_nothing_is_resent(tmp_path, small_disk, cluster, site):
    node = cluster.node_list()[0]
    relay = RelayProcess(tmp_path, free_port(), {
        "PURGEBRIDGE_NODES": node.name, "PURGEBRIDGE_SITES": site.split(":")[0], "PURGEBRIDGE_SECRET": SECRET,
        "PURGEBRIDGE_QUEUE": str(small_disk / "queue.sqlite3")}, ADMIN).start()
    try:
        host = site.split(":")[0]
        body, headers = _event(host)
        assert requests.post(relay.url("/v1/events/wordpress"), data=body, headers=headers, timeout=5).status_code == 202
        relay.drained()
        filler = fill_disk(small_disk)
        ready = _readyz(relay)
        assert ready.status_code == 503 and "queue not writable" in ready.json()["problems"], ready.text
        done = _cli("status", "--url", relay.url(""), cwd=tmp_path, env={"PURGEBRIDGE_ADMIN_TOKEN": ADMIN})
        assert done.returncode == 5 and "queue does not take writes" in done.stdout, (done.stdout, done.stderr)
        body, headers = _event(host, post=2)
        refused = requests.post(relay.url("/v1/events/wordpress"), data=body, headers=headers, timeout=15)
        assert refused.status_code == 503, refused.text
        sent_before = sum(1 for _ in open(relay.log_path, errors="replace"))
        time.sleep(2)
        log_lines = sum(1 for _ in open(relay.log_path, errors="replace")) - sent_before
        assert log_lines < 50, f"{log_lines} log lines in 2 s with a full disk"
        filler.unlink()
        deadline = time.monotonic() + 15
        while _readyz(relay).status_code != 200:
            assert time.monotonic() < deadline, "the relay did not become ready after the disk had room again"
            time.sleep(0.1)
        body, headers = _event(host, post=3)
        assert requests.post(relay.url("/v1/events/wordpress"), data=body, headers=headers, timeout=5).status_code == 202
        relay.drained()
    finally:
        relay.stop()


# --- item 10: failing nodes are backed off and never shown "up" -----------------------------------

def test_a_node_answering_500_is_backed_off_and_not_up_then_recovers_clean(tmp_path):
    from fixtures.faults import FaultServer
    from purgebridge.config.settings import load_settings
    from purgebridge.core.invalidation import purge_for_url
    from purgebridge.core.nodes import Node
    from purgebridge.store.sqlite import Queue
    from purgebridge.worker.worker import Worker

    server = FaultServer(lambda n, line: ("status", 500))
    node = Node(server.host, server.port)
    settings = load_settings({"PURGEBRIDGE_NODES": node.name, "PURGEBRIDGE_SITES": "blog.example.test",
                              "PURGEBRIDGE_BACKOFF": "0.05", "PURGEBRIDGE_BACKOFF_MAX": "1"},
                             environ={}, dotenv_path="")
    queue = Queue(tmp_path / "q.sqlite3", backoff=0.05, backoff_max=1.0)
    worker = Worker(queue, settings, poll=0.05).start()
    try:
        assert worker.node_status()[0]["up"] is None  # not contacted yet: unknown, not down
        queue.enqueue([node.name], [purge_for_url(f"https://blog.example.test/p{i}/") for i in range(20)], "wordpress")
        stop = time.monotonic() + 3.0
        while time.monotonic() < stop:  # a steady trickle while the node fails
            queue.enqueue([node.name], [purge_for_url(f"https://blog.example.test/t{time.monotonic()}/")],
                          "wordpress")
            time.sleep(0.05)
        state = worker.node_status()[0]
        assert state["up"] is False and "500" in state["last_error"], state
        # Circuit breaking: batches to the failing node are spaced by its backoff (cap 1 s), not sent
        # back to back (about 870 requests a second before).
        assert server.count < 400, server.count
        server.script = lambda n, line: ("status", 200)
        deadline = time.monotonic() + 15
        while queue.stats()["depth"]:
            assert time.monotonic() < deadline, queue.stats()
            time.sleep(0.05)
        state = worker.node_status()[0]
        assert state["up"] is True and state["last_error"] == "", state
    finally:
        assert worker.stop(timeout=5)
        queue.close()
        server.stop()
