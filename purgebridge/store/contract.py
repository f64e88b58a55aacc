"""The queue contract: what every storage backend (SQLite, Redis) provides, typed.

``Store`` is the contract as a ``typing.Protocol``: the worker, the routes
and the CLI are written against it, and ``tests/integration/test_queue_contract.py``
runs the same tests on both backends. Records crossing it are small frozen
dataclasses (``Enqueued``, ``Claim``) and typed tuples
(``QueuedItem``, ``EventCount``, ``PendingEvent``, ``CounterRow``); the dicts
of ``stats()`` and ``dead_letters()`` are built by one function each
(``summarise_stats``, ``dead_letter``), and what both backends hold and do
alike (retry settings, ``backoff_delay``, ``from_settings``, wake-ups) is
their base class ``Backend``. Nothing here, nor in any backend, imports the
HTTP API or the fan-out: storage knows invalidations only as ``key`` + JSON
payload (``purgebridge.core.invalidation``).

Contract (what another backend, e.g. Redis Streams, has to provide)::

    enqueue(nodes, items, source, signature=None, site="") -> Enqueued
        One atomic write: the event row, the signature in the replay cache
        (raises SignatureError(replay=True) if seen inside the window), and
        one delivery per (node, item). An item whose ``key`` is already
        *ready* (queued, not leased) for that node is merged into that row:
        no new row, ``merges`` += 1, the oldest enqueue time kept.
    append(source, site, body, signature=None) -> event_id
        The accept path of signed events (``journal``): the raw validated
        event and its signature are committed to the ``events`` journal in
        a transaction shared with every append waiting at the same moment
        (group commit), and only then does append return. A signature seen
        inside the window, or twice in one group, raises
        SignatureError(replay=True) and stores nothing of that event;
        QueueError (busy, closed, not writable) stores nothing either.
    pending_events(limit) -> [(event_id, source, site, body, received_at)]
        Unexpanded events this queue object has not handed out yet, oldest
        first (so the expander never reads an event twice while it is being
        delivered); a new queue object -- the next start -- hands out every
        unexpanded event again. rewind_journal() does that now (after a
        failed expansion).
    store_expansion(nodes, events, items) -> Enqueued
        One transaction: the deliveries of a batch of journal events
        (coalesced by the caller, merged into ready rows like enqueue) and
        those events marked expanded. Events not marked are expanded again
        after a crash (at-least-once; a PURGE is idempotent).
    finish_expansion(events, counters, failed=0) -> int
        The worker's direct path: the batch was delivered to every node (or
        what a node did not confirm was requeued), so mark its events
        expanded and add ``counters`` [(name, node, value)] in one
        transaction. Returns how many events were still unmarked.
    requeue(node, items)
        Deliveries the direct path could not confirm on ``node``: inserted
        (or merged) as ready rows, so the queued path retries them with
        backoff and dead-letters what the node refuses.
    journal_pending() -> int               accepted events not yet expanded
    claim(node, limit, lease) -> [Claim]   ready rows whose next_at is due, or
        leased rows whose lease ran out (a crashed worker's claims come back)
    ack(claims, outcome)      delivered: rows removed, totals counted
    nack(claims, reason)      failed: back to ready after exponential backoff
                              with jitter (attempt n waits ~backoff * 2**(n-1),
                              capped at backoff_max)
    dead(claims, reason)      not worth retrying (refused by the node): dead letter
    expire() -> {node: rows}  rows not delivered within max_age -> dead letters
                              (how many, per node that had any); also forgets
                              signatures older than the window
    retry_dead(node=None) -> int           dead letters back to ready
    release_leases() -> int   at start-up: claims of a dead process are due now
    dead_letters(limit) -> [dict]; stats() -> dict; writable() -> bool
    wait(generation, timeout) / generation  wake-up for workers, also across processes
    wait_journal(generation, timeout) / journal_generation   ... for the expander
    listen()                  in the worker process: hear other processes' writes (``wakeup``)
"""

from dataclasses import dataclass
import json
import random
import re
import time
from typing import Any, Callable, Dict, Iterable, List, Optional, Protocol, Sequence, Set, Tuple, Type, TypeVar

from purgebridge.core.backoff import backoff_delay
from purgebridge.store.wakeup import Wakeups

