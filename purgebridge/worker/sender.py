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

import logging
import threading
import time
from typing import Any, Callable, Dict, List, Optional

from purgebridge.delivery import fanout
from purgebridge.delivery.fanout import Invalidation, Outcome
from purgebridge.worker import expansion
from purgebridge.worker.node import OK, NodeSender
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
                try:
                    due = self.queue.next_due(self.node.name)
                    claims = self.queue.claim(self.node.name, self.batch, self.lease) if due == 0 else []
                except Exception:
                    log.exception("claiming for %s failed", self.node.name)
                    self.stopping.wait(self.poll)
                    continue
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
        for outcome, group in done.items():
            self._until_stored(lambda: self.queue.ack(group, outcome))
        for (_outcome, reason), group in dead.items():
            self._until_stored(lambda: self.queue.dead(group, reason))
        for reason, group in failed.items():
            self._until_stored(lambda: self.queue.nack(group, reason))
        if failed or dead:
            log.info("node %s: %d ok, %d to retry, %d dead-lettered (%s)", node.name,
                     sum(map(len, done.values())), sum(map(len, failed.values())),
                     sum(map(len, dead.values())), self.sender.state.last_error)
        else:
            log.debug("node %s: %d purges confirmed in %.1f ms", node.name, len(claims), elapsed * 1000)

    def _until_stored(self, store: Callable[[], Any]) -> None:
        """Store a batch's outcome, retrying the store alone while it fails (a full disk), never the sends.

        A failed ack must not leave the rows leased: they would be claimed
        and sent again when the lease ran out, over and over. Logged once
        per outage.
        """
        delay, logged = self.settings.backoff, False
        while True:
            try:
                store()
                if logged:
                    log.warning("node %s: storing purge outcomes works again", self.node.name)
                return
            except Exception as exc:  # noqa: BLE001 - the disk or the queue: retry this write only
                if not logged:
                    log.error("node %s: storing purge outcomes failed (%s: %s); retrying the write alone",
                              self.node.name, type(exc).__name__, exc)
                    logged = True
                if self.stopping.wait(delay):
                    return  # stopping: the rows stay leased and are sent again at the next start
                delay = min(delay * 2, max(self.settings.backoff_max, 1.0))

    def _count(self, outcome: str, count: int) -> None:
        if self.metrics:
            self.metrics.purged(self.node.name, outcome, count)
