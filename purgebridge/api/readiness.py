"""Which Varnish nodes accept a connection, checked in the background for ``/readyz``.

Why a thread: ``/readyz`` used to connect to every node not recently heard
from on the request thread, so sixteen load-balancer probes against one
unreachable node held sixteen of the app's threads for up to a second each
and slowed every route to 1-2 s. Now one daemon thread connects to the nodes
every ``interval`` seconds and ``/readyz`` only reads its last answer. The
thread starts with the first ``/readyz`` and ends after ``idle_stop`` seconds
without one, so an app nobody probes runs no thread.
"""

from dataclasses import dataclass, field
import logging
import socket
import threading
import time
from typing import Callable, Dict, Optional, Sequence

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

    def reachable(self) -> Optional[Dict[str, bool]]:
        """name -> reachable at the last round; None until the first round finished. Never blocks on the network."""
        with self._lock:
            self._asked_at = self.clock()
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._run, name="purgebridge-readiness", daemon=True)
                self._thread.start()
            return dict(self._reachable) if self._reachable else None

    def _run(self) -> None:
        while True:
            found = {node.name: self._connects(node) for node in self.nodes}
            with self._lock:
                self._reachable = found
                if self.clock() - self._asked_at > self.idle_stop:
                    self._thread = None
                    return
            time.sleep(self.interval)

    def _connects(self, node: Node) -> bool:
        try:
            with socket.create_connection((node.host, node.port), timeout=self.timeout):
                return True
        except OSError:
            return False
