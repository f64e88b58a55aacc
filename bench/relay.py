"""Benchmark: the relay end to end -- freshness, accepted (and purged) events per second, burst coalescing.

Not a test. Starts three varnishd nodes (127.0.0.11-13, vcl/wordpress.vcl),
three more running vcl/wordpress-noxkey.vcl (127.0.0.21-23: PURGE only, no
key purges) and a real ``purgebridge serve`` for each, then measures in one
run, side by side:

  (a) event accepted -> purged on all 3 nodes, p50/p99, for single post
      updates at the relay's default settings (a post maps to 46 URLs),
      both VCLs: isolated events, and events of a steady 300 events/s
      stream of distinct posts. Arrival times come from ``varnishlog`` on
      every node (the Timestamp of each PURGE), so the relay is not asked to
      time itself. Before each isolated event the same run measures its
      *floor*: a SQLite commit with synchronous=FULL next to the relay's
      queue (the journal's fsync) plus a raw pipelined PURGE of the event's
      URLs to the same 3 nodes (pre-encoded, one kept-alive socket per node,
      answers only counted). Targets: isolated p99 <= 2 x the floor's p99,
      stream p99 <= 25 ms.
  (b) a sustained flood of 15,000 pre-signed distinct post updates over 8
      keep-alive connections: accepted per second (to the last 202) and
      accepted *and* purged per second (until the queue is empty), and as
      its ceiling the raw sender's rate: every mapped URL of the flood's
      first events pipelined raw to the 3 nodes, in events per second.
      Target >= 1,500/s accepted and purged.
  (c) a burst of 1,000 updates to 20 posts sharing the front page and the
      category: PURGE requests the nodes executed (varnishstat MAIN.n_purges)
      against what a relay without coalescing sends (every mapped URL of every
      event to every node, computed with the relay's own mapping), while a
      reader re-caches pages throughout; afterwards every URL must be a MISS
      on every node (zero stale). Target <= 5 %.

    python bench/relay.py [--write]
"""

import argparse
import bisect
import json
import pathlib
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time

ROOT = pathlib.Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from common import load, machine, watchdog, write_section  # noqa: E402
from purgebridge.testing.cluster import start_cluster  # noqa: E402
from purgebridge.config.settings import Settings  # noqa: E402
from purgebridge.core.invalidation import purge_for_url  # noqa: E402
from purgebridge.core.mapping import MappingOptions, map_batch  # noqa: E402
from purgebridge.core.signing import sign  # noqa: E402
from purgebridge.testing import RelayError, RelayProcess  # noqa: E402
from purgebridge.delivery.transport import Connection  # noqa: E402

HOSTS = ("127.0.0.11", "127.0.0.12", "127.0.0.13")
NOXKEY_HOSTS = ("127.0.0.21", "127.0.0.22", "127.0.0.23")
SITE = "http://blog.bench.test"
SECRET = "bench-secret-5f1d9a2c"
ADMIN = "bench-admin-token-7e3b"
WINDOW = Settings.batch_gap  # the default PURGEBRIDGE_BATCH_GAP: the coalescing window the run measures
DEADLINE = 840  # seconds for the whole run; every loop below also has its own bound


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


class Relay(RelayProcess):
    """The relay under bench (started): this benchmark's nodes, site and secret; ``queue`` e.g. a redis:// URL."""

    def __init__(self, nodes, workdir, queue=None, env=None):
        settings = {"PURGEBRIDGE_NODES": ",".join(n.name for n in nodes), "PURGEBRIDGE_SECRET": SECRET,
                    "PURGEBRIDGE_SITES": "blog.bench.test", "PURGEBRIDGE_LOG_FORMAT": "json",
                    "PURGEBRIDGE_VCL": "", **(env or {})}
        if queue:
            settings["PURGEBRIDGE_QUEUE"] = queue
        super().__init__(workdir, env=settings, admin_token=ADMIN)
        self.start()

    def drain(self, limit=120):
        """True once everything accepted is purged (queue and journal empty), False after ``limit`` seconds."""
        try:
            self.drained(limit)
        except RelayError:
            return False
        return True


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
        # One block per request ("*   << Request >>"); its Start timestamp comes before its ReqURL.
        found, url, start = {}, None, None
        for line in open(self.path):
            if line.startswith("*"):
                url = start = None
            elif "ReqURL" in line:
                url = line.split()[-1]
            elif "Timestamp" in line and "Start:" in line:
                start = float(line.split("Start:")[1].split()[0])
            if url is not None and start is not None:
                found.setdefault(url, []).append(start)
                url = start = None
        return found


