"""Benchmark: the relay end to end -- latency, accepted events per second, burst coalescing.

Not a test. Starts three varnishd nodes (127.0.0.11-13, vcl/wordpress.vcl) and
a real ``purgebridge serve`` process, then measures in one run:

  (a) event accepted -> purged on all 3 nodes, p50/p99, for single post
      updates that map to ~30 URLs each (PURGEBRIDGE_PAGINATION=1; and to
      46 with the default 3), spaced so each is handled alone.
      Arrival times come from ``varnishlog`` on every node (the Timestamp of
      each PURGE), so the relay is not asked to time itself. Target p99 <= 10 ms.
  (b) signed events accepted (202, durably queued) per second, 3,000 events
      pre-signed, posted over 8 keep-alive connections. Target >= 2,000/s.
      Then the same for a 15,000-event flood (sustained: the flood pacing of
      the worker is on), and a steady 300 events/s stream that must never
      be paced.
  (c) a burst of 1,000 updates to 20 posts sharing the front page and the
      category: PURGE requests the nodes executed (varnishstat MAIN.n_purges)
      against what a relay without coalescing sends (every mapped URL of every
      event to every node, computed with the relay's own mapping), while a
      reader re-caches pages throughout; afterwards every URL must be a MISS
      on every node (zero stale). Target <= 5 %.

    python bench/relay.py [--write]
"""

import argparse
import json
import os
import pathlib
import signal
import subprocess
import sys
import tempfile
import threading
import time

ROOT = pathlib.Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

import requests  # noqa: E402

from common import machine, watchdog, write_section  # noqa: E402
from purgebridge.localcluster import free_port, start_cluster  # noqa: E402
from purgebridge.mapping import MappingOptions, map_batch  # noqa: E402
from purgebridge.signing import sign  # noqa: E402
from purgebridge.transport import Connection  # noqa: E402

HOSTS = ("127.0.0.11", "127.0.0.12", "127.0.0.13")
SITE = "http://blog.bench.test"
SECRET = "bench-secret-5f1d9a2c"
ADMIN = "bench-admin-token-7e3b"
DEADLINE = 540  # seconds for the whole run; every loop below also has its own bound


def post_change(post_id, tag_id, date="2026-11-26"):
    return {
        "kind": "post", "action": "update",
        "post": {
            "id": post_id, "type": "post", "rest_base": "posts",
            "status_old": "publish", "status_new": "publish",
            "url_old": f"{SITE}/bench-post-{post_id}/", "url_new": f"{SITE}/bench-post-{post_id}/",
            "date_old": date, "date_new": date,
            "author": {"id": 1, "url": f"{SITE}/author/admin/"},
            "terms_old": [{"id": 1, "taxonomy": "category", "rest_base": "categories", "url": f"{SITE}/category/news/"},
                          {"id": 1000 + tag_id, "taxonomy": "post_tag", "rest_base": "tags",
                           "url": f"{SITE}/tag/t{tag_id}/"}],
            "terms_new": [{"id": 1, "taxonomy": "category", "rest_base": "categories", "url": f"{SITE}/category/news/"},
                          {"id": 1000 + tag_id, "taxonomy": "post_tag", "rest_base": "tags",
                           "url": f"{SITE}/tag/t{tag_id}/"}],
            "type_archive_url": None,
        },
    }


_seq = iter(range(10 ** 9))


def envelope(changes):
    """A batch body; ``bench_seq`` (ignored by the relay) keeps equal batches from being replays."""
    return json.dumps({"schema": 1, "site": SITE + "/", "sent_at": int(time.time()), "changes": changes,
                       "bench_seq": next(_seq)}, separators=(",", ":")).encode()


def signed_request(body, host, port):
    ts = str(int(time.time()))
    head = (f"POST /v1/events/wordpress HTTP/1.1\r\nHost: {host}:{port}\r\nContent-Type: application/json\r\n"
            f"X-Purgebridge-Timestamp: {ts}\r\nX-Purgebridge-Signature: {sign(SECRET, ts, body)}\r\n"
            f"Content-Length: {len(body)}\r\n\r\n")
    return head.encode() + body


