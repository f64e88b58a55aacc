"""Benchmark: several relays on one Redis against one relay on SQLite -- accepted events/s and latency.

Not a test. One run, side by side, on one machine: three varnishd nodes
(127.0.0.11-13), a private redis-server (append-only file, ``appendfsync
always``: as durable as SQLite's synchronous=FULL), and in turn

  - 1 relay on SQLite (the baseline),
  - 1, 2 and 3 relays sharing the Redis queue,

each measured for
  (a) event accepted -> purged on all 3 nodes, p50/p99 (``relay.bench_latency``:
      arrival times from varnishlog), isolated events posted round-robin to the relays;
  (b) signed events accepted (202) per second, 3,000 pre-signed events over 8
      keep-alive connections spread over the relays.
It also measures Redis memory per waiting delivery and per journal event
(used_memory before/after 20,000 of each), the basis of docs/scaling.md's sizing.

    python bench/scale.py [--write]
"""

import argparse
import pathlib
import sys
import tempfile

ROOT = pathlib.Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))
sys.path.insert(0, str(ROOT / "tests"))

from common import machine, watchdog, write_section  # noqa: E402
from fixtures.redis_server import start_redis  # noqa: E402
from purgebridge.core.invalidation import purge_for_url  # noqa: E402
from purgebridge.testing.cluster import start_cluster  # noqa: E402
from purgebridge.store.redis import RedisQueue  # noqa: E402
from relay import HOSTS, Relay, bench_latency, envelope, flood, percentile, post_change  # noqa: E402

DEADLINE = 900  # seconds for the whole run


class Relays:
    """Several relays seen as one by ``relay.bench_latency`` (it posts round-robin over ``relays``)."""

    def __init__(self, relays):
        self.relays = relays

    def drain(self, limit=120):
        return self.relays[0].drain(limit)  # one shared queue: any relay's status shows all of it

    def stop(self):
        for relay in self.relays:
            relay.stop()


def bench_accept(relays, count, first_id=60000):
    """Signed events accepted per second, the connections spread round-robin over the relays."""
    _started, elapsed = flood(relays, count, first_id=first_id)
    return count / elapsed


def redis_memory(url, count=20000):
    """Bytes of Redis memory per waiting (node, item) delivery and per journal event (~1 KB body)."""
    queue = RedisQueue(url, prefix="purgebridge-sizing:")
    try:
        base = queue.memory()
        for start in range(0, count, 1000):
            queue.enqueue(["127.0.0.1:6081"], [purge_for_url(f"http://blog.bench.test/sizing-{i}/")
                                                for i in range(start, start + 1000)], "bench")
        per_delivery = (queue.memory() - base) / count
        body = envelope([post_change(1, 1)])
        base = queue.memory()
        for i in range(count):
            queue.append("bench", "blog.bench.test", body, f"sha256={i:064x}")
        per_event = (queue.memory() - base) / count
        queue.redis.delete(*queue.redis.keys("purgebridge-sizing:*"))
        return per_delivery, per_event, len(body)
    finally:
        queue.close()


def run_config(cluster, tmp, name, count, queue, latency_events, accept_events, spacing):
    nodes = [vn.node for vn in cluster.nodes]
    relays = []
    for index in range(count):
        workdir = tmp / f"{name}-{index}"
        workdir.mkdir(parents=True)
        relays.append(Relay(nodes, workdir, queue=queue))
    group = Relays(relays)
    (tmp / name).mkdir(exist_ok=True)
    try:
        latencies, urls = bench_latency(cluster, group, tmp / name, latency_events, spacing)
        rate = bench_accept(relays, accept_events)
        assert group.drain(limit=300), f"{name}: queue did not drain"
    finally:
        group.stop()
    result = {"name": name, "relays": count, "p50": percentile(latencies, 50), "p99": percentile(latencies, 99),
              "rate": rate, "events": len(latencies), "urls": urls}
    print(f"{name}: p50 {result['p50']:.1f} ms p99 {result['p99']:.1f} ms, {rate:,.0f} events/s", file=sys.stderr)
    return result


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--latency-events", type=int, default=80)
    parser.add_argument("--spacing", type=float, default=0.6,
                        help="seconds between latency events (isolated events, as in bench/relay.py)")
    parser.add_argument("--accept-events", type=int, default=3000)
    parser.add_argument("--write", action="store_true", help="update docs/benchmarks.md")
    args = parser.parse_args()
    watchdog(DEADLINE)
    tmp = pathlib.Path(tempfile.mkdtemp(prefix="purgebridge-scale-"))
    redis = start_redis(tmp / "redis")
    results = []
    try:
        with start_cluster(hosts=HOSTS, workdir=tmp / "cluster") as cluster:
            results.append(run_config(cluster, tmp, "sqlite-1", 1, None, args.latency_events, args.accept_events,
                                      args.spacing))
            for count in (1, 2, 3):
                redis.client().flushdb()
                results.append(run_config(cluster, tmp, f"redis-{count}", count, redis.url(0),
                                          args.latency_events, args.accept_events, args.spacing))
        redis.client().flushdb()
        per_delivery, per_event, body_bytes = redis_memory(redis.url(0))
    finally:
        redis.stop()
    base = results[0]
    rows = [f"| {'SQLite' if r['name'].startswith('sqlite') else 'Redis'} | {r['relays']} "
            f"| {r['rate']:,.0f}/s | {r['rate'] / base['rate']:.2f} x "
            f"| {r['p50']:.1f} ms | {r['p99']:.1f} ms | {r['p99'] / base['p99']:.2f} x |" for r in results]
    text = "\n".join([
        "## Scale-out: relays on Redis against one relay on SQLite (`bench/scale.py`)", "",
        f"One run. Three varnishd nodes (vcl/wordpress.vcl) on 127.0.0.11-13, a private redis-server "
        f"(appendonly, appendfsync always), every relay a `purgebridge serve` process on the same machine. "
        f"Machine: {machine()}.", "",
        "| queue | relays | signed events accepted/s | vs SQLite | event -> purged p50 | p99 | p99 vs SQLite |",
        "|---|---:|---:|---:|---:|---:|---:|",
        *rows, "",
        f"Accepted/s: {args.accept_events:,} pre-signed events over 8 keep-alive connections spread round-robin "
        f"over the relays. Latency: {base['events']} single post updates ({base['urls']} URLs each) posted round-robin, "
        f"one every {args.spacing:g} s (isolated events), measured to the varnishlog arrival of the event's own URLs on the slowest node.", "",
        f"Redis memory (used_memory, 20,000 of each): {per_delivery:,.0f} bytes per waiting (node, URL) delivery, "
        f"{per_event:,.0f} bytes per accepted event not yet expanded ({body_bytes} byte body). "
        "Delivered items and expanded events are deleted, so this is memory per *backlog*, not per total.", "",
        "All relays, Redis and the three nodes share the same 2 cores, so more relays here add contention "
        "rather than capacity: the ratios say what a relay costs, not what separate machines would gain.",
    ])
    print(text)
    if args.write:
        write_section("scale", text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