def n_purges(vnode):
    out = subprocess.run(["varnishstat", "-n", str(vnode.instance_dir), "-1", "-f", "MAIN.n_purges"],
                         capture_output=True, text=True, timeout=10).stdout
    return int(out.split()[1])


def percentile(values, p):
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(p / 100 * (len(ordered) - 1))))]


class RawSender:
    """The floor and the ceiling: PURGEs pre-encoded and pipelined on one kept-alive socket per node.

    No parsing beyond counting status lines, no bookkeeping, no retries:
    what sending the same requests costs with nothing of the relay in the way.
    """

    def __init__(self, nodes):
        self.socks = []
        for node in nodes:
            sock = socket.create_connection((node.host, node.port), timeout=60)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            self.socks.append(sock)

    @staticmethod
    def encode(urls):
        return b"".join(purge_for_url(url).encode() for url in urls)

    def send(self, payload, count):
        """Write ``payload`` (``count`` requests) to every node, then read until every node answered all."""
        if len(payload) <= 65536:  # fits the socket buffers: written at once, read node after node
            for sock in self.socks:
                sock.sendall(payload)
            for sock in self.socks:
                self._read(sock, count)
            return
        # Larger: a node stops reading while its answers are not read, so each node gets a thread
        # that writes and one that reads at the same time.
        errors = []

        def one(sock):
            writer = threading.Thread(target=sock.sendall, args=(payload,))
            writer.start()
            try:
                self._read(sock, count)
            except Exception as exc:  # noqa: BLE001 - reported by send() below
                errors.append(exc)
            writer.join(120)

        threads = [threading.Thread(target=one, args=(sock,)) for sock in self.socks]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(180)
        assert not errors, errors

    @staticmethod
    def _read(sock, count):
        seen, tail = 0, b""
        while seen < count:
            data = sock.recv(262144)
            assert data, "a node closed the raw connection"
            chunk = tail + data
            seen += chunk.count(b"HTTP/1.1 ") - tail.count(b"HTTP/1.1 ")
            tail = chunk[-9:]

    def close(self):
        for sock in self.socks:
            sock.close()


class JournalCommit:
    """One journal-sized row committed with synchronous=FULL in WAL mode, next to the relay's queue."""

    def __init__(self, directory):
        self.db = sqlite3.connect(directory / "floor.sqlite3", isolation_level=None)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=FULL")
        self.db.execute("CREATE TABLE IF NOT EXISTS events (id INTEGER PRIMARY KEY, body BLOB)")
        self.body = envelope([post_change(1, 1)])

    def commit(self):
        self.db.execute("BEGIN IMMEDIATE")
        self.db.execute("INSERT INTO events (body) VALUES (?)", (self.body,))
        self.db.execute("COMMIT")

    def close(self):
        self.db.close()


def floor_sample(raw, journal, urls):
    """Seconds for the journal's commit plus a raw pipelined PURGE of ``urls`` to every node."""
    payload = raw.encode(urls)
    started = time.perf_counter()
    journal.commit()
    raw.send(payload, len(urls))
    return time.perf_counter() - started


