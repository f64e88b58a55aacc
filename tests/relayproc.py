"""``purgebridge serve`` as a real subprocess, for the integration tests.

One class so every integration test starts, waits for, inspects and stops the
relay the same way. ``env`` holds the PURGEBRIDGE_* settings; the caller's own
PURGEBRIDGE_* variables are dropped so a developer's shell never leaks in.
``start`` again after a kill reuses the same queue file (restart tests).
"""

import json
import os
from pathlib import Path
import subprocess
import sys
import time

import pytest
import requests

from fixtures_wordpress import stop_process

REPO = Path(__file__).resolve().parent.parent
COMMAND = [sys.executable, "-m", "purgebridge", "serve"]


class RelayProcess:
    def __init__(self, workdir, port, env, admin_token):
        self.workdir = Path(workdir)
        self.port = port
        self.admin_token = admin_token
        self.log_path = self.workdir / "relay.log"
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("PURGEBRIDGE_")}
        self.env.update({"PYTHONPATH": str(REPO), "PURGEBRIDGE_LISTEN": f"127.0.0.1:{port}",
                         "PURGEBRIDGE_QUEUE": str(self.workdir / "queue.sqlite3"),
                         "PURGEBRIDGE_ADMIN_TOKEN": admin_token})
        self.env.update(env)
        self.proc = None
        self.session = requests.Session()

    def start(self, timeout=20):
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(COMMAND, cwd=self.workdir, env=self.env, stdin=subprocess.DEVNULL,
                                         stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                pytest.fail(f"relay exited with {self.proc.returncode}:\n{self.log()}", pytrace=False)
            try:
                if requests.get(self.url("/healthz"), timeout=1).status_code == 200:
                    return self
            except requests.RequestException:
                time.sleep(0.05)
        pytest.fail(f"relay did not answer /healthz within {timeout}s:\n{self.log()}", pytrace=False)

    def url(self, path):
        return f"http://127.0.0.1:{self.port}{path}"

    def log(self):
        return self.log_path.read_text(errors="replace")[-4000:] if self.log_path.exists() else ""

    def status(self):
        response = requests.get(self.url("/v1/status"), headers={"Authorization": f"Bearer {self.admin_token}"},
                                timeout=5)
        assert response.status_code == 200, response.text
        return response.json()

    def wait(self, predicate, timeout=30, what="condition"):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            status = self.status()
            if predicate(status):
                return status
            time.sleep(0.05)
        pytest.fail(f"relay: {what} not reached in {timeout}s; status {json.dumps(self.status())[:2000]}\n"
                    f"{self.log()}", pytrace=False)

    def drained(self, timeout=30):
        return self.wait(lambda s: s["queue"]["depth"] == 0, timeout, "empty queue")

    def signal(self, signum):
        self.proc.send_signal(signum)

    def api_pid(self):
        """The API process (granian's app process): the Flask app and the journal writer."""
        return self._child("api")

    def worker_pid(self):
        """The purge worker process: the expander, the node threads, the queue's consumer."""
        return self._child("worker")

    def _child(self, role):
        pid = self.wait(lambda s: s["processes"][role], timeout=10, what=f"the {role} process")["processes"][role]
        children = subprocess.run(["pgrep", "-P", str(self.proc.pid)], capture_output=True, text=True,
                                  timeout=5).stdout.split()
        assert str(pid) in children, f"the {role} process {pid} is not a child of the relay {self.proc.pid}"
        return pid

    def stop(self):
        stop_process(self.proc, timeout=15)