REPLAY_WINDOW = 300  # seconds a signature stays in the replay cache

QueuedItem = Tuple[str, str, float, float]           # (key, payload JSON, first_at, last_at): a delivery to store
EventCount = Tuple[str, int]                          # (event_id, invalidations it mapped to on its own)
PendingEvent = Tuple[str, str, str, bytes, float]     # (event_id, source, site, body, received_at)
CounterRow = Tuple[str, str, int]                        # (name, node or "" for totals only, value)


@dataclass(frozen=True)
class Enqueued:
    event_id: str
    items: int    # distinct invalidations in the event
    rows: int     # new (node, item) rows
    merged: int   # (node, item) pairs merged into a row already waiting


@dataclass(frozen=True)
class Claim:
    """One leased delivery; hand it back to ack/nack/dead."""

    id: int
    node: str
    key: str
    item: Dict[str, Any]
    attempts: int    # including this one
    first_at: float  # oldest enqueue merged into this row (latency is measured from it)
    lease: str


B = TypeVar("B", bound="Backend")


class QueueSettings(Protocol):
    """What opening a queue reads of ``config.settings.Settings`` (the store may not import config)."""

    @property
    def queue(self) -> str: ...

    @property
    def backoff(self) -> float: ...

    @property
    def backoff_max(self) -> float: ...

    @property
    def max_age(self) -> float: ...


class Backend(Wakeups):
    """What every backend holds and does the same way: the retry settings, backoff, wake-ups, ``from_settings``."""

    def __init__(self, backoff: float = 0.1, backoff_max: float = 5.0, max_age: float = 86400.0,
                 replay_window: float = REPLAY_WINDOW, clock: Callable[[], float] = time.time,
                 rng: Callable[[], float] = random.random) -> None:
        super().__init__()
        self.backoff = backoff            # first retry after about this many seconds ...
        self.backoff_max = backoff_max    # ... doubling up to this
        self.max_age = max_age            # undelivered this long: dead letter
        self.replay_window = replay_window
        self.clock = clock
        self.rng = rng

    @classmethod
    def from_settings(cls: Type[B], settings: "QueueSettings", **kwargs: Any) -> B:
        """The queue ``settings.queue`` names, with the retry settings (``store.open_queue`` picks the class)."""
        backend: Any = cls  # a subclass's constructor takes its location first (a path, a URL)
        queue: B = backend(settings.queue, backoff=settings.backoff,
                           backoff_max=max(settings.backoff_max, settings.backoff), max_age=settings.max_age,
                           **kwargs)
        return queue

    def backoff_delay(self, attempts: int) -> float:
        """Seconds before try ``attempts + 1``: doubling, capped, with "equal jitter" (half fixed, half random)."""
        return backoff_delay(max(1, attempts), self.backoff, self.backoff_max, self.rng)


def payload(item: Any) -> str:
    """An invalidation (``.to_dict()``) as both backends store it: compact JSON."""
    return json.dumps(item.to_dict(), separators=(",", ":"))


def unique_payloads(items: Iterable[Any]) -> List[Tuple[str, str]]:
    """``(key, payload JSON)`` of each distinct invalidation in ``items`` (objects with ``.key`` and ``.to_dict()``)."""
    unique: Dict[str, Any] = {}
    for item in items:
        unique.setdefault(item.key, item)
    return [(key, payload(item)) for key, item in unique.items()]


def node_stats() -> Dict[str, Any]:
    """One node's entry of ``stats()["nodes"]`` before anything is counted."""
    return {"pending": 0, "in_flight": 0, "dead": 0, "oldest_pending_age": None}


def dead_letter(row_id: int, node: str, item: Dict[str, Any], first_at: float, dead_at: float, attempts: int,
                reason: str) -> Dict[str, Any]:
    """One entry of ``dead_letters()`` (JSON for the API and the CLI), the same from every backend."""
    return {"id": row_id, "node": node, "item": item, "first_at": first_at, "dead_at": dead_at,
            "attempts": attempts, "reason": reason}


