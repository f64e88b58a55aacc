"""The relay as a real process (granian + worker) in front of three real varnishd nodes.

Pages are cached on every node first; after an event the mapped URLs must be
a MISS on every node while an unrelated page is still a HIT. The relay is
started as ``python -m purgebridge serve`` when the CLI has that command, else
through ``python -m purgebridge.service.server`` (the same ``serve(settings)``).
"""

import json
import os
import re
import signal
import sqlite3
import subprocess
import threading
import time
from pathlib import Path

import pytest
import requests

from purgebridge.core import signing
from purgebridge.testing import COMMAND
from fixtures.relay import ADMIN, SECRET, Relay, change, event, expected_items, free_port, mapped_paths

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]


def states(cluster, nodes, paths, site):
    return {(vn.name, p): cluster.xcache(vn, p, site) for vn in nodes for p in paths}


def node_totals(relay, node_name):
    """purged + not_cached confirmed by ``node_name`` (from /metrics, counted by the worker)."""
    text = requests.get(relay.url("/metrics"), timeout=5).text
    total = 0.0
    for outcome in ("purged", "not_cached"):
        match = re.search(rf'purgebridge_purges_total{{node="{re.escape(node_name)}",outcome="{outcome}"}} (\S+)',
                          text)
        total += float(match.group(1)) if match else 0.0
    return int(total)


def all_sent(relay):
    text = requests.get(relay.url("/metrics"), timeout=5).text
    return int(sum(float(v) for v in re.findall(r"^purgebridge_purges_total{[^}]*} (\S+)$", text, re.M)))


# --------------------------------------------------------------------------------------------

def test_signed_event_purges_every_mapped_url_on_every_node(cluster, site, relay_factory):
    relay = relay_factory(site).start()
    one = change(site, 42)
    paths = mapped_paths(site, one)
    cluster.warm(paths + ["/unrelated/"], site)
    assert set(states(cluster, cluster.nodes, paths + ["/unrelated/"], site).values()) == {"HIT"}
    response = relay.send(event(site, one))
    assert response.status_code == 202, response.text
    assert response.json()["queued"] == 1           # changes accepted; mapped later by the expander
    queued = len(expected_items(site, one))         # the requests each node must confirm
    relay.drained()
    after = states(cluster, cluster.nodes, paths, site)
    assert {k: v for k, v in after.items() if v != "MISS"} == {}
    for vn in cluster.nodes:
        assert cluster.xcache(vn, "/unrelated/", site) == "HIT"
        assert node_totals(relay, vn.name) == queued
    status = relay.status()
    assert all(n["up"] for n in status["nodes"]) and status["queue"]["dead"] == 0
    assert requests.get(relay.url("/readyz"), timeout=5).status_code == 200


def test_refusals_over_real_http(cluster, site, relay_factory):
    relay = relay_factory(site).start()
    raw = json.dumps(event(site, change(site, 1))).encode()
    ts = str(int(time.time()))
    bad = requests.post(relay.url("/v1/events/wordpress"), data=raw, timeout=5,
                        headers={"X-Purgebridge-Timestamp": ts, "X-Purgebridge-Signature": signing.sign("x", ts, raw)})
    assert bad.status_code == 401
    good = {"X-Purgebridge-Timestamp": ts, "X-Purgebridge-Signature": signing.sign(SECRET, ts, raw)}
    huge = b"{" + b" " * (256 * 1024) + b"}"

    def chunks():
        for i in range(0, len(huge), 16384):
            yield huge[i:i + 16384]
    big = requests.post(relay.url("/v1/events/wordpress"), data=chunks(), timeout=10,
                        headers={"X-Purgebridge-Timestamp": ts,
                                 "X-Purgebridge-Signature": signing.sign(SECRET, ts, huge)})
    assert big.status_code == 413
    assert requests.post(relay.url("/v1/events/wordpress"), data=raw, headers=good, timeout=5).status_code == 202
    assert requests.post(relay.url("/v1/events/wordpress"), data=raw, headers=good, timeout=5).status_code == 409
    status = relay.status()
    assert status["totals"]["events"] == 1
    assert SECRET not in relay.log() and ADMIN not in relay.log()
    assert f"listening on http://127.0.0.1:{relay.port}" in relay.log()


