"""The durable delivery queue on SQLite: every (node, invalidation) pair until that node confirmed it.

Why per (node, item): a node that is down must get its purges when it comes
back, without holding back the nodes that are up. Why on disk before the 202:
the plugin forgets an event once the relay accepted it, so a relay crash
between accept and delivery must not lose it.

Backend: SQLite in WAL mode through the standard library. One file, no
server; readers do not block the writer.

Concurrency, in three sentences: every write of a process goes through that
process's one writer thread (``purgebridge.store.writer``), which owns the
only write connection, runs each submitted write in a transaction of its own
and batches the journal appends waiting at the same moment into one
transaction with one fsync (group commit), while the callers block on their
own result. The writers of different processes (API, worker, ``purgebridge
queue retry``) take turns through ``flock`` on ``<queue>.lock`` around each
transaction, which the kernel hands on the moment it is released (SQLite's
own busy handler sleeps 1, 2, 5 ... 100 ms between tries: that was the
latency tail of accepting while the worker wrote). Reads run on each
thread's own connection and never wait for a writer (WAL).

The contract it implements is in ``purgebridge.store.contract``.

``stats()["depth"]`` counts delivery rows waiting or in flight *plus* journal
events not yet expanded (also shown alone as ``journal_pending``): an event
accepted but not yet turned into deliveries is still work to do.

States of a row: ``ready`` (waiting, maybe backing off until ``next_at``),
``leased`` (claimed; ``next_at`` is the lease expiry), ``dead``. Delivered rows
are deleted; counters keep the totals. ``last_at`` is the newest enqueue that
was merged into a row: max age counts from it, so a fresh event is never
dead-lettered because an older identical purge had been waiting long.
"""

from contextlib import contextmanager
import fcntl
import json
import logging
import os
import random
import sqlite3
import threading
import time
from typing import Any, Callable, Dict, Iterable, Iterator, List, Optional, Sequence, Set, Tuple, TypeVar, Union
import uuid

from purgebridge.core.errors import QueueBusy, QueueClosed, QueueError, QueueFileGone, SignatureError
from purgebridge.store.contract import (REPLAY_WINDOW, Backend, Claim, Enqueued, EventCount, PendingEvent, QueuedItem,
                                        dead_letter, node_stats, site_stats, summarise_stats, unique_payloads)
from purgebridge.store.journal import JournalEntry, JournalRow, group_rows
from purgebridge.store.wakeup import DELIVERIES, JOURNAL, Nudge
from purgebridge.store.writer import Writer

__all__ = ["Queue", "file_identity", "gone_since"]

log = logging.getLogger(__name__)

T = TypeVar("T")
SCHEMA_VERSION = 2
WRITE_WAIT = 60.0  # seconds a write other than an append may wait for its turn before QueueBusy

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

# Version 1 files: events were expanded when accepted, so every old row is done.
_MIGRATE_1 = (
    "ALTER TABLE events ADD COLUMN signature TEXT",
    "ALTER TABLE events ADD COLUMN body BLOB",
    "ALTER TABLE events ADD COLUMN expanded_at REAL",
    "UPDATE events SET expanded_at = received_at",
)

# Statements for many rows at once. Why not executemany: Python's sqlite3 lets go
# of the GIL around every row it steps, and taking it back costs up to the
# interpreter's switch interval (5 ms) whenever another thread is busy in
# Python (request threads, the expander). A transaction of a few hundred rows
# then held the write lock -- and the commit every waiting request needs --
# for a second. One statement per table keeps a transaction at a handful of
# GIL hand-overs whatever its size.
_CHUNK = 500  # rows per statement: well under SQLite's 32,766 bound variables


def _rows_sql(head: str, row: str, count: int, tail: str = "") -> str:
    return f"{head} VALUES {','.join([row] * count)}{tail}"


def _chunks(rows: List[T], size: int = _CHUNK) -> Iterator[List[T]]:
    for start in range(0, len(rows), size):
        yield rows[start:start + size]


def _flat(rows: Iterable[Sequence[Any]]) -> List[Any]:
    return [value for row in rows for value in row]


MIN_FREE = 512 * 1024  # bytes free below which the queue counts as not writable: a largest event (256 KiB) and its index


