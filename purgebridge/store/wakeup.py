"""Wake-ups within a process and across processes sharing one SQLite queue file.

Why: the API process commits an accepted event; the worker process must
start on it within microseconds, not after a polling interval. Within one
process a condition variable does it (:class:`Signal`). Across processes,
every commit that gives the worker something to do sends a one-byte
datagram to a Unix socket in Linux's abstract namespace named after the
queue file (:class:`Nudge`): no file to clean up, no path length limit, and
sending costs a few microseconds and never blocks (nobody listening, or a
full buffer, is simply ignored). The worker's listener thread turns each
datagram into the local signal. Should a datagram be lost, or the listener
be unable to bind (another worker on the same file), ``PRAGMA
data_version`` -- which changes whenever another connection committed --
is read every ``FALLBACK_POLL`` seconds as the fallback.
"""

import hashlib
import logging
import os
import socket
import sqlite3
import threading
from typing import Callable, Optional

log = logging.getLogger(__name__)

JOURNAL = b"j"      # an event was appended to the journal: the expander
DELIVERIES = b"d"   # deliveries were added or put back to ready: the node threads
FALLBACK_POLL = 0.2


class Signal:
    """A generation counter with a condition: wake threads waiting for "something new"."""

    def __init__(self) -> None:
        self.condition = threading.Condition()
        self.generation = 0

    def fire(self) -> None:
        with self.condition:
            self.generation += 1
            self.condition.notify_all()

    def wait(self, generation: int, timeout: Optional[float]) -> int:
        with self.condition:
            if self.generation == generation:
                self.condition.wait(timeout)
            return self.generation


class Wakeups:
    """The wake-up half of the queue contract, the same for every backend.

    ``generation``/``wait`` for the node threads (deliveries added or back
    to ready), ``journal_generation``/``wait_journal`` for the expander
    (events appended). A backend fires ``_changed``/``_journal_changed``
    when it writes, and makes sure other processes' writes arrive in
    :meth:`_listening` (Redis: its pub/sub listener; SQLite: ``listen``).
    """

    def __init__(self) -> None:
        self._changed = Signal()
        self._journal_changed = Signal()

    def _listening(self) -> None:
        """Hook: start hearing other processes' writes, if this backend does that lazily."""

    @property
    def generation(self) -> int:
        self._listening()
        return self._changed.generation

    def wait(self, generation: int, timeout: Optional[float]) -> int:
        """Block until deliveries were added or put back after ``generation``, or ``timeout``."""
        self._listening()
        return self._changed.wait(generation, timeout)

    def notify(self) -> None:
        """Wake this process's waiting node threads and expander (used on shutdown)."""
        self._changed.fire()
        self._journal_changed.fire()

    def notify_deliveries(self) -> None:
        """Wake this process's node threads only: the expander filled their inboxes.

        Not the expander itself: it would read the journal once more for
        nothing, right when the node threads need the interpreter to send.
        """
        self._changed.fire()

    @property
    def journal_generation(self) -> int:
        self._listening()
        return self._journal_changed.generation

    def wait_journal(self, generation: int, timeout: Optional[float]) -> int:
        """Block until an event was appended to the journal after ``generation``, or ``timeout``."""
        self._listening()
        return self._journal_changed.wait(generation, timeout)


def address_for(path: str) -> str:
    """The abstract socket name of the queue file at ``path`` (the same in every process)."""
    digest = hashlib.sha1(os.path.realpath(path).encode("utf-8")).hexdigest()[:20]
    return f"\0purgebridge-{digest}"


class Nudge:
    """Sends and (in the worker process) receives the cross-process wake-ups of one SQLite queue file."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.address = address_for(path)
        self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self._sock.setblocking(False)
        self._listener: Optional[threading.Thread] = None
        self._closed = threading.Event()

    def send(self, kind: bytes) -> None:
        try:
            self._sock.sendto(kind, self.address)
        except OSError:  # nobody listening (no worker process), or its buffer is full: it wakes anyway
            pass

    def listen(self, on_journal: Callable[[], None], on_deliveries: Callable[[], None]) -> None:
        """Start the listener thread: datagrams, and ``PRAGMA data_version`` as the fallback."""
        if self._listener is not None:
            return
        self._listener = threading.Thread(target=self._listen, args=(on_journal, on_deliveries),
                                          name="queue-wake", daemon=True)
        self._listener.start()

    def _listen(self, on_journal: Callable[[], None], on_deliveries: Callable[[], None]) -> None:
        bound = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        receiver: Optional[socket.socket] = bound
        try:
            bound.bind(self.address)
            bound.settimeout(FALLBACK_POLL)
        except OSError as exc:
            log.warning("queue %s: cannot listen for wake-ups (%s); reading PRAGMA data_version every %.1f s "
                        "instead", self.path, exc, FALLBACK_POLL)
            bound.close()
            receiver = None
        db = sqlite3.connect(self.path, timeout=10.0, isolation_level=None, check_same_thread=False)
        version = db.execute("PRAGMA data_version").fetchone()[0]
        try:
            while not self._closed.is_set():
                if receiver is not None:
                    try:
                        kind = receiver.recv(16)
                    except socket.timeout:
                        kind = b""
                else:
                    self._closed.wait(FALLBACK_POLL)
                    kind = b""
                if JOURNAL in kind:
                    on_journal()
                if DELIVERIES in kind:
                    on_deliveries()
                if not kind:
                    now = db.execute("PRAGMA data_version").fetchone()[0]
                    if now != version:
                        version = now
                        on_journal()
                        on_deliveries()
        except sqlite3.Error as exc:
            log.warning("queue %s: wake-up listener stopped: %s", self.path, exc)
        finally:
            db.close()
            if receiver is not None:
                receiver.close()

    def close(self) -> None:
        self._closed.set()
        if self._listener is not None:
            self._listener.join(timeout=2 * FALLBACK_POLL + 1)
        self._sock.close()
