"""The purge worker process: started, watched and restarted by ``purgebridge serve``.

:class:`WorkerSupervisor` runs in ``serve``'s main process: it spawns
:func:`worker_main` in a fresh interpreter, starts a new one a second after
it dies, and stops it (SIGTERM, then SIGKILL) when the relay stops. The
worker process dies with its supervisor (``PR_SET_PDEATHSIG``). It tells the
API process its state through ``worker.status`` (docs/architecture.md).
"""

import ctypes
import functools
import logging
import multiprocessing
import os
import signal
import tempfile
import threading
from typing import Any, Optional

from purgebridge.worker.status import STATUS_FILE, STATUS_INTERVAL, write_status

log = logging.getLogger(__name__)

RESPAWN_DELAY = 1.0      # seconds before a dead worker process is started again
_PR_SET_PDEATHSIG = 1    # linux/prctl.h


def die_with_parent(what: str) -> None:
    """Ask Linux to SIGKILL this process when the thread that started it (the supervisor) is gone."""
    parent = os.getppid()
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        if libc.prctl(_PR_SET_PDEATHSIG, int(signal.SIGKILL), 0, 0, 0) != 0:
            log.warning("prctl(PR_SET_PDEATHSIG) failed (errno %d): the %s may outlive a killed supervisor",
                        ctypes.get_errno(), what)
    except (OSError, AttributeError):
        log.warning("prctl is not available here: the %s may outlive a killed supervisor", what)
    if parent == 1:  # the supervisor died before prctl took effect
        os._exit(1)


def worker_main(settings: Any, secrets: list, status_path: str) -> None:
    """The worker process: open the queue, run the worker, report its state until SIGTERM/SIGINT."""
    from purgebridge.store import open_queue
    from purgebridge.telemetry.logs import setup_logging
    from purgebridge.telemetry.metrics import Metrics
    from purgebridge.worker.worker import Worker

    die_with_parent("purge worker process")
    setup_logging(settings.log_format, secrets=secrets)
    stopping = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_args: stopping.set())
    queue = open_queue(settings)
    queue.release_leases()  # claims of a worker that was killed come back now
    listen = getattr(queue, "listen", None)  # SQLite: hear the API process's commits (Redis: pub/sub)
    if listen is not None:
        listen()
    worker = Worker(queue, settings, metrics=Metrics(),
                    publish=functools.partial(write_status, status_path)).start()
    log.info("purge worker process %d started (queue %s)", os.getpid(), queue.path)
    try:
        while not stopping.wait(STATUS_INTERVAL):
            worker.report()  # also while idle: a fresh snapshot says the worker is alive
    finally:
        worker.stop(timeout=max(10.0, settings.timeout * 4))
        final = worker.snapshot()
        final["running"] = False
        write_status(status_path, final)
        stats = queue.stats()
        log.info("worker stopped: %d purge(s) left queued, %d dead letter(s)", stats["depth"], stats["dead"])
        queue.close()  # the next start expands what the journal still holds


class WorkerSupervisor:
    """Runs :func:`worker_main` in its own process; restarts it when it dies; stops it with the relay."""

    def __init__(self, settings: Any, secrets: list, run_dir: Optional[str] = None) -> None:
        self.settings = settings
        self.secrets = secrets
        self.run_dir = run_dir or tempfile.mkdtemp(prefix="purgebridge-")
        self.status_path = os.path.join(self.run_dir, STATUS_FILE)
        self.process: Optional[multiprocessing.process.BaseProcess] = None
        self.starts = 0
        self._stopping = threading.Event()
        self._restarting = threading.Event()
        self._thread: Optional[threading.Thread] = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="worker-supervisor", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        # This thread starts the process and outlives it: PR_SET_PDEATHSIG is tied to the starting thread.
        context = multiprocessing.get_context("spawn")
        while not self._stopping.is_set():
            process = context.Process(target=worker_main, args=(self.settings, self.secrets, self.status_path),
                                      name="purgebridge-worker")
            process.start()
            self.process = process
            self.starts += 1
            process.join()
            if self._stopping.is_set():
                return
            if self._restarting.is_set():  # asked for by restart(): no error, no delay
                self._restarting.clear()
                continue
            log.error("purge worker process %d exited with %s; starting a new one in %.0f s",
                      process.pid, process.exitcode, RESPAWN_DELAY)
            self._stopping.wait(RESPAWN_DELAY)

    def restart(self, settings: Any, secrets: list) -> None:
        """Stop the worker process in order (SIGTERM) and start one with ``settings`` (``serve``'s reload).

        The orderly stop finishes the batches in flight and leaves the rest in the
        journal and the queue, which the new process expands and sends: nothing is lost.
        """
        self.settings, self.secrets = settings, secrets
        process = self.process
        if process is None or not process.is_alive():
            return  # the loop starts the next one with the new settings anyway
        self._restarting.set()
        process.terminate()

    def stop(self) -> None:
        """SIGTERM the worker process and wait for its orderly stop; SIGKILL if it takes too long."""
        self._stopping.set()
        process = self.process
        if process is not None and process.is_alive():
            process.terminate()
            process.join(max(30.0, self.settings.timeout * 8))
            if process.is_alive():
                log.warning("purge worker process %d did not stop in time; killing it", process.pid)
                process.kill()
                process.join(5)
        if self._thread is not None:
            self._thread.join(5)
        try:
            os.unlink(self.status_path)
            os.rmdir(self.run_dir)
        except OSError:
            pass