def bench_latency(cluster, relay, tmp, count, spacing, warmup=3, pagination=3, accepted=None, floor=None):
    """Isolated single-post updates: every mapped URL's arrival on every node.

    The first ``warmup`` events are sent but not counted: the first event
    after a start pays one-time costs (about 0.6 s here: first connections to
    the nodes, first use of the mapping and the journal); the table is about
    the relay in service.

    Each request is signed and encoded before ``t0`` and sent on a kept-alive
    connection with the same small client as the stream and the flood
    (``transport.Connection``). It used to be ``requests``, whose own Python
    (preparing the request, then reading the answer) put about 0.7 ms before
    the first byte left and 0.6 ms after the 202 arrived into every figure
    here (measured with timestamps in the relay): a cost of the benchmark's
    client, which WordPress's curl does not have.
    """
    logs = [PurgeLog(vn, tmp / f"purges-{i}.log") for i, vn in enumerate(cluster.nodes)]
    time.sleep(1.0)  # varnishlog attaches
    sent = []
    targets = getattr(relay, "relays", [relay])  # bench/scale.py's Relays: round-robin over several relays
    conns = [Connection("127.0.0.1", target.port, timeout=5) for target in targets]
    raw = RawSender([vn.node for vn in cluster.nodes]) if floor is not None else None
    journal = JournalCommit(tmp) if floor is not None else None
    for i in range(-warmup, count):
        change = post_change(50000 + i, 50000 + i)
        k = i % len(targets)
        wire = signed_request(envelope([change]), "127.0.0.1", targets[k].port)
        if raw is not None and i >= 0:
            floor.append(floor_sample(raw, journal, mapped_urls(change, pagination)) * 1000)
            time.sleep(0.03)
        t0 = time.time()
        responses, error = conns[k].exchange([wire], 1)
        assert responses and responses[0].status == 202, (error, responses and responses[0].body)
        if accepted is not None and i >= 0:  # how much of the latency is the 202 (journal commit included)
            accepted.append((time.time() - t0) * 1000)
        if i >= 0:
            sent.append((t0, [u[len(SITE):] for u in mapped_urls(change, pagination)]))
        time.sleep(spacing)
    for conn in conns:
        conn.close()
    if raw is not None:
        raw.close()
        journal.close()
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


def raw_ceiling(cluster, count, first_id=60000, distinct=False):
    """The raw sender's rate on a flood, in events/s: every mapped URL of ``count`` distinct post updates.

    ``distinct``: each URL once (what a relay that coalesced the whole flood
    perfectly would still have to send), instead of every event's URLs.
    """
    urls = [url for i in range(count) for url in mapped_urls(post_change(first_id + i, i % 50))]
    if distinct:
        urls = list(dict.fromkeys(urls))
    payload = RawSender.encode(urls)
    raw = RawSender([vn.node for vn in cluster.nodes])
    try:
        started = time.perf_counter()
        raw.send(payload, len(urls))
        return count / (time.perf_counter() - started)
    finally:
        raw.close()


def mapping_rate(count, first_id=60000):
    """Distinct post updates ``core.mapping`` maps per second on one core: the worker's own bound on a flood.

    The worker must map every event (journal body -> URLs and keys) before
    it can purge anything, on one thread of one process; this is that step
    alone, in this process, on the flood's events.
    """
    changes = [post_change(first_id + i, i % 50) for i in range(count)]
    options = MappingOptions()
    started = time.perf_counter()
    for change in changes:
        map_batch(SITE + "/", [change], options)
    return count / (time.perf_counter() - started)


def bench_accept(relay, count):
    """(accepted/s to the last 202, accepted *and* purged/s until the queue is empty) for one flood."""
    started, elapsed = flood([relay], count)
    assert relay.drain(limit=300), "queue did not drain after (b)"
    return count / elapsed, count / (time.perf_counter() - started)