def test_stopped_node_gets_all_its_purges_after_restart(cluster, site, relay_factory):
    relay = relay_factory(site).start()
    changes = [change(site, post_id) for post_id in range(1, 6)]
    paths = mapped_paths(site, *changes)
    up = [cluster.nodes[0], cluster.nodes[2]]
    down = cluster.nodes[1]
    cluster.warm(paths + ["/unrelated/"], site)
    down.stop()
    accepted = [relay.send(event(site, c)) for c in changes]
    assert [r.status_code for r in accepted] == [202] * 5
    status = relay.wait(lambda s: s["queue"]["journal_pending"] == 0   # every accepted event turned into deliveries
                        and all(n["pending"] + n["in_flight"] == 0 for n in s["nodes"] if n["node"] != down.name)
                        and any(n["node"] == down.name and n["up"] is False for n in s["nodes"]),
                        what="journal expanded, live nodes drained and the stopped node marked down")
    assert {k: v for k, v in states(cluster, up, paths, site).items() if v != "MISS"} == {}
    assert all(cluster.xcache(vn, "/unrelated/", site) == "HIT" for vn in up)
    # Every distinct URL purge, plus the key purge(s): the relay merges the keys of events
    # expanded together into one PURGEKEYS, so that part is at least one request, not one per event.
    expected = {key for key in expected_items(site, *changes) if key.startswith("PURGE ")}
    expected.add("PURGEKEYS")
    entry = next(n for n in status["nodes"] if n["node"] == down.name)
    assert entry["pending"] + entry["in_flight"] >= len(expected)
    assert entry["last_error"]
    down.start()
    status = relay.drained()
    assert status["queue"]["dead"] == 0
    # Every (node, item) row was removed only by a confirmation from that node.
    assert node_totals(relay, down.name) >= len(expected)
    assert next(n for n in relay.status()["nodes"] if n["node"] == down.name)["up"] is True


def test_returning_node_drains_its_backlog_while_a_steady_stream_goes_on(cluster, site, relay_factory):
    """The queued path is not starved by the direct one: a node back from an outage catches up within 60 s."""
    relay = relay_factory(site).start()
    down = cluster.nodes[2]
    down.stop()
    try:
        for post_id in range(600, 800):   # the outage: every purge for this node goes to the durable queue
            assert relay.send(event(site, change(site, post_id, category=f"c{post_id % 7}"))).status_code == 202
        backlog = relay.wait(lambda s: s["queue"]["journal_pending"] == 0 and
                             next(n for n in s["nodes"] if n["node"] == down.name)["pending"] > 500,
                             what="the stopped node's backlog queued")
    finally:
        down.start()
    waiting = next(n for n in backlog["nodes"] if n["node"] == down.name)["pending"]
    deadline = time.monotonic() + 60
    post_id, drained = 800, None
    while time.monotonic() < deadline:   # a steady stream of 20 events a second goes on all along
        assert relay.send(event(site, change(site, post_id))).status_code == 202
        post_id += 1
        if post_id % 10 == 0:
            entry = next(n for n in relay.status()["nodes"] if n["node"] == down.name)
            if entry["pending"] == 0 and entry["dead"] == 0:
                drained = time.monotonic() - (deadline - 60)
                break
        time.sleep(0.05)
    assert drained is not None, f"{waiting} queued purges not drained in 60 s while events kept coming"
    print(f"backlog of {waiting} purges drained in {drained:.1f} s while {post_id - 800} events streamed in")


def test_relay_killed_after_accepting_delivers_after_restart(cluster, site, relay_factory):
    relay = relay_factory(site).start()
    changes = [change(site, post_id) for post_id in (7, 8, 9)]
    paths = mapped_paths(site, *changes)
    for vn in cluster.nodes:
        vn.stop()
    try:
        assert [relay.send(event(site, c)).status_code for c in changes] == [202] * 3
        relay.signal(signal.SIGKILL)
        relay.proc.wait(timeout=10)
    finally:
        for vn in cluster.nodes:
            vn.start()
    # Nobody can purge now: the relay is dead. Cache the pages on the fresh nodes.
    cluster.warm(paths + ["/unrelated/"], site)
    assert set(states(cluster, cluster.nodes, paths, site).values()) == {"HIT"}
    relay.start()
    status = relay.drained()
    assert status["queue"]["dead"] == 0
    assert {k: v for k, v in states(cluster, cluster.nodes, paths, site).items() if v != "MISS"} == {}
    assert all(cluster.xcache(vn, "/unrelated/", site) == "HIT" for vn in cluster.nodes)


