"""The one thread of a process that writes a SQLite queue file; the journal's group commit is its batching policy.

Why one writer: SQLite lets one connection write at a time anyway. When
every thread wrote on its own connection they took turns through a thread
lock, and the journal needed that lock handed to it through a callback so
it could still withdraw appends that had waited too long. Now the writer
thread owns the only write connection; callers submit work and block on its
result (the model is Datasette's ``execute_write_fn``):

* a *task* (``run``): a function of the connection, run in a transaction of
  its own (``BEGIN IMMEDIATE`` ... ``COMMIT``, rolled back on any error);
* an *append* (``append``): one accepted event for the journal. Appends are
  the batchable kind: the writer takes every append waiting at that moment
  (up to ``max_group``) and hands them to ``write_group`` together -- one
  transaction, one fsync for the lot -- and each caller gets its own result
  (stored, a replay, or the error).

Each unit (a group of appends, or one task) runs while this process holds
``flock`` on the queue's lock file, so the writers of other processes (the
worker process, ``purgebridge queue retry``) take turns with it; the kernel
hands the lock on the moment it is released, with no busy-wait. Work is
*taken* only once that lock is held, so a caller not taken within its
``wait`` is withdrawn with nothing written (answered 503 on the accept
path) and a caller already taken waits for the outcome, which is always the
truth. Neither kind starves the other: after a group, the tasks that were
waiting while it ran go before the next group.
"""

from dataclasses import dataclass, field
import logging
import sqlite3
import threading
import time
from typing import Any, Callable, ContextManager, Generic, List, Optional, TypeVar

from purgebridge.core.errors import SignatureError
from purgebridge.core.errors import QueueBusy, QueueClosed, QueueError
from purgebridge.store.journal import JournalEntry

log = logging.getLogger(__name__)

T = TypeVar("T")

PENDING, TAKEN, DONE, WITHDRAWN = "pending", "taken", "done", "withdrawn"
MAX_GROUP = 500  # appends in one group: one INSERT statement (sqlite._CHUNK)


@dataclass(eq=False, slots=True)
class _Job(Generic[T]):
    """One submitted unit of work; ``done`` is released once it is settled (state DONE)."""

    work: Optional[Callable[[sqlite3.Connection], T]] = None   # a task; None for an append
    entry: Optional[JournalEntry] = None                      # an append
    durable: bool = True          # commit with the queue's ``synchronous`` (else NORMAL: no fsync)
    transaction: bool = True      # wrap ``work`` in BEGIN IMMEDIATE ... COMMIT
    state: str = PENDING
    result: Any = None
    error: Optional[BaseException] = None
    done: threading.Lock = field(default_factory=threading.Lock)
    on_done: Optional[Callable[["_Job"], None]] = None  # called on the writer thread once settled; must not block

    def __post_init__(self) -> None:
        self.done.acquire()


