"""Drains the journal and the queue: one sender thread per node, so a dead node never holds back the others.

Concurrency in three sentences: the expander thread reads every journal
event committed so far, maps and coalesces it, and merges the result into
each node's inbox; each node's thread sends whatever is in its inbox as soon
as its previous batch is confirmed and ``gap`` (PURGEBRIDGE_BATCH_GAP,
15 ms) has passed since that batch left, then the queued deliveries due for
that node, one batch of each in turn so neither starves the other; a batch
is settled in the queue only when every node confirmed it or requeued what
it missed, and the recorder thread then writes the worker's status and marks
the journal events of every settled batch in one transaction, off the node
threads' way (purge first, record afterwards). An isolated event goes out at once (the last batch left long
ago); under load the batches grow by themselves, because whatever arrives
while one is on the wire, or within the gap, merges into the next by key
(100 updates of the front page within one batch's time are one PURGE). The
gap bounds how often a page is purged while it keeps changing, and with it
how long a page may stay stale: freshness and coalescing trade against
each other through it (docs/operations.md).

Two paths lead to a node, both through its :class:`NodeSender`:

* **Direct** (signed events, the hot path). Journal events are read in
  batches (``journal.gather``) and their invalidations put in the node
  inboxes. Anything a node did not confirm is written to the durable queue
  for that node (``requeue``); once every node has confirmed or requeued a
  batch, its journal events are marked expanded (``finish_expansion``, by
  the recorder). A crash before the mark leaves the events unexpanded: the
  next start reads and sends them again (at-least-once; a PURGE is
  idempotent).
* **Queued** (retries, webhook and admin purges). The node's due deliveries
  are leased in batches and every row settled: confirmed (2xx, 404) -> ack;
  refused (403/405) or a request the node calls wrong (other 4xx) -> dead
  letter, since sending it again cannot help; no answer, 408/429/5xx ->
  nack, which puts it back with exponential backoff.

A node that did not answer a batch is treated as down for a backoff
interval: its inbox goes straight to the durable queue without a connection
attempt, and the first queued delivery it answers brings it back. A node
whose VCL has no key purges (PURGEKEYS answered 501, or 405 while PURGE is
allowed) is remembered as such (:attr:`NodeState.keys`): its key purges are
skipped -- the URL purges of the same event cover its pages -- instead of
being retried, dead-lettered or taken for an outage.

Stopping (SIGTERM): threads stop claiming, the batch in flight is finished and
settled; journal events not handed out yet are expanded into queued rows if
that is quick (``expand_on_stop`` seconds); events handed out but not
finished, and the rest, are read again at the next start. A queued batch
whose settling never happens (SIGKILL) comes back when its lease expires.
"""

from collections import deque
from dataclasses import dataclass, replace
import logging
import os
import threading
import time
from typing import Any, Callable, Optional

from purgebridge.delivery import fanout

from purgebridge.worker import expansion as journal
from purgebridge.delivery.fanout import Invalidation, Outcome, Result

log = logging.getLogger(__name__)

@dataclass(frozen=True)
class WorkerConfig:
    """How the worker batches and waits; ``from_settings`` derives what the settings decide."""

    batch: int = 512              # queued deliveries leased per batch
    lease: float = 30.0           # seconds a leased batch is the worker's before another may take it
    poll: float = 1.0             # longest sleep when nothing wakes the threads (a missed wake-up costs this)
    housekeeping: float = 30.0    # seconds between two rounds of expire() and dead-letter bans
    expand_batch: int = journal.EXPAND_BATCH
    expand_on_stop: float = 2.0
    gap: float = 0.015            # shortest time between two batches to one node (PURGEBRIDGE_BATCH_GAP)

    @classmethod
    def from_settings(cls, settings: Any, **overrides: Any) -> "WorkerConfig":
        batch = int(overrides.pop("batch", cls.batch))
        # Long enough for a full batch to time out on every pipelined request.
        lease = max(30.0, settings.timeout * (4 + batch / settings.pipeline))
        # Every 30 s, or more often when PURGEBRIDGE_MAX_AGE is short: a purge is
        # dead-lettered (and its node's ban queued) at most a quarter past its max age.
        housekeeping = min(30.0, getattr(settings, "max_age", 86400.0) / 4)
        config = cls(batch=batch, lease=lease, housekeeping=housekeeping,
                     gap=float(getattr(settings, "batch_gap", cls.gap)))
        return replace(config, **{k: v for k, v in overrides.items() if v is not None})