def test_api_and_worker_processes_die_with_a_killed_relay(cluster, site, relay_factory):
    """SIGKILL of ``purgebridge serve`` must not leave the API process holding the port, nor the worker the queue."""
    relay = relay_factory(site).start()
    pids = [relay.api_pid(), relay.worker_pid()]
    assert pids[0] != pids[1], "the API and the purge worker must be separate processes"
    relay.signal(signal.SIGKILL)
    relay.proc.wait(timeout=10)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and any(os.path.exists(f"/proc/{pid}") for pid in pids):
        time.sleep(0.05)
    assert not [pid for pid in pids if os.path.exists(f"/proc/{pid}")], "a child outlived its killed supervisor"
    relay.start()   # the same port is free again
    assert relay.send(event(site, change(site, 77))).status_code == 202


def _kill_child_while_accepting(cluster, site, relay, role, first_post):
    """Accept events, SIGKILL one child of the relay mid-stream, accept more: every page is purged in the end."""
    changes = [change(site, post_id) for post_id in range(first_post, first_post + 6)]
    paths = mapped_paths(site, *changes)
    cluster.warm(paths, site)
    victim = relay.api_pid() if role == "api" else relay.worker_pid()
    if role == "worker":   # frozen first: the events are accepted and journaled, but never sent by it
        os.kill(victim, signal.SIGSTOP)
    accepted = [relay.send(event(site, c)).status_code for c in changes[:3]]
    if role == "worker":
        assert set(states(cluster, cluster.nodes, paths, site).values()) == {"HIT"}
    os.kill(victim, signal.SIGKILL)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:   # the supervisor starts a new one; the API may take a moment
        try:
            status = relay.status()
            if status["worker"] and status["processes"][role] not in (None, victim):
                break
        except (requests.RequestException, AssertionError):
            pass
        time.sleep(0.05)
    else:
        pytest.fail(f"no new {role} process within 30 s:\n{relay.log()}")
    accepted += [relay.send(event(site, c)).status_code for c in changes[3:]]
    assert accepted == [202] * 6
    status = relay.drained()
    assert status["queue"]["dead"] == 0
    assert {k: v for k, v in states(cluster, cluster.nodes, paths, site).items() if v != "MISS"} == {}
    assert relay.proc.poll() is None, "killing one child must not stop the relay"


def test_worker_process_killed_alone_is_restarted_and_loses_nothing(cluster, site, relay_factory):
    relay = relay_factory(site).start()
    _kill_child_while_accepting(cluster, site, relay, "worker", 300)


def test_api_process_killed_alone_is_restarted_and_loses_nothing(cluster, site, relay_factory):
    relay = relay_factory(site).start()
    _kill_child_while_accepting(cluster, site, relay, "api", 400)


def test_sigterm_finishes_and_keeps_the_rest_queued(cluster, site, relay_factory, tmp_path):
    relay = relay_factory(site).start()
    down = cluster.nodes[0]
    down.stop()
    assert relay.send(event(site, change(site, 3))).status_code == 202
    # The down node must already hold its deliveries: before expansion the
    # live nodes show nothing pending either, and SIGTERM then would leave
    # only the inbox row, not the per-node rows this test is about.
    relay.wait(lambda s: all(
        (n["pending"] + n["in_flight"] > 0) == (n["node"] == down.name) for n in s["nodes"]),
        what="live nodes done, the down node's purges queued")
    started = time.monotonic()
    relay.signal(signal.SIGTERM)
    assert relay.proc.wait(timeout=20) == 0
    assert time.monotonic() - started < 15
    assert "left queued" in relay.log()
    db = sqlite3.connect(tmp_path / "queue.sqlite3")
    try:
        left = db.execute("SELECT COUNT(*) FROM deliveries WHERE node = ? AND state != 'dead'",
                          (down.name,)).fetchone()[0]
    finally:
        db.close()
    assert left > 0
    down.start()
    relay.start()
    assert relay.drained()["queue"]["dead"] == 0


