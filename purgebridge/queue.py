"""The durable delivery queue: every (node, invalidation) pair until that node confirmed it.

Why per (node, item): a node that is down must get its purges when it comes
back, without holding back the nodes that are up. Why on disk before the 202:
the plugin forgets an event once the relay accepted it, so a relay crash
between accept and delivery must not lose it.

Backend: SQLite in WAL mode through the standard library. One file, no
server; readers do not block the single writer. Writes from the threads of
one process are serialised by a lock (cheaper than SQLite's busy-wait);
``busy_timeout`` covers a second process such as ``purgebridge queue retry``
run next to a live relay.

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
        JournalError (busy, closed, not writable) stores nothing either.
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
    seen_signature(signature) -> bool      cheap pre-check before parsing a body
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

``stats()["depth"]`` counts delivery rows waiting or in flight *plus* journal
events not yet expanded (also shown alone as ``journal_pending``): an event
accepted but not yet turned into deliveries is still work to do.

States of a row: ``ready`` (waiting, maybe backing off until ``next_at``),
``leased`` (claimed; ``next_at`` is the lease expiry), ``dead``. Delivered rows
are deleted; counters keep the totals. ``last_at`` is the newest enqueue that
was merged into a row: max age counts from it, so a fresh event is never
dead-lettered because an older identical purge had been waiting long.
"""

from dataclasses import dataclass
import json
import logging
import os
import random
import sqlite3
import threading
import time
import uuid

from purgebridge import fanout
from purgebridge.errors import SignatureError
from purgebridge.wakeup import DELIVERIES, JOURNAL, Nudge, Signal

log = logging.getLogger(__name__)

SCHEMA_VERSION = 2
REPLAY_WINDOW = 300

_SCHEMA = """
CREATE TABLE IF NOT EXISTS events (
    id TEXT PRIMARY KEY,
    source TEXT NOT NULL,
    site TEXT NOT NULL DEFAULT '',
    received_at REAL NOT NULL,
    items INTEGER NOT NULL,
    rows INTEGER NOT NULL,
    merged INTEGER NOT NULL,
    signature TEXT,
    body BLOB,
    expanded_at REAL
);
CREATE TABLE IF NOT EXISTS signatures (
    signature TEXT PRIMARY KEY,
    seen_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS deliveries (
    id INTEGER PRIMARY KEY,
    node TEXT NOT NULL,
    key TEXT NOT NULL,
    item TEXT NOT NULL,
    state TEXT NOT NULL,
    event_id TEXT NOT NULL,
    first_at REAL NOT NULL,
    last_at REAL NOT NULL,
    next_at REAL NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    merges INTEGER NOT NULL DEFAULT 0,
    lease TEXT,
    last_error TEXT NOT NULL DEFAULT '',
    dead_at REAL
);
CREATE UNIQUE INDEX IF NOT EXISTS deliveries_ready ON deliveries(node, key) WHERE state = 'ready';
CREATE INDEX IF NOT EXISTS deliveries_due ON deliveries(node, next_at) WHERE state != 'dead';
CREATE INDEX IF NOT EXISTS deliveries_event ON deliveries(event_id);
CREATE TABLE IF NOT EXISTS counters (
    name TEXT NOT NULL,
    node TEXT NOT NULL DEFAULT '',
    value INTEGER NOT NULL,
    PRIMARY KEY (name, node)
);
"""

# A journal append is ONE statement (see write_journal): these triggers put the
# signature into the replay cache and count the event inside that statement.
# The plain INSERT into signatures fails -- and with it the whole statement --
# if the signature is there already, so a replay racing the pre-check cannot
# slip through.
_JOURNAL_TRIGGERS = """
CREATE TRIGGER IF NOT EXISTS events_journal_signature AFTER INSERT ON events
WHEN NEW.expanded_at IS NULL AND NEW.signature IS NOT NULL
BEGIN
    INSERT INTO signatures(signature, seen_at) VALUES (NEW.signature, NEW.received_at);
END;
CREATE TRIGGER IF NOT EXISTS events_journal_count AFTER INSERT ON events
WHEN NEW.expanded_at IS NULL
BEGIN
    INSERT INTO counters(name, node, value) VALUES ('events', '', 1)
    ON CONFLICT(name, node) DO UPDATE SET value = value + 1;
END;
"""