def mapped_urls(change, pagination=3):
    return map_batch(SITE + "/", [change], MappingOptions(pagination=pagination)).urls


class Relay:
    """``purgebridge serve`` as a subprocess with its own queue file (or ``queue``, e.g. a redis:// URL)."""

    def __init__(self, nodes, workdir, queue=None, env=None):
        self.port = free_port(["127.0.0.1"])
        self.url = f"http://127.0.0.1:{self.port}"
        env = dict(os.environ, PURGEBRIDGE_NODES=",".join(n.name for n in nodes), PURGEBRIDGE_SECRET=SECRET,
                   PURGEBRIDGE_ADMIN_TOKEN=ADMIN, PURGEBRIDGE_SITES="blog.bench.test",
                   PURGEBRIDGE_LISTEN=f"127.0.0.1:{self.port}",
                   PURGEBRIDGE_QUEUE=queue or str(workdir / "queue.sqlite3"),
                   PURGEBRIDGE_LOG_FORMAT="json", PURGEBRIDGE_VCL="", PYTHONPATH=str(ROOT), **(env or {}))
        self.log = open(workdir / "relay.log", "w")
        self.proc = subprocess.Popen([sys.executable, "-m", "purgebridge", "serve"], env=env, cwd=workdir,
                                     stdin=subprocess.DEVNULL, stdout=self.log, stderr=subprocess.STDOUT)
        for _ in range(200):
            try:
                if requests.get(self.url + "/healthz", timeout=1).status_code == 200:
                    return
            except requests.RequestException:
                time.sleep(0.05)
        raise SystemExit(f"relay did not start, see {workdir / 'relay.log'}")

    def backlog(self):
        status = requests.get(self.url + "/v1/status", headers={"Authorization": f"Bearer {ADMIN}"}, timeout=5).json()
        q = status["queue"]
        return q.get("depth", 0) + q.get("journal_pending", 0)

    def drain(self, limit=120):
        end = time.monotonic() + limit
        while time.monotonic() < end:
            if self.backlog() == 0:
                return True
            time.sleep(0.05)
        return False

    def stop(self):
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        self.log.close()


class PurgeLog:
    """varnishlog on one node, recording when each PURGE arrived (epoch seconds)."""

    def __init__(self, vnode, path):
        self.path = path
        self.proc = subprocess.Popen(
            ["varnishlog", "-n", str(vnode.instance_dir), "-g", "request", "-q", 'ReqMethod eq "PURGE"',
             "-i", "ReqURL", "-i", "Timestamp"], stdout=open(path, "w"), stderr=subprocess.DEVNULL)

    def arrivals(self):
        self.proc.send_signal(signal.SIGINT)
        self.proc.wait(timeout=10)
        found, url = {}, None
        for line in open(self.path):
            if "ReqURL" in line:
                url = line.split()[-1]
            elif "Timestamp" in line and "Start:" in line and url:
                found.setdefault(url, []).append(float(line.split("Start:")[1].split()[0]))
                url = None
        return found


def n_purges(vnode):
    out = subprocess.run(["varnishstat", "-n", str(vnode.instance_dir), "-1", "-f", "MAIN.n_purges"],
                         capture_output=True, text=True, timeout=10).stdout
    return int(out.split()[1])


def percentile(values, p):
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(p / 100 * (len(ordered) - 1))))]