def test_burst_of_1000_events_coalesces_and_leaves_nothing_stale(cluster, site, relay_factory, origin):
    """A URL purged on a node within PURGEBRIDGE_BATCH_GAP waits out that window, merging every update meanwhile.

    How much that saves depends on how fast this client sends (a few hundred
    events a second, depending on the machine's load), so the test checks
    the rule itself: each distinct purge reaches a node at most once per
    window (50 ms here), plus the first and the trailing one --
    never more PURGEs than (burst seconds / gap + 2) x distinct purges x nodes.
    The default's ratio at the benchmark's burst rate is in docs/benchmarks.md.
    """
    gap = 0.05
    relay = relay_factory(site, PURGEBRIDGE_BATCH_GAP=str(gap)).start()
    changes = [change(site, post_id) for post_id in range(100, 110)]
    paths = mapped_paths(site, *changes)
    cluster.warm(paths, site)
    naive = 0
    stop_reading = threading.Event()
    reads = []

    def reader():  # keeps re-caching pages while the burst goes on, so stale copies would show
        i = 0
        deadline = time.monotonic() + 120
        while not stop_reading.is_set() and time.monotonic() < deadline:
            vn = cluster.nodes[i % 3]
            vn.get(paths[i % len(paths)], site)
            reads.append(i)
            i += 1

    bodies = [event(site, changes[i % 10]) for i in range(1000)]
    results = [None] * len(bodies)

    def sender(offset):
        local = Relay.__new__(Relay)
        local.__dict__.update(relay.__dict__)
        local.session = requests.Session()
        for index in range(offset, len(bodies), 4):
            bodies[index]["sent_at"] = index  # distinct bodies, distinct signatures
            results[index] = local.send(bodies[index])
        local.session.close()

    read_thread = threading.Thread(target=reader)
    read_thread.start()
    try:
        senders = [threading.Thread(target=sender, args=(n,)) for n in range(4)]
        started = time.monotonic()
        for thread in senders:
            thread.start()
        for thread in senders:
            thread.join(timeout=120)
        assert all(r is not None and r.status_code == 202 for r in results), \
            {r.status_code for r in results if r is not None}
    finally:
        stop_reading.set()
        read_thread.join(timeout=30)
    # The burst's last word: one more event per change once no reader re-caches
    # pages. Every copy cached before it (origin count <= served_before) must be
    # purged; a copy fetched after the purge is the only way to count higher.
    # (Snapshotting while the reader still ran raced with fast purges: a fresh
    # copy re-cached between the last purge and the snapshot looked stale.)
    served_before = {p: origin.hit_count(site, p) for p in paths}
    for n, one in enumerate(changes):
        final = event(site, one)
        final["sent_at"] = len(bodies) + n
        assert relay.send(final).status_code == 202
    burst_seconds = time.monotonic() - started   # from the first event to the last 202, the final ones included
    per_change = [len(expected_items(site, one)) for one in changes]
    naive = (sum(per_change[i % 10] for i in range(len(results))) + sum(per_change)) * len(cluster.nodes)
    relay.drained(timeout=60)
    sent = all_sent(relay)
    assert reads, "the reader thread did not run"
    distinct = len(expected_items(site, *changes))
    # plus the final events, sent one at a time after the burst: at most what they cost uncoalesced
    bound = (burst_seconds / gap + 2) * distinct * len(cluster.nodes) + sum(per_change) * len(cluster.nodes)
    assert sent <= bound, f"{sent} purges sent in a {burst_seconds:.1f} s burst: more than one per purge per gap"
    assert sent <= naive / 4, f"{sent} purges sent for {naive} without coalescing"
    # Zero stale: every page now served was fetched from the origin after the last event was accepted.
    for vn in cluster.nodes:
        for path in paths:
            _status, _headers, body = vn.get(path, site)
            count = int(re.search(rb"served (\d+) time", body).group(1))
            assert count > served_before[path], f"{vn.name} {path} still serves a copy from before the burst ended"
    print(f"burst of {burst_seconds:.1f} s: {sent} PURGE requests sent vs {naive} without coalescing "
          f"({100 * sent / naive:.2f} %), bound {bound:.0f}")