class Writer:
    """The writer thread of one queue object; started at construction, stopped by :meth:`close`.

    ``connect()`` opens the write connection (called in the writer thread);
    ``exclusive()`` is the cross-process turn (``flock``); ``check()`` runs
    before every unit (raises when the queue file is gone); ``write_group(db,
    entries)`` writes a group of journal appends and returns one bool per
    entry (stored, or False for a replay); ``synchronous`` is the durable
    setting (``FULL``).
    """

    def __init__(self, connect: Callable[[], sqlite3.Connection], exclusive: Callable[[], ContextManager[Any]],
                 check: Callable[[], None], write_group: Callable[[sqlite3.Connection, List[JournalEntry]], List[bool]],
                 synchronous: str = "FULL", max_group: int = MAX_GROUP, name: str = "queue-writer") -> None:
        self._connect = connect
        self._exclusive = exclusive
        self._check = check
        self._write_group = write_group
        self.synchronous = synchronous
        self.max_group = max_group
        self.commits = 0    # groups that stored at least one event (tests compare with appended)
        self.appended = 0   # events stored by append
        self._appends: List[_Job] = []
        self._tasks: List[_Job] = []
        self._cond = threading.Condition()
        self._closed = False
        self._db: Optional[sqlite3.Connection] = None
        self._durable: Optional[bool] = None   # what the connection's synchronous is set to now
        self._tasks_owed = 0                   # tasks that waited while a group went: they go before the next
        self._thread = threading.Thread(target=self._loop, name=name, daemon=True)
        self._thread.start()

    # --- the callers' side -----------------------------------------------------------------

    def run(self, work: Callable[[sqlite3.Connection], T], wait: float, durable: bool = True,
            transaction: bool = True) -> T:
        """Run ``work(db)`` on the write connection in a transaction of its own; return its result.

        Raises what ``work`` raised (the transaction rolled back), QueueBusy
        when not started within ``wait`` seconds, QueueClosed after close.
        ``transaction=False``: ``work`` manages its own (schema set-up).
        """
        if threading.current_thread() is self._thread:
            raise RuntimeError("a write submitted from the writer thread itself would wait for ever")
        job: _Job[T] = _Job(work=work, durable=durable, transaction=transaction)
        self._submit(self._tasks, job, QueueClosed("queue is closed"))
        self._settle(job, wait, QueueBusy(f"queue busy: write not started within {wait:g} s"))
        return job.result

    def append(self, entry: JournalEntry, wait: float) -> None:
        """Block until ``entry`` is durably journaled (grouped with the appends waiting beside it).

        Raises SignatureError(replay=True) for a replay, QueueBusy when not
        written within ``wait`` seconds, QueueClosed after close,
        QueueError when the transaction failed. Nothing is stored then.
        """
        job: _Job[None] = _Job(entry=entry)
        self._submit(self._appends, job, QueueClosed("the relay is shutting down"))
        self._settle(job, wait, QueueBusy(f"queue busy: not written within {wait:g} s"))

    def submit_append(self, entry: JournalEntry, on_done: Callable[[_Job], None]) -> _Job:
        """Hand ``entry`` to the next group without waiting (the relay's event loop); returns its job.

        ``on_done(job)`` runs on the writer thread once the job is settled:
        ``job.error`` None means stored, else it holds what :meth:`append`
        would raise. The caller withdraws it with :meth:`withdraw` when its
        wait passes. Raises QueueClosed after close.
        """
        job: _Job[None] = _Job(entry=entry, on_done=on_done)
        self._submit(self._appends, job, QueueClosed("the relay is shutting down"))
        return job

    def withdraw(self, job: _Job, busy: BaseException) -> bool:
        """Take back a job no unit has taken yet (its ``error`` becomes ``busy``); True if it was.

        A job already taken is left to its transaction, whose outcome is the truth.
        """
        with self._cond:
            if job.state != PENDING:
                return False
            (self._appends if job.entry is not None else self._tasks).remove(job)
            job.state = WITHDRAWN
            job.error = busy
            return True

    def pending_appends(self) -> int:
        """Appends submitted and not yet taken into a group (tests wait on it)."""
        with self._cond:
            return len(self._appends)

    def _submit(self, line: List[_Job], job: _Job, closed: BaseException) -> None:
        with self._cond:
            if self._closed:
                raise closed
            line.append(job)
            self._cond.notify()

    def _settle(self, job: _Job, wait: float, busy: BaseException) -> None:
        if not job.done.acquire(timeout=wait):
            if self.withdraw(job, busy):
                raise busy
            job.done.acquire()  # taken and running right now: its outcome is the answer
        if job.error is not None:
            raise job.error

    def close(self, timeout: float = 30.0) -> None:
        """Refuse new work, finish everything already submitted, stop the thread, close the connection."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()
        if threading.current_thread() is not self._thread:
            self._thread.join(timeout)
        if self._thread.is_alive():
            log.warning("queue writer still busy after %.0f s at shutdown", timeout)

    # --- the writer thread ---------------------------------------------------------------------

    def _loop(self) -> None:
        while True:
            with self._cond:
                while not self._appends and not self._tasks and not self._closed:
                    self._cond.wait()
                if not self._appends and not self._tasks:
                    break
            try:
                with self._exclusive():
                    self._one_unit()
            except Exception as exc:  # noqa: BLE001 - the lock file itself failed: nothing was taken
                log.error("queue writer could not take the write lock: %s", exc)
                time.sleep(0.05)
        if self._db is not None:
            try:
                self._db.close()
            except sqlite3.Error:
                pass

    def _one_unit(self) -> None:
        """Take the next unit now that the lock is held: a group of appends, or one task (see the module docstring)."""
        group: List[_Job] = []
        with self._cond:
            if self._appends and not (self._tasks and self._tasks_owed):
                group = self._appends[:self.max_group]
                del self._appends[:len(group)]
                self._tasks_owed = len(self._tasks)  # the tasks this group passed go before the next group
            elif self._tasks:
                group = [self._tasks.pop(0)]
                self._tasks_owed = max(0, self._tasks_owed - 1)
            for job in group:   # nothing, when what waited was withdrawn while the lock was elsewhere
                job.state = TAKEN
        if not group:
            return
        if group[0].entry is not None:
            self._run_group(group)
        else:
            self._run_task(group[0])

    def _connection(self, durable: bool) -> sqlite3.Connection:
        self._check()
        if self._db is None:
            self._db = self._connect()
            self._durable = None
        if self._durable is not durable:  # only between transactions; costs nothing when unchanged
            self._db.execute(f"PRAGMA synchronous = {self.synchronous if durable else 'NORMAL'}")
            self._durable = durable
        return self._db

    def _run_task(self, job: _Job) -> None:
        try:
            db = self._connection(job.durable)
            assert job.work is not None
            if not job.transaction:
                job.result = job.work(db)
            else:
                db.execute("BEGIN IMMEDIATE")
                try:
                    job.result = job.work(db)
                    db.execute("COMMIT")
                finally:
                    self._rollback()  # after an error, or a failed COMMIT: never leave it half-done
        except BaseException as exc:  # noqa: BLE001 - handed to the caller, who raises it
            job.error = exc
        self._finish([job])

    def _run_group(self, group: List[_Job]) -> None:
        entries = [job.entry for job in group if job.entry is not None]
        try:
            db = self._connection(True)
            stored = self._write_group(db, entries)
        except Exception as exc:  # noqa: BLE001 - the disk, a deleted file, a lock held too long elsewhere
            log.error("journal write of %d event(s) failed: %s", len(group), exc)
            self._rollback()
            for job in group:
                job.error = QueueError(f"queue not writable: {type(exc).__name__}")
        else:
            if any(stored):
                self.commits += 1
                self.appended += sum(stored)
            for job, ok in zip(group, stored):
                if not ok:
                    job.error = SignatureError("signature already used (replay)", replay=True)
        self._finish(group)

    def _rollback(self) -> None:
        if self._db is not None and self._db.in_transaction:
            try:
                self._db.execute("ROLLBACK")
            except sqlite3.Error as exc:  # the connection is unusable: open a new one for the next unit
                log.error("queue writer: rollback failed (%s); reconnecting", exc)
                self._db.close()
                self._db = None

    @staticmethod
    def _finish(jobs: List[_Job]) -> None:
        for job in jobs:
            job.state = DONE
            job.done.release()
            if job.on_done is not None:
                try:
                    job.on_done(job)
                except Exception:  # noqa: BLE001 - e.g. the event loop closed at shutdown; the writer goes on
                    log.exception("queue writer: telling the waiting request about its event failed")