def bench_latency(cluster, relay, tmp, count, spacing, warmup=3, pagination=3):
    """Isolated single-post updates: every mapped URL's arrival on every node.

    The first ``warmup`` events are sent but not counted: the first event
    after a start pays one-time costs (about 0.6 s here: first connections to
    the nodes, first use of the mapping and the journal); the table is about
    the relay in service.
    """
    logs = [PurgeLog(vn, tmp / f"purges-{i}.log") for i, vn in enumerate(cluster.nodes)]
    time.sleep(1.0)  # varnishlog attaches
    sent = []
    session = requests.Session()
    for i in range(-warmup, count):
        change = post_change(50000 + i, 50000 + i)
        body = envelope([change])
        ts = str(int(time.time()))
        headers = {"Content-Type": "application/json", "X-Purgebridge-Timestamp": ts,
                   "X-Purgebridge-Signature": sign(SECRET, ts, body)}
        t0 = time.time()
        r = session.post(relay.url + "/v1/events/wordpress", data=body, headers=headers, timeout=5)
        assert r.status_code == 202, r.text
        if i >= 0:
            sent.append((t0, [u[len(SITE):] for u in mapped_urls(change, pagination)]))
        time.sleep(spacing)
    assert relay.drain(), "queue did not drain after (a)"
    time.sleep(2.0)  # varnishlog writes its file with a delay
    arrivals = [log.arrivals() for log in logs]
    latencies = []
    for t0, paths in sent:
        slowest = 0.0
        for per_node in arrivals:
            for path in paths:
                after = [t for t in per_node.get(path, []) if t >= t0]
                assert after, f"{path} never reached a node after its event"
                slowest = max(slowest, min(after))
        latencies.append((slowest - t0) * 1000)
    return latencies, len(sent[0][1])


def flood(relays, count, connections=8, depth=2, first_id=60000):
    """``count`` pre-signed events (each a different post) posted as fast as they are answered.

    Over ``connections`` keep-alive connections, ``depth`` requests in flight
    on each, spread round-robin over ``relays``. Every event must get its 202.
    Returns ``(started, seconds)``: when the first request went out
    (``time.perf_counter``) and how long until the last 202.
    """
    bodies = [envelope([post_change(first_id + i, i % 50)]) for i in range(count)]
    per = -(-count // connections)
    wires = [[signed_request(b, "127.0.0.1", relays[k % len(relays)].port) for b in bodies[k * per:(k + 1) * per]]
             for k in range(connections)]
    results = [None] * connections

    def client(k):
        conn = Connection("127.0.0.1", relays[k % len(relays)].port, timeout=30)
        responses, error = conn.exchange(wires[k], depth)
        conn.close()
        results[k] = ([r.status for r in responses], error)

    threads = [threading.Thread(target=client, args=(k,)) for k in range(connections)]
    started = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=180)
    elapsed = time.perf_counter() - started
    statuses = [s for r in results if r for s in r[0]]
    errors = {r[1] for r in results if r and r[1]}
    assert statuses.count(202) == count, (f"{statuses.count(202)}/{count} accepted; other answers "
                                          f"{set(statuses) - {202}}; errors {errors}")
    return started, elapsed


def bench_accept(relay, count):
    """(accepted/s to the last 202, accepted *and* purged/s until the queue is empty) for one flood."""
    started, elapsed = flood([relay], count)
    assert relay.drain(limit=300), "queue did not drain after (b)"
    return count / elapsed, count / (time.perf_counter() - started)


def held_seconds(relay):
    """``{how: seconds}`` the relay held its purge work back for floods, from /metrics."""
    text = requests.get(relay.url + "/metrics", timeout=5).text
    held = {}
    for line in text.splitlines():
        if line.startswith("purgebridge_worker_held_seconds_total{"):
            how = line.split('how="', 1)[1].split('"', 1)[0]
            held[how] = float(line.rsplit(" ", 1)[1])
    return held


