"""Prometheus metrics for one app, on a registry of its own.

A per-app ``CollectorRegistry`` (not prometheus_client's global one) lets tests
build many apps in one process without "Duplicated timeseries" errors, and
keeps library users' registries clean. Queue figures (depth, dead letters,
merges) are read from the queue at scrape time by a small collector, so they
are right even after a restart or when another process changed the queue.
"""

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 3600)


class _QueueCollector:
    def __init__(self, queue):
        self.queue = queue

    def collect(self):
        stats = self.queue.stats()
        depth = GaugeMetricFamily("purgebridge_queue_depth", "Deliveries waiting or in flight, per node",
                                  labels=["node"])
        dead = GaugeMetricFamily("purgebridge_queue_dead_letters", "Dead-lettered deliveries, per node",
                                 labels=["node"])
        oldest = GaugeMetricFamily("purgebridge_queue_oldest_pending_seconds",
                                   "Age of the oldest undelivered purge")
        for node, entry in sorted(stats["nodes"].items()):
            depth.add_metric([node], entry["pending"] + entry["in_flight"])
            dead.add_metric([node], entry["dead"])
        oldest.add_metric([], stats["oldest_pending_age"] or 0.0)
        journal = GaugeMetricFamily("purgebridge_journal_pending",
                                    "Accepted events not yet mapped to per-node deliveries")
        journal.add_metric([], stats.get("journal_pending", 0))
        merged = CounterMetricFamily("purgebridge_queue_merged",
                                     "Purges merged into one already waiting for the same node (coalescing)")
        merged.add_metric([], stats["totals"].get("merged", 0))
        rows = CounterMetricFamily("purgebridge_queue_rows",
                                   "Deliveries added to the queue (after coalescing)")
        rows.add_metric([], stats["totals"].get("rows", 0))
        return [depth, dead, oldest, journal, merged, rows]


class Metrics:
    """The counters routes and workers update; ``render()`` is the /metrics body."""

    def __init__(self, queue=None):
        self.registry = CollectorRegistry(auto_describe=True)
        self.events = Counter("purgebridge_events", "Requests to the event, webhook and purge routes by result",
                              ["route", "result"], registry=self.registry)
        self.purges = Counter("purgebridge_purges", "Purge requests sent, by node and outcome",
                              ["node", "outcome"], registry=self.registry)
        self.latency = Histogram("purgebridge_event_to_purged_seconds",
                                 "From an event's acceptance to the node's confirmation, per (node, item)",
                                 buckets=LATENCY_BUCKETS, registry=self.registry)
        self.held_back = Counter("purgebridge_worker_held_seconds",
                                 "Seconds the purge work waited so that a flood of events is accepted first, "
                                 "by how: deferred (PURGEBRIDGE_FLOOD_DEFER) or paced (PURGEBRIDGE_FLOOD_SHARE)",
                                 ["how"], registry=self.registry)
        if queue is not None:
            self.registry.register(_QueueCollector(queue))

    def event(self, route, result):
        self.events.labels(route=route, result=str(result)).inc()

    def purged(self, node, outcome, count=1):
        self.purges.labels(node=node, outcome=outcome).inc(count)

    def held(self, how, seconds):
        self.held_back.labels(how=how).inc(seconds)

    def observe_latency(self, seconds):
        self.latency.observe(seconds)

    def render(self):
        return generate_latest(self.registry)
