"""Drains the journal and the queue: one thread per node, so a dead node never holds back the others.

Two paths lead to a node:

* **Direct** (signed events, the hot path). The expander thread reads new
  journal events in batches, maps and coalesces them (``journal.gather``)
  and puts the invalidations into each node's in-memory inbox, where they
  merge with what is still waiting there. Each node thread sends its inbox
  over the node's persistent pipelined connections. Anything the node did
  not confirm is written to the durable queue for that node (``requeue``);
  once every node has confirmed or requeued a batch, its journal events are
  marked expanded (``finish_expansion``). Nothing is written per (node, URL)
  while all nodes answer, so an event costs one journal commit and one small
  update instead of ~140 rows, a claim and an ack per node -- the
  difference between 13 and a few milliseconds from accept to purge.
  A crash before the mark leaves the events unexpanded: the next start reads
  and sends them again (at-least-once; a PURGE is idempotent).
* **Queued** (retries, webhook and admin purges). Each node thread leases a
  batch of its node's due deliveries, sends them with
  ``fanout.deliver(..., retries=0)`` and settles every row: confirmed (2xx,
  404) -> ack; refused (403/405) or a request the node calls wrong (other
  4xx) -> dead letter, since sending it again cannot help; no answer,
  408/429/5xx -> nack, which puts it back with exponential backoff.

A node that failed a direct send is treated as down for a backoff interval:
its inbox goes straight to the durable queue without a connection attempt,
and the first queued delivery it answers brings it back to the direct path.

Coalescing needs batches to wait a little while a burst goes on: a worker
that sends the moment anything is due would turn a burst of 1,000 post
updates into hundreds of front-page purges. Each node therefore has a token
bucket of batches (direct and queued alike): ``batch_burst`` batches go out
at once (an isolated event is purged within milliseconds), after that at
most ``batch_rate`` batches a second, and everything arriving in between
merges into the inbox or into the rows already waiting.

Accepting comes first: while requests are waiting for a journal commit or
arriving faster than 100 a second (a flood), the expander and the node
threads hold back for up to ``defer_max`` (PURGEBRIDGE_FLOOD_DEFER, 2 s)
before they map or send. On 2 cores the purge work competes with the accept
path for the same CPU and GIL; measured on a flood of 3,000 distinct post
updates, holding back answers the requests 2-3 x faster while the last purge
is confirmed no later (the total work is the same, and the larger batches
coalesce better). A flood that outlasts ``defer_max`` and keeps the process
saturated is then *paced* (:class:`_Pacer`): the purge work may use
``flood_share`` (PURGEBRIDGE_FLOOD_SHARE, 0.1) of a CPU until the flood ends,
then catches up at full speed. An isolated event never waits: its commit is
done before the expander wakes; a steady stream that does not saturate the
process is never paced.

Stopping (SIGTERM): threads stop claiming, the batch in flight is finished and
settled; journal events not handed out yet are expanded into queued rows if
that is quick (``expand_on_stop`` seconds); events handed out but not
finished, and the rest, are read again at the next start. A queued batch
whose settling never happens (SIGKILL) comes back when its lease expires.
"""

from collections import deque
from dataclasses import dataclass, field
import logging
import threading
import time

from purgebridge import fanout, journal
from purgebridge.fanout import Invalidation, Outcome

log = logging.getLogger(__name__)

DEFER_STEP = 0.005  # how often a deferring thread looks again
PACE_CREDIT = 0.05  # seconds of CPU the purge work may run ahead of its flood share
BUSY_CPU = 0.9      # CPUs this process uses when its Python threads are all it can run (one GIL)
ACCEPT_CPU = 0.25   # ... of which the accept path (everything but the purge work) uses at least this much
CPU_SAMPLE = 0.1    # seconds between two looks at the process's CPU time


