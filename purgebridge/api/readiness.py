"""Which Varnish nodes accept a connection, checked in the background for ``/readyz``.

Why a thread: ``/readyz`` used to connect to every node not recently heard
from on the request thread, so sixteen load-balancer probes against one
unreachable node held sixteen of the app's threads for up to a second each
and slowed every route to 1-2 s. Now one daemon thread connects to the nodes
every ``interval`` seconds and ``/readyz`` only reads its last answer. The
thread starts with the first ``/readyz`` and ends after ``idle_stop`` seconds
without one, so an app nobody probes runs no thread.

Right after a start nothing has been checked yet: the first ``/readyz``
waits (bounded) for the first round and for the worker process's first
report instead of answering 503 "not checked yet" (issue 25.8).
"""

from dataclasses import dataclass, field
import logging
import socket
import threading
import time
from typing import Any, Callable, Dict, Optional, Sequence

from purgebridge.core.nodes import Node

log = logging.getLogger(__name__)


@dataclass
class Reachability:
    """The last TCP-connect result per node, kept fresh by a background thread while someone asks."""

    nodes: Sequence[Node]
    timeout: float = 1.0  # seconds per connect attempt
    interval: float = 5.0  # seconds between rounds
    idle_stop: float = 120.0  # the thread ends this long after the last ask
    clock: Callable[[], float] = time.monotonic
    _reachable: Dict[str, bool] = field(default_factory=dict)
    _asked_at: float = 0.0
    _thread: Optional[threading.Thread] = None
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _first_round: threading.Event = field(default_factory=threading.Event)

    def reachable(self, wait: float = 0.0) -> Optional[Dict[str, bool]]:
        """name -> reachable at the last round; None until the first round finished.

        Never blocks on the network beyond ``wait`` seconds, and waits only
        before the first round has finished (the first probe after a start).
        """
        with self._lock:
            self._asked_at = self.clock()
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._run, name="purgebridge-readiness", daemon=True)
                self._thread.start()
        if wait > 0 and not self._first_round.is_set():
            self._first_round.wait(wait)
        with self._lock:
            return dict(self._reachable) if self._reachable else None

    def _run(self) -> None:
        while True:
            found = self._round()
            with self._lock:
                self._reachable = found
                self._first_round.set()
                if self.clock() - self._asked_at > self.idle_stop:
                    self._thread = None
                    return
            time.sleep(self.interval)

    def _round(self) -> Dict[str, bool]:
        """Every node at once: a round takes one ``timeout``, however many nodes do not answer."""
        found: Dict[str, bool] = {}
        threads = [threading.Thread(target=lambda n=node: found.__setitem__(n.name, self._connects(n)), daemon=True)
                   for node in self.nodes]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(self.timeout + 1.0)
        return {node.name: found.get(node.name, False) for node in self.nodes}

    def _connects(self, node: Node) -> bool:
        try:
            with socket.create_connection((node.host, node.port), timeout=self.timeout):
                return True
        except OSError:
            return False


WORKER_START_GRACE = 15.0  # seconds after the api started in which /readyz waits for the worker's first report
WORKER_WAIT = 3.0  # ... for at most this long per probe


@dataclass
class WorkerReadiness:
    """Is the purge worker process running (reporting in)? ``/readyz`` is 503 while it is not.

    A worker that cannot start used to be invisible: events got 202 (they
    are durable in the journal) and ``/readyz`` said 200, so no load
    balancer or alert noticed that nothing was being purged.
    """

    view: Any  # purgebridge.worker.status.WorkerView
    started: float = field(default_factory=time.time)  # when the api process started (unix time)
    seen: bool = False

    def running(self) -> bool:
        if self.view.running:
            self.seen = True
            return True
        if self.seen or time.time() - self.started > WORKER_START_GRACE:
            return False
        deadline = time.monotonic() + WORKER_WAIT  # only at start: the worker's first report is on its way
        while time.monotonic() < deadline:
            time.sleep(0.05)
            if self.view.running:
                self.seen = True
                return True
        return False
