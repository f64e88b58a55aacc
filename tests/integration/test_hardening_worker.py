"""Issue 25.7 and 25.8: the worker process's start, failure and stop, seen from outside a real ``serve``.

- the first ``/readyz`` after a start is 200 when a node is up (it was always
  503 "not checked yet");
- a worker process that cannot start (here: its status file's path made a
  directory, so every start fails with IsADirectoryError) makes ``/readyz``
  503, ``purgebridge_worker_up 0``, ``purgebridge status`` exit 1, and the
  log says why; events are still kept (202: the journal holds them);
- a SIGTERM never logs "did not stop in time" for a worker that stopped;
- a queue file deleted under a running relay stops it with exit 1 (systemd's
  Restart=on-failure starts it on a new file) after one clear line, instead of
  a traceback per node per second; also while no worker process runs to
  notice it (one that is failing to start).
"""

import json
import os
import signal
import subprocess
import sys
import time

import pytest
import requests

from fixtures.relay import eventually, free_port
from purgebridge.core import signing
from purgebridge.testing import RelayProcess

pytestmark = pytest.mark.integration

SECRET = "hardening-worker-secret-3e8b"
ADMIN = "hardening-worker-admin-a61f"


def _relay(workdir, nodes):
    return RelayProcess(workdir, free_port(), {
        "PURGEBRIDGE_NODES": nodes, "PURGEBRIDGE_SITES": "blog.example.test", "PURGEBRIDGE_SECRET": SECRET,
        "PURGEBRIDGE_TIMEOUT": "1", "TMPDIR": str(workdir)}, ADMIN)


def _send(relay):
    body = json.dumps({"schema": 1, "site": "https://blog.example.test/",
                       "changes": [{"kind": "site", "action": "purge_all"}]}).encode()
    ts = str(int(time.time()))
    return requests.post(relay.url("/v1/events/wordpress"), data=body, timeout=10, headers={
        "Content-Type": "application/json", "X-Purgebridge-Timestamp": ts,
        "X-Purgebridge-Signature": signing.sign(SECRET, ts, body)})


def _fail_every_worker_start(relay, workdir):
    """Make the worker's status file path a directory and kill the worker: every start from now on fails."""
    status_file = eventually(lambda: next(iter(workdir.glob("purgebridge-*/worker.json")), None), 10,
                             "the worker's status file")
    worker = relay.worker_pid()
    os.unlink(status_file)
    os.mkdir(status_file)  # every worker process fails at its first status write
    try:
        os.kill(worker, signal.SIGKILL)
    except ProcessLookupError:
        pass  # it failed at its next status write already
    eventually(lambda: "could not run" in relay.log(), 15, "the reason in the log")
    return status_file


def test_first_readyz_is_ready(tmp_path, cluster):
    with _relay(tmp_path, cluster.nodes_env()) as relay:
        ready = requests.get(relay.url("/readyz"), timeout=10)
        assert ready.status_code == 200, ready.text


@pytest.mark.parametrize("attempt", range(3))
def test_a_sigterm_never_says_a_stopped_worker_did_not_stop(tmp_path, cluster, attempt):
    relay = _relay(tmp_path, cluster.nodes_env()).start()
    try:
        relay.worker_pid()
        assert _send(relay).status_code == 202
        relay.drained()
    finally:
        relay.stop()
    assert relay.proc.returncode == 0
    log = relay.log()
    assert "worker stopped" in log
    assert "did not stop in time" not in log, log


def test_a_worker_that_cannot_start_is_visible(tmp_path, cluster):
    relay = _relay(tmp_path, cluster.nodes_env()).start()
    try:
        status_file = _fail_every_worker_start(relay, tmp_path)
        assert "IsADirectoryError" in relay.log()
        ready = eventually(lambda: [r for r in [requests.get(relay.url("/readyz"), timeout=10)] if r.status_code == 503],
                      15, "/readyz 503")[0]
        assert "worker" in " ".join(ready.json()["problems"])
        metrics = requests.get(relay.url("/metrics"), timeout=10).text
        assert "purgebridge_worker_up 0.0" in metrics, [l for l in metrics.splitlines() if "worker" in l]
        status = subprocess.run([sys.executable, "-m", "purgebridge", "status", "--url", relay.url()],
                                env={**relay.env}, capture_output=True, text=True, timeout=30)
        assert status.returncode == 5 and "worker NOT running" in status.stdout, (status.returncode, status.stdout)
        assert _send(relay).status_code == 202  # kept in the journal for the next worker that starts
        os.rmdir(status_file)  # repaired: the next start works and readiness comes back
        eventually(lambda: requests.get(relay.url("/readyz"), timeout=10).status_code == 200, 60, "/readyz 200 again")
    finally:
        relay.stop()


def _stops_with_code_1(relay):
    """Waits for the relay to exit on its own; a failure carries the relay's log, which says why it did not."""
    try:
        eventually(lambda: relay.proc.poll() is not None, 30, "the relay's exit")
    except AssertionError as exc:
        raise AssertionError(f"{exc}\n{relay.log()}") from None
    assert relay.proc.returncode == 1, relay.log()


def test_a_deleted_queue_file_stops_the_relay_with_one_line(tmp_path, cluster):
    relay = _relay(tmp_path, cluster.nodes_env()).start()
    try:
        relay.worker_pid()
        before = relay.log().count("Traceback")
        os.unlink(relay.env["PURGEBRIDGE_QUEUE"])
        _stops_with_code_1(relay)
        log = relay.log()
        assert "was deleted or replaced" in log
        assert log.count("Traceback") - before <= 1, log
    finally:
        relay.stop()


def test_a_deleted_queue_file_stops_the_relay_while_no_worker_runs(tmp_path, cluster):
    """The supervisor notices it: a worker that cannot start would otherwise be started forever on a dead file."""
    relay = _relay(tmp_path, cluster.nodes_env()).start()
    try:
        _fail_every_worker_start(relay, tmp_path)
        os.unlink(relay.env["PURGEBRIDGE_QUEUE"])
        _stops_with_code_1(relay)
        assert "was deleted or replaced" in relay.log()
    finally:
        relay.stop()