def bench_stream(cluster, relay, tmp, rate=300, seconds=10, pagination=3, first_id=80000):
    """A steady stream of distinct post updates: each event's latency to its last URL on the slowest node.

    One connection, a request every 1/rate s (pre-signed); returns the
    latencies in ms (the first second not counted: the stream is settling)
    and the rate actually sent.
    """
    count = int(rate * seconds)
    changes = [post_change(first_id + i, i % 50) for i in range(count)]
    wire = [signed_request(envelope([c]), "127.0.0.1", relay.port) for c in changes]
    logs = [PurgeLog(vn, tmp / f"stream-{i}.log") for i, vn in enumerate(cluster.nodes)]
    time.sleep(1.0)  # varnishlog attaches
    conn = Connection("127.0.0.1", relay.port, timeout=30)
    sent = []
    t0 = time.perf_counter()
    for i, request in enumerate(wire):
        delay = t0 + i / rate - time.perf_counter()
        if delay > 0:
            time.sleep(delay)
        at = time.time()
        responses, error = conn.exchange([request], 1)
        assert responses and responses[0].status == 202, error
        sent.append(at)
    sent_rate = count / (time.perf_counter() - t0)
    conn.close()
    assert relay.drain(), "queue did not drain after the stream"
    time.sleep(2.0)  # varnishlog writes its file with a delay
    arrivals = [{path: sorted(times) for path, times in log.arrivals().items()} for log in logs]
    latencies = []
    for i in range(rate, count):  # the first second is not counted
        paths = [u[len(SITE):] for u in mapped_urls(changes[i], pagination)]
        slowest = 0.0
        for per_node in arrivals:
            for path in paths:
                times = per_node.get(path, [])
                k = bisect.bisect_left(times, sent[i])
                assert k < len(times), f"{path} never reached a node after its event"
                slowest = max(slowest, times[k])
        latencies.append((slowest - sent[i]) * 1000)
    return latencies, sent_rate


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
    started = time.perf_counter()
    for t in senders:
        t.start()
    for t in senders:
        t.join(timeout=120)
    stop.set()
    reading.join(timeout=70)
    client(0, tail)
    seconds = time.perf_counter() - started
    assert statuses.count(202) == events, f"only {statuses.count(202)} of {events} accepted"
    assert relay.drain(), "queue did not drain"
    time.sleep(0.5)
    sent = sum(n_purges(vn) - b for vn, b in zip(cluster.nodes, before))
    stale = [(vn.name, p) for vn in cluster.nodes for p in paths if cluster.xcache(vn, p, host) == "HIT"]
    return sent, naive, stale, len(paths), reads[0], seconds


def freshness(cluster, tmp, name, args):
    """(a) on one cluster: isolated events with their floor, and a steady stream, at the default settings."""
    (tmp / name).mkdir()
    relay = Relay([vn.node for vn in cluster.nodes], tmp / name)
    try:
        accepted, floor = [], []
        isolated, urls = bench_latency(cluster, relay, tmp / name, args.latency_events, args.spacing,
                                       accepted=accepted, floor=floor)
        print(f"(a) {name}: isolated {urls} URLs: p50 {percentile(isolated, 50):.1f} ms  "
              f"p99 {percentile(isolated, 99):.1f} ms; 202 after p50 {percentile(accepted, 50):.1f} ms; "
              f"floor p50 {percentile(floor, 50):.1f} p99 {percentile(floor, 99):.1f} ms", file=sys.stderr)
        stream, rate = bench_stream(cluster, relay, tmp / name, rate=args.stream_rate, seconds=args.stream_seconds)
        print(f"(a) {name}: stream of {rate:,.0f}/s: p50 {percentile(stream, 50):.1f} ms  "
              f"p99 {percentile(stream, 99):.1f} ms", file=sys.stderr)
    finally:
        relay.stop()
    return isolated, urls, stream, rate, accepted, floor