def test_node_without_key_purges_gets_url_purges_and_is_never_marked_down(cluster, noxkey_node, site,
                                                                          relay_factory):
    """A node running vcl/wordpress-noxkey.vcl answers PURGEKEYS 501: remembered, never queued, retried or banned."""
    relay = relay_factory(site, PURGEBRIDGE_NODES=",".join([cluster.nodes_env(), noxkey_node.node.name])).start()
    nodes = cluster.nodes + [noxkey_node]
    changes = [change(site, post_id) for post_id in range(500, 505)]
    for one in changes:   # isolated events, one after the other
        paths = mapped_paths(site, one)
        for vn in nodes:
            for path in paths:
                vn.get(path, site)
        assert relay.send(event(site, one)).status_code == 202
        status = relay.drained()
        assert {k: v for k, v in states(cluster, nodes, paths, site).items() if v != "MISS"} == {}
        entry = next(n for n in status["nodes"] if n["node"] == noxkey_node.node.name)
        # Never through the durable queue, never marked down, nothing dead-lettered.
        assert (entry["up"], entry["keys"], entry["pending"], entry["dead"]) == (True, False, 0, 0), entry
    status = relay.status()
    assert {n["node"]: n["keys"] for n in status["nodes"]} == {
        **{vn.name: True for vn in cluster.nodes}, noxkey_node.name: False}
    assert status["totals"].get("failed_attempts", 0) == 0 and status["queue"]["dead"] == 0
    text = requests.get(relay.url("/metrics"), timeout=5).text
    outcomes = dict(re.findall(rf'purgebridge_purges_total{{node="{re.escape(noxkey_node.name)}",outcome="(\w+)"}} (\S+)',
                               text))
    assert "failed" not in outcomes and float(outcomes["skipped"]) >= 1, outcomes
    assert relay.log_path.read_text().count("has no key purges") == 1, "the node's lack of key purges is logged once"


def test_docs_curl_example_is_accepted_and_bans(cluster, relay_factory):
    """The signed curl example in docs/events.md, run as written (only the port changed)."""
    script = re.search(r"```sh\n(.*?)```", (REPO / "docs" / "events.md").read_text(), re.S).group(1)
    relay = relay_factory("127.0.0.1:8080", PURGEBRIDGE_SECRET="change-me-to-16-or-more-characters")
    relay.start()
    cluster.warm(["/a/", "/b/"], "127.0.0.1:8080")
    script = script.replace("127.0.0.1:8787", f"127.0.0.1:{relay.port}")
    result = subprocess.run(["bash", "-c", script], capture_output=True, text=True, timeout=30)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["queued"] == 1
    relay.drained()
    assert {cluster.xcache(vn, p, "127.0.0.1:8080") for vn in cluster.nodes for p in ("/a/", "/b/")} == {"MISS"}


def test_refuses_to_start_without_a_secret(tmp_path, cluster):
    env = {k: v for k, v in os.environ.items() if not k.startswith("PURGEBRIDGE_")}
    env.update({"PYTHONPATH": str(REPO), "PURGEBRIDGE_NODES": cluster.nodes_env(), "PURGEBRIDGE_SITES": "a.test",
                "PURGEBRIDGE_QUEUE": str(tmp_path / "q.sqlite3"), "PURGEBRIDGE_LISTEN": f"127.0.0.1:{free_port()}"})
    result = subprocess.run(COMMAND, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=30)
    assert result.returncode == 2
    assert "PURGEBRIDGE_SECRET" in result.stderr


def test_node_cut_off_past_max_age_gets_a_ban_of_the_site_when_it_answers_again(cluster, site, relay_factory):
    """A node that is alive (cache intact) but unreachable for longer than PURGEBRIDGE_MAX_AGE.

    The varnishd cache process is frozen with SIGSTOP -- as behind a network
    partition, its cache survives, unlike a restart. Its purges are
    dead-lettered; the relay queues a ban of the whole site for it, and when
    it answers again even pages no event named are gone from it.
    """
    relay = relay_factory(site, PURGEBRIDGE_MAX_AGE="2").start()
    cut_off = cluster.nodes[1]
    cluster.warm(["/", "/unrelated/"], site)
    child = int(subprocess.run(["pgrep", "-P", str(cut_off.proc.pid)], capture_output=True, text=True,
                               timeout=5).stdout.split()[0])   # the cache process under the manager
    os.kill(child, signal.SIGSTOP)
    try:
        assert relay.send(event(site, change(site, 1))).status_code == 202
        relay.wait(lambda s: s["queue"]["dead"] > 0, timeout=30, what="the cut-off node's purges dead-lettered")
    finally:
        os.kill(child, signal.SIGCONT)
    deadline = time.monotonic() + 30   # a HIT does not re-cache, so the first MISS is the ban's doing
    while cluster.xcache(cut_off, "/unrelated/", site) != "MISS":
        assert time.monotonic() < deadline, "no ban of the site reached the node once it answered again"
        time.sleep(0.1)
    assert all(cluster.xcache(vn, "/unrelated/", site) == "HIT" for vn in cluster.nodes if vn is not cut_off)
