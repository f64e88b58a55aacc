"""One node's thread: its inbox as soon as a URL may go, then its queued retries, one batch of each in turn.

Two paths lead to a node, both through its :class:`~purgebridge.worker.node.NodeSender`:

* **Direct** (signed events, the hot path). The inbox's purges that may
  leave (``Inbox.take``: a URL not sent to this node within the window goes
  at once, a hot one when its window has passed) are sent in one pipelined
  batch; what the node did not confirm is written to the durable queue for
  it (``requeue``), and the batch is settled in the bookkeeping.
* **Queued** (retries, webhook and admin purges). The node's due deliveries
  are leased in batches and every row settled: confirmed (2xx, 404) -> ack;
  refused (403/405) or a request the node calls wrong (other 4xx) -> dead
  letter, since sending it again cannot help; no answer, 408/429/5xx ->
  nack, which puts it back with exponential backoff.

A node that did not answer is down for its backoff interval: its inbox goes
straight to the durable queue without a connection attempt, and no queued
batch is tried until the interval has passed.
"""

import functools
import logging
import threading
import time
from typing import Any, Callable, Dict, List, Optional

from purgebridge.delivery import fanout
from purgebridge.core.invalidation import Invalidation
from purgebridge.delivery.fanout import Outcome
from purgebridge.worker import expansion
from purgebridge.worker.node import OK, NodeSender
from purgebridge.worker import transition
from purgebridge.worker.recorder import Recorder

log = logging.getLogger(__name__)