def verdict(ok):
    return "met" if ok else "NOT met"


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--latency-events", type=int, default=60)
    parser.add_argument("--spacing", type=float, default=0.15,
                        help="seconds between isolated events (more than PURGEBRIDGE_BATCH_GAP)")
    parser.add_argument("--stream-rate", type=int, default=300, help="events per second of the steady stream")
    parser.add_argument("--stream-seconds", type=int, default=10)
    parser.add_argument("--accept-events", type=int, default=3000)
    parser.add_argument("--flood-events", type=int, default=15000)
    parser.add_argument("--ceiling-events", type=int, default=3000,
                        help="events of the flood the raw sender sends (its rate is the flood's ceiling)")
    parser.add_argument("--note", default="", help="a sentence about the machine's load during the run")
    parser.add_argument("--write", action="store_true", help="update docs/benchmarks.md")
    args = parser.parse_args()
    watchdog(DEADLINE)
    tmp = pathlib.Path(tempfile.mkdtemp(prefix="purgebridge-bench-"))
    fresh = {}
    load_before = load()
    with start_cluster(hosts=HOSTS, workdir=tmp / "cluster") as cluster:
        fresh["xkey"] = freshness(cluster, tmp, "xkey", args)
        relay = Relay([vn.node for vn in cluster.nodes], tmp)
        try:
            rate, purged_rate = bench_accept(relay, args.accept_events)
            print(f"(b) {rate:,.0f} events/s accepted, {purged_rate:,.0f}/s accepted and purged", file=sys.stderr)
            flood_rate, flood_purged = bench_accept(relay, args.flood_events)
            ceiling = raw_ceiling(cluster, args.ceiling_events)
            ceiling_distinct = raw_ceiling(cluster, args.ceiling_events, distinct=True)
            mapped = mapping_rate(args.ceiling_events)
            print(f"(b) flood of {args.flood_events}: {flood_rate:,.0f} events/s accepted, "
                  f"{flood_purged:,.0f}/s accepted and purged; raw sender {ceiling:,.0f} events/s", file=sys.stderr)
            sent, naive, stale, distinct, reads, burst_seconds = bench_burst(cluster, relay)
            print(f"(c) {sent} PURGEs vs {naive} naive; stale {len(stale)}", file=sys.stderr)
        finally:
            relay.stop()
    with start_cluster(ROOT / "vcl" / "wordpress-noxkey.vcl", hosts=NOXKEY_HOSTS, workdir=tmp / "noxkey-cluster") as cluster:
        fresh["noxkey"] = freshness(cluster, tmp, "noxkey", args)
    load_after = load()
    ratio = sent / naive
    window_bound = distinct * (burst_seconds / WINDOW + 2) * len(HOSTS)
    rows = []
    for name, label in (("xkey", "vcl/wordpress.vcl"), ("noxkey", "vcl/wordpress-noxkey.vcl (PURGE only)")):
        isolated, urls, stream, stream_rate, accepted, floor = fresh[name]
        bound = 2 * percentile(floor, 99)
        rows += [
            f"| (a) {label}: isolated events ({len(isolated)}, one every {args.spacing:g} s, a post mapping to "
            f"{urls} URLs), event -> purged on 3 nodes, p50 / p99 | {percentile(isolated, 50):.1f} / "
            f"{percentile(isolated, 99):.1f} ms | p99 <= 2 x floor p99 = {bound:.1f} ms | "
            f"{verdict(percentile(isolated, 99) <= bound)} ({percentile(isolated, 99) / percentile(floor, 99):.2f} x) |",
            f"| (a) {label}: floor, before each of those events: journal commit (synchronous=FULL) + raw pipelined "
            f"PURGE of its {urls} URLs to the 3 nodes, p50 / p99 | {percentile(floor, 50):.1f} / "
            f"{percentile(floor, 99):.1f} ms | | |",
            f"| (a) {label}: of which the POST until its 202 (the journal's fsync included), p50 / p99 "
            f"| {percentile(accepted, 50):.1f} / {percentile(accepted, 99):.1f} ms | | |",
            f"| (a) {label}: the same during a steady stream of {stream_rate:,.0f} distinct posts/s "
            f"({len(stream)} events), p50 / p99 | {percentile(stream, 50):.1f} / {percentile(stream, 99):.1f} ms "
            f"| p99 <= 25 ms | {verdict(percentile(stream, 99) <= 25)} |",
        ]
    text = "\n".join([
        "## Relay end to end (`bench/relay.py`)", "",
        "Three varnishd nodes on 127.0.0.11-13 (vcl/wordpress.vcl) and three on 127.0.0.21-23 "
        "(vcl/wordpress-noxkey.vcl), one `purgebridge serve` at a time (granian API process + purge worker "
        "process, SQLite queue, synchronous=FULL), every setting at its default (PURGEBRIDGE_PAGINATION 3, "
        f"PURGEBRIDGE_BATCH_GAP {WINDOW * 1000:g} ms), all in one run. "
        f"Machine: {machine()}. Load average before / after the run: {load_before} / {load_after}."
        + (f" {args.note}" if args.note else ""), "",
        "| measure | result | target | |",
        "|---|---:|---:|---|",
        *rows,
        f"| (b) {args.accept_events:,} distinct post updates ({urls} URLs each), 8 connections: accepted per "
        f"second; accepted *and* purged on 3 nodes | {rate:,.0f}/s; {purged_rate:,.0f}/s | | |",
        f"| (b) sustained flood of {args.flood_events:,} distinct post updates: accepted *and* purged per second "
        f"| {flood_purged:,.0f}/s | >= 1,500/s | {verdict(flood_purged >= 1500)} |",
        f"| (b) the same flood, accepted per second (to the last 202) | {flood_rate:,.0f}/s | | |",
        f"| (b) ceiling: the raw sender, every mapped URL of {args.ceiling_events:,} of the flood's events "
        f"pipelined to the 3 nodes | {ceiling:,.0f} events/s | | |",
        f"| (b) the same, each distinct URL of those events once (a perfectly coalescing sender) "
        f"| {ceiling_distinct:,.0f} events/s | | |",
        f"| (b) the worker's own bound: {args.ceiling_events:,} of the flood's events mapped to URLs and keys "
        f"(`core.mapping`, one thread, no I/O) | {mapped:,.0f} events/s | | |",
        f"| (c) burst of 1,000 updates to 20 posts: PURGEs executed by the nodes / sent without coalescing "
        f"| {sent:,} / {naive:,} = {ratio:.1%} | <= 5 % | {verdict(ratio <= 0.05)} |",
        f"| (c) the burst lasted (first POST to last 202) | {burst_seconds:.2f} s | | |",
        f"| (c) the window's bound for it: each URL at most once per window, plus the first and the trailing "
        f"purge: {distinct} URLs x ({burst_seconds:.2f} s / {WINDOW * 1000:g} ms + 2) x 3 nodes "
        f"| {window_bound:,.0f} = {window_bound / naive:.1%} "
        f"| | |",
        f"| (c) stale URLs after the burst ({distinct} URLs x 3 nodes, {reads:,} re-caching reads during it) "
        f"| {len(stale)} | 0 | {verdict(not stale)} |",
        "",
        "(a) is measured from just before the POST (signed and encoded beforehand, written on a kept-alive "
        "connection, as the stream's) to the arrival (varnishlog `Timestamp Start`) of the last "
        "of the event's mapped URLs on the slowest node, counting for each URL its first arrival after that "
        "POST; the first 3 isolated events and the stream's first second are not counted. The floor is what "
        "any relay that makes an event durable before answering and then purges its URLs must pay: one "
        "fsync'd SQLite commit next to the relay's queue, then the event's URLs pre-encoded and written at "
        "once on one kept-alive socket per node, until every node answered all of them; it is taken 30 ms "
        "before each isolated event, so both see the same machine. Coalescing is per (node, URL): a URL not "
        "sent to a node within PURGEBRIDGE_BATCH_GAP goes at once, a URL sent within it waits until the "
        "window has passed and then goes once for every update meanwhile (docs/operations.md). An isolated "
        "event's URLs all go at once; in the stream the URLs every post shares (front page, its pages, "
        "feeds, category, date archives) are purged once per window each, their trailing purge at most a "
        "window after the event. On the PURGE-only VCL the relay learns from the first 501 that the nodes "
        "have no key purges and sends URLs only. (b) \"accepted and purged\" counts from the first POST "
        "until the queue and the journal are empty; the raw sender sends every event's URLs without "
        "coalescing, so a relay that coalesces the shared URLs may beat it. (c): each of the 217 URLs is "
        "purged at most once per window per node while the burst lasts, and once after its last update "
        "(the stale row checks that).",
    ])
    print(text)
    if args.write:
        write_section("relay", text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
