"""A private, durable ``redis-server`` from Debian for the tests of the Redis queue backend.

- ``redis_server`` (session scope) one redis-server on a free loopback port, with
                   its own temp dir, no RDB snapshots and an append-only file
                   fsynced on every write (``--appendfsync always``), the
                   setting docs/scaling.md asks for in production.
- ``redis_url``    a ``redis://`` URL on that server whose database is emptied
                   before the test, so tests never see each other's keys.

redis-server (or the ``redis`` Python package) missing is a test *failure*
with an install hint, never a skip: CI must run the Redis half of the queue
contract.
"""

import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

from purgebridge.testing import stop_process

__all__ = ["RedisServer", "redis_server", "redis_url", "start_redis"]


def _free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class RedisServer:
    """One redis-server process; ``url(db)`` to connect, ``stop()`` to end it and remove its dir."""

    def __init__(self, workdir, port, proc):
        self.workdir = Path(workdir)
        self.port = port
        self.proc = proc

    def url(self, db=0):
        return f"redis://127.0.0.1:{self.port}/{db}"

    def client(self, db=0):
        import redis

        return redis.Redis(host="127.0.0.1", port=self.port, db=db, socket_timeout=5, socket_connect_timeout=5)

    def log(self):
        path = self.workdir / "redis.log"
        return path.read_text(errors="replace")[-4000:] if path.exists() else ""

    def stop(self):
        stop_process(self.proc, timeout=10)
        shutil.rmtree(self.workdir, ignore_errors=True)


def start_redis(workdir=None, timeout=10.0):
    """Start redis-server on 127.0.0.1 and a free port; raises RuntimeError with a hint when it cannot."""
    binary = shutil.which("redis-server") or ("/usr/bin/redis-server" if Path("/usr/bin/redis-server").exists()
                                              else None)
    if binary is None:
        raise RuntimeError("redis-server not found: install Debian's redis-server package "
                           "(apt-get install redis-server; .ci/setup does this)")
    try:
        import redis  # noqa: F401
    except ImportError:
        raise RuntimeError("the redis Python package is missing: pip install -e '.[redis]'") from None
    workdir = Path(workdir or tempfile.mkdtemp(prefix="purgebridge-redis-"))
    workdir.mkdir(parents=True, exist_ok=True)
    port = _free_port()
    command = [binary, "--bind", "127.0.0.1", "--port", str(port), "--dir", str(workdir),
               "--save", "", "--appendonly", "yes", "--appendfsync", "always",
               "--logfile", str(workdir / "redis.log"), "--daemonize", "no", "--protected-mode", "yes"]
    proc = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
    server = RedisServer(workdir, port, proc)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            log = server.log()
            server.stop()
            raise RuntimeError(f"redis-server exited with {proc.returncode}: {log}")
        try:
            if server.client().ping():
                return server
        except Exception:  # noqa: BLE001 - not listening yet
            time.sleep(0.05)
    log = server.log()
    server.stop()
    raise RuntimeError(f"redis-server did not answer PING within {timeout:g} s: {log}")


@pytest.fixture(scope="session")
def redis_server():
    try:
        server = start_redis()
    except RuntimeError as exc:
        pytest.fail(str(exc), pytrace=False)
    yield server
    server.stop()


@pytest.fixture
def redis_url(redis_server):
    client = redis_server.client(db=0)
    client.flushdb()
    client.close()
    return redis_server.url(0)
