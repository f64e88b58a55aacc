"""Redis Sentinel failover under a real ``serve``: the primary is SIGKILLed under load, a replica takes over,
and every event the relay answered 202 reaches the node.

On loopback: a primary and two replicas (``appendfsync always``), three
Sentinels (quorum 2, ``down-after-milliseconds 1000``), the relay on
``redis+sentinel://.../pb/0`` (each accepted write WAITs for one replica),
one node that records what it is sent. Events are posted at about 10 a
second (at most 200, at most 40 s); after 40 are accepted the primary is
killed. Events refused meanwhile (503) are the sender's to retry and are not
counted; every 202 must arrive. Two replicas, so that the new primary still
has one to WAIT for (docs/scaling.md).
"""

import json
import os
import shutil
import signal
import subprocess
import time

import pytest
import requests

from fixtures.faults import FaultServer
from fixtures.relay import free_port
from purgebridge.core import signing
from purgebridge.testing import RelayProcess, stop_process

pytestmark = pytest.mark.integration

SECRET = "hardening-sentinel-secret-2d7b"
ADMIN = "hardening-sentinel-admin-e519"
SITE = "blog.example.test"
SERVICE = "pb"


def _redis_server():
    path = shutil.which("redis-server")
    if path is None:
        pytest.fail("redis-server is missing: apt-get install redis-server redis-sentinel (.ci/setup)", pytrace=False)
    return path


def _ping(port, timeout=10.0):
    import redis

    client = redis.Redis(host="127.0.0.1", port=port, socket_timeout=1, socket_connect_timeout=1)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if client.ping():
                return client
        except redis.RedisError:
            time.sleep(0.05)
    raise AssertionError(f"redis on :{port} did not answer within {timeout} s")


class Topology:
    """A primary, two replicas and three Sentinels on free loopback ports, all stopped by ``stop``."""

    def __init__(self, workdir):
        self.workdir = workdir
        self.procs = {}
        self.data = [free_port() for _ in range(3)]
        self.sentinels = [free_port() for _ in range(3)]
        for index, port in enumerate(self.data):
            extra = [] if index == 0 else ["--replicaof", "127.0.0.1", str(self.data[0])]
            self._start(f"redis-{port}", ["--port", str(port), "--bind", "127.0.0.1", "--save", "",
                                           "--appendonly", "yes", "--appendfsync", "always", *extra])
            _ping(port)
        primary = _ping(self.data[0])
        deadline = time.monotonic() + 20
        while primary.info("replication").get("connected_slaves", 0) < 2:
            assert time.monotonic() < deadline, primary.info("replication")
            time.sleep(0.1)
        for port in self.sentinels:
            conf = workdir / f"sentinel-{port}.conf"
            conf.write_text(f"port {port}\nbind 127.0.0.1\ndir {workdir}\n"
                            f"sentinel monitor {SERVICE} 127.0.0.1 {self.data[0]} 2\n"
                            f"sentinel down-after-milliseconds {SERVICE} 1000\n"
                            f"sentinel failover-timeout {SERVICE} 10000\n"
                            f"sentinel parallel-syncs {SERVICE} 1\n")
            self._start(f"sentinel-{port}", [str(conf), "--sentinel"])
            _ping(port)

    def _start(self, name, args):
        directory = self.workdir / name
        directory.mkdir()
        log = open(directory / "log", "wb")
        args = [a if a != str(self.workdir) else str(directory) for a in args]
        self.procs[name] = subprocess.Popen([_redis_server(), *args, *(["--dir", str(directory)]
                                            if "--sentinel" not in args else [])],
                                            cwd=directory, stdout=log, stderr=subprocess.STDOUT)

    def url(self):
        hosts = ",".join(f"127.0.0.1:{port}" for port in self.sentinels)
        return f"redis+sentinel://{hosts}/{SERVICE}/0"

    def primary_port(self):
        client = _ping(self.sentinels[0])
        host, port = client.execute_command("SENTINEL", "get-master-addr-by-name", SERVICE)
        return int(port)

    def kill(self, port):
        os.kill(self.procs[f"redis-{port}"].pid, signal.SIGKILL)
        self.procs[f"redis-{port}"].wait(10)

    def stop(self):
        for proc in self.procs.values():
            stop_process(proc, timeout=10)


@pytest.fixture
def topology(tmp_path):
    found = Topology(tmp_path)
    yield found
    found.stop()


def _post(relay, index):
    raw = json.dumps({"schema": 1, "site": f"https://{SITE}/", "batch_id": f"b{index}", "changes": [
        {"kind": "urls", "action": "purge", "urls": [f"https://{SITE}/f/{index}/"]}]}).encode()
    ts = str(int(time.time()))
    try:
        return requests.post(relay.url("/v1/events/wordpress"), data=raw, timeout=10, headers={
            "Content-Type": "application/json", "X-Purgebridge-Timestamp": ts,
            "X-Purgebridge-Signature": signing.sign(SECRET, ts, raw)}).status_code
    except requests.RequestException:
        return None


def test_a_sentinel_failover_loses_nothing_accepted(tmp_path, topology):
    node = FaultServer(lambda n, line: ("status", 200))
    relay = RelayProcess(tmp_path / "relay", free_port(), {
        "PURGEBRIDGE_NODES": f"{node.host}:{node.port}", "PURGEBRIDGE_SITES": SITE, "PURGEBRIDGE_SECRET": SECRET,
        "PURGEBRIDGE_QUEUE": topology.url(), "PURGEBRIDGE_TIMEOUT": "2"}, ADMIN)
    try:
        relay.start()
        old_primary = topology.primary_port()
        accepted, after_failover, killed_at = [], 0, None
        deadline = time.monotonic() + 40
        for index in range(200):
            if time.monotonic() > deadline:
                break
            status = _post(relay, index)
            if status == 202:
                accepted.append(index)
                if killed_at is not None and topology.primary_port() != old_primary:
                    after_failover += 1
            if killed_at is None and len(accepted) == 40:
                topology.kill(old_primary)
                killed_at = time.monotonic()
            time.sleep(0.1)
        assert killed_at is not None, f"only {len(accepted)} events accepted before the kill"
        assert topology.primary_port() != old_primary, "no replica was promoted"
        assert after_failover >= 20, f"only {after_failover} events accepted after the failover: {relay.log()}"
        wanted = {f" /f/{index}/ " for index in accepted}
        stop = time.monotonic() + 60
        while time.monotonic() < stop:
            with node.lock:
                got = {line for line in wanted if any(line in r.split("\r\n", 1)[0] for r in node.requests)}
            if got == wanted:
                break
            time.sleep(0.2)
        missing = sorted(wanted - got)
        assert not missing, f"{len(missing)} of {len(wanted)} accepted events never reached the node: {missing[:10]}"
        # ... and it was the Sentinel's primary that held them (not some other store)
        assert _ping(topology.primary_port()).keys("purgebridge:*"), "the promoted primary has no queue keys"
    finally:
        relay.stop()
        node.stop()
