"""Drains the queue: one thread per node, so a dead node never holds back the others.

Each thread leases a batch of its node's due deliveries, sends them with
``fanout.deliver(..., retries=0)`` over the node's persistent pipelined
connections, and then settles every row: confirmed (2xx, 404) -> ack;
refused (403/405) or a request the node calls wrong (other 4xx) -> dead
letter, since sending it again cannot help; no answer, 408/429/5xx -> nack,
which puts it back with exponential backoff. Retrying through the queue rather
than inside ``deliver`` means a down node costs one failed batch per backoff
step, not a thread sleeping on a lease.

Coalescing needs batches to wait a little while a burst goes on: rows merge
only while they are queued, not while in flight, so a worker that sends the
moment anything is due would turn a burst of 1,000 post updates into hundreds
of front-page purges. Each node therefore has a token bucket of batches:
``batch_burst`` batches go out at once (an isolated event is purged within
milliseconds), after that at most ``batch_rate`` batches a second, and
everything arriving in between is merged into the rows already waiting.

Signed events reach the queue as journal entries (``journal``); the worker's
expander thread turns them into delivery rows in batches, coalesced across
each batch, and wakes the node threads. Journal entries a killed process left
unexpanded are expanded when the next worker starts.

Stopping (SIGTERM): threads stop claiming, the batch in flight is finished and
settled, anything not yet claimed stays queued for the next start; journal
entries already committed are expanded if that is quick (``expand_on_stop``
seconds), the rest on the next start. A batch whose settling never happens
(SIGKILL) comes back when its lease expires.
"""

import logging
import threading
import time

from purgebridge import fanout, journal
from purgebridge.fanout import Invalidation, Outcome

log = logging.getLogger(__name__)


class NodeState:
    """What the last contact with a node showed; read by /v1/status and /readyz."""

    def __init__(self, node):
        self.node = node
        self.up = None            # None until the first batch
        self.last_contact = None  # unix time of the last answer
        self.latency = None       # seconds the last batch took
        self.last_error = ""
        self.last_error_at = None
        self.sent = 0

    def to_dict(self):
        return {"node": self.node.name, "up": self.up, "last_contact": self.last_contact,
                "latency_ms": None if self.latency is None else round(self.latency * 1000, 2),
                "last_error": self.last_error, "last_error_at": self.last_error_at, "sent": self.sent}