@dataclass
class NodeState:
    """What the last contact with a node showed; read by /v1/status, /readyz and ``purgebridge nodes``."""

    node: Any
    up: Optional[bool] = None            # None until the first batch
    last_contact: Optional[float] = None  # unix time of the last answer
    latency: Optional[float] = None      # seconds the last batch took
    last_error: str = ""
    last_error_at: Optional[float] = None
    sent: int = 0
    keys: Optional[bool] = None          # key purges: True works, False not in its VCL, None not tried yet

    def to_dict(self) -> dict:
        return {"node": self.node.name, "up": self.up, "last_contact": self.last_contact,
                "latency_ms": None if self.latency is None else round(self.latency * 1000, 2),
                "last_error": self.last_error, "last_error_at": self.last_error_at, "sent": self.sent,
                "keys": self.keys}


class NodeSender:
    """One node: its connections, its direct-path inbox and its state, behind one :meth:`send`.

    The inbox (``put``/``take``) is guarded by the worker's lock; ``send``
    runs on the node's own thread only.
    """

    def __init__(self, node: Any, settings: Any, deliver: Callable[..., list], client: Any = None,
                 metrics: Any = None, clock: Any = time) -> None:
        self.node = node
        self.clock = clock         # time() and monotonic(): the ``time`` module, or a test's FakeClock
        self.settings = settings
        self.deliver = deliver
        self.client = client
        self.metrics = metrics
        self.state = NodeState(node)
        self.items: dict = {}      # key -> (Invalidation, first_at, last_at): the inbox
        self.upto = 0              # newest direct batch whose items are in (or went through) the inbox
        self.covered = 0           # newest direct batch this node confirmed or requeued entirely
        self.down_until = 0.0
        self.failures = 0
        self.in_flight_since: Optional[float] = None  # oldest first_at of the batch on the wire
        self.oldest: Optional[float] = None           # oldest first_at in the inbox
        self.last_batch = float("-inf")               # monotonic time the last batch left

    # --- the inbox (under the worker's lock) ----------------------------------------

    def put(self, seq: int, items: dict) -> None:
        for _item, first_at, _last in items.values():
            if self.oldest is None or first_at < self.oldest:
                self.oldest = first_at
        for key, (item, first_at, last_at) in items.items():
            waiting = self.items.get(key)
            if waiting is not None:
                first_at, last_at = min(first_at, waiting[1]), max(last_at, waiting[2])
            self.items[key] = (item, first_at, last_at)
        self.upto = seq

    def take(self) -> tuple:
        items, self.items, self.oldest = self.items, {}, None
        return items, self.upto

    def lag(self, now: float) -> Optional[float]:
        """Seconds the oldest purge held for this node has waited (in the inbox or on the wire)."""
        oldest = [at for at in (self.oldest, self.in_flight_since) if at is not None]
        return max(0.0, now - min(oldest)) if oldest else None

    def status(self, now: float) -> dict:
        entry = self.state.to_dict()
        lag = self.lag(now)
        entry.update({"inbox": len(self.items), "lag_seconds": None if lag is None else round(lag, 4)})
        return entry

    # --- sending (the node's thread) -----------------------------------------------

    def pause(self, gap: float) -> float:
        """Seconds until the next batch may leave: ``gap`` after the last one left (0 after a quiet gap)."""
        return max(0.0, self.last_batch + gap - self.clock.monotonic())

    def is_down(self, now: Optional[float] = None) -> bool:
        return (self.clock.time() if now is None else now) < self.down_until

    def send(self, items: list, oldest: Optional[float] = None) -> list:
        """Send ``items`` once (no retries: the queue retries); one ``Result`` per item, in order.

        Key purges to a node known to have none are answered ``skipped``
        here without a request. The node's state, its key support and its
        up/down backoff are updated from the answers.
        """
        state = self.state
        skip_keys = state.keys is False
        to_send = [i for i, item in enumerate(items) if not (skip_keys and item.method == "PURGEKEYS")]
        results: list = [None] * len(items)
        for i, item in enumerate(items):
            if skip_keys and item.method == "PURGEKEYS":
                results[i] = self._skipped(item)
        kwargs: dict = {"retries": 0}
        if self.client is not None:
            kwargs["client"] = self.client
        started = self.last_batch = self.clock.monotonic()
        self.in_flight_since = oldest
        answered = False
        try:
            if to_send:
                sent = self.deliver(self.node, [items[i] for i in to_send], self.settings, **kwargs)
                for i, result in zip(to_send, sent):
                    results[i] = result
        except Exception as exc:  # a bug or an unexpected transport error: the queue retries them
            log.exception("delivering to %s failed", self.node.name)
            reason = f"{type(exc).__name__}: {exc}"
            for i in to_send:
                results[i] = Result(self.node, items[i], Outcome.FAILED, None, reason)
        finally:
            self.in_flight_since = None
        now = self.clock.time()
        for i, result in enumerate(results):
            if result.status is not None:
                answered = True
            if result.item.method == "PURGEKEYS" and result.status is not None:
                results[i] = self._learn_keys(result)
        errors = [result.reason for result in results if not result.outcome.ok and result.reason]
        if errors:
            state.last_error, state.last_error_at = errors[-1], now
        state.sent += len(to_send)
        state.latency = self.clock.monotonic() - started
        # Rows that could not even be encoded say nothing about the node: only what went out counts.
        went_out = [results[i] for i in to_send if not results[i].permanent]
        if went_out:
            # Healthy: at least one answer that is not a retryable failure. A node that answers
            # every purge with 5xx/408/429 is not "up": it is backed off like a silent one.
            healthy = any(r.status is not None and (r.outcome.ok or not fanout.classify(r.status)[1])
                          for r in went_out)
            state.up = healthy
            if answered:
                state.last_contact = now
            if healthy:
                self.failures, self.down_until = 0, 0.0
                if not errors:  # recovered: the old error does not stay next to "up"
                    state.last_error, state.last_error_at = "", None
            else:
                self.failures += 1
                self.down_until = now + fanout.backoff_delay(self.failures, self.settings.backoff,
                                                             self.settings.backoff_max)
        return results

    def _skipped(self, item: Invalidation) -> Result:
        return Result(self.node, item, Outcome.SKIPPED, None, "node has no key purges (URLs purged instead)")

    def _learn_keys(self, result: Result) -> Result:
        """A PURGEKEYS answer tells whether the node has key purges; a 501/405 is not a failure."""
        supported = fanout.key_support(result)
        if supported is False:
            if self.state.keys is not False:
                log.warning("node %s answered PURGEKEYS with %s: it has no key purges (no xkey in its VCL); "
                            "its pages are purged by URL only from now on", self.node.name, result.reason)
            self.state.keys = False
            return self._skipped(result.item)
        if supported:
            if self.state.keys is False:
                log.info("node %s accepts key purges again", self.node.name)
            self.state.keys = True
        return result

    def close(self) -> None:
        if self.client is not None:
            self.client.close()