class _Pacer:
    """Holds the purge work to ``share`` of one CPU while a flood outlasts ``defer_max``.

    Only while accepting is what saturates the process: a flood of events
    (``journal_busy``), the process using BUSY_CPU or more (all its Python
    threads compete for the one GIL), and ACCEPT_CPU or more of that spent
    outside the purge work. The purge work alone saturating the process (a
    batch being mapped and sent) is no reason to hold it back, and a steady
    few hundred events a second do not get there; in a real flood the pacer
    keeps the accept path fast and the purge work catches up when it ends
    (measured in docs/benchmarks.md).

    ``purge_cpu()`` is the CPU time the purge work's threads have used so far
    (their own thread clocks: waiting for the GIL or for a node's answer is
    not counted). Credit accrues at ``share`` seconds per second of
    wall-clock time, at most PACE_CREDIT banked, and pays for that CPU time.
    Outside a flood nothing is held back and the credit is full again, so a
    flood starts with no debt.
    """

    def __init__(self, share, purge_cpu, cpu_time=time.process_time, busy_cpu=BUSY_CPU):
        self.share = share
        self.busy_cpu = busy_cpu
        self.credit = PACE_CREDIT
        self.pacing = False     # holding the purge work back right now
        self._purge_cpu = purge_cpu
        self._cpu_time = cpu_time
        self._at = time.monotonic()
        self._paid = purge_cpu()
        self._sampled = (self._at, cpu_time(), self._paid)
        self._saturated = False
        self._episode = None    # when pacing began in the flood going on, if it did
        self._lock = threading.Lock()

    def allows(self, now, flooding):
        """May purge work run now? Yes unless accepting saturates the process in a flood and the credit is spent."""
        with self._lock:
            purge = self._purge_cpu()
            self.credit -= purge - self._paid
            self._paid = purge
            if flooding and now - self._sampled[0] >= CPU_SAMPLE:
                cpu = self._cpu_time()
                wall = now - self._sampled[0]
                total = (cpu - self._sampled[1]) / wall
                accepting = total - (purge - self._sampled[2]) / wall
                self._saturated = total >= self.busy_cpu and accepting >= ACCEPT_CPU
                self._sampled = (now, cpu, purge)
            self.pacing = pacing = flooding and self._saturated
            if pacing:
                self.credit = min(PACE_CREDIT, self.credit + (now - self._at) * self.share)
            else:
                self.credit = PACE_CREDIT
            self._at = now
            allowed = self.credit > 0
            # One line when pacing first starts in a flood, one when the flood ends:
            # saturation comes and goes within a flood and is not worth a line each time.
            began = pacing and self._episode is None
            ended = not flooding and self._episode is not None
            if began:
                self._episode = now
            elif ended:
                lasted, self._episode = now - self._episode, None
        if began:
            log.info("flood: accepting saturates this relay; purge work held to %d%% of a CPU until it ends",
                     round(self.share * 100))
        elif ended:
            log.info("flood over after %.1f s: purge work at full speed again", lasted)
        return allowed


def thread_cpu(clocks):
    """CPU seconds used by the threads whose CPU clocks (``time.pthread_getcpuclockid``) are given.

    A clock id is a plain number naming the thread: reading that of an ended
    thread fails cleanly (counted as 0), unlike asking for the clock of a
    thread that is gone.
    """
    total = 0.0
    for clock in clocks:
        try:
            total += time.clock_gettime(clock)
        except OSError:
            pass
    return total


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


@dataclass
class _Lane:
    """One node's direct-path inbox and how far it got."""

    items: dict = field(default_factory=dict)  # key -> (Invalidation, first_at, last_at)
    since: float = None    # monotonic time the oldest waiting item's batch began to be deferred
    upto: int = 0          # newest batch whose items are in (or went through) the inbox
    covered: int = 0       # newest batch this node confirmed or requeued entirely
    down_until: float = 0.0
    failures: int = 0

    def put(self, seq, items, since):
        if self.since is None:
            self.since = since
        for key, (item, first_at, last_at) in items.items():
            waiting = self.items.get(key)
            if waiting is not None:
                first_at, last_at = min(first_at, waiting[1]), max(last_at, waiting[2])
            self.items[key] = (item, first_at, last_at)
        self.upto = seq

    def take(self):
        items, self.items, self.since = self.items, {}, None
        return items, self.upto


@dataclass
class _Batch:
    seq: int
    events: list           # [(event_id, count)]
    merged: int            # (node, item) pairs saved by coalescing within the batch
    failed: int


