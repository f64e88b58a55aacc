"""The worker: its threads, started and stopped together, and the one snapshot of its state.

Concurrency in three sentences. The expander thread reads every journal
event committed so far, maps and coalesces it, and merges the result into
each node's inbox, all under one bookkeeping lock (``Recorder.lock``) that
also guards the batches in flight. Each node has one thread that sends
whatever its inbox lets go -- a URL not sent to that node within the window
(PURGEBRIDGE_BATCH_GAP) at once, a hot URL once its window has passed, so
it is purged at most once per window and always after its last change --
then its due queued retries, one batch of each in turn, so a slow node never
holds back another. When every node has a batch out of its hands (confirmed
or requeued), the recorder thread writes the status snapshot and the journal
marks of every such batch in one transaction, off the node threads' way
(purge first, record afterwards), while a housekeeping thread dead-letters
what is too old.

The roles live in their own modules: ``expander`` (journal -> inboxes),
``inbox`` (coalescing per (node, URL)), ``node`` (one node's connection and
health), ``sender`` (one node's thread), ``recorder`` (bookkeeping and its
writer), ``housekeeping`` (dead letters and bans), ``sites`` (the one
mapping-options cache).

Stopping (SIGTERM): threads stop claiming, the batch in flight is finished and
settled, each node's inbox (hot URLs held for their window included) is sent
once more; journal events not handed out yet are expanded into queued rows if
that is quick (``expand_on_stop`` seconds); events handed out but not
finished, and the rest, are read again at the next start. A queued batch
whose settling never happens (SIGKILL) comes back when its lease expires.
"""

from dataclasses import dataclass, replace
import logging
import os
import threading
import time
from typing import Any, Callable, Dict, List, Optional

from purgebridge.delivery import fanout
from purgebridge.worker import expansion
from purgebridge.worker.expander import Expander
from purgebridge.worker.housekeeping import Housekeeper
from purgebridge.worker.node import NodeSender, NodeState
from purgebridge.worker.recorder import Recorder
from purgebridge.worker.sender import NodeLoop
from purgebridge.worker.sites import SiteCache

