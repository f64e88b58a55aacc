"""Three ``purgebridge serve`` processes on one Redis, three real varnishd: one relay SIGKILLed mid-drain.

Signed events are posted round-robin to all three relays. While they drain,
relay 0 is frozen (SIGSTOP) at moments until Redis shows it holding claims
(entries in a consumer group's pending list under its name), then SIGKILLed.
The two others must take its work over (``XAUTOCLAIM`` after the lease) so
that every mapped URL ends a MISS on every node, and the PURGEs each node
executed (``varnishstat MAIN.n_purges``) stay between the distinct URLs and
what a relay without coalescing sends plus the batch the dead relay held:
re-delivery of that batch is the only duplication allowed.
"""

import os
import signal
import subprocess
import threading
import time

import pytest
import requests

from fixtures.relay import Relay, change, event, expected_items, mapped_paths

pytestmark = pytest.mark.integration

RELAYS = 3
EVENTS = 120
POSTS = 20   # each updated 6 times: the repeats are what coalescing may merge
TAKEOVER = 120  # seconds: the worker's 30 s lease, the journal's 10 s, and a slow CI machine


def n_purges(vnode):
    out = subprocess.run(["varnishstat", "-n", str(vnode.instance_dir), "-1", "-f", "MAIN.n_purges"],
                         capture_output=True, text=True, timeout=10).stdout
    return int(out.split()[1])


def claims_held(client, prefix, pid, nodes):
    """Entries relay ``pid`` has read from a stream and not settled: journal events and node deliveries."""
    held = 0
    for stream, group in [(f"{prefix}events", "expanders")] + [(f"{prefix}q:{n}", "workers") for n in nodes]:
        if not client.exists(stream):
            continue
        for consumer in client.xinfo_consumers(stream, group):
            if f"-{pid}-" in consumer["name"].decode():
                held += consumer["pending"]
    return held


def kill_while_holding_claims(relay, client, nodes, deadline):
    """SIGSTOP relay's worker process, look at Redis, SIGKILL the relay if it holds claims, else SIGCONT.

    The supervisor is killed; the worker process (the Redis consumer, named
    after its pid) dies with it (PR_SET_PDEATHSIG), as after a crash.
    """
    pid = relay.worker_pid()
    while time.monotonic() < deadline:
        os.kill(pid, signal.SIGSTOP)
        held = claims_held(client, "purgebridge:", pid, nodes)
        if held:
            relay.proc.kill()
            relay.proc.wait(timeout=10)
            os.kill(pid, signal.SIGCONT)  # a stopped process takes its SIGKILL once it runs again
            return held
        os.kill(pid, signal.SIGCONT)
        time.sleep(0.003)
    return 0


def test_three_relays_share_the_work_and_survive_one_killed_mid_drain(cluster, site, redis_server, redis_url,
                                                                     tmp_path):
    client = redis_server.client()
    relays = []
    for index in range(RELAYS):
        workdir = tmp_path / f"relay-{index}"
        workdir.mkdir()
        relays.append(Relay(workdir, cluster.nodes_env(), site, PURGEBRIDGE_QUEUE=redis_url))
    try:
        for relay in relays:
            relay.start()
        changes = [change(site, 1000 + n % POSTS, category=f"c{n % POSTS % 5}") for n in range(EVENTS)]
        paths = sorted({p for one in changes for p in mapped_paths(site, one)})
        naive = sum(len(expected_items(site, one)) for one in changes)   # per node, without coalescing
        distinct = len(expected_items(site, *changes))
        cluster.warm(paths, site)
        before = {vn.name: n_purges(vn) for vn in cluster.nodes}
        node_names = [vn.name for vn in cluster.nodes]

        # Round-robin to every relay; meanwhile relay 0 is killed as soon as it holds some of the work.
        # Events it can no longer answer go to the next relay, as the plugin's retry would.
        outcome = {}
        killer = threading.Thread(target=lambda: outcome.setdefault(
            "held", kill_while_holding_claims(relays[0], client, node_names, time.monotonic() + 60)))
        killer.start()
        for n, one in enumerate(changes):
            for attempt in range(RELAYS):
                relay = relays[(n + attempt) % RELAYS]
                if relay.proc.poll() is not None:
                    continue
                try:
                    response = relay.send(event(site, one))
                except requests.RequestException:
                    continue
                if response.status_code in (202, 409):   # 409: the killed relay had stored it
                    break
                pytest.fail(f"relay answered {response.status_code}: {response.text}")
            else:
                pytest.fail(f"no relay accepted event {n}")
        killer.join(70)
        held = outcome.get("held", 0)
        assert held, "relay 0 never held a claim while the queue drained: nothing to take over"

        status = relays[1].drained(timeout=TAKEOVER)   # the queue is shared: depth counts every relay's work
        assert status["queue"]["dead"] == 0
        time.sleep(0.5)

        stale = [(vn.name, p) for vn in cluster.nodes for p in paths if cluster.xcache(vn, p, site) != "MISS"]
        assert stale == [], f"{len(stale)} URL(s) not purged, e.g. {stale[:5]}"
        for vn in cluster.nodes:
            executed = n_purges(vn) - before[vn.name]
            assert distinct <= executed <= naive + held, (
                f"{vn.name}: {executed} PURGEs executed; expected between {distinct} (distinct) and "
                f"{naive} (no coalescing) + {held} (re-sent claims of the killed relay)")
        assert client.xlen("purgebridge:events") == 0
        assert not list(client.scan_iter(match="purgebridge:rec:*", count=1000))  # delivered -> deleted
        totals = relays[2].status()["queue"]
        assert totals["depth"] == 0
    finally:
        for relay in relays:
            relay.stop()
        client.close()