@dataclass
class _Batch:
    seq: int
    events: list           # [(event_id, count)]
    merged: int            # (node, item) pairs saved by coalescing within the batch
    failed: int


class Worker:
    """Start with :meth:`start`, stop with :meth:`stop`; ``deliver`` is swappable for tests.

    ``tuning`` overrides single :class:`WorkerConfig` fields (``poll=0.05``);
    ``config`` replaces it whole; ``clock`` (``purgebridge.testing.FakeClock``
    in tests) drives the gap and backoff rules. ``publish(snapshot)``, if given, is called
    with a fresh :meth:`snapshot` after every batch, before it is settled in
    the queue: whoever reads the queue as drained finds the counts there too.
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
        self.mapping_options = mapping_options  # host -> MappingOptions; from the sites settings if None
        self._options: dict = {}
        self.clock = clock  # time() and monotonic() for the timing rules: the ``time`` module, or a FakeClock
        self.senders = {node.name: NodeSender(node, settings, self._deliver, clock=clock) for node in self.nodes}
        self._lock = threading.Lock()   # the inboxes, the batches in flight and the counts below
        self._batches: deque = deque()  # direct batches not finished on every node yet, oldest first
        self._unmarked: deque = deque()  # (events, counters, failed) delivered but not yet marked expanded
        self._mark_lock = threading.Lock()
        self._to_record = threading.Condition(threading.Lock())  # wakes the recorder: batches were settled
        self._recording = False         # the recorder thread runs: settled batches are its to write
        self._recorder: Optional[threading.Thread] = None
        self._mark_failing = False
        self._in_flight: set = set()    # their event ids (a Redis takeover could hand one out again)
        self._seq = 0
        self._counts: dict = {}         # (outcome, node) -> confirmed on the direct path, not yet written
        self._stopping = threading.Event()
        self._threads: list = []
        self.publish = publish
        self._publish_lock = threading.Lock()

    def _deliver(self, *args: Any, **kwargs: Any) -> list:
        return self.deliver(*args, **kwargs)  # late-bound: tests swap ``worker.deliver``

    @property
    def states(self) -> dict:
        return {name: sender.state for name, sender in self.senders.items()}

    @property
    def pid(self) -> int:
        return os.getpid()

    @property
    def running(self) -> bool:
        return any(thread.is_alive() for thread in self._threads)

    def start(self) -> "Worker":
        if self._threads:
            return self
        self._stopping.clear()
        for node in self.nodes:
            thread = threading.Thread(target=self._run_node, args=(node,), name=f"purge-{node.name}", daemon=True)
            self._threads.append(thread)
        self._threads.append(threading.Thread(target=self._run_housekeeping, name="purge-housekeeping", daemon=True))
        self._threads.append(threading.Thread(target=self._run_expander, name="journal-expander", daemon=True))
        self._recorder = threading.Thread(target=self._run_recorder, name="purge-recorder", daemon=True)
        self._recording = True
        for thread in [*self._threads, self._recorder]:
            thread.start()
        log.info("worker started for %d node(s): %s", len(self.nodes), ", ".join(n.name for n in self.nodes))
        return self

    def stop(self, timeout: Optional[float] = None) -> bool:
        """Stop claiming, let in-flight batches finish and settle. True if every thread ended in time."""
        self._stopping.set()
        self.queue.notify()
        deadline = None if timeout is None else time.monotonic() + timeout
        for thread in self._threads:
            thread.join(None if deadline is None else max(0.0, deadline - time.monotonic()))
        alive = [t.name for t in self._threads if t.is_alive()]
        self._stop_recorder(None if deadline is None else max(0.0, deadline - time.monotonic()))
        if "journal-expander" not in alive:
            self._expand_rest(self.config.expand_on_stop)
        if alive:
            log.warning("worker threads still busy at shutdown: %s (their leases will expire)", ", ".join(alive))
        else:
            log.info("worker stopped")
        self._threads = []
        return not alive

    def node_status(self) -> list:
        now = self.clock.time()
        with self._lock:
            return [sender.status(now) for sender in self.senders.values()]

    def snapshot(self) -> dict:
        """Everything /v1/status and /metrics show of the worker, as JSON-able data (``supervisor``)."""
        with self._lock:
            batches = len(self._batches)
        return {"running": self.running, "pid": os.getpid(), "at": time.time(), "nodes": self.node_status(),
                "batches_in_flight": batches,
                "metrics": self.metrics.export() if self.metrics is not None else None}

    def report(self) -> None:
        """Hand a fresh snapshot to ``publish`` (the worker process's status file)."""
        if self.publish is not None:
            with self._publish_lock:
                self.publish(self.snapshot())

    # --- the expander ---------------------------------------------------------------

    def options_for(self, host: str) -> Any:
        """The site's mapping options (cached); built from the sites settings unless given."""
        if self.mapping_options is not None:
            return self.mapping_options(host)
        if host not in self._options:
            from purgebridge.config.sites import load_sites

            self._options[host] = load_sites(self.settings).mapping_options(host, self.settings)
        return self._options[host]

    def expand(self, limit: Optional[int] = None) -> int:
        """Expand one batch of journal entries into deliveries; returns how many entries. Public for tests."""
        return journal.expand(self.queue, [node.name for node in self.nodes], self.options_for,
                              self.settings.proto_header, limit or self.config.expand_batch)

    def _run_expander(self) -> None:
        """Hand every committed journal event to the node inboxes, a batch as soon as the last one is mapped."""
        self._relax()
        while not self._stopping.is_set():
            generation = self.queue.journal_generation
            try:
                done = self.dispatch()
            except Exception:  # keep the thread alive; the events are read again
                log.exception("expanding the journal failed")
                self.queue.rewind_journal()
                self._stopping.wait(self.config.poll)
                continue
            if done < self.config.expand_batch:  # read it all: sleep until the next commit (at once if one came)
                self.queue.wait_journal(generation, self.config.poll)

    def dispatch(self) -> int:
        """Read, map and coalesce one batch of journal events into the node inboxes; returns how many events."""
        batch = journal.gather(self.queue, self.options_for, self.settings.proto_header, self.config.expand_batch)
        if batch is None:
            return 0
        with self._lock:
            events = [event for event in batch.events if event[0] not in self._in_flight]
            if not events:
                return len(batch.events)
            self._seq += 1
            self._batches.append(_Batch(self._seq, events, (batch.naive - len(batch.items)) * len(self.nodes),
                                        batch.failed))
            self._in_flight.update(event_id for event_id, _count in events)
            for sender in self.senders.values():
                sender.put(self._seq, batch.items)
        self.queue.notify_deliveries()  # wakes the node threads
        return len(batch.events)

    def _settle(self) -> None:
        """Mark the journal events of every batch that all nodes have confirmed or requeued."""
        with self._lock:
            low = min((sender.covered for sender in self.senders.values()), default=self._seq)
            done = []
            while self._batches and self._batches[0].seq <= low:
                done.append(self._batches.popleft())
            if not done:
                return
            counts, self._counts = self._counts, {}
        events = [event for batch in done for event in batch.events]
        counters = [(outcome, node, n) for (outcome, node), n in counts.items()]
        counters.append(("merged", "", sum(batch.merged for batch in done)))
        with self._mark_lock:
            self._unmarked.append((events, counters, sum(batch.failed for batch in done)))
        if self._recording:
            with self._to_record:
                self._to_record.notify()
        else:  # no recorder thread (a test driving send_direct by hand): write it now
            self.report()
            self.mark_delivered()

    def _run_recorder(self) -> None:
        """Write what the node threads settled: the status snapshot, then the marks, in one round.

        Purge first, record afterwards: a node thread goes back to its next
        batch the moment it confirmed one, and whatever was settled while
        the recorder wrote goes into its next transaction. Its commits skip
        the fsync (``_relax``): a mark lost in a power cut only means its
        events are read and purged again at the next start (at-least-once,
        a PURGE is idempotent); the journal row that made the event durable
        was fsynced by the API process before its 202.
        """
        self._relax()
        while True:
            with self._to_record:
                while not self._unmarked and self._recording:
                    self._to_record.wait()
                if not self._unmarked:
                    return
            self.report()  # before the mark: whoever reads the journal as drained finds the counts here
            if not self.mark_delivered():
                with self._to_record:  # retry the marks alone after a pause, not in a hot loop
                    self._to_record.wait_for(lambda: not self._recording, self.config.poll)

    def _stop_recorder(self, timeout: Optional[float]) -> None:
        """After the node threads ended: let the recorder write what they settled last, then stop it."""
        with self._to_record:
            self._recording = False
            self._to_record.notify()
        if self._recorder is not None:
            self._recorder.join(timeout)
        if not (self._recorder and self._recorder.is_alive()) and self._unmarked:
            self.mark_delivered()  # a last try (the recorder gave up on a failing disk): else the next start

    def mark_delivered(self) -> bool:
        """Mark delivered journal events expanded, all settled batches in one transaction; True when done.

        When the mark fails (a full disk) the events stay in memory and only
        the mark is tried again -- by the recorder after ``poll`` -- never the
        purges: they were confirmed, and re-sending them in a loop filled the
        log and the nodes before. The failure is logged once when it starts
        and once when it ends. (After a restart they are read from the
        journal and sent again: at-least-once.)
        """
        with self._mark_lock:
            if not self._unmarked:
                return True
            taken = list(self._unmarked)
            events = [event for entry in taken for event in entry[0]]
            totals: dict = {}
            for _events, counters, _failed in taken:
                for outcome, node, count in counters:
                    totals[(outcome, node)] = totals.get((outcome, node), 0) + count
            try:
                self.queue.finish_expansion(events, [(outcome, node, count) for (outcome, node), count
                                                     in totals.items()], failed=sum(entry[2] for entry in taken))
            except Exception as exc:  # noqa: BLE001 - the disk, a vanished file: retry the mark alone
                if not self._mark_failing:
                    log.error("marking %d delivered journal event(s) failed (%s: %s); the mark is retried, "
                              "the purges are not sent again", len(events), type(exc).__name__, exc)
                self._mark_failing = True
                return False
            for _entry in taken:
                self._unmarked.popleft()
            with self._lock:
                self._in_flight.difference_update(event_id for event_id, _count in events)
            if self._mark_failing:
                log.warning("marking delivered journal events works again")
                self._mark_failing = False
            return True

    def _expand_rest(self, budget: float) -> None:
        """At stop: expand what is committed while it is quick; the rest waits for the next start."""
        deadline = time.monotonic() + budget
        try:
            while time.monotonic() < deadline and self.expand():
                pass
            left = self.queue.journal_pending()
        except Exception:
            log.exception("expanding the journal at shutdown failed; it is expanded at the next start")
            return
        if left:
            log.info("%d journal event(s) left to expand at the next start", left)

    # --- housekeeping ------------------------------------------------------------------

    def _run_housekeeping(self) -> None:
        self._relax()
        while not self._stopping.wait(self.config.housekeeping):
            try:
                self.housekeep()
            except Exception:  # keep the thread alive; the next round tries again
                log.exception("queue housekeeping failed")

    def housekeep(self, now: Optional[float] = None) -> dict:
        """Dead-letter what is too old; a node that lost purges that way gets a ban of every site instead.

        A node unreachable for ``max_age`` (PURGEBRIDGE_MAX_AGE, a day) may
        still hold pages its dead-lettered purges were meant to drop. Rather
        than count on someone running ``purgebridge queue retry``, the relay
        queues a ban of each site it serves for that node: it is sent when
        the node answers again, and leaves the node with nothing stale
        (PURGEBRIDGE_DEAD_LETTER_BAN, on by default). Should the node stay
        away for another ``max_age``, the ban is dead-lettered in turn and
        queued again: one per site per ``max_age``, never more.
        """
        since = getattr(self.queue, "clock", time.time)() if now is None else now
        expired = self.queue.expire(now=now)
        if not expired or not getattr(self.settings, "dead_letter_ban", True):
            return expired
        from purgebridge.config.sites import load_sites

        sites = set(load_sites(self.settings).hosts)
        served = {node.name for node in self.nodes}   # not a node taken out of the config since
        for node, count in sorted(expired.items()):
            if node not in served:
                continue
            # Only the sites whose purges were lost: one tenant's stuck rows never ban another's pages.
            hosts = sorted(self.queue.dead_hosts(node, since) & sites)
            if not hosts:
                log.warning("node %s: %d purge(s) dead-lettered; none for a configured site, nothing to ban",
                            node, count)
                continue
            self.queue.enqueue([node], [fanout.purge_all_for(host) for host in hosts], "dead-letter-ban", now=now)
            log.warning("node %s: %d purge(s) dead-lettered after %.0f s; a ban of their site(s) %s is queued "
                        "for it instead, sent when it answers again", node, count,
                        getattr(self.settings, "max_age", 0.0), ", ".join(hosts))
        return expired

    def _relax(self) -> None:
        relax = getattr(self.queue, "relax_durability", None)  # SQLite only; Redis has its own fsync policy
        if relax is not None:
            relax()

    # --- the node threads ---------------------------------------------------------------

    def _run_node(self, node: Any) -> None:
        """Direct batch, then queued batch, each the moment the previous one is confirmed; sleep when idle."""
        self._relax()
        sender = self.senders[node.name]
        if self.client_factory is not None and sender.client is None:
            sender.client = self.client_factory(node)
        try:
            while not self._stopping.is_set():
                pause = sender.pause(self.config.gap)
                if pause > 0:  # a batch left moments ago: let what arrives meanwhile merge into the next
                    self._stopping.wait(pause)
                    continue
                generation = self.queue.generation
                worked = False
                with self._lock:
                    direct = sender.upto > sender.covered
                if direct:
                    self.send_direct(node)
                    worked = True
                if sender.is_down():  # circuit open: no queued batch until the node's backoff has passed
                    self._stopping.wait(min(self.config.poll, max(0.001, sender.down_until - self.clock.time())))
                    continue
                try:
                    due = self.queue.next_due(node.name)
                    claims = self.queue.claim(node.name, self.config.batch, self.config.lease) if due == 0 else []
                except Exception:
                    log.exception("claiming for %s failed", node.name)
                    self._stopping.wait(self.config.poll)
                    continue
                if claims:
                    self.process(node, claims)
                    worked = True
                if worked:
                    continue
                timeout = self.config.poll if due is None else min(self.config.poll, max(due, 0.002))
                self.queue.wait(generation, timeout)
        finally:
            sender.close()
            sender.client = None

    def send_direct(self, node: Any) -> None:
        """Send ``node``'s inbox; requeue what it did not confirm; then settle. Public so tests can drive it."""
        sender = self.senders[node.name]
        with self._lock:
            items, upto = sender.take()
        requeue: list = []
        confirmed: dict = {}
        if items and sender.is_down():
            requeue = list(items.items())
        elif items:
            oldest = min(first_at for _item, first_at, _last in items.values())
            results = sender.send([value[0] for value in items.values()], oldest)
            now = self.clock.time()
            for (key, (item, first_at, last_at)), result in zip(items.items(), results):
                if result.outcome.ok:
                    confirmed[result.outcome.value] = confirmed.get(result.outcome.value, 0) + 1
                    if self.metrics and result.outcome is not Outcome.SKIPPED:
                        self.metrics.observe_latency(max(0.0, now - first_at))
                else:
                    requeue.append((key, (item, first_at, last_at)))
        if requeue:
            try:
                self.queue.requeue(node.name, [(key, journal.payload(item), first_at, last_at)
                                               for key, (item, first_at, last_at) in requeue])
            except Exception:  # cannot even queue them: keep them in the inbox for the next round
                log.exception("requeueing %d purge(s) for %s failed", len(requeue), node.name)
                with self._lock:
                    sender.put(sender.upto, dict(requeue))
                self._stopping.wait(self.config.poll)
                return
            log.info("node %s: %d purge(s) confirmed, %d queued for retry (%s)", node.name,
                     sum(confirmed.values()), len(requeue), sender.state.last_error or "node down")
        for outcome, count in confirmed.items():
            self._count(node, outcome, count)
        with self._lock:
            for outcome, count in confirmed.items():
                self._counts[(outcome, node.name)] = self._counts.get((outcome, node.name), 0) + count
            sender.covered = max(sender.covered, upto)
        self._settle()

    def process(self, node: Any, claims: list) -> None:
        """Send one leased batch to ``node`` and settle every claim. Public so tests can drive it."""
        sender = self.senders[node.name]
        by_key: dict = {}
        for claim in claims:
            by_key.setdefault(claim.key, []).append(claim)
        items = [Invalidation.from_dict(group[0].item) for group in by_key.values()]
        groups = list(by_key.values())
        started = time.monotonic()
        results = sender.send(items, min(claim.first_at for claim in claims))
        elapsed = time.monotonic() - started
        done: dict = {}
        dead: dict = {}
        failed: dict = {}
        for group, result in zip(groups, results):
            if result.outcome.ok:
                done.setdefault(result.outcome.value, []).extend(group)
            elif result.outcome is Outcome.REFUSED or result.permanent or (
                    result.status is not None and not fanout.classify(result.status)[1]):
                dead.setdefault((result.outcome.value, result.reason or result.outcome.value), []).extend(group)
            else:
                failed.setdefault(result.reason or "failed", []).extend(group)
        now = self.clock.time()
        for outcome, group in done.items():
            self._count(node, outcome, len(group))
            if self.metrics and outcome != Outcome.SKIPPED.value:
                for claim in group:
                    self.metrics.observe_latency(max(0.0, now - claim.first_at))
        for (outcome, _reason), group in dead.items():
            self._count(node, outcome, len(group))
        for group in failed.values():
            self._count(node, "failed", len(group))
        self.report()
        for outcome, group in done.items():
            self._until_stored(node, lambda: self.queue.ack(group, outcome))
        for (_outcome, reason), group in dead.items():
            self._until_stored(node, lambda: self.queue.dead(group, reason))
        for reason, group in failed.items():
            self._until_stored(node, lambda: self.queue.nack(group, reason))
        if failed or dead:
            log.info("node %s: %d ok, %d to retry, %d dead-lettered (%s)", node.name,
                     sum(map(len, done.values())), sum(map(len, failed.values())),
                     sum(map(len, dead.values())), sender.state.last_error)
        else:
            log.debug("node %s: %d purges confirmed in %.1f ms", node.name, len(claims), elapsed * 1000)

    def _until_stored(self, node: Any, store: Callable[[], Any]) -> None:
        """Store a batch's outcome, retrying the store alone while it fails (a full disk), never the sends.

        Before, a failed ack left the rows leased: they were claimed and sent
        again when the lease ran out, over and over. Logged once per outage.
        """
        delay, logged = self.settings.backoff, False
        while True:
            try:
                store()
                if logged:
                    log.warning("node %s: storing purge outcomes works again", node.name)
                return
            except Exception as exc:  # noqa: BLE001 - the disk or the queue: retry this write only
                if not logged:
                    log.error("node %s: storing purge outcomes failed (%s: %s); retrying the write alone",
                              node.name, type(exc).__name__, exc)
                    logged = True
                if self._stopping.wait(delay):
                    return  # stopping: the rows stay leased and are sent again at the next start
                delay = min(delay * 2, max(self.settings.backoff_max, 1.0))

    def _count(self, node: Any, outcome: str, count: int) -> None:
        if self.metrics:
            self.metrics.purged(node.name, outcome, count)