def summarise_stats(nodes: Dict[str, Dict[str, Any]], counters: Iterable[CounterRow], journal_pending: int,
                    journal_age: Optional[float]) -> Dict[str, Any]:
    """The ``stats()`` dict every backend returns, from what it counted.

    ``nodes``: node -> {"pending", "in_flight", "dead", "oldest_pending_age"};
    ``counters``: (name, node, value) rows, node "" for totals only;
    ``journal_age``: seconds the oldest unexpanded event has waited, or None.
    """
    totals: Dict[str, int] = {}
    per_node: Dict[str, Dict[str, int]] = {}
    for name, node, value in counters:
        totals[name] = totals.get(name, 0) + value
        if node:
            per_node.setdefault(node, {})[name] = value
    for node, counts in per_node.items():
        nodes.setdefault(node, node_stats())
        nodes[node]["totals"] = counts
    ages = [n["oldest_pending_age"] for n in nodes.values() if n["oldest_pending_age"] is not None]
    if journal_age is not None:
        ages.append(journal_age)
    return {
        "depth": sum(n["pending"] + n["in_flight"] for n in nodes.values()) + journal_pending,
        "journal_pending": journal_pending,
        "pending": sum(n["pending"] for n in nodes.values()),
        "in_flight": sum(n["in_flight"] for n in nodes.values()),
        "dead": sum(n["dead"] for n in nodes.values()),
        "oldest_pending_age": max(ages) if ages else None,
        "nodes": nodes,
        "totals": totals,
    }


class Store(Protocol):
    """The backend contract (module docstring); ``purgebridge.store.open_queue`` returns one."""

    path: str

    def enqueue(self, nodes: Sequence[str], items: Iterable[Any], source: str, signature: Optional[str] = None,
                site: str = "", now: Optional[float] = None) -> Enqueued: ...

    def append(self, source: str, site: str, body: bytes, signature: Optional[str] = None) -> str: ...

    def pending_events(self, limit: int = 500) -> List[PendingEvent]: ...

    def rewind_journal(self) -> None: ...

    def store_expansion(self, nodes: Sequence[str], events: List[EventCount], items: List[QueuedItem],
                        failed: int = 0, now: Optional[float] = None) -> Enqueued: ...

    def finish_expansion(self, events: List[EventCount], counters: Iterable[CounterRow] = (), failed: int = 0,
                         now: Optional[float] = None) -> int: ...

    def requeue(self, node: str, items: List[QueuedItem], now: Optional[float] = None) -> None: ...

    def journal_pending(self) -> int: ...

    def claim(self, node: str, limit: int = 256, lease: float = 30.0, now: Optional[float] = None) -> List[Claim]: ...

    def ack(self, claims: List[Claim], outcome: str = "purged", now: Optional[float] = None) -> List[float]: ...

    def nack(self, claims: List[Claim], reason: str, now: Optional[float] = None) -> None: ...

    def dead(self, claims: List[Claim], reason: str, now: Optional[float] = None) -> None: ...

    def expire(self, now: Optional[float] = None) -> Dict[str, int]: ...

    def dead_hosts(self, node: str, since: float) -> Set[str]:
        """Hosts of ``node``'s dead letters dead-lettered at or after ``since`` (a dead-letter ban covers them)."""

    def retry_dead(self, node: Optional[str] = None, now: Optional[float] = None) -> int: ...

    def release_leases(self, now: Optional[float] = None) -> int: ...

    def next_due(self, node: str, now: Optional[float] = None) -> Optional[float]: ...

    def dead_letters(self, limit: int = 100, node: Optional[str] = None) -> List[Dict[str, Any]]: ...

    def stats(self, now: Optional[float] = None) -> Dict[str, Any]: ...

    def writable(self) -> bool: ...

    @property
    def generation(self) -> int: ...

    def wait(self, generation: int, timeout: Optional[float]) -> int: ...

    @property
    def journal_generation(self) -> int: ...

    def wait_journal(self, generation: int, timeout: Optional[float]) -> int: ...

    def notify(self) -> None: ...

    def notify_deliveries(self) -> None: ...

    def close(self) -> None: ...


def redact_location(location: object) -> str:
    """A queue location fit for a message, a log line or ``/v1/status``: the credentials of
    ``redis://user:pass@host`` replaced by ``***`` (the one place that hides them)."""
    return re.sub(r"//[^/@]*@", "//***@", str(location))
