"""Group commit of accepted events: many requests, one transaction, one fsync.

Why: accepting an event used to mean mapping it (~40 URLs), writing ~120
(node, item) delivery rows and an fsync, all inside the request -- about 270
events a second. Now a request only appends the raw validated event to the
journal and waits for a durable commit; mapping and the delivery rows happen
afterwards, in batches, in the worker process (``purgebridge.journal``).

Requests hand their event to one writer thread and block. The writer takes
every event waiting at that moment, writes them (signature into the replay
cache, event into the journal) in ONE transaction with ONE commit
(``synchronous=FULL``), then wakes each request with its own result: stored,
or a replay (signature already stored, or twice in the same group). While a
commit is on the disk the next group gathers, so the number of fsyncs per
second stays about constant whatever the load. A request not taken into a
transaction within ``wait`` seconds is withdrawn (nothing of it is stored)
and answered 503; one already taken waits for that transaction's outcome,
which is always the truth.
"""

import logging
import threading
import time
import uuid

from purgebridge.errors import PurgebridgeError, SignatureError

log = logging.getLogger(__name__)

PENDING, TAKEN, DONE, WITHDRAWN = "pending", "taken", "done", "withdrawn"
MAX_GROUP = 500    # events in one journal statement (sqlite._CHUNK)


class JournalError(PurgebridgeError):
    """The event was not stored (answered 503): the journal is busy, closed or not writable."""


class JournalBusy(JournalError):
    pass


class JournalClosed(JournalError):
    pass


class _Append:
    """One request's event on its way into the journal; ``done`` is released when settled."""

    __slots__ = ("event_id", "source", "site", "body", "signature", "received_at", "state", "error", "done",
                 "on_done")

    def __init__(self, source, site, body, signature, on_done=None):
        self.event_id = uuid.uuid4().hex
        self.source = source
        self.site = site
        self.body = body
        self.signature = signature or None
        self.received_at = time.time()
        self.state = PENDING
        self.error = None
        self.done = threading.Lock()
        self.done.acquire()
        self.on_done = on_done  # called on the writer thread once settled (``Journal.submit``)


class Journal:
    """Group commit onto ``queue.write_journal``; one writer thread, started at construction."""

    def __init__(self, queue, wait=5.0, max_group=MAX_GROUP):
        self.queue = queue
        self.wait = wait
        self.max_group = max_group
        self.commits = 0   # transactions that stored at least one event (tests compare with events)
        self.appended = 0
        self._pending = []
        self._cond = threading.Condition()
        self._closed = False
        self._thread = threading.Thread(target=self._run, name="journal-writer", daemon=True)
        self._thread.start()

    def append(self, source, site, body, signature=None):
        """Block until the event is durably journaled; return its id.

        Raises SignatureError(replay=True) for a replay, JournalBusy when not
        written within ``wait`` seconds, JournalClosed after :meth:`close`,
        JournalError when the transaction failed. Nothing is stored then.
        """
        entry = self.submit(source, site, body, signature)
        if not entry.done.acquire(timeout=self.wait):
            if self.withdraw(entry):
                raise entry.error
            entry.done.acquire()  # in a transaction right now: its outcome is the answer
        if entry.error is not None:
            raise entry.error
        return entry.event_id

    def submit(self, source, site, body, signature=None, on_done=None):
        """Hand an event to the writer without waiting; returns its entry. Raises JournalClosed.

        ``on_done(entry)`` is called on the writer thread once the entry is
        settled: ``entry.error`` None means stored as ``entry.event_id``,
        else it holds what :meth:`append` would raise. It must not block (the
        relay's event loop passes ``loop.call_soon_threadsafe``).
        """
        entry = _Append(source, site, bytes(body), signature, on_done)
        with self._cond:
            if self._closed:
                raise JournalClosed("the relay is shutting down")
            self._pending.append(entry)
            self._cond.notify()
        return entry

    def withdraw(self, entry):
        """Take back an entry no transaction has taken yet (its ``error`` becomes JournalBusy); True if done.

        An entry already taken is left to its transaction, whose outcome is
        the truth. Called when ``wait`` has passed.
        """
        with self._cond:
            if entry.state != PENDING:
                return False
            self._pending.remove(entry)
            entry.state = WITHDRAWN
            entry.error = JournalBusy(f"queue busy: not written within {self.wait:g} s")
            return True

    def close(self, timeout=30.0):
        """Refuse new appends, write every one still waiting, stop the writer."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()
        self._thread.join(timeout)
        if self._thread.is_alive():
            log.warning("journal writer still busy after %.0f s at shutdown", timeout)

    # --- the writer thread -----------------------------------------------------------

    def _run(self):
        while True:
            with self._cond:
                while not self._pending and not self._closed:
                    self._cond.wait()
                if not self._pending:
                    return
            self._write_group()

    def _take(self, taken):
        with self._cond:
            taken.extend(self._pending[:self.max_group])
            del self._pending[:len(taken)]
            for entry in taken:
                entry.state = TAKEN
        return taken

    def _write_group(self):
        taken = []
        try:
            stored = self.queue.write_journal(lambda: self._take(taken))
        except Exception as exc:  # the disk, a lock held too long by another process, a closed queue
            log.error("journal write of %d event(s) failed: %s", len(taken), exc)
            for entry in taken:
                entry.error = JournalError(f"queue not writable: {type(exc).__name__}")
            if not taken:
                time.sleep(0.05)  # could not even begin: do not spin while the lock is held elsewhere
        else:
            if any(stored):
                self.commits += 1
                self.appended += sum(stored)
            for entry, ok in zip(taken, stored):
                if not ok:
                    entry.error = SignatureError("signature already used (replay)", replay=True)
        for entry in taken:
            entry.state = DONE
            entry.done.release()
            if entry.on_done is not None:
                try:
                    entry.on_done(entry)
                except Exception:  # noqa: BLE001 - e.g. the event loop closed at shutdown; the writer goes on
                    log.exception("journal: notifying the request of event %s failed", entry.event_id)