_UPSERT = """
INSERT INTO deliveries(node, key, item, state, event_id, first_at, last_at, next_at)
VALUES (?, ?, ?, 'ready', ?, ?, ?, ?)
ON CONFLICT(node, key) WHERE state = 'ready'
DO UPDATE SET merges = merges + 1, last_at = MAX(last_at, excluded.last_at)
"""

# Version 1 files: events were expanded when accepted, so every old row is done.
_MIGRATE_1 = (
    "ALTER TABLE events ADD COLUMN signature TEXT",
    "ALTER TABLE events ADD COLUMN body BLOB",
    "ALTER TABLE events ADD COLUMN expanded_at REAL",
    "UPDATE events SET expanded_at = received_at",
)

_COUNT = """
INSERT INTO counters(name, node, value) VALUES (?, ?, ?)
ON CONFLICT(name, node) DO UPDATE SET value = value + excluded.value
"""

# Statements for many rows at once. Why not executemany: Python's sqlite3 lets go
# of the GIL around every row it steps, and taking it back costs up to the
# interpreter's switch interval (5 ms) whenever another thread is busy in
# Python (request threads, the expander). A transaction of a few hundred rows
# then held the write lock -- and the commit every waiting request needs --
# for a second. One statement per table keeps a transaction at a handful of
# GIL hand-overs whatever its size.
_CHUNK = 500  # rows per statement: well under SQLite's 32,766 bound variables


def _rows_sql(head, row, count, tail=""):
    return f"{head} VALUES {','.join([row] * count)}{tail}"


def _chunks(rows, size=_CHUNK):
    for start in range(0, len(rows), size):
        yield rows[start:start + size]


def _flat(rows):
    return [value for row in rows for value in row]


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
    item: dict
    attempts: int    # including this one
    first_at: float  # oldest enqueue merged into this row (latency is measured from it)
    lease: str


def summarise_stats(nodes, counters, journal_pending, journal_age):
    """The ``stats()`` dict every backend returns, from what it counted.

    ``nodes``: node -> {"pending", "in_flight", "dead", "oldest_pending_age"};
    ``counters``: (name, node, value) rows, node "" for totals only;
    ``journal_age``: seconds the oldest unexpanded event has waited, or None.
    """
    totals, per_node = {}, {}
    for name, node, value in counters:
        totals[name] = totals.get(name, 0) + value
        if node:
            per_node.setdefault(node, {})[name] = value
    for node, counts in per_node.items():
        nodes.setdefault(node, {"pending": 0, "in_flight": 0, "dead": 0, "oldest_pending_age": None})
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


class QueueFileGone(RuntimeError):
    """The queue file's path no longer names the file the queue opened (deleted or replaced)."""