class Worker:
    """Start with :meth:`start`, stop with :meth:`stop`; ``deliver`` is swappable for tests."""

    def __init__(self, queue, settings, nodes=None, deliver=fanout.deliver, metrics=None,
                 batch=512, lease=None, poll=1.0, housekeeping=None, client_factory=None,
                 batch_burst=None, batch_rate=None, mapping_options=None,
                 expand_batch=journal.EXPAND_BATCH, expand_on_stop=2.0, expand_gather=0.05,
                 defer_max=None, flood_share=None):
        self.queue = queue
        self.settings = settings
        self.nodes = tuple(settings.nodes if nodes is None else nodes)
        self.deliver = deliver
        self.metrics = metrics
        self.batch = batch
        # Long enough for a full batch to time out on every pipelined request.
        self.lease = lease if lease is not None else max(30.0, settings.timeout * (4 + batch / settings.pipeline))
        self.poll = poll
        # Every 30 s, or more often when PURGEBRIDGE_MAX_AGE is short: a purge is
        # dead-lettered (and its node's ban queued) at most a quarter past its max age.
        self.housekeeping = housekeeping if housekeeping is not None else min(
            30.0, getattr(settings, "max_age", 86400.0) / 4)
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
        self.defer_max = float(defer_max if defer_max is not None else getattr(settings, "flood_defer", 2.0))
        share = float(flood_share if flood_share is not None else getattr(settings, "flood_share", 0.1))
        self._clocks = ()  # CPU clocks of the worker's threads, for the pacer
        self._pacer = _Pacer(share, lambda: thread_cpu(self._clocks)) if share < 1 else None
        self.states = {node.name: NodeState(node) for node in self.nodes}
        self._lanes = {node.name: _Lane() for node in self.nodes}
        self._lanes_lock = threading.Lock()
        self._batches = deque()    # direct batches not finished on every node yet, oldest first
        self._in_flight = set()    # their event ids (a Redis takeover could hand one out again)
        self._seq = 0
        self._counts = {}          # (outcome, node) -> confirmed on the direct path, not yet written
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
        self._clocks = tuple(time.pthread_getcpuclockid(thread.ident) for thread in self._threads)
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
        """Hand new journal events to the node inboxes at once, but at most one batch per ``expand_gather``.

        An isolated event is dispatched at once; during a burst the pause lets
        a batch gather, so one mapping pass and one coalescing pass cover many
        events, and the expander does not compete with the requests for the
        GIL after every single commit.
        """
        self._relax()
        deferred = None
        while not self._stopping.is_set():
            generation = self.queue.journal_generation
            started = time.monotonic()
            held = "deferred" if self._defer(deferred, started) else "paced" if self._paced(started) else None
            if held:
                deferred = deferred or started
                self._stopping.wait(DEFER_STEP)
                if self.metrics:
                    self.metrics.held(held, time.monotonic() - started)
                continue
            try:
                done = self.dispatch(deferred)
            except Exception:  # keep the thread alive; the events are read again
                log.exception("expanding the journal failed")
                self.queue.rewind_journal()
                self._stopping.wait(self.poll)
                continue
            if done:
                if done < self.expand_batch:
                    deferred = None  # caught up with the journal
                    self._stopping.wait(max(0.0, self.expand_gather - (time.monotonic() - started)))
                continue
            deferred = None
            self.queue.wait_journal(generation, self.poll)

    def _defer(self, since, now):
        """Accepting comes first: wait while requests wait for a journal commit, but not past ``defer_max``."""
        if not self.defer_max or not self.queue.journal_busy():
            return False
        return since is None or now - since < self.defer_max

    def _paced(self, now):
        """After ``defer_max``: is the purge work over its share of the CPU in a flood that goes on?"""
        return self._pacer is not None and not self._pacer.allows(now, self.queue.journal_busy())

    def dispatch(self, since=None):
        """Read, map and coalesce one batch of journal events into the node inboxes; returns how many events.

        ``since``: when the expander began deferring this batch (the node
        threads defer it no longer than ``defer_max`` from then).
        """
        since = time.monotonic() if since is None else since
        batch = journal.gather(self.queue, self.options_for, self.settings.proto_header, self.expand_batch)
        if batch is None:
            return 0
        with self._lanes_lock:
            events = [event for event in batch.events if event[0] not in self._in_flight]
            if not events:
                return len(batch.events)
            self._seq += 1
            self._batches.append(_Batch(self._seq, events, (batch.naive - len(batch.items)) * len(self.nodes),
                                        batch.failed))
            self._in_flight.update(event_id for event_id, _count in events)
            for lane in self._lanes.values():
                lane.put(self._seq, batch.items, since)
        self.queue.notify()  # wakes the node threads
        return len(batch.events)

    def _settle(self):
        """Mark the journal events of every batch that all nodes have confirmed or requeued."""
        with self._lanes_lock:
            low = min((lane.covered for lane in self._lanes.values()), default=self._seq)
            done = []
            while self._batches and self._batches[0].seq <= low:
                done.append(self._batches.popleft())
            if not done:
                return
            counts, self._counts = self._counts, {}
        events = [event for batch in done for event in batch.events]
        counters = [(outcome, node, n) for (outcome, node), n in counts.items()]
        counters.append(("merged", "", sum(batch.merged for batch in done)))
        try:
            self.queue.finish_expansion(events, counters, failed=sum(batch.failed for batch in done))
        except Exception:  # delivered, but not marked: read again and sent again (at-least-once)
            log.exception("marking %d delivered journal event(s) failed; they will be sent again", len(events))
            self.queue.rewind_journal()
        finally:
            with self._lanes_lock:
                self._in_flight.difference_update(event_id for event_id, _count in events)

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
                self.housekeep()
            except Exception:  # keep the thread alive; the next round tries again
                log.exception("queue housekeeping failed")

    def housekeep(self, now=None):
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
        since = time.time() if now is None else now
        expired = self.queue.expire(now=now)
        if not expired or not getattr(self.settings, "dead_letter_ban", True):
            return expired
        from purgebridge.sites import load_sites

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

    def _relax(self):
        relax = getattr(self.queue, "relax_durability", None)  # SQLite only; Redis has its own fsync policy
        if relax is not None:
            relax()

    def _run_node(self, node):
        self._relax()
        lane = self._lanes.setdefault(node.name, _Lane())
        client = self.client_factory(node) if self.client_factory else None
        tokens, refilled = self.batch_burst, time.monotonic()
        try:
            while not self._stopping.is_set():
                now = time.monotonic()
                tokens = min(self.batch_burst, tokens + (now - refilled) * self.batch_rate)
                refilled = now
                generation = self.queue.generation
                with self._lanes_lock:
                    direct = lane.upto > lane.covered
                if tokens < 1 and (direct or self.queue.next_due(node.name) is not None):
                    # Hot node: let the burst pile up (and merge) until the next batch is allowed.
                    self._stopping.wait((1 - tokens) / self.batch_rate)
                    continue
                if direct:
                    if (lane.since is not None and self._defer(lane.since, now)) or self._paced(now):
                        self._stopping.wait(DEFER_STEP)
                        continue
                    tokens -= 1
                    self.send_direct(node, client)
                    continue
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

    def send_direct(self, node, client=None):
        """Send ``node``'s inbox; requeue what it did not confirm; then settle. Public so tests can drive it."""
        lane = self._lanes[node.name]
        with self._lanes_lock:
            items, upto = lane.take()
        state = self.states.setdefault(node.name, NodeState(node))
        requeue, confirmed = [], {}
        if items and time.time() < lane.down_until:
            requeue = list(items.items())
        elif items:
            kwargs = {"retries": 0}
            if client is not None:
                kwargs["client"] = client
            started = time.monotonic()
            try:
                results = self.deliver(node, [value[0] for value in items.values()], self.settings, **kwargs)
            except Exception as exc:  # a bug or an unexpected transport error: the queue retries them
                log.exception("delivering to %s failed", node.name)
                results = [None] * len(items)
                state.last_error, state.last_error_at = str(exc), time.time()
            answered, now = False, time.time()
            for (key, (item, first_at, last_at)), result in zip(items.items(), results):
                if result is not None and result.status is not None:
                    answered = True
                if result is not None and result.outcome.ok:
                    confirmed[result.outcome.value] = confirmed.get(result.outcome.value, 0) + 1
                    if self.metrics:
                        self.metrics.observe_latency(max(0.0, now - first_at))
                else:
                    requeue.append((key, (item, first_at, last_at)))
                    if result is not None and result.reason:
                        state.last_error, state.last_error_at = result.reason, now
            state.sent += len(items)
            state.latency = time.monotonic() - started
            state.up = answered
            if answered:
                state.last_contact = now
                lane.failures, lane.down_until = 0, 0.0
            else:
                lane.failures += 1
                lane.down_until = now + fanout.backoff_delay(lane.failures, self.settings.backoff,
                                                             self.settings.backoff_max)
        if requeue:
            try:
                self.queue.requeue(node.name, [(key, journal.payload(item), first_at, last_at)
                                               for key, (item, first_at, last_at) in requeue])
            except Exception:  # cannot even queue them: keep them in the inbox for the next round
                log.exception("requeueing %d purge(s) for %s failed", len(requeue), node.name)
                with self._lanes_lock:
                    lane.put(lane.upto, dict(requeue), time.monotonic())
                self._stopping.wait(self.poll)
                return
            log.info("node %s: %d purge(s) confirmed, %d queued for retry (%s)", node.name,
                     sum(confirmed.values()), len(requeue), state.last_error or "node down")
        for outcome, count in confirmed.items():
            self._count(node, outcome, count)
        with self._lanes_lock:
            for outcome, count in confirmed.items():
                self._counts[(outcome, node.name)] = self._counts.get((outcome, node.name), 0) + count
            lane.covered = max(lane.covered, upto)
        self._settle()

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
            elif result.outcome is Outcome.REFUSED or result.permanent or (
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
            lane = self._lanes.get(node.name)
            if lane is not None:  # the node answers again: back to the direct path
                lane.failures, lane.down_until = 0, 0.0
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