def file_identity(path: str) -> Optional[Tuple[int, int]]:
    """The (device, inode) of the file at ``path``, or None when there is none: "is it still the same file?"."""
    try:
        st = os.stat(path)
    except OSError:
        return None
    return st.st_dev, st.st_ino


def gone_since(path: str, identity: Optional[Tuple[int, int]]) -> Optional[str]:
    """Why ``path`` no longer names the file whose :func:`file_identity` was ``identity``; None while it does."""
    if identity is None or file_identity(path) == identity:
        return None
    return (f"the queue file {path} was deleted or replaced while the relay ran (PURGEBRIDGE_QUEUE); "
            "restart the relay, and restore the file if you have it")


class Queue(Backend):
    """SQLite implementation of the queue contract (``purgebridge.store.contract.Store``)."""

    def __init__(self, path: Union[str, "os.PathLike[str]"], backoff: float = 0.1, backoff_max: float = 5.0,
                 max_age: float = 86400.0, replay_window: float = REPLAY_WINDOW, synchronous: str = "FULL",
                 clock: Callable[[], float] = time.time, rng: Callable[[], float] = random.random,
                 append_wait: float = 5.0, write_wait: float = WRITE_WAIT) -> None:
        super().__init__(backoff, backoff_max, max_age, replay_window, clock, rng)
        self.path = os.fspath(path)
        self.synchronous = synchronous
        self.append_wait = append_wait   # seconds an accepted event may wait for the writer (then 503)
        self.write_wait = write_wait     # ... any other write (then QueueBusy)
        self._local = threading.local()
        self._connections: List[sqlite3.Connection] = []   # the readers' connections, one a thread
        self._connections_lock = threading.Lock()
        self._nudge = Nudge(self.path)     # wake-ups for a worker in another process
        self._lock_fd: Optional[int] = None  # the lock file the writers of every process take turns on
        self._journal_cursor = 0  # rowid of the last event pending_events handed out
        self._closed = False
        self._identity = None     # the file's (device, inode), once it exists
        self.writer = Writer(self._connect, self._exclusive, self._check_file, self.write_journal,
                             synchronous=synchronous, max_group=_CHUNK)
        try:
            self.writer.run(self._set_up, self.write_wait, transaction=False)
        except BaseException:
            self.close()
            raise
        self._identity = file_identity(self.path)

    def _set_up(self, db: sqlite3.Connection) -> None:
        try:
            db.executescript(_SCHEMA)  # each statement is idempotent; executescript commits itself
            self._migrate(db)
            db.execute("CREATE INDEX IF NOT EXISTS events_pending ON events(received_at) WHERE expanded_at IS NULL")
            db.executescript(_JOURNAL_TRIGGERS)
            db.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
        except sqlite3.OperationalError as exc:
            # A full disk (issue 25.5): a file already at this version needs none of these writes, and
            # ``purgebridge queue`` must be able to show it exactly when the disk is full.
            if db.execute("PRAGMA user_version").fetchone()[0] != SCHEMA_VERSION:
                raise
            log.warning("queue %s: opened, but it takes no writes now (%s)", self.path, exc)

    @staticmethod
    def _migrate(db: sqlite3.Connection) -> None:
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

    # --- connections ---------------------------------------------------------

    def _check_file(self) -> None:
        """Raise QueueFileGone when the path no longer names the file this queue opened.

        A queue file deleted (or replaced) while the relay runs would let open
        connections write into an unlinked file and new ones create an empty
        file: events answered 202 would never reach a node. Checked before
        every write (one stat) and by ``writable`` for /readyz.
        """
        gone = gone_since(self.path, self._identity)
        if gone:
            raise QueueFileGone(gone)

    def _private(self) -> None:
        """The queue file and its ``-wal``/``-shm`` readable by the relay's user only (0600).

        They hold every signed body accepted. SQLite creates ``-wal`` and
        ``-shm`` with the main file's mode, so creating that one 0600 (and
        tightening files an older relay left 0644) covers all three.
        """
        if not os.path.exists(self.path):
            os.close(os.open(self.path, os.O_WRONLY | os.O_CREAT, 0o600))
        for path in (self.path, self.path + "-wal", self.path + "-shm"):
            try:
                if os.stat(path).st_mode & 0o077:
                    os.chmod(path, 0o600)
            except FileNotFoundError:
                pass
            except PermissionError as exc:  # another user's file: say so, the relay still runs
                log.warning("cannot make %s private (0600): %s", path, exc)

    def _connect(self) -> sqlite3.Connection:
        """A new connection in autocommit mode (transactions are explicit), WAL, ``synchronous`` as set."""
        self._check_file()
        os.makedirs(os.path.dirname(os.path.abspath(self.path)), exist_ok=True)
        self._private()
        db = sqlite3.connect(self.path, timeout=10.0, isolation_level=None, check_same_thread=False)
        db.execute("PRAGMA journal_mode = WAL")
        db.execute(f"PRAGMA synchronous = {self.synchronous}")
        db.execute("PRAGMA busy_timeout = 10000")
        return db

    def _db(self) -> sqlite3.Connection:
        """This thread's read connection (writes go through :attr:`writer`)."""
        if self._closed:
            raise QueueClosed("queue is closed")
        db = getattr(self._local, "db", None)
        if db is None:
            db = self._connect()
            self._local.db = db
            with self._connections_lock:
                self._connections.append(db)
        return db

    def relax_durability(self) -> None:
        """Writes this thread submits from now on commit without the fsync (``synchronous=NORMAL``).

        Safe because everything a worker writes can be redone: an expansion
        lost in a power cut leaves its journal events unexpanded (expanded
        again at start), a lost lease or ack only re-sends an idempotent
        PURGE. Accepting an event -- the 202 promise -- and every write of
        other threads stay ``FULL``. Saves one fsync per step on the way
        from accept to purge. (The writer sets the pragma between
        transactions, as each one asks.)
        """
        self._local.relaxed = True

    @contextmanager
    def _exclusive(self) -> Iterator[None]:
        """This process's turn to write: ``flock`` on the lock file (the writer thread takes it per unit)."""
        if self._lock_fd is None:
            os.makedirs(os.path.dirname(os.path.abspath(self.path)), exist_ok=True)
            self._lock_fd = os.open(self.path + ".lock", os.O_RDWR | os.O_CREAT, 0o600)
        fcntl.flock(self._lock_fd, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(self._lock_fd, fcntl.LOCK_UN)

    def _write(self, work: Callable[[sqlite3.Connection], T]) -> T:
        """Run ``work(db)`` in one write transaction on the writer thread; return its result."""
        return self.writer.run(work, self.write_wait, durable=not getattr(self._local, "relaxed", False))

    def close(self) -> None:
        """Finish the writes waiting (the journal's too), then close every connection."""
        self.writer.close()
        self._closed = True
        self._nudge.close()
        if self._lock_fd is not None:
            os.close(self._lock_fd)
            self._lock_fd = None
        with self._connections_lock:
            for db in self._connections:
                try:
                    db.close()
                except sqlite3.Error:  # another thread's connection mid-use at shutdown
                    pass
            self._connections.clear()

    # --- wake-ups: in this process, and a worker process's (``wakeup``) -------------

    def _notify(self) -> None:
        self._changed.fire()
        self._nudge.send(DELIVERIES)

    def listen(self) -> None:
        """Wake this process's worker threads when another process writes (the worker process calls it)."""
        self._nudge.listen(self._journal_changed.fire, self._changed.fire)

    # --- writes ------------------------------------------------------------------

    def enqueue(self, nodes: Sequence[str], items: Iterable[Any], source: str, signature: Optional[str] = None,
                site: str = "", now: Optional[float] = None) -> Enqueued:
        """Store one accepted event; see the module docstring. ``items`` have ``.key`` and ``.to_dict()``."""
        at = self.clock() if now is None else now
        event_id = uuid.uuid4().hex
        payloads = unique_payloads(items)
        params = [(node, key, payload, event_id, at, at, at) for node in nodes for key, payload in payloads]

        def work(db: sqlite3.Connection) -> Tuple[int, int]:
            if signature:
                row = db.execute("SELECT seen_at FROM signatures WHERE signature = ?", (signature,)).fetchone()
                if row is not None and row[0] >= at - self.replay_window:
                    raise SignatureError("signature already used (replay)", replay=True)
                db.execute("INSERT OR REPLACE INTO signatures(signature, seen_at) VALUES (?, ?)", (signature, at))
            self._insert_ready(db, params, keep_oldest=False)
            rows = db.execute("SELECT COUNT(*) FROM deliveries WHERE event_id = ?", (event_id,)).fetchone()[0]
            merged = len(params) - rows
            db.execute("INSERT INTO events(id, source, site, received_at, items, rows, merged, expanded_at) "
                       "VALUES (?,?,?,?,?,?,?,?)", (event_id, source, site, at, len(payloads), rows, merged, at))
            self._count(db, [("events", "", 1), ("merged", "", merged), ("rows", "", rows)])
            return rows, merged

        rows, merged = self._write(work)
        if params:
            self._notify()
        return Enqueued(event_id=event_id, items=len(payloads), rows=rows, merged=merged)

    # --- the journal: accepted events, expanded into deliveries later ---------------------

    def append(self, source: str, site: str, body: bytes, signature: Optional[str] = None) -> str:
        """Durably journal one validated event (group commit: ``store.journal``). Returns its event id."""
        entry = JournalEntry(source, site, bytes(body), signature or None, received_at=self.clock())
        self.writer.append(entry, self.append_wait)
        return entry.event_id

    def submit_append(self, source: str, site: str, body: bytes, signature: Optional[str],
                      on_done: Callable[[Any], None]) -> Any:
        """:meth:`append` without blocking, for the relay's event loop: returns the writer's job.

        ``on_done(job)`` runs on the writer thread once it is settled
        (``job.error`` None: stored as ``job.entry.event_id``); after
        ``append_wait`` the caller calls :meth:`withdraw_append`.
        """
        entry = JournalEntry(source, site, bytes(body), signature or None, received_at=self.clock())
        return self.writer.submit_append(entry, on_done)

    def withdraw_append(self, job: Any) -> bool:
        """``append_wait`` passed: take the job back if no group has taken it (it becomes QueueBusy)."""
        return self.writer.withdraw(job, QueueBusy(f"queue busy: not written within {self.append_wait:g} s"))

    def write_journal(self, db: sqlite3.Connection, entries: List[JournalEntry],
                      now: Optional[float] = None) -> List[bool]:
        """Write a group of appends durably; run by the writer thread (which holds the write lock).

        At most ``_CHUNK`` entries. Returns one bool per entry: stored, or
        False for a replay -- its signature is fresh in the replay cache or
        used by an earlier entry of the same group.

        Usually that is two statements whatever the group's size: a read of
        which signatures exist already, then one INSERT of every event in
        autocommit mode (its own transaction and fsync; the triggers add the
        signatures and the count). A group where a signature exists (a
        replay, or an old one housekeeping has not dropped yet) or that loses
        a race to another process takes the explicit transaction instead.
        """
        if not entries:
            return []
        if len(entries) > _CHUNK:
            raise ValueError(f"at most {_CHUNK} journal entries per group")
        now = self.clock() if now is None else now
        signatures = [e.signature for e in entries if e.signature]
        known = bool(self._signatures_seen(db, signatures, since=None))
        rows: List[JournalRow] = []
        if not known:
            stored, rows = group_rows(entries, set())
            try:
                self._insert_events(db, rows)
            except sqlite3.IntegrityError:  # another process stored one of these signatures meanwhile
                known = True
        if known:
            db.execute("BEGIN IMMEDIATE")
            try:
                fresh = self._signatures_seen(db, signatures, since=now - self.replay_window)
                stale = [signature for signature in signatures if signature not in fresh]
                for chunk in _chunks(stale):
                    db.execute(f"DELETE FROM signatures WHERE signature IN ({','.join('?' * len(chunk))})", chunk)
                stored, rows = group_rows(entries, fresh)
                self._insert_events(db, rows)
                db.execute("COMMIT")
            finally:
                if db.in_transaction:
                    db.execute("ROLLBACK")
        if rows:
            self._journal_changed.fire()
            self._nudge.send(JOURNAL)
        return stored

    @staticmethod
    def _signatures_seen(db: sqlite3.Connection, signatures: List[str], since: Optional[float]) -> Set[str]:
        """Which of ``signatures`` the replay cache holds (seen at or after ``since``, if given)."""
        found: Set[str] = set()
        for chunk in _chunks(list(dict.fromkeys(signatures))):
            sql = f"SELECT signature FROM signatures WHERE signature IN ({','.join('?' * len(chunk))})"
            args: List[Any] = list(chunk)
            if since is not None:
                sql += " AND seen_at >= ?"
                args.append(since)
            found.update(row[0] for row in db.execute(sql, args))
        return found

    @staticmethod
    def _insert_events(db: sqlite3.Connection, rows: List[JournalRow]) -> None:
        if rows:
            db.execute(_rows_sql("INSERT INTO events(id, source, site, received_at, body, signature, "
                                 "items, rows, merged)", "(?,?,?,?,?,?,0,0,0)", len(rows)), _flat(rows))

    def pending_events(self, limit: int = 500) -> List[PendingEvent]:
        """Unexpanded events not handed out yet, oldest first: ``(event_id, source, site, body, received_at)``.

        Rowids grow in commit order (one writer; the newest row is never
        deleted), so "after the cursor" is exactly "not handed out yet".
        """
        rows = self._db().execute(
            "SELECT rowid, id, source, site, body, received_at FROM events WHERE expanded_at IS NULL AND rowid > ? "
            "ORDER BY rowid LIMIT ?", (self._journal_cursor, limit)).fetchall()
        if rows:
            self._journal_cursor = rows[-1][0]
        return [tuple(row[1:]) for row in rows]

    def rewind_journal(self) -> None:
        """Hand out every unexpanded event again (after an expansion that failed)."""
        self._journal_cursor = 0

    def journal_pending(self) -> int:
        return self._db().execute("SELECT COUNT(*) FROM events WHERE expanded_at IS NULL").fetchone()[0]

    def store_expansion(self, nodes: Sequence[str], events: List[EventCount], items: List[QueuedItem],
                        failed: int = 0, now: Optional[float] = None) -> Enqueued:
        """Deliveries of a batch of journal events, and the events marked expanded, in one transaction.

        ``events`` is ``[(event_id, count)]`` with ``count`` the invalidations
        that event mapped to on its own (for the ``merged`` total); ``items``
        is ``[(key, payload, first_at, last_at)]``, already coalesced across
        the batch; ``failed`` events that could not be mapped are counted.
        Events already expanded meanwhile (another process) are skipped; if
        none is left, nothing is written. The body of an expanded event is
        dropped: the deliveries now carry what it meant.
        """
        at = self.clock() if now is None else now
        if not events:
            return Enqueued(event_id="", items=0, rows=0, merged=0)
        tag = events[-1][0]  # each batch has its own last event: its id tells this batch's new rows apart
        rows = [(node, key, payload, tag, first_at, last_at, at)
                for node in nodes for key, payload, first_at, last_at in items]

        def work(db: sqlite3.Connection) -> Enqueued:
            marked = self._mark_expanded(db, events, at)
            if not marked:
                return Enqueued(event_id=tag, items=0, rows=0, merged=0)
            self._insert_ready(db, rows, keep_oldest=False)
            added = db.execute("SELECT COUNT(*) FROM deliveries WHERE event_id = ?", (tag,)).fetchone()[0]
            merged = max(0, sum(count for _id, count in events) * len(nodes) - added)
            self._count(db, [("merged", "", merged), ("rows", "", added), ("expanded", "", marked),
                             *([("expansion_failed", "", failed)] if failed else [])])
            return Enqueued(event_id=tag, items=len(items), rows=added, merged=merged)

        enqueued = self._write(work)
        if enqueued.rows:
            self._notify()
        return enqueued

    @staticmethod
    def _insert_ready(db: sqlite3.Connection, rows: List[tuple], keep_oldest: bool) -> None:
        """Insert ``(node, key, item, event_id, first_at, last_at, next_at)`` rows as ready, merging by key.

        A row whose key is already ready for that node merges into it (its
        ``last_at`` kept the newest; with ``keep_oldest`` its ``first_at``
        the oldest too: a requeued delivery is as old as its first enqueue).
        """
        oldest = "first_at = MIN(first_at, excluded.first_at), " if keep_oldest else ""
        for chunk in _chunks(rows):
            db.execute(_rows_sql("INSERT INTO deliveries(node, key, item, event_id, first_at, last_at, next_at, "
                                 "state)", "(?,?,?,?,?,?,?,'ready')", len(chunk),
                                 " ON CONFLICT(node, key) WHERE state = 'ready' DO UPDATE SET "
                                 f"merges = merges + 1, {oldest}last_at = MAX(last_at, excluded.last_at)"),
                       _flat(chunk))

    @staticmethod
    def _count(db: sqlite3.Connection, counts: List[Tuple[str, str, int]]) -> None:
        """Add ``(name, node, value)`` to the counters in one statement."""
        if counts:
            db.execute(_rows_sql("INSERT INTO counters(name, node, value)", "(?,?,?)", len(counts),
                                 " ON CONFLICT(name, node) DO UPDATE SET value = value + excluded.value"),
                       _flat(counts))

    @staticmethod
    def _mark_expanded(db: sqlite3.Connection, events: List[EventCount], now: float) -> int:
        """Mark ``[(event_id, count)]`` expanded (dropping their bodies); returns how many were not yet."""
        by_count: Dict[int, List[str]] = {}
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

    def finish_expansion(self, events: List[EventCount], counters: Iterable[Tuple[str, str, int]] = (),
                         failed: int = 0, now: Optional[float] = None) -> int:
        """Mark events the worker delivered directly as expanded, with their counters; returns how many."""
        at = self.clock() if now is None else now
        if not events:
            return 0
        counts = [count for count in counters if count[2]]

        def work(db: sqlite3.Connection) -> int:
            marked = self._mark_expanded(db, events, at)
            self._count(db, [*counts, ("expanded", "", marked), *([("expansion_failed", "", failed)] if failed else [])])
            return marked

        return self._write(work)

    def requeue(self, node: str, items: List[QueuedItem], now: Optional[float] = None) -> None:
        """Ready rows for what the direct path could not confirm on ``node``: ``[(key, payload, first_at, last_at)]``."""
        at = self.clock() if now is None else now
        if not items:
            return
        tag = "requeue-" + uuid.uuid4().hex
        rows = [(node, key, payload, tag, first_at, last_at, at) for key, payload, first_at, last_at in items]
        self._write(lambda db: self._insert_ready(db, rows, keep_oldest=True))
        self._notify()

    def claim(self, node: str, limit: int = 256, lease: float = 30.0, now: Optional[float] = None) -> List[Claim]:
        """Lease up to ``limit`` due rows of ``node`` for ``lease`` seconds."""
        at = self.clock() if now is None else now
        token = uuid.uuid4().hex

        def work(db: sqlite3.Connection) -> List[tuple]:
            rows = db.execute(
                "SELECT id, key, item, attempts, first_at FROM deliveries "
                "WHERE node = ? AND state != 'dead' AND next_at <= ? ORDER BY next_at, id LIMIT ?",
                (node, at, limit)).fetchall()
            if rows:
                db.executemany("UPDATE deliveries SET state = 'leased', next_at = ?, lease = ?, "
                               "attempts = attempts + 1 WHERE id = ?", [(at + lease, token, row[0]) for row in rows])
            return rows

        return [Claim(id=row[0], node=node, key=row[1], item=json.loads(row[2]), attempts=row[3] + 1,
                      first_at=row[4], lease=token) for row in self._write(work)]

    def ack(self, claims: List[Claim], outcome: str = "purged", now: Optional[float] = None) -> List[float]:
        """Delivered: delete the rows. Returns the seconds each waited since its first enqueue."""
        at = self.clock() if now is None else now
        if not claims:
            return []
        per_node: Dict[str, int] = {}
        for claim in claims:
            per_node[claim.node] = per_node.get(claim.node, 0) + 1

        def work(db: sqlite3.Connection) -> None:
            db.executemany("DELETE FROM deliveries WHERE id = ? AND lease = ?", [(c.id, c.lease) for c in claims])
            self._count(db, [(outcome, node, n) for node, n in per_node.items()])

        self._write(work)
        return [max(0.0, at - claim.first_at) for claim in claims]

    def nack(self, claims: List[Claim], reason: str, now: Optional[float] = None) -> None:
        """Failed: back to ready with backoff. A row whose key got re-queued meanwhile merges into it."""
        at = self.clock() if now is None else now
        if not claims:
            return
        reason = str(reason)[:500]
        due = [at + self.backoff_delay(claim.attempts) for claim in claims]

        def work(db: sqlite3.Connection) -> None:
            for claim, next_at in zip(claims, due):
                try:
                    db.execute("UPDATE deliveries SET state = 'ready', next_at = ?, last_error = ?, lease = NULL "
                               "WHERE id = ? AND lease = ?", (next_at, reason, claim.id, claim.lease))
                except sqlite3.IntegrityError:
                    self._merge_into_ready(db, claim.id, claim.node, claim.key, claim.first_at)
            self._count(db, [("failed_attempts", claims[0].node, len(claims))])

        self._write(work)
        self._notify()

    @staticmethod
    def _merge_into_ready(db: sqlite3.Connection, row_id: int, node: str, key: str, first_at: float) -> None:
        db.execute("UPDATE deliveries SET merges = merges + 1, first_at = MIN(first_at, ?) "
                   "WHERE node = ? AND key = ? AND state = 'ready'", (first_at, node, key))
        db.execute("DELETE FROM deliveries WHERE id = ?", (row_id,))

    def dead(self, claims: List[Claim], reason: str, now: Optional[float] = None) -> None:
        """Not worth retrying (e.g. the node answered 403/405): keep as a dead letter with the reason."""
        at = self.clock() if now is None else now
        if not claims:
            return

        def work(db: sqlite3.Connection) -> None:
            db.executemany("UPDATE deliveries SET state = 'dead', dead_at = ?, last_error = ?, lease = NULL "
                           "WHERE id = ? AND lease = ?", [(at, str(reason)[:500], c.id, c.lease) for c in claims])
            self._count(db, [("dead_lettered", claims[0].node, len(claims))])

        self._write(work)

    def expire(self, now: Optional[float] = None) -> Dict[str, int]:
        """Dead-letter rows not delivered within ``max_age``; forget old signatures. Returns ``{node: rows}``."""
        at = self.clock() if now is None else now
        aged = "last_at < ? AND (state = 'ready' OR (state = 'leased' AND next_at <= ?))"

        def work(db: sqlite3.Connection) -> Dict[str, int]:
            per_node = dict(db.execute(f"SELECT node, COUNT(*) FROM deliveries WHERE {aged} GROUP BY node",
                                       (at - self.max_age, at)).fetchall())
            expired = db.execute(
                "UPDATE deliveries SET state = 'dead', dead_at = ?, lease = NULL, "
                "last_error = 'not delivered within max age' || CASE WHEN last_error != '' "
                "THEN ' (last error: ' || last_error || ')' ELSE '' END "
                f"WHERE {aged}", (at, at - self.max_age, at)).rowcount
            if expired:
                self._count(db, [("dead_lettered", "", expired)])
            db.execute("DELETE FROM signatures WHERE seen_at < ?", (at - 2 * self.replay_window,))
            # Expanded events are kept a day for inspection, then dropped -- never the newest row,
            # whose rowid keeps new events' rowids growing (pending_events relies on it).
            db.execute("DELETE FROM events WHERE expanded_at < ? AND rowid < (SELECT MAX(rowid) FROM events)",
                       (at - 86400.0,))
            return per_node

        per_node = self._write(work)
        return per_node

    def release_leases(self, now: Optional[float] = None) -> int:
        """Make every leased row due now; returns how many. For a relay starting up.

        A relay owns its queue file, so at start-up any lease left was held by
        a process that died (SIGKILL, power loss): its claims come back at once
        instead of after the lease time. Were another process still sending
        them, they are sent twice -- harmless, purges are idempotent.
        """
        at = self.clock() if now is None else now
        count = self._write(lambda db: db.execute("UPDATE deliveries SET next_at = ? WHERE state = 'leased'",
                                                  (at,)).rowcount)
        if count:
            log.info("re-queued %d purge(s) claimed by a previous run that did not finish", count)
            self._notify()
        return count

    def retry_dead(self, node: Optional[str] = None, now: Optional[float] = None) -> int:
        """Put dead letters (of one node, or all) back to ready. Returns how many were re-queued."""
        at = self.clock() if now is None else now
        where, args = ("state = 'dead' AND node = ?", (node,)) if node else ("state = 'dead'", ())

        def work(db: sqlite3.Connection) -> int:
            rows = db.execute(f"SELECT id, node, key, first_at FROM deliveries WHERE {where}", args).fetchall()
            for row_id, row_node, key, first_at in rows:
                try:
                    db.execute("UPDATE deliveries SET state = 'ready', next_at = ?, last_at = ?, attempts = 0, "
                               "dead_at = NULL WHERE id = ?", (at, at, row_id))
                except sqlite3.IntegrityError:
                    self._merge_into_ready(db, row_id, row_node, key, first_at)
            if rows:
                self._count(db, [("retried", "", len(rows))])
            return len(rows)

        count = self._write(work)
        if count:
            self._notify()
        return count

    # --- reads ---------------------------------------------------------------------

    def next_due(self, node: str, now: Optional[float] = None) -> Optional[float]:
        """Seconds until ``node`` has a row due (0 if now), or None when it has nothing queued."""
        now = self.clock() if now is None else now
        row = self._db().execute("SELECT MIN(next_at) FROM deliveries WHERE node = ? AND state != 'dead'",
                                 (node,)).fetchone()
        return None if row[0] is None else max(0.0, row[0] - now)

    def dead_hosts(self, node: str, since: float) -> Set[str]:
        """Hosts of ``node``'s dead letters dead-lettered at or after ``since`` (whom a dead-letter ban must cover)."""
        rows = self._db().execute("SELECT DISTINCT json_extract(item, '$.host') FROM deliveries "
                                  "WHERE node = ? AND state = 'dead' AND dead_at >= ?", (node, since)).fetchall()
        return {row[0] for row in rows if row[0]}

    def dead_letters(self, limit: int = 100, node: Optional[str] = None) -> List[Dict[str, Any]]:
        where, args = ("state = 'dead' AND node = ?", (node,)) if node else ("state = 'dead'", ())
        rows = self._db().execute(
            f"SELECT id, node, item, first_at, dead_at, attempts, last_error FROM deliveries WHERE {where} "
            "ORDER BY dead_at, id LIMIT ?", args + (limit,)).fetchall()
        return [dead_letter(r[0], r[1], json.loads(r[2]), r[3], r[4], r[5], r[6]) for r in rows]

    def site_deliveries(self, host: str, now: Optional[float] = None) -> Dict[str, Any]:
        """What is waiting or dead-lettered for ``host``'s purges, per node, and its unexpanded events (``site_stats``)."""
        now = self.clock() if now is None else now
        db = self._db()
        rows = db.execute(
            "SELECT node, state, COUNT(*), MIN(first_at), MAX(CASE WHEN state = 'dead' THEN dead_at END), "
            "(SELECT d2.last_error FROM deliveries d2 WHERE d2.node = d.node AND d2.state = d.state "
            " AND json_extract(d2.item, '$.host') = ? ORDER BY COALESCE(d2.dead_at, d2.next_at) DESC LIMIT 1) "
            "FROM deliveries d WHERE json_extract(item, '$.host') = ? GROUP BY node, state", (host, host)).fetchall()
        journal = db.execute("SELECT COUNT(*), MIN(received_at) FROM events WHERE expanded_at IS NULL AND site = ?",
                             (host,)).fetchone()
        return site_stats(rows, journal[0], journal[1], now)

    def depth(self) -> int:
        return self._db().execute("SELECT COUNT(*) FROM deliveries WHERE state != 'dead'").fetchone()[0]

    def stats(self, now: Optional[float] = None) -> Dict[str, Any]:
        """Queue depth, in-flight, dead letters, oldest pending age -- in total and per node -- and totals."""
        self._check_file()  # figures from a deleted file would say all is well
        now = self.clock() if now is None else now
        db = self._db()
        nodes: Dict[str, Dict[str, Any]] = {}
        for node, state, count, oldest in db.execute(
                "SELECT node, state, COUNT(*), MIN(first_at) FROM deliveries GROUP BY node, state"):
            entry = nodes.setdefault(node, node_stats())
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

    def writable(self) -> bool:
        """True when a real write commits and a largest event still fits (for /readyz).

        The write alone was not enough: on a full disk it still succeeded
        about one time in ten, into WAL pages already allocated, so /readyz
        flapped to 200 (issue 25.5). Less than ``MIN_FREE`` bytes free for
        the relay's user is "not writable".
        """
        try:
            disk = os.statvfs(os.path.dirname(os.path.abspath(self.path)))
        except OSError:
            disk = None
        if disk is not None and disk.f_bavail * disk.f_frsize < MIN_FREE:
            log.error("queue %s is not writable: %d bytes free on its filesystem, under %d", self.path,
                      disk.f_bavail * disk.f_frsize, MIN_FREE)
            return False
        try:
            # rewrites page 1: a real write to the WAL
            self._write(lambda db: db.execute(f"PRAGMA user_version = {SCHEMA_VERSION}"))
            return True
        except (sqlite3.Error, QueueError) as exc:
            log.error("queue %s is not writable: %s", self.path, exc)
            return False
