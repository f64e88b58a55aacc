"""``purgebridge serve`` as a real subprocess: one helper for the integration tests and the benchmarks.

Starts, waits for, inspects and stops the relay the same way everywhere.
``env`` holds the PURGEBRIDGE_* settings; the caller's own PURGEBRIDGE_*
variables are dropped so a developer's shell never leaks in. ``start``
again after a kill reuses the same queue (restart tests). Failures raise
:class:`RelayError` (an AssertionError, so a test shows it as a failure)
with the end of the relay's log.
"""

import json
import os
from pathlib import Path
import subprocess
import sys
import time
from typing import Any, Callable, Optional

import requests

from purgebridge.testing.cluster import free_port
from purgebridge.testing.process import stop_process

REPO = Path(__file__).resolve().parent.parent.parent
COMMAND = [sys.executable, "-m", "purgebridge", "serve"]


class RelayError(AssertionError):
    """The relay did not start, answer or reach a state in time."""


class RelayProcess:
    def __init__(self, workdir: Any, port: Optional[int] = None, env: Optional[dict] = None,
                 admin_token: str = "relay-admin-token-for-tests") -> None:
        self.workdir = Path(workdir)
        self.port = port or free_port(["127.0.0.1"])
        self.admin_token = admin_token
        self.log_path = self.workdir / "relay.log"
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("PURGEBRIDGE_")}
        self.env.update({"PYTHONPATH": str(REPO), "PURGEBRIDGE_LISTEN": f"127.0.0.1:{self.port}",
                         "PURGEBRIDGE_QUEUE": str(self.workdir / "queue.sqlite3"),
                         "PURGEBRIDGE_ADMIN_TOKEN": admin_token})
        self.env.update(env or {})
        self.proc: Optional[subprocess.Popen] = None
        self.session = requests.Session()

    def start(self, timeout: float = 20) -> "RelayProcess":
        self.workdir.mkdir(parents=True, exist_ok=True)
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(COMMAND, cwd=self.workdir, env=self.env, stdin=subprocess.DEVNULL,
                                         stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RelayError(f"relay exited with {self.proc.returncode}:\n{self.log()}")
            try:
                if requests.get(self.url("/healthz"), timeout=1).status_code == 200:
                    return self
            except requests.RequestException:
                time.sleep(0.05)
        raise RelayError(f"relay did not answer /healthz within {timeout}s:\n{self.log()}")

    def url(self, path: str = "") -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def log(self, tail: Optional[int] = 20000) -> str:
        """The relay's log, its last ``tail`` characters (None: all of it); one info line per accepted event."""
        text = self.log_path.read_text(errors="replace") if self.log_path.exists() else ""
        return text if tail is None else text[-tail:]

    def status(self) -> dict:
        response = requests.get(self.url("/v1/status"), headers={"Authorization": f"Bearer {self.admin_token}"},
                                timeout=5)
        if response.status_code != 200:
            raise RelayError(f"/v1/status answered {response.status_code}: {response.text[:500]}")
        return response.json()

    def wait(self, predicate: Callable[[dict], Any], timeout: float = 30, what: str = "condition") -> dict:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            status = self.status()
            if predicate(status):
                return status
            time.sleep(0.05)
        raise RelayError(f"relay: {what} not reached in {timeout}s; status {json.dumps(self.status())[:2000]}\n"
                         f"{self.log()}")

    def backlog(self) -> int:
        """Accepted work not purged yet: queued deliveries plus journal events not expanded."""
        return self.status()["queue"]["depth"]

    def drained(self, timeout: float = 30) -> dict:
        return self.wait(lambda s: s["queue"]["depth"] == 0, timeout, "empty queue")

    def signal(self, signum: int) -> None:
        assert self.proc is not None
        self.proc.send_signal(signum)

    def api_pid(self) -> int:
        """The API process (granian's app process): the Flask app and the journal writer."""
        return self._child("api")

    def worker_pid(self) -> int:
        """The purge worker process: the expander, the node threads, the queue's consumer."""
        return self._child("worker")

    def _child(self, role: str) -> int:
        assert self.proc is not None
        pid = self.wait(lambda s: s["processes"][role], timeout=10, what=f"the {role} process")["processes"][role]
        children = subprocess.run(["pgrep", "-P", str(self.proc.pid)], capture_output=True, text=True,
                                  timeout=5).stdout.split()
        if str(pid) not in children:
            raise RelayError(f"the {role} process {pid} is not a child of the relay {self.proc.pid}")
        return pid

    def __enter__(self) -> "RelayProcess":
        """``with RelayProcess(...) as relay:`` starts it and stops it on the way out (module fixtures)."""
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def stop(self) -> None:
        stop_process(self.proc, timeout=15)
        self.session.close()
