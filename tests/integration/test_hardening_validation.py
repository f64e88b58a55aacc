"""Issue 25.4: what a real ``serve`` accepts is what the nodes will take, and its files are private.

- an admin ``ban`` with a space is refused with 400 (the VCL refuses it: it
  used to get 202 and then never be delivered), and one that uses ``\\s``
  reaches a real varnishd and is banned there;
- a webhook ``site`` given as a site URL, as docs/webhook.md allows, is accepted;
- a secret of one repeated letter stops ``serve`` with a line naming it;
- the queue file, its ``-wal`` and ``-shm`` and the worker's status file are 0600.
"""

import os
import stat
import subprocess
import sys

import pytest
import requests

from fixtures.relay import free_port
from purgebridge.testing import RelayProcess
from purgebridge.testing.relay import COMMAND, REPO

pytestmark = pytest.mark.integration

SECRET = "hardening-validation-secret-7a1e"
ADMIN = "hardening-validation-admin-c03b"
WEBHOOK = "hardening-validation-hook-55d9"


@pytest.fixture(scope="module")
def relay(tmp_path_factory, cluster_module):
    workdir = tmp_path_factory.mktemp("validation")
    with RelayProcess(workdir, free_port(), {
            "PURGEBRIDGE_NODES": cluster_module.nodes_env(), "PURGEBRIDGE_SITES": "blog.example.test",
            "PURGEBRIDGE_SECRET": SECRET, "PURGEBRIDGE_WEBHOOK_TOKEN": WEBHOOK,
            "TMPDIR": str(workdir)}, ADMIN) as relay:  # the worker's status file is made under TMPDIR
        yield relay


def _post(relay, path, token, body):
    return requests.post(relay.url(path), json=body, headers={"Authorization": f"Bearer {token}"}, timeout=10)


def test_ban_with_a_space_is_refused_as_the_vcl_would(relay):
    refused = _post(relay, "/v1/purge", ADMIN, {"site": "blog.example.test", "ban": "^/a b"})
    assert refused.status_code == 400, refused.text
    assert refused.json().get("field") == "ban" and "\\s" in refused.json()["error"]
    accepted = _post(relay, "/v1/purge", ADMIN, {"site": "blog.example.test", "ban": r"^/a\sb", "wait": True})
    assert accepted.status_code == 200, accepted.text  # every node answered the ban 200 (wait=true reports it)


@pytest.mark.parametrize("site", ["https://blog.example.test/", "http://blog.example.test", "blog.example.test"])
def test_webhook_site_may_be_a_site_url(relay, site):
    answer = _post(relay, "/v1/webhook", WEBHOOK, {"site": site, "keys": ["post-42"]})
    assert answer.status_code == 202, answer.text


def test_webhook_site_url_of_another_site_is_still_refused(relay):
    answer = _post(relay, "/v1/webhook", WEBHOOK, {"site": "https://evil.example.test/", "keys": ["post-42"]})
    assert answer.status_code == 403, answer.text


def test_secret_without_entropy_stops_serve(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("PURGEBRIDGE_")}
    env.update({"PYTHONPATH": str(REPO), "PURGEBRIDGE_NODES": "127.0.0.1:9", "PURGEBRIDGE_SITES": "blog.example.test",
                "PURGEBRIDGE_SECRET": "a" * 16, "PURGEBRIDGE_LISTEN": f"127.0.0.1:{free_port()}",
                "PURGEBRIDGE_QUEUE": str(tmp_path / "q.sqlite3")})
    done = subprocess.run(COMMAND, env=env, capture_output=True, text=True, timeout=30, cwd=tmp_path)
    assert done.returncode != 0
    assert "PURGEBRIDGE_SECRET" in done.stderr and "different characters" in done.stderr, done.stderr
    assert "a" * 16 not in done.stderr


def test_queue_and_status_files_are_private(relay, tmp_path):
    queue = relay.env["PURGEBRIDGE_QUEUE"]
    relay.worker_pid()  # the worker runs and has written its status file
    status_files = list(relay.workdir.glob("purgebridge-*/worker.json"))
    assert status_files, list(relay.workdir.iterdir())
    for path in [queue, queue + "-wal", queue + "-shm", *status_files]:
        mode = stat.S_IMODE(os.stat(path).st_mode)
        assert mode == 0o600, f"{path} is {mode:o}"
    # an older relay's 0644 file is made private when the queue is opened again
    old = tmp_path / "old.sqlite3"
    old.touch(mode=0o644)
    os.chmod(old, 0o644)
    subprocess.run([sys.executable, "-c", "import sys; from purgebridge.store.sqlite import Queue; "
                    "Queue(sys.argv[1]).close()", str(old)], check=True, timeout=30, env={**os.environ,
                                                                                        "PYTHONPATH": str(REPO)})
    assert stat.S_IMODE(os.stat(old).st_mode) == 0o600