class NodeLoop:
    """The thread of one node (:meth:`run`); :meth:`send_direct` and :meth:`process` are its two paths."""

    def __init__(self, sender: NodeSender, queue: Any, recorder: Recorder, settings: Any, metrics: Any,
                 stopping: threading.Event, batch: int, lease: float, poll: float) -> None:
        self.sender = sender
        self.node = sender.node
        self.queue = queue
        self.recorder = recorder
        self.settings = settings
        self.metrics = metrics
        self.stopping = stopping
        self.batch = batch
        self.lease = lease
        self.poll = poll
        # Full disk: outcome writes of queued batches that failed wait here and are retried by this thread
        # between its direct batches, so a node that is up keeps getting the events already accepted while
        # nothing can be written. Only this loop's thread touches them.
        self._parked: List[Callable[[], Any]] = []
        self._parked_retry = (0.0, settings.backoff)  # (monotonic time of the next try, backoff)
        self._claims_failing = False  # logged once per outage

    def run(self, client_factory: Optional[Callable[[Any], Any]]) -> None:
        """Direct batch, then queued batch, each the moment the node is free; sleep when there is nothing due."""
        sender = self.sender
        if client_factory is not None and sender.client is None:
            sender.client = client_factory(self.node)
        try:
            while not self.stopping.is_set():
                generation = self.queue.generation
                worked = False
                held: Optional[float] = None  # seconds until a hot URL in the inbox may go
                with self.recorder.lock:
                    direct = sender.has_direct
                if direct:
                    sent, held = self.send_direct()
                    worked = sent > 0
                if sender.is_down():  # circuit open: no queued batch until the node's backoff has passed
                    wait = max(0.001, sender.down_until - sender.clock.time())
                    self.stopping.wait(min(self.poll, wait, held if held is not None else wait))
                    continue
                if not self._store_parked():  # full disk: no new claims, direct batches go on
                    self.queue.wait(generation, self.poll)
                    continue
                try:
                    due = self.queue.next_due(self.node.name)
                    claims = self.queue.claim(self.node.name, self.batch, self.lease) if due == 0 else []
                except Exception as exc:  # noqa: BLE001 - a full disk: logged once per outage, not per poll
                    if not self._claims_failing:
                        log.error("claiming for %s failed (%s: %s); direct batches go on, claims are retried",
                                  self.node.name, type(exc).__name__, exc)
                        self._claims_failing = True
                    self.queue.wait(generation, self.poll)
                    continue
                self._claims_failing = False
                if claims:
                    self.process(claims)
                    worked = True
                if worked:
                    continue
                timeout = self.poll if due is None else min(self.poll, max(due, 0.002))
                if held is not None:
                    timeout = min(timeout, max(held, 0.0005))
                self.queue.wait(generation, timeout)
            with self.recorder.lock:
                direct = sender.has_direct
            if direct:  # stopping: hot URLs held for their window go now, rather than after the next start
                self.send_direct(flush=True)
        finally:
            sender.close()
            sender.client = None

    def send_direct(self, flush: bool = False) -> tuple:
        """Send what the inbox lets go now (all of it with ``flush``); requeue what the node did not confirm; settle.

        Returns ``(purges sent, seconds until a held URL may go or None)``.
        """
        sender = self.sender
        node = self.node
        down = sender.is_down()
        with self.recorder.lock:
            taken = sender.inbox.take(sender.clock.monotonic(), everything=down or flush)
        items = taken.items
        requeue: list = []
        confirmed: Dict[str, int] = {}
        if items and down:
            requeue = list(items.items())
        elif items:
            oldest = min(first_at for _item, first_at, _last in items.values())
            results = sender.send([value[0] for value in items.values()], oldest)
            now = sender.clock.time()
            metrics = self.metrics
            for (key, span), result in zip(items.items(), results):
                outcome = result.outcome
                if outcome in OK:
                    confirmed[outcome.value] = confirmed.get(outcome.value, 0) + 1
                    if metrics and outcome is not Outcome.SKIPPED:
                        metrics.observe_latency(max(0.0, now - span[1]))
                else:
                    requeue.append((key, span))
        if requeue:
            try:
                self.queue.requeue(node.name, [(key, expansion.payload(item), first_at, last_at)
                                               for key, (item, first_at, last_at) in requeue])
            except Exception:  # cannot even queue them: keep them in the inbox for the next round
                log.exception("requeueing %d purge(s) for %s failed", len(requeue), node.name)
                with self.recorder.lock:
                    sender.inbox.restore(dict(requeue), sender.covered + 1)
                self.stopping.wait(self.poll)
                return 0, taken.due
            log.info("node %s: %d purge(s) confirmed, %d queued for retry (%s)", node.name,
                     sum(confirmed.values()), len(requeue), sender.state.last_error or "node down")
        for outcome, count in confirmed.items():
            self._count(outcome, count)
        with self.recorder.lock:
            self.recorder.confirmed(node.name, confirmed)
            sender.covered = max(sender.covered, taken.covered)
        self.recorder.settle()
        return len(items), taken.due

    def process(self, claims: List[Any]) -> None:
        """Send one leased batch and settle every claim in the queue."""
        node = self.node
        by_key: Dict[str, list] = {}
        for claim in claims:
            by_key.setdefault(claim.key, []).append(claim)
        items = [Invalidation.from_dict(group[0].item) for group in by_key.values()]
        groups = list(by_key.values())
        started = time.monotonic()
        results = self.sender.send(items, min(claim.first_at for claim in claims))
        elapsed = time.monotonic() - started
        done: Dict[str, list] = {}
        dead: Dict[tuple, list] = {}
        failed: Dict[str, list] = {}
        for group, result in zip(groups, results):
            if result.outcome.ok:
                done.setdefault(result.outcome.value, []).extend(group)
            elif result.outcome is Outcome.REFUSED or result.permanent or (
                    result.status is not None and not fanout.classify(result.status)[1]):
                dead.setdefault((result.outcome.value, result.reason or result.outcome.value), []).extend(group)
            else:
                failed.setdefault(result.reason or "failed", []).extend(group)
        now = self.sender.clock.time()
        for outcome, group in done.items():
            self._count(outcome, len(group))
            if self.metrics and outcome != Outcome.SKIPPED.value:
                for claim in group:
                    self.metrics.observe_latency(max(0.0, now - claim.first_at))
        for (outcome, _reason), group in dead.items():
            self._count(outcome, len(group))
        for group in failed.values():
            self._count("failed", len(group))
        self.recorder.report()
        # Each write binds its own group: a parked write (full disk) runs after this loop has moved on.
        for outcome, group in done.items():
            self._until_stored(functools.partial(self.queue.ack, group, outcome))
        for (outcome, reason), group in dead.items():
            transition.log_dead_letters(node.name, group, reason, outcome)
            self._until_stored(functools.partial(self.queue.dead, group, reason))
        for reason, group in failed.items():
            self._until_stored(functools.partial(self.queue.nack, group, reason))
        if failed:   # dead letters have had their own error line above
            log.info("node %s: %d ok, %d to retry (%s)", node.name, sum(map(len, done.values())),
                     sum(map(len, failed.values())), self.sender.state.last_error)
        elif not dead:
            log.debug("node %s: %d purges confirmed in %.1f ms", node.name, len(claims), elapsed * 1000)

    def _until_stored(self, store: Callable[[], Any]) -> None:
        """Store a batch's outcome; when that fails (a full disk), park it for :meth:`_store_parked`, never re-send.

        A failed ack must not leave the rows leased to be claimed and sent
        again over and over; and retrying the write in place would stop this
        node's direct batches for as long as the disk is full. So the write
        waits on the side and the thread goes on sending. Logged once per
        outage. Parked writes lost to a stop leave their rows leased: sent
        again after the lease (a PURGE is idempotent).
        """
        if not self._parked:
            try:
                store()
                return
            except Exception as exc:  # noqa: BLE001 - the disk or the queue: park this write
                log.error("node %s: storing purge outcomes failed (%s: %s); retrying the write alone while "
                          "direct batches go on", self.node.name, type(exc).__name__, exc)
        self._parked.append(store)

    def _store_parked(self) -> bool:
        """Retry the parked outcome writes in order (at most once per backoff); True when none is left."""
        if not self._parked:
            return True
        now = time.monotonic()
        retry_at, delay = self._parked_retry
        if now < retry_at:
            return False
        while self._parked:
            try:
                self._parked[0]()
            except Exception:  # noqa: BLE001 - still failing: try again after the backoff
                delay = min(delay * 2, max(self.settings.backoff_max, 1.0))
                self._parked_retry = (now + delay, delay)
                return False
            self._parked.pop(0)
        self._parked_retry = (0.0, self.settings.backoff)
        log.warning("node %s: storing purge outcomes works again", self.node.name)
        return True

    def _count(self, outcome: str, count: int) -> None:
        if self.metrics:
            self.metrics.purged(self.node.name, outcome, count)
