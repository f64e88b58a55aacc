"""Prometheus metrics for one app, on a registry of its own, including the worker process's figures.

A per-app ``CollectorRegistry`` (not prometheus_client's global one) lets tests
build many apps in one process without "Duplicated timeseries" errors, and
keeps library users' registries clean. Queue figures (depth, dead letters,
merges) are read from the queue at scrape time by a small collector, so they
are right even after a restart or when another process changed the queue.

The purge counters and the latency histogram are counted by whoever sends
(the worker, or the admin purge route) in plain numbers that
:meth:`Metrics.export` turns into a JSON-able dict: the worker process
writes that dict into its status file (``purgebridge.worker.process``), and the
API process adds it to its own at scrape time (``worker=``), so ``/metrics``
shows one set of counters whichever process sent the purges.
"""

from bisect import bisect_left
import threading
from typing import Any, Callable, Dict, List, Optional, Protocol, Tuple

from prometheus_client import CollectorRegistry, Counter, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 3600)


class _Stats(Protocol):
    """What the queue collector reads of a ``store.Store`` (telemetry may not import the store)."""

    def stats(self) -> Dict[str, Any]: ...


class _QueueCollector:
    def __init__(self, queue: _Stats) -> None:
        self.queue = queue

    def collect(self) -> List[Metric]:
        up = GaugeMetricFamily("purgebridge_queue_up", "1 when the queue (SQLite file or Redis) answers")
        try:
            stats = self.queue.stats()
        except Exception:  # noqa: BLE001 - Redis down: the scrape still works and says so (the alert needs it)
            up.add_metric([], 0)
            return [up]
        up.add_metric([], 1)
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
        return [up, depth, dead, oldest, journal, merged, rows]


class _PurgeCollector:
    """``purgebridge_purges``, the latency histogram and the worker's per-node gauges, from ``Metrics.export``."""

    def __init__(self, metrics: "Metrics") -> None:
        self.metrics = metrics

    def collect(self) -> List[Metric]:
        own = self.metrics.export()
        snapshot = self.metrics.worker() if self.metrics.worker is not None else None
        exports = [own]
        if snapshot and snapshot.get("metrics"):
            exports.append(snapshot["metrics"])
        purges = CounterMetricFamily("purgebridge_purges", "Purge requests sent, by node and outcome",
                                     labels=["node", "outcome"])
        totals: Dict[Tuple[str, str], int] = {}
        for export in exports:
            for node, outcome, count in export["purges"]:
                totals[(node, outcome)] = totals.get((node, outcome), 0) + count
        for (node, outcome), count in sorted(totals.items()):
            purges.add_metric([node, outcome], count)
        counts = [0] * (len(LATENCY_BUCKETS) + 1)
        total = 0.0
        for export in exports:
            latency = export["latency"]
            counts = [a + b for a, b in zip(counts, latency["counts"])]
            total += latency["sum"]
        buckets, running = [], 0
        for bound, count in zip([*map(str, map(float, LATENCY_BUCKETS)), "+Inf"], counts):
            running += count
            buckets.append((bound, running))
        latency = HistogramMetricFamily("purgebridge_event_to_purged_seconds",
                                        "From an event's acceptance to the node's confirmation, per (node, item)",
                                        buckets=buckets, sum_value=total)
        found = [purges, latency]
        if snapshot:
            up = GaugeMetricFamily("purgebridge_worker_up", "1 while the purge worker process reports in")
            up.add_metric([], 1 if snapshot.get("running") else 0)
            inbox = GaugeMetricFamily("purgebridge_node_inbox", "Purges waiting in the worker for a node",
                                      labels=["node"])
            lag = GaugeMetricFamily("purgebridge_node_lag_seconds",
                                    "Age of the oldest purge the worker holds for a node (waiting or in flight)",
                                    labels=["node"])
            for state in snapshot.get("nodes", []):
                inbox.add_metric([state["node"]], state.get("inbox", 0))
                lag.add_metric([state["node"]], state.get("lag_seconds") or 0.0)
            found.extend([up, inbox, lag])
        return found


class Metrics:
    """The counters routes and workers update; ``render()`` is the /metrics body.

    ``worker``: a callable returning the worker process's status snapshot
    (``worker.status.WorkerView.snapshot``), whose ``metrics`` are added to
    this process's own; None when no worker reports to this app (tests).
    """

    def __init__(self, queue: Optional[_Stats] = None,
                 worker: Optional[Callable[[], Optional[Dict[str, Any]]]] = None) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.events = Counter("purgebridge_events", "Requests to the event, webhook and purge routes by result",
                              ["route", "result"], registry=self.registry)
        self.worker = worker
        self._lock = threading.Lock()
        self._purges: Dict[Tuple[str, str], int] = {}         # (node, outcome) -> count
        self._latency = [0] * (len(LATENCY_BUCKETS) + 1)      # per bucket, not cumulative; last is +Inf
        self._latency_sum = 0.0
        self.registry.register(_PurgeCollector(self))
        if queue is not None:
            self.registry.register(_QueueCollector(queue))

    def event(self, route: str, result: Any) -> None:
        self.events.labels(route=route, result=str(result)).inc()

    def purged(self, node: str, outcome: str, count: int = 1) -> None:
        with self._lock:
            self._purges[(node, outcome)] = self._purges.get((node, outcome), 0) + count

    def observe_latency(self, seconds: float) -> None:
        index = bisect_left(LATENCY_BUCKETS, seconds)
        with self._lock:
            self._latency[index] += 1
            self._latency_sum += seconds

    def export(self) -> Dict[str, Any]:
        """This process's purge counts and latency histogram as plain JSON-able data."""
        with self._lock:
            return {"purges": [[node, outcome, count] for (node, outcome), count in self._purges.items()],
                    "latency": {"counts": list(self._latency), "sum": self._latency_sum}}

    def render(self) -> bytes:
        return generate_latest(self.registry)