def bench_steady(relay, rate=300, seconds=10):
    """A steady stream well below saturation: is the purge work ever paced, and does it keep up?

    Returns (events/s actually sent, seconds paced during the stream, backlog
    at the last 202, seconds from the last 202 until everything was purged).
    """
    count = int(rate * seconds)
    wire = [signed_request(envelope([post_change(80000 + i, i % 50)]), "127.0.0.1", relay.port)
            for i in range(count)]
    before = held_seconds(relay).get("paced", 0.0)
    conn = Connection("127.0.0.1", relay.port, timeout=30)
    t0 = time.perf_counter()
    for i, request in enumerate(wire):
        delay = t0 + i / rate - time.perf_counter()
        if delay > 0:
            time.sleep(delay)
        responses, error = conn.exchange([request], 1)
        assert responses and responses[0].status == 202, error
    sent_rate = count / (time.perf_counter() - t0)
    conn.close()
    backlog, last = relay.backlog(), time.perf_counter()
    assert relay.drain(limit=120), "queue did not drain after the steady stream"
    return sent_rate, held_seconds(relay).get("paced", 0.0) - before, backlog, time.perf_counter() - last


def bench_burst(cluster, relay, events=1000, posts=20):
    changes = [post_change(70000 + (i % posts), 700 + (i % posts)) for i in range(events)]
    naive = sum(len(mapped_urls(c)) for c in changes) * len(cluster.nodes)
    paths = sorted({u[len(SITE):] for c in changes[:posts] for u in mapped_urls(c)})
    host = "blog.bench.test"
    cluster.warm(paths, host)
    before = [n_purges(vn) for vn in cluster.nodes]
    stop = threading.Event()
    reads = [0]

    def reader():  # keeps re-caching the pages the burst purges
        end = time.monotonic() + 60
        while not stop.is_set() and time.monotonic() < end:
            for vn in cluster.nodes:
                for path in paths[:40]:
                    cluster.xcache(vn, path, host)
                    reads[0] += 1

    reading = threading.Thread(target=reader)
    reading.start()
    wire = [signed_request(envelope([c]), "127.0.0.1", relay.port) for c in changes]
    conns = 8
    statuses = []

    # Nine tenths of the burst while the reader re-caches pages; then the reader
    # stops and the last tenth (which touches every page again) goes out. A page
    # still cached at the end was cached before an event that changed it: stale.
    head, tail = wire[:events * 9 // 10], wire[events * 9 // 10:]
    per = -(-len(head) // conns)

    def client(k, batch):
        conn = Connection("127.0.0.1", relay.port, timeout=30)
        responses, _error = conn.exchange(batch, 1)
        conn.close()
        statuses.extend(r.status for r in responses)

    senders = [threading.Thread(target=client, args=(k, head[k * per:(k + 1) * per])) for k in range(conns)]
    for t in senders:
        t.start()
    for t in senders:
        t.join(timeout=120)
    stop.set()
    reading.join(timeout=70)
    client(0, tail)
    assert statuses.count(202) == events, f"only {statuses.count(202)} of {events} accepted"
    assert relay.drain(), "queue did not drain"
    time.sleep(0.5)
    sent = sum(n_purges(vn) - b for vn, b in zip(cluster.nodes, before))
    stale = [(vn.name, p) for vn in cluster.nodes for p in paths if cluster.xcache(vn, p, host) == "HIT"]
    return sent, naive, stale, len(paths), reads[0]


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--latency-events", type=int, default=100)
    parser.add_argument("--spacing", type=float, default=0.6,
                        help="seconds between latency events (more than 1/PURGEBRIDGE_BATCH_RATE: isolated events)")
    parser.add_argument("--accept-events", type=int, default=3000)
    parser.add_argument("--flood-events", type=int, default=15000,
                        help="a flood longer than PURGEBRIDGE_FLOOD_DEFER: the sustained rates")
    parser.add_argument("--write", action="store_true", help="update docs/benchmarks.md")
    args = parser.parse_args()
    watchdog(DEADLINE)
    tmp = pathlib.Path(tempfile.mkdtemp(prefix="purgebridge-bench-"))
    with start_cluster(hosts=HOSTS, workdir=tmp / "cluster") as cluster:
        relay = Relay([vn.node for vn in cluster.nodes], tmp)
        try:
            latencies, urls_per_event = bench_latency(cluster, relay, tmp, args.latency_events, args.spacing)
            print(f"(a) p50 {percentile(latencies, 50):.1f} ms  p99 {percentile(latencies, 99):.1f} ms", file=sys.stderr)
            rate, purged_rate = bench_accept(relay, args.accept_events)
            print(f"(b) {rate:,.0f} events/s accepted, {purged_rate:,.0f}/s accepted and purged", file=sys.stderr)
            held_before = held_seconds(relay)
            flood_rate, flood_purged = bench_accept(relay, args.flood_events)
            flood_held = {how: seconds - held_before.get(how, 0.0) for how, seconds in held_seconds(relay).items()}
            print(f"(b) flood of {args.flood_events}: {flood_rate:,.0f} events/s accepted, "
                  f"{flood_purged:,.0f}/s accepted and purged", file=sys.stderr)
            steady_rate, steady_paced, steady_backlog, steady_drain = bench_steady(relay)
            print(f"(b) steady {steady_rate:,.0f} events/s: paced {steady_paced:.2f} s, backlog {steady_backlog} "
                  f"at the last 202, drained {steady_drain:.2f} s later", file=sys.stderr)
            sent, naive, stale, distinct, reads = bench_burst(cluster, relay)
            print(f"(c) {sent} PURGEs vs {naive} naive; stale {len(stale)}", file=sys.stderr)
        finally:
            relay.stop()
        # (a) for the "post mapping to about 30 URLs": fewer archive pages.
        (tmp / "short").mkdir()
        short = Relay([vn.node for vn in cluster.nodes], tmp / "short", env={"PURGEBRIDGE_PAGINATION": "1"})
        try:
            short_latencies, short_urls = bench_latency(cluster, short, tmp / "short", args.latency_events,
                                                        args.spacing, pagination=1)
            print(f"(a) {short_urls} URLs: p50 {percentile(short_latencies, 50):.1f} ms  "
                  f"p99 {percentile(short_latencies, 99):.1f} ms", file=sys.stderr)
        finally:
            short.stop()
        # The same sustained flood on a relay with pacing off, side by side with the one above.
        (tmp / "unpaced").mkdir()
        unpaced = Relay([vn.node for vn in cluster.nodes], tmp / "unpaced", env={"PURGEBRIDGE_FLOOD_SHARE": "1"})
        try:
            bench_accept(unpaced, 300)  # the same warm-up the first relay had from (a)
            plain_rate, plain_purged = bench_accept(unpaced, args.flood_events)
            print(f"(b) flood of {args.flood_events} without pacing: {plain_rate:,.0f} events/s accepted, "
                  f"{plain_purged:,.0f}/s accepted and purged", file=sys.stderr)
        finally:
            unpaced.stop()
    p50, p99 = percentile(latencies, 50), percentile(latencies, 99)
    short_p50, short_p99 = percentile(short_latencies, 50), percentile(short_latencies, 99)
    ratio = sent / naive
    text = "\n".join([
        "## Relay end to end (`bench/relay.py`)", "",
        f"Three varnishd nodes (vcl/wordpress.vcl) on 127.0.0.11-13 and one `purgebridge serve` "
        f"(granian, SQLite queue, synchronous=FULL), all in one run. Machine: {machine()}.", "",
        "| measure | result | target | |",
        "|---|---:|---:|---|",
        f"| (a) event accepted -> all its URLs purged on 3 nodes, p50 ({len(short_latencies)} isolated events "
        f"after 3 not counted, one every {args.spacing:g} s): a post mapping to {short_urls} URLs "
        f"(PURGEBRIDGE_PAGINATION=1), the issue's \"about 30\" | {short_p50:.1f} ms | | |",
        f"| (a) same, p99 | {short_p99:.1f} ms | <= 10 ms | {'met' if short_p99 <= 10 else 'NOT met'} |",
        f"| (a) p50, the same post with the default PURGEBRIDGE_PAGINATION=3: {urls_per_event} URLs "
        f"| {p50:.1f} ms | | |",
        f"| (a) same, p99 | {p99:.1f} ms | | {'under' if p99 <= 10 else 'over'} 10 ms with {urls_per_event} URLs |",
        f"| (b) signed events accepted per second (3,000 events, 8 connections) | {rate:,.0f}/s | >= 2,000/s "
        f"| {'met' if rate >= 2000 else 'NOT met'} |",
        f"| (b) same 3,000 events accepted *and* purged on all 3 nodes (until the queue is empty) "
        f"| {purged_rate:,.0f}/s | | |",
        f"| (b) sustained: a flood of {args.flood_events:,} events, accepted per second "
        f"| {flood_rate:,.0f}/s | >= 2,000/s | {'met' if flood_rate >= 2000 else 'NOT met'} |",
        f"| (b) sustained: the same flood accepted *and* purged | {flood_purged:,.0f}/s | | |",
        f"| (b) sustained, the same flood on a relay with pacing off (PURGEBRIDGE_FLOOD_SHARE=1): accepted "
        f"per second; accepted *and* purged | {plain_rate:,.0f}/s; {plain_purged:,.0f}/s | | "
        f"pacing: x{flood_rate / plain_rate:.2f} accepted, x{flood_purged / plain_purged:.2f} purged |",
        f"| (b) sustained: seconds the purge work was held back during it, deferred / paced "
        f"| {flood_held.get('deferred', 0):.1f} s / {flood_held.get('paced', 0):.1f} s "
        f"of {args.flood_events / flood_rate:.1f} s | | |",
        f"| (b) steady stream, {steady_rate:,.0f} events/s for 10 s: seconds the purge work was paced "
        f"| {steady_paced:.2f} s | 0 | {'met' if steady_paced == 0 else 'NOT met'} |",
        f"| (b) steady stream: events not yet purged at its last 202; all purged that much later "
        f"| {steady_backlog} / {steady_drain:.2f} s | | |",
        f"| (c) burst of 1,000 updates to 20 posts: PURGEs executed by the nodes / sent without coalescing "
        f"| {sent:,} / {naive:,} = {ratio:.1%} | <= 5 % | {'met' if ratio <= 0.05 else 'NOT met'} |",
        f"| (c) stale URLs after the burst ({distinct} URLs x 3 nodes, {reads:,} re-caching reads during it) "
        f"| {len(stale)} | 0 | {'met' if not stale else 'NOT met'} |",
        "",
        "(a) is measured from just before the POST to the arrival (varnishlog `Timestamp Start`) of the last "
        "of the event's mapped URLs on the slowest node; the first 3 events after the start are not counted "
        "(the very first pays about 0.6 s of one-time costs). Events closer together than "
        "1/PURGEBRIDGE_BATCH_RATE (0.5 s) are paced and merged on purpose -- that is what makes (c) small; "
        "a page changed during a burst is purged within about 0.5 s, plus up to PURGEBRIDGE_FLOOD_DEFER (2 s) "
        "while a flood is being accepted. (b) accepted/s is measured to the last "
        "202. The 3,000 events are each a different post (46 URLs mapped, about 4 of them not shared with the other events of a batch, x 3 nodes), "
        "posted as fast as the relay answers: a flood, during which the relay lets its purge work wait up to "
        "PURGEBRIDGE_FLOOD_DEFER (2 s) so that accepting comes first. The 3,000 fit in that time; the "
        "sustained rows are a flood several times longer: once it has lasted 2 s and keeps the relay process "
        "saturated, the purge work is paced to PURGEBRIDGE_FLOOD_SHARE (0.1) of a CPU until the flood ends "
        "(docs/operations.md), and the \"accepted and purged\" rows say when the last purge was confirmed. "
        "The steady stream (one connection, a request every 1/rate s) is far below saturation: its purges must "
        "never be paced and keep up with it.",
    ])
    print(text)
    if args.write:
        write_section("relay", text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