class Worker:
    """Start with :meth:`start`, stop with :meth:`stop`; ``deliver`` is swappable for tests."""

    def __init__(self, queue, settings, nodes=None, deliver=fanout.deliver, metrics=None,
                 batch=512, lease=None, poll=1.0, housekeeping=30.0, client_factory=None,
                 batch_burst=None, batch_rate=None, mapping_options=None,
                 expand_batch=journal.EXPAND_BATCH, expand_on_stop=2.0, expand_gather=0.05):
        self.queue = queue
        self.settings = settings
        self.nodes = tuple(settings.nodes if nodes is None else nodes)
        self.deliver = deliver
        self.metrics = metrics
        self.batch = batch
        # Long enough for a full batch to time out on every pipelined request.
        self.lease = lease if lease is not None else max(30.0, settings.timeout * (4 + batch / settings.pipeline))
        self.poll = poll
        self.housekeeping = housekeeping
        if client_factory is None and deliver is fanout.deliver:
            client_factory = lambda node: fanout.NodeClient(  # noqa: E731
                node, settings.timeout, settings.connections, settings.pipeline)
        self.client_factory = client_factory
        self.batch_burst = float(batch_burst if batch_burst is not None else getattr(settings, "batch_burst", 5))
        self.batch_rate = float(batch_rate if batch_rate is not None else getattr(settings, "batch_rate", 2.0))
        self.mapping_options = mapping_options  # host -> MappingOptions; from the sites settings if None
        self._options = {}
        self.expand_batch = expand_batch
        self.expand_on_stop = expand_on_stop
        self.expand_gather = expand_gather
        self.states = {node.name: NodeState(node) for node in self.nodes}
        self._stopping = threading.Event()
        self._threads = []

    @property
    def running(self):
        return any(thread.is_alive() for thread in self._threads)

    def start(self):
        if self._threads:
            return self
        self._stopping.clear()
        for node in self.nodes:
            thread = threading.Thread(target=self._run_node, args=(node,), name=f"purge-{node.name}", daemon=True)
            self._threads.append(thread)
        self._threads.append(threading.Thread(target=self._run_housekeeping, name="purge-housekeeping", daemon=True))
        self._threads.append(threading.Thread(target=self._run_expander, name="journal-expander", daemon=True))
        for thread in self._threads:
            thread.start()
        log.info("worker started for %d node(s): %s", len(self.nodes), ", ".join(n.name for n in self.nodes))
        return self

    def stop(self, timeout=None):
        """Stop claiming, let in-flight batches finish and settle. True if every thread ended in time."""
        self._stopping.set()
        self.queue.notify()
        deadline = None if timeout is None else time.monotonic() + timeout
        for thread in self._threads:
            thread.join(None if deadline is None else max(0.0, deadline - time.monotonic()))
        alive = [t.name for t in self._threads if t.is_alive()]
        if "journal-expander" not in alive:
            self._expand_rest(self.expand_on_stop)
        if alive:
            log.warning("worker threads still busy at shutdown: %s (their leases will expire)", ", ".join(alive))
        else:
            log.info("worker stopped")
        self._threads = []
        return not alive

    def node_status(self):
        return [state.to_dict() for state in self.states.values()]

    # --- threads ----------------------------------------------------------------------

    def options_for(self, host):
        """The site's mapping options (cached); built from the sites settings unless given."""
        if self.mapping_options is not None:
            return self.mapping_options(host)
        if host not in self._options:
            from purgebridge.sites import load_sites

            self._options[host] = load_sites(self.settings).mapping_options(host, self.settings)
        return self._options[host]

    def expand(self, limit=None):
        """Expand one batch of journal entries into deliveries; returns how many entries. Public for tests."""
        return journal.expand(self.queue, [node.name for node in self.nodes], self.options_for,
                              self.settings.proto_header, limit or self.expand_batch)

    def _run_expander(self):
        """Expand as soon as the journal has something, but at most one batch per ``expand_gather``.

        An isolated event is expanded at once; during a burst the pause lets
        a batch gather, so one transaction and one coalescing pass cover many
        events, and the expander does not compete with the requests for the
        GIL and the write lock after every single commit.
        """
        self._relax()
        while not self._stopping.is_set():
            generation = self.queue.journal_generation
            started = time.monotonic()
            try:
                done = self.expand()
            except Exception:  # keep the thread alive; the entries stay in the journal for the next round
                log.exception("expanding the journal failed")
                self._stopping.wait(self.poll)
                continue
            if done:
                if done < self.expand_batch:
                    self._stopping.wait(max(0.0, self.expand_gather - (time.monotonic() - started)))
                continue
            self.queue.wait_journal(generation, self.poll)

    def _expand_rest(self, budget):
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

    def _run_housekeeping(self):
        self._relax()
        while not self._stopping.wait(self.housekeeping):
            try:
                self.queue.expire()
            except Exception:  # keep the thread alive; the next round tries again
                log.exception("queue housekeeping failed")

    def _relax(self):
        relax = getattr(self.queue, "relax_durability", None)  # SQLite only; Redis has its own fsync policy
        if relax is not None:
            relax()

    def _run_node(self, node):
        self._relax()
        client = self.client_factory(node) if self.client_factory else None
        tokens, refilled = self.batch_burst, time.monotonic()
        try:
            while not self._stopping.is_set():
                now = time.monotonic()
                tokens = min(self.batch_burst, tokens + (now - refilled) * self.batch_rate)
                refilled = now
                if tokens < 1:
                    # Hot node: let the burst pile up (and merge) until the next batch is allowed.
                    self._stopping.wait((1 - tokens) / self.batch_rate)
                    continue
                generation = self.queue.generation
                try:
                    claims = self.queue.claim(node.name, self.batch, self.lease)
                except Exception:
                    log.exception("claiming for %s failed", node.name)
                    self._stopping.wait(self.poll)
                    continue
                if claims:
                    tokens -= 1
                    self.process(node, claims, client)
                    continue
                due = self.queue.next_due(node.name)
                timeout = self.poll if due is None else min(self.poll, max(due, 0.002))
                self.queue.wait(generation, timeout)
        finally:
            if client is not None:
                client.close()

    def process(self, node, claims, client=None):
        """Send one leased batch to ``node`` and settle every claim. Public so tests can drive it."""
        by_key = {}
        for claim in claims:
            by_key.setdefault(claim.key, []).append(claim)
        items = [Invalidation.from_dict(group[0].item) for group in by_key.values()]
        groups = list(by_key.values())
        state = self.states.setdefault(node.name, NodeState(node))
        kwargs = {"retries": 0}
        if client is not None:
            kwargs["client"] = client
        started = time.monotonic()
        try:
            results = self.deliver(node, items, self.settings, **kwargs)
        except Exception as exc:  # a bug or an unexpected transport error: retry later, never lose rows
            log.exception("delivering to %s failed", node.name)
            self.queue.nack(claims, f"{type(exc).__name__}: {exc}")
            state.up, state.last_error, state.last_error_at = False, str(exc), time.time()
            return
        elapsed = time.monotonic() - started
        done, dead, failed = {}, {}, {}
        answered = False
        for group, result in zip(groups, results):
            answered = answered or result.status is not None
            if result.outcome.ok:
                done.setdefault(result.outcome.value, []).extend(group)
            elif result.outcome is Outcome.REFUSED or (
                    result.status is not None and not fanout.classify(result.status)[1]):
                dead.setdefault((result.outcome.value, result.reason or result.outcome.value), []).extend(group)
            else:
                failed.setdefault(result.reason or "failed", []).extend(group)
        for outcome, group in done.items():
            for seconds in self.queue.ack(group, outcome):
                if self.metrics:
                    self.metrics.observe_latency(seconds)
            self._count(node, outcome, len(group))
        for (outcome, reason), group in dead.items():
            self.queue.dead(group, reason)
            self._count(node, outcome, len(group))
        for reason, group in failed.items():
            self.queue.nack(group, reason)
            self._count(node, "failed", len(group))
        now = time.time()
        state.sent += len(items)
        state.latency = elapsed
        if answered:
            state.up, state.last_contact = True, now
        else:
            state.up = False
        if failed or dead:
            state.last_error = next(iter(failed)) if failed else next(iter(dead))[1]
            state.last_error_at = now
            log.info("node %s: %d ok, %d to retry, %d dead-lettered (%s)", node.name,
                     sum(map(len, done.values())), sum(map(len, failed.values())),
                     sum(map(len, dead.values())), state.last_error)
        else:
            log.debug("node %s: %d purges confirmed in %.1f ms", node.name, len(claims), elapsed * 1000)

    def _count(self, node, outcome, count):
        if self.metrics:
            self.metrics.purged(node.name, outcome, count)