__all__ = ["NodeSender", "NodeState", "Worker", "WorkerConfig"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class WorkerConfig:
    """How the worker batches and waits; ``from_settings`` derives what the settings decide."""

    batch: int = 512              # queued deliveries leased per batch
    lease: float = 30.0           # seconds a leased batch is the worker's before another may take it
    poll: float = 1.0             # longest sleep when nothing wakes the threads (a missed wake-up costs this)
    housekeeping: float = 30.0    # seconds between two rounds of expire() and dead-letter bans
    expand_batch: int = expansion.EXPAND_BATCH
    expand_on_stop: float = 2.0
    window: float = 0.015         # shortest time between two purges of one URL to one node (PURGEBRIDGE_BATCH_GAP)

    @classmethod
    def from_settings(cls, settings: Any, **overrides: Any) -> "WorkerConfig":
        batch = int(overrides.pop("batch", cls.batch))
        # Long enough for a full batch to time out on every pipelined request.
        lease = max(30.0, settings.timeout * (4 + batch / settings.pipeline))
        # Every 30 s, or more often when PURGEBRIDGE_MAX_AGE is short: a purge is
        # dead-lettered (and its node's ban queued) at most a quarter past its max age.
        housekeeping = min(30.0, getattr(settings, "max_age", 86400.0) / 4)
        config = cls(batch=batch, lease=lease, housekeeping=housekeeping,
                     window=float(getattr(settings, "batch_gap", cls.window)))
        return replace(config, **{k: v for k, v in overrides.items() if v is not None})


class Worker:
    """Start with :meth:`start`, stop with :meth:`stop`; ``deliver`` is swappable for tests.

    ``tuning`` overrides single :class:`WorkerConfig` fields (``poll=0.05``);
    ``config`` replaces it whole; ``clock`` (``purgebridge.testing.FakeClock``
    in tests) drives the window and backoff rules. ``publish(snapshot)``, if
    given, is called with a fresh :meth:`snapshot` after every batch, before
    it is settled in the queue: whoever reads the queue as drained finds the
    counts there too.
    """

    def __init__(self, queue: Any, settings: Any, nodes: Any = None, deliver: Callable[..., list] = fanout.deliver,
                 metrics: Any = None, client_factory: Optional[Callable[[Any], Any]] = None,
                 mapping_options: Optional[Callable[[str], Any]] = None, config: Optional[WorkerConfig] = None,
                 publish: Optional[Callable[[dict], None]] = None, clock: Any = time, **tuning: Any) -> None:
        self.queue = queue
        self.settings = settings
        self.nodes = tuple(settings.nodes if nodes is None else nodes)
        self.deliver = deliver
        self.metrics = metrics
        self.config = config or WorkerConfig.from_settings(settings, **tuning)
        if client_factory is None and deliver is fanout.deliver:
            client_factory = lambda node: fanout.NodeClient(  # noqa: E731
                node, settings.timeout, settings.connections, settings.pipeline)
        self.client_factory = client_factory
        self.clock = clock
        self.publish = publish
        self._publish_lock = threading.Lock()
        self._stopping = threading.Event()
        self._threads: List[threading.Thread] = []
        self.senders: Dict[str, NodeSender] = {
            node.name: NodeSender(node, settings, self._deliver, window=self.config.window, clock=clock)
            for node in self.nodes}
        self.sites = SiteCache(settings, mapping_options)
        self.recorder = Recorder(queue, self.senders, self.report, self.config.poll)
        self.expander = Expander(queue, settings, self.nodes, self.sites, self.recorder, self.senders,
                                 self.config.expand_batch)
        self.housekeeper = Housekeeper(queue, settings, self.nodes, self.sites)
        self.loops = {name: NodeLoop(sender, queue, self.recorder, settings, metrics, self._stopping,
                                     self.config.batch, self.config.lease, self.config.poll)
                      for name, sender in self.senders.items()}

    def _deliver(self, *args: Any, **kwargs: Any) -> list:
        return self.deliver(*args, **kwargs)  # late-bound: tests swap ``worker.deliver``

    # --- lifecycle --------------------------------------------------------------------

    def start(self) -> "Worker":
        if self._threads:
            return self
        self._stopping.clear()
        for node in self.nodes:
            loop = self.loops[node.name]
            self._threads.append(self._thread(f"purge-{node.name}", loop.run, self.client_factory))
        self._threads.append(self._thread("purge-housekeeping", self.housekeeper.run, self._stopping,
                                          self.config.housekeeping))
        self._threads.append(self._thread("journal-expander", self.expander.run, self._stopping, self.config.poll))
        self.recorder.start(self._relax)
        for thread in self._threads:
            thread.start()
        log.info("worker started for %d node(s): %s", len(self.nodes), ", ".join(n.name for n in self.nodes))
        return self

    def _thread(self, name: str, target: Callable[..., None], *args: Any) -> threading.Thread:
        def run() -> None:
            self._relax()
            target(*args)
        return threading.Thread(target=run, name=name, daemon=True)

    def _relax(self) -> None:
        """This thread's queue writes skip the fsync: all of them can be redone (SQLite; Redis has its own)."""
        relax = getattr(self.queue, "relax_durability", None)
        if relax is not None:
            relax()

    def stop(self, timeout: Optional[float] = None) -> bool:
        """Stop claiming, let in-flight batches finish and settle. True if every thread ended in time."""
        self._stopping.set()
        self.queue.notify()
        deadline = None if timeout is None else time.monotonic() + timeout
        for thread in self._threads:
            thread.join(None if deadline is None else max(0.0, deadline - time.monotonic()))
        alive = [t.name for t in self._threads if t.is_alive()]
        self.recorder.stop(None if deadline is None else max(0.0, deadline - time.monotonic()))
        if "journal-expander" not in alive:
            self.expander.expand_rest(self.config.expand_on_stop)
        if alive:
            log.warning("worker threads still busy at shutdown: %s (their leases will expire)", ", ".join(alive))
        else:
            log.info("worker stopped")
        self._threads = []
        return not alive

    @property
    def running(self) -> bool:
        return any(thread.is_alive() for thread in self._threads)

    # --- state ---------------------------------------------------------------------------

    @property
    def states(self) -> Dict[str, NodeState]:
        return {name: sender.state for name, sender in self.senders.items()}

    @property
    def pid(self) -> int:
        return os.getpid()

    def node_status(self) -> list:
        now = self.clock.time()
        with self.recorder.lock:
            return [sender.status(now) for sender in self.senders.values()]

    def snapshot(self) -> dict:
        """Everything /v1/status and /metrics show of the worker, as JSON-able data (``worker.status``)."""
        with self.recorder.lock:
            batches = len(self.recorder.batches)
        return {"running": self.running, "pid": os.getpid(), "at": time.time(), "nodes": self.node_status(),
                "batches_in_flight": batches,
                "metrics": self.metrics.export() if self.metrics is not None else None}

    def report(self) -> None:
        """Hand a fresh snapshot to ``publish`` (the worker process's status file)."""
        if self.publish is not None:
            with self._publish_lock:
                self.publish(self.snapshot())

    # --- one step of each role, for tests and for ``stop`` ----------------------------------

    def options_for(self, host: str) -> Any:
        return self.sites.options_for(host)

    def dispatch(self) -> int:
        return self.expander.dispatch()

    def expand(self, limit: Optional[int] = None) -> int:
        return self.expander.expand(limit)

    def send_direct(self, node: Any) -> None:
        self.loops[node.name].send_direct()

    def process(self, node: Any, claims: list) -> None:
        self.loops[node.name].process(claims)

    def housekeep(self, now: Optional[float] = None) -> dict:
        return self.housekeeper.housekeep(now)

    def mark_delivered(self) -> bool:
        return self.recorder.mark_delivered()