class Queue:
    """SQLite implementation of the queue contract in the module docstring."""

    def __init__(self, path, backoff=0.1, backoff_max=5.0, max_age=86400.0,
                 replay_window=REPLAY_WINDOW, synchronous="FULL", clock=time.time, rng=random.random,
                 append_wait=5.0):
        self.path = os.fspath(path)
        self.backoff = backoff
        self.backoff_max = backoff_max
        self.max_age = max_age
        self.replay_window = replay_window
        self.synchronous = synchronous
        self.clock = clock
        self.rng = rng
        self._local = threading.local()
        self._connections = []
        self._connections_lock = threading.Lock()
        self._write_lock = threading.Lock()
        self._changed = Signal()       # deliveries added or back to ready: node workers
        self._journal_changed = Signal()  # events appended to the journal: the expander
        self._nudge = Nudge(self.path)     # ... and the same for a worker in another process
        self.append_wait = append_wait
        self._journal = None
        self._journal_cursor = 0  # rowid of the last event pending_events handed out
        self._closed = False
        with self._write_lock:
            db = self._db()
            db.executescript(_SCHEMA)  # each statement is idempotent; executescript commits itself
            self._migrate(db)
            db.execute("CREATE INDEX IF NOT EXISTS events_pending ON events(received_at) WHERE expanded_at IS NULL")
            db.executescript(_JOURNAL_TRIGGERS)
            db.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
        self._identity = self._file_identity()

    @staticmethod
    def _migrate(db):
        """Bring a version 1 file up to date (in one transaction, re-checked under the lock)."""
        if "expanded_at" in {row[1] for row in db.execute("PRAGMA table_info(events)")}:
            return
        db.execute("BEGIN IMMEDIATE")
        try:
            if "expanded_at" not in {row[1] for row in db.execute("PRAGMA table_info(events)")}:
                for statement in _MIGRATE_1:
                    db.execute(statement)
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise

    @classmethod
    def from_settings(cls, settings, **kwargs):
        """The queue the service and the CLI use: ``PURGEBRIDGE_QUEUE`` and the retry settings.

        A ``redis://`` URL opens the Redis Streams backend instead (``purgebridge.backends``).
        """
        from purgebridge.backends import is_redis, open_queue

        if is_redis(settings.queue):
            return open_queue(settings, **kwargs)
        return cls(settings.queue, backoff=settings.backoff, backoff_max=max(settings.backoff_max, settings.backoff),
                   max_age=settings.max_age, **kwargs)

    # --- connections ---------------------------------------------------------

    def _file_identity(self):
        try:
            st = os.stat(self.path)
        except OSError:
            return None
        return st.st_dev, st.st_ino

    def _check_file(self):
        """Raise QueueFileGone when the path no longer names the file this queue opened.

        A queue file deleted (or replaced) while the relay runs would let open
        connections write into an unlinked file and new ones create an empty
        file: events answered 202 would never reach a node. Checked at every
        write transaction (one stat) and by ``writable`` for /readyz.
        """
        identity = getattr(self, "_identity", None)
        if identity is not None and self._file_identity() != identity:
            raise QueueFileGone(f"the queue file {self.path} was deleted or replaced while the relay ran "
                                "(PURGEBRIDGE_QUEUE); restart the relay, and restore the file if you have it")

    def _db(self):
        if self._closed:
            raise RuntimeError("queue is closed")
        db = getattr(self._local, "db", None)
        if db is None:
            self._check_file()
            directory = os.path.dirname(os.path.abspath(self.path))
            os.makedirs(directory, exist_ok=True)
            db = sqlite3.connect(self.path, timeout=10.0, isolation_level=None, check_same_thread=False)
            db.execute("PRAGMA journal_mode = WAL")
            db.execute(f"PRAGMA synchronous = {self.synchronous}")
            db.execute("PRAGMA busy_timeout = 10000")
            self._local.db = db
            with self._connections_lock:
                self._connections.append(db)
        return db

    def relax_durability(self):
        """Worker threads: this thread's commits skip the fsync (``synchronous=NORMAL``).

        Safe because everything a worker writes can be redone: an expansion
        lost in a power cut leaves its journal events unexpanded (expanded
        again at start), a lost lease or ack only re-sends an idempotent
        PURGE. Accepting an event -- the 202 promise -- stays ``FULL`` on the
        journal writer's and the request threads' own connections. Saves one
        fsync per step on the way from accept to purge.
        """
        self._db().execute("PRAGMA synchronous = NORMAL")

    class _Tx:
        def __init__(self, queue, lock=True):
            self.queue = queue
            self.lock = queue._write_lock if lock else None

        def __enter__(self):
            if self.lock:
                self.lock.acquire()
            try:
                self.queue._check_file()
                self.db = self.queue._db()
                self.db.execute("BEGIN IMMEDIATE")
            except BaseException:
                if self.lock:
                    self.lock.release()
                raise
            return self.db

        def __exit__(self, kind, value, tb):
            try:
                if kind is None:
                    try:
                        self.db.execute("COMMIT")
                    except BaseException:
                        if self.db.in_transaction:  # a failed COMMIT leaves it open: never reuse it half-done
                            self.db.execute("ROLLBACK")
                        raise
                else:
                    self.db.execute("ROLLBACK")
            finally:
                if self.lock:
                    self.lock.release()
            return False

    def _write(self, lock=True):
        """A write transaction; ``lock=False`` when the caller already holds the write lock."""
        return Queue._Tx(self, lock)

    def close(self):
        """Flush the journal, then close every thread's connection (the WAL is checkpointed by the last one)."""
        if self._journal is not None:
            self._journal.close()
        self._closed = True
        self._nudge.close()
        with self._connections_lock:
            for db in self._connections:
                try:
                    db.close()
                except sqlite3.Error:  # another thread's connection mid-use at shutdown
                    pass
            self._connections.clear()

    # --- wake-ups: in this process, and a worker process's (``wakeup``) -------------

    @property
    def generation(self):
        return self._changed.generation

    def _notify(self):
        self._changed.fire()
        self._nudge.send(DELIVERIES)

    def listen(self):
        """Wake this process's worker threads when another process writes (the worker process calls it)."""
        self._nudge.listen(self._journal_changed.fire, self._changed.fire)

    def wait(self, generation, timeout):
        """Block until something was enqueued/re-queued after ``generation``, or ``timeout``."""
        return self._changed.wait(generation, timeout)

    def notify(self):
        """Wake waiting workers and the expander (used on shutdown)."""
        self._changed.fire()
        self._journal_changed.fire()

    @property
    def journal_generation(self):
        return self._journal_changed.generation

    def wait_journal(self, generation, timeout):
        """Block until an event was appended to the journal after ``generation``, or ``timeout``."""
        return self._journal_changed.wait(generation, timeout)

    # --- writes ------------------------------------------------------------------

    def seen_signature(self, signature, now=None):
        now = self.clock() if now is None else now
        row = self._db().execute("SELECT seen_at FROM signatures WHERE signature = ?", (signature,)).fetchone()
        return row is not None and row[0] >= now - self.replay_window

    def enqueue(self, nodes, items, source, signature=None, site="", now=None):
        """Store one accepted event; see the module docstring. ``items`` have ``.key`` and ``.to_dict()``."""
        now = self.clock() if now is None else now
        event_id = uuid.uuid4().hex
        unique = {}
        for item in items:
            unique.setdefault(item.key, item)
        payloads = [(key, json.dumps(item.to_dict(), separators=(",", ":"))) for key, item in unique.items()]
        params = [(node, key, payload, event_id, now, now, now) for node in nodes for key, payload in payloads]
        with self._write() as db:
            if signature:
                row = db.execute("SELECT seen_at FROM signatures WHERE signature = ?", (signature,)).fetchone()
                if row is not None and row[0] >= now - self.replay_window:
                    raise SignatureError("signature already used (replay)", replay=True)
                db.execute("INSERT OR REPLACE INTO signatures(signature, seen_at) VALUES (?, ?)", (signature, now))
            db.executemany(_UPSERT, params)
            rows = db.execute("SELECT COUNT(*) FROM deliveries WHERE event_id = ?", (event_id,)).fetchone()[0]
            merged = len(params) - rows
            db.execute("INSERT INTO events(id, source, site, received_at, items, rows, merged, expanded_at) "
                       "VALUES (?,?,?,?,?,?,?,?)", (event_id, source, site, now, len(payloads), rows, merged, now))
            db.executemany(_COUNT, [("events", "", 1), ("merged", "", merged), ("rows", "", rows)])
        if params:
            self._notify()
        return Enqueued(event_id=event_id, items=len(payloads), rows=rows, merged=merged)

    # --- the journal: accepted events, expanded into deliveries later ---------------------

    @property
    def journal(self):
        """The group-commit writer (started on first use, flushed by :meth:`close`)."""
        with self._connections_lock:
            if self._journal is None:
                from purgebridge.journal import Journal, JournalClosed

                if self._closed:
                    raise JournalClosed("the queue is closed")
                self._journal = Journal(self, wait=self.append_wait)
            return self._journal

    def append(self, source, site, body, signature=None):
        """Durably journal one validated event; see the module docstring. Returns its event id."""
        return self.journal.append(source, site, body, signature)

    def write_journal(self, take, now=None):
        """Write a group of appends durably; called by the journal's writer thread only.

        ``take()`` runs once the write lock is held (so entries that waited
        too long for it can still be withdrawn) and returns the entries
        (``event_id, source, site, body, signature, received_at``), at most
        ``_CHUNK``. Returns one bool per entry: stored, or False for a replay
        -- its signature is fresh in the replay cache or used by an earlier
        entry of the same group.

        Usually that is two statements whatever the group's size: a read of
        which signatures exist already, then one INSERT of every event in
        autocommit mode (its own transaction and fsync; the triggers add the
        signatures and the count). A group where a signature exists (a
        replay, or an old one housekeeping has not dropped yet) or that loses
        a race to another process takes the explicit transaction instead.
        """
        with self._write_lock:
            entries = take()
            if not entries:
                return []
            if len(entries) > _CHUNK:
                raise ValueError(f"at most {_CHUNK} journal entries per group")
            now = self.clock() if now is None else now
            self._check_file()  # an event written into a deleted file would never reach a node
            db = self._db()
            signatures = [e.signature for e in entries if e.signature]
            known = self._signatures_seen(db, signatures, since=None)
            if not known:
                stored, rows = self._journal_rows(entries, set())
                try:
                    self._insert_events(db, rows)
                except sqlite3.IntegrityError:  # another process stored one of these signatures meanwhile
                    known = True
            if known:
                with self._write(lock=False) as db:
                    fresh = self._signatures_seen(db, signatures, since=now - self.replay_window)
                    stale = [signature for signature in signatures if signature not in fresh]
                    for chunk in _chunks(stale):
                        db.execute(f"DELETE FROM signatures WHERE signature IN ({','.join('?' * len(chunk))})",
                                   chunk)
                    stored, rows = self._journal_rows(entries, fresh)
                    self._insert_events(db, rows)
        if rows:
            self._journal_changed.fire()
            self._nudge.send(JOURNAL)
        return stored

    @staticmethod
    def _signatures_seen(db, signatures, since):
        """Which of ``signatures`` the replay cache holds (seen at or after ``since``, if given)."""
        found = set()
        for chunk in _chunks(list(dict.fromkeys(signatures))):
            sql = f"SELECT signature FROM signatures WHERE signature IN ({','.join('?' * len(chunk))})"
            args = list(chunk)
            if since is not None:
                sql += " AND seen_at >= ?"
                args.append(since)
            found.update(row[0] for row in db.execute(sql, args))
        return found

    @staticmethod
    def _journal_rows(entries, replays):
        """Rows to insert and one stored-or-replay flag per entry; a signature twice in a group is a replay."""
        seen, stored, rows = set(replays), [], []
        for entry in entries:
            if entry.signature and entry.signature in seen:
                stored.append(False)
                continue
            if entry.signature:
                seen.add(entry.signature)
            rows.append((entry.event_id, entry.source, entry.site, entry.received_at, entry.body, entry.signature))
            stored.append(True)
        return stored, rows

    @staticmethod
    def _insert_events(db, rows):
        if rows:
            db.execute(_rows_sql("INSERT INTO events(id, source, site, received_at, body, signature, "
                                 "items, rows, merged)", "(?,?,?,?,?,?,0,0,0)", len(rows)), _flat(rows))

    def pending_events(self, limit=500):
        """Unexpanded events not handed out yet, oldest first: ``(event_id, source, site, body, received_at)``.

        Rowids grow in commit order (one writer; the newest row is never
        deleted), so "after the cursor" is exactly "not handed out yet".
        """
        rows = self._db().execute(
            "SELECT rowid, id, source, site, body, received_at FROM events WHERE expanded_at IS NULL AND rowid > ? "
            "ORDER BY rowid LIMIT ?", (self._journal_cursor, limit)).fetchall()
        if rows:
            self._journal_cursor = rows[-1][0]
        return [row[1:] for row in rows]

    def rewind_journal(self):
        """Hand out every unexpanded event again (after an expansion that failed)."""
        self._journal_cursor = 0

    def journal_pending(self):
        return self._db().execute("SELECT COUNT(*) FROM events WHERE expanded_at IS NULL").fetchone()[0]

    def store_expansion(self, nodes, events, items, failed=0, now=None):
        """Deliveries of a batch of journal events, and the events marked expanded, in one transaction.

        ``events`` is ``[(event_id, count)]`` with ``count`` the invalidations
        that event mapped to on its own (for the ``merged`` total); ``items``
        is ``[(key, payload, first_at, last_at)]``, already coalesced across
        the batch; ``failed`` events that could not be mapped are counted.
        Events already expanded meanwhile (another process) are skipped; if
        none is left, nothing is written. The body of an expanded event is
        dropped: the deliveries now carry what it meant.
        """
        now = self.clock() if now is None else now
        if not events:
            return Enqueued(event_id="", items=0, rows=0, merged=0)
        tag = events[-1][0]  # each batch has its own last event: its id tells this batch's new rows apart
        rows = [(node, key, payload, tag, first_at, last_at, now)
                for node in nodes for key, payload, first_at, last_at in items]
        with self._write() as db:
            marked = self._mark_expanded(db, events, now)
            if not marked:
                return Enqueued(event_id=tag, items=0, rows=0, merged=0)
            for chunk in _chunks(rows):
                db.execute(_rows_sql("INSERT INTO deliveries(node, key, item, event_id, first_at, last_at, next_at, "
                                     "state)", "(?,?,?,?,?,?,?,'ready')", len(chunk),
                                     " ON CONFLICT(node, key) WHERE state = 'ready' DO UPDATE SET "
                                     "merges = merges + 1, last_at = MAX(last_at, excluded.last_at)"),
                           _flat(chunk))
            added = db.execute("SELECT COUNT(*) FROM deliveries WHERE event_id = ?", (tag,)).fetchone()[0]
            merged = max(0, sum(count for _id, count in events) * len(nodes) - added)
            counts = [("merged", "", merged), ("rows", "", added), ("expanded", "", marked)]
            if failed:
                counts.append(("expansion_failed", "", failed))
            db.execute(_rows_sql("INSERT INTO counters(name, node, value)", "(?,?,?)", len(counts),
                                 " ON CONFLICT(name, node) DO UPDATE SET value = value + excluded.value"),
                       _flat(counts))
        if rows:
            self._notify()
        return Enqueued(event_id=tag, items=len(items), rows=added, merged=merged)

    @staticmethod
    def _mark_expanded(db, events, now):
        """Mark ``[(event_id, count)]`` expanded (dropping their bodies); returns how many were not yet."""
        by_count = {}
        for event_id, count in events:
            by_count.setdefault(count, []).append(event_id)
        marked = 0
        for count, ids in by_count.items():
            for chunk in _chunks(ids):
                marked += db.execute(
                    f"UPDATE events SET expanded_at = ?, items = ?, body = NULL "
                    f"WHERE expanded_at IS NULL AND id IN ({','.join('?' * len(chunk))})",
                    [now, count, *chunk]).rowcount
        return marked

    def finish_expansion(self, events, counters=(), failed=0, now=None):
        """Mark events the worker delivered directly as expanded, with their counters; returns how many."""
        now = self.clock() if now is None else now
        if not events:
            return 0
        counts = [c for c in counters if c[2]]
        with self._write() as db:
            marked = self._mark_expanded(db, events, now)
            counts.append(("expanded", "", marked))
            if failed:
                counts.append(("expansion_failed", "", failed))
            db.execute(_rows_sql("INSERT INTO counters(name, node, value)", "(?,?,?)", len(counts),
                                 " ON CONFLICT(name, node) DO UPDATE SET value = value + excluded.value"),
                       _flat(counts))
        return marked

    def requeue(self, node, items, now=None):
        """Ready rows for what the direct path could not confirm on ``node``: ``[(key, payload, first_at, last_at)]``."""
        now = self.clock() if now is None else now
        if not items:
            return
        tag = "requeue-" + uuid.uuid4().hex
        rows = [(node, key, payload, tag, first_at, last_at, now) for key, payload, first_at, last_at in items]
        with self._write() as db:
            for chunk in _chunks(rows):
                db.execute(_rows_sql("INSERT INTO deliveries(node, key, item, event_id, first_at, last_at, next_at, "
                                     "state)", "(?,?,?,?,?,?,?,'ready')", len(chunk),
                                     " ON CONFLICT(node, key) WHERE state = 'ready' DO UPDATE SET "
                                     "merges = merges + 1, first_at = MIN(first_at, excluded.first_at), "
                                     "last_at = MAX(last_at, excluded.last_at)"),
                           _flat(chunk))
        self._notify()

    def claim(self, node, limit=256, lease=30.0, now=None):
        """Lease up to ``limit`` due rows of ``node`` for ``lease`` seconds."""
        now = self.clock() if now is None else now
        token = uuid.uuid4().hex
        with self._write() as db:
            rows = db.execute(
                "SELECT id, key, item, attempts, first_at FROM deliveries "
                "WHERE node = ? AND state != 'dead' AND next_at <= ? ORDER BY next_at, id LIMIT ?",
                (node, now, limit)).fetchall()
            if not rows:
                return []
            db.executemany("UPDATE deliveries SET state = 'leased', next_at = ?, lease = ?, attempts = attempts + 1 "
                           "WHERE id = ?", [(now + lease, token, row[0]) for row in rows])
        return [Claim(id=row[0], node=node, key=row[1], item=json.loads(row[2]), attempts=row[3] + 1,
                      first_at=row[4], lease=token) for row in rows]

    def ack(self, claims, outcome="purged", now=None):
        """Delivered: delete the rows. Returns the seconds each waited since its first enqueue."""
        now = self.clock() if now is None else now
        if not claims:
            return []
        with self._write() as db:
            db.executemany("DELETE FROM deliveries WHERE id = ? AND lease = ?", [(c.id, c.lease) for c in claims])
            counts = {}
            for claim in claims:
                counts[claim.node] = counts.get(claim.node, 0) + 1
            db.executemany(_COUNT, [(outcome, node, n) for node, n in counts.items()])
        return [max(0.0, now - claim.first_at) for claim in claims]

    def backoff_delay(self, attempts):
        """Seconds before try ``attempts + 1``: doubling, capped, with "equal jitter" (half fixed, half random)."""
        return fanout.backoff_delay(max(1, attempts), self.backoff, self.backoff_max, self.rng)

    def nack(self, claims, reason, now=None):
        """Failed: back to ready with backoff. A row whose key got re-queued meanwhile merges into it."""
        now = self.clock() if now is None else now
        if not claims:
            return
        reason = str(reason)[:500]
        with self._write() as db:
            for claim in claims:
                try:
                    db.execute("UPDATE deliveries SET state = 'ready', next_at = ?, last_error = ?, lease = NULL "
                               "WHERE id = ? AND lease = ?",
                               (now + self.backoff_delay(claim.attempts), reason, claim.id, claim.lease))
                except sqlite3.IntegrityError:
                    self._merge_into_ready(db, claim.id, claim.node, claim.key, claim.first_at)
            db.execute(_COUNT, ("failed_attempts", claims[0].node, len(claims)))
        self._notify()

    @staticmethod
    def _merge_into_ready(db, row_id, node, key, first_at):
        db.execute("UPDATE deliveries SET merges = merges + 1, first_at = MIN(first_at, ?) "
                   "WHERE node = ? AND key = ? AND state = 'ready'", (first_at, node, key))
        db.execute("DELETE FROM deliveries WHERE id = ?", (row_id,))

    def dead(self, claims, reason, now=None):
        """Not worth retrying (e.g. the node answered 403/405): keep as a dead letter with the reason."""
        now = self.clock() if now is None else now
        if not claims:
            return
        with self._write() as db:
            db.executemany("UPDATE deliveries SET state = 'dead', dead_at = ?, last_error = ?, lease = NULL "
                           "WHERE id = ? AND lease = ?", [(now, str(reason)[:500], c.id, c.lease) for c in claims])
            db.execute(_COUNT, ("dead_lettered", claims[0].node, len(claims)))
        log.warning("dead-lettered %d purge(s) for %s: %s", len(claims), claims[0].node, reason)

    def expire(self, now=None):
        """Dead-letter rows not delivered within ``max_age``; forget old signatures. Returns ``{node: rows}``."""
        now = self.clock() if now is None else now
        aged = "last_at < ? AND (state = 'ready' OR (state = 'leased' AND next_at <= ?))"
        with self._write() as db:
            per_node = dict(db.execute(f"SELECT node, COUNT(*) FROM deliveries WHERE {aged} GROUP BY node",
                                       (now - self.max_age, now)).fetchall())
            expired = db.execute(
                "UPDATE deliveries SET state = 'dead', dead_at = ?, lease = NULL, "
                "last_error = 'not delivered within max age' || CASE WHEN last_error != '' "
                "THEN ' (last error: ' || last_error || ')' ELSE '' END "
                f"WHERE {aged}", (now, now - self.max_age, now)).rowcount
            if expired:
                db.execute(_COUNT, ("dead_lettered", "", expired))
            db.execute("DELETE FROM signatures WHERE seen_at < ?", (now - 2 * self.replay_window,))
            # Expanded events are kept a day for inspection, then dropped -- never the newest row,
            # whose rowid keeps new events' rowids growing (pending_events relies on it).
            db.execute("DELETE FROM events WHERE expanded_at < ? AND rowid < (SELECT MAX(rowid) FROM events)",
                       (now - 86400.0,))
        if expired:
            log.warning("dead-lettered %d purge(s) older than %.0f s", expired, self.max_age)
        return per_node

    def release_leases(self, now=None):
        """Make every leased row due now; returns how many. For a relay starting up.

        A relay owns its queue file, so at start-up any lease left was held by
        a process that died (SIGKILL, power loss): its claims come back at once
        instead of after the lease time. Were another process still sending
        them, they are sent twice -- harmless, purges are idempotent.
        """
        now = self.clock() if now is None else now
        with self._write() as db:
            count = db.execute("UPDATE deliveries SET next_at = ? WHERE state = 'leased'", (now,)).rowcount
        if count:
            log.info("re-queued %d purge(s) claimed by a previous run that did not finish", count)
            self._notify()
        return count

    def retry_dead(self, node=None, now=None):
        """Put dead letters (of one node, or all) back to ready. Returns how many were re-queued."""
        now = self.clock() if now is None else now
        where, args = ("state = 'dead' AND node = ?", (node,)) if node else ("state = 'dead'", ())
        count = 0
        with self._write() as db:
            rows = db.execute(f"SELECT id, node, key, first_at FROM deliveries WHERE {where}", args).fetchall()
            for row_id, row_node, key, first_at in rows:
                try:
                    db.execute("UPDATE deliveries SET state = 'ready', next_at = ?, last_at = ?, attempts = 0, "
                               "dead_at = NULL WHERE id = ?", (now, now, row_id))
                except sqlite3.IntegrityError:
                    self._merge_into_ready(db, row_id, row_node, key, first_at)
                count += 1
            if count:
                db.execute(_COUNT, ("retried", "", count))
        if count:
            self._notify()
        return count

    # --- reads ---------------------------------------------------------------------

    def next_due(self, node, now=None):
        """Seconds until ``node`` has a row due (0 if now), or None when it has nothing queued."""
        now = self.clock() if now is None else now
        row = self._db().execute("SELECT MIN(next_at) FROM deliveries WHERE node = ? AND state != 'dead'",
                                 (node,)).fetchone()
        return None if row[0] is None else max(0.0, row[0] - now)

    def dead_hosts(self, node, since):
        """Hosts of ``node``'s dead letters dead-lettered at or after ``since`` (whom a dead-letter ban must cover)."""
        rows = self._db().execute("SELECT DISTINCT json_extract(item, '$.host') FROM deliveries "
                                  "WHERE node = ? AND state = 'dead' AND dead_at >= ?", (node, since)).fetchall()
        return {row[0] for row in rows if row[0]}

    def dead_letters(self, limit=100, node=None):
        where, args = ("state = 'dead' AND node = ?", (node,)) if node else ("state = 'dead'", ())
        rows = self._db().execute(
            f"SELECT id, node, item, first_at, dead_at, attempts, last_error FROM deliveries WHERE {where} "
            "ORDER BY dead_at, id LIMIT ?", args + (limit,)).fetchall()
        return [{"id": r[0], "node": r[1], "item": json.loads(r[2]), "first_at": r[3], "dead_at": r[4],
                 "attempts": r[5], "reason": r[6]} for r in rows]

    def depth(self):
        return self._db().execute("SELECT COUNT(*) FROM deliveries WHERE state != 'dead'").fetchone()[0]

    def stats(self, now=None):
        """Queue depth, in-flight, dead letters, oldest pending age -- in total and per node -- and totals."""
        self._check_file()  # figures from a deleted file would say all is well
        now = self.clock() if now is None else now
        db = self._db()
        nodes = {}
        for node, state, count, oldest in db.execute(
                "SELECT node, state, COUNT(*), MIN(first_at) FROM deliveries GROUP BY node, state"):
            entry = nodes.setdefault(node, {"pending": 0, "in_flight": 0, "dead": 0, "oldest_pending_age": None})
            if state == "dead":
                entry["dead"] += count
                continue
            entry["pending" if state == "ready" else "in_flight"] += count
            age = max(0.0, now - oldest)
            entry["oldest_pending_age"] = max(entry["oldest_pending_age"] or 0.0, age)
        counters = db.execute("SELECT name, node, value FROM counters").fetchall()
        journal_pending, journal_oldest = db.execute(
            "SELECT COUNT(*), MIN(received_at) FROM events WHERE expanded_at IS NULL").fetchone()
        journal_age = None if journal_oldest is None else max(0.0, now - journal_oldest)
        return summarise_stats(nodes, counters, journal_pending, journal_age)

    def writable(self):
        """True when a real write commits (for /readyz): a full disk or a deleted file makes it False."""
        try:
            with self._write() as db:
                db.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")  # rewrites page 1: a real write to the WAL
            return True
        except (sqlite3.Error, RuntimeError) as exc:
            log.error("queue %s is not writable: %s", self.path, exc)
            return False
