"""The purge worker process: started, watched and restarted by ``purgebridge serve``.

:class:`WorkerSupervisor` runs in ``serve``'s main process: it spawns
:func:`worker_main` in a fresh interpreter, starts a new one a second after
it dies, and stops it (SIGTERM, then SIGKILL) when the relay stops. A queue
file deleted or replaced under the relay stops the whole relay, whether the
worker process noticed it or the supervisor did (a worker that cannot start
never can). The
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
import time
from typing import Any, Optional, Tuple

from purgebridge.core.errors import QueueFileGone
from purgebridge.store import queue_file_gone, queue_file_identity
from purgebridge.worker.status import STATUS_FILE, STATUS_INTERVAL, write_status

log = logging.getLogger(__name__)

RESPAWN_DELAY = 1.0      # seconds before a dead worker process is started again ...
RESPAWN_DELAY_MAX = 30.0  # ... doubled while it keeps dying within STARTED_AFTER of its start, up to this
STARTED_AFTER = 10.0     # seconds a worker process must live to count as started (the delay resets)
EXIT_FAILED_START = 3    # worker_main could not start: the reason was logged
EXIT_QUEUE_GONE = 4      # the queue file was deleted or replaced: only a restart of the whole relay helps
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


def worker_main(settings: Any, secrets: list, status_path: str,
                queue_file: Optional[Tuple[int, int]] = None) -> None:
    """The worker process: open the queue, run the worker, report its state until SIGTERM/SIGINT.

    Any failure to start is logged with its exception before the process
    exits (EXIT_FAILED_START): the supervisor's "exited with N" alone never
    said why (issue 25.7). ``queue_file`` is the queue file the relay started
    with: when it is gone, this process says so in one line and does not
    create an empty file in its place.
    """
    from purgebridge.telemetry.logs import setup_logging

    die_with_parent("purge worker process")
    setup_logging(settings.log_format, secrets=secrets)
    try:
        gone = queue_file_gone(settings.queue, queue_file)
        if gone:
            raise _QueueGone(gone)
        _run_worker(settings, status_path)
    except (_QueueGone, QueueFileGone) as exc:  # while running, or already while opening it
        log.error("purge worker process stops: %s", exc)
        os._exit(EXIT_QUEUE_GONE)
    except Exception as exc:  # noqa: BLE001 - whatever stops the start, say it once with its traceback
        gone = queue_file_gone(settings.queue, queue_file)
        if gone:  # deleted while it was opening it: SQLite says "disk I/O error"
            log.error("purge worker process stops: %s", gone)
            os._exit(EXIT_QUEUE_GONE)
        log.exception("purge worker process could not run: %s: %s", type(exc).__name__, exc)
        logging.shutdown()
        os._exit(EXIT_FAILED_START)


class _QueueGone(Exception):
    """The queue file the worker opened is no longer at its path."""


def _queue_gone(queue: Any) -> Optional[str]:
    """Why the queue file is gone (deleted or replaced), or None; Redis queues have no file."""
    check = getattr(queue, "_check_file", None)
    if check is None:
        return None
    try:
        check()
    except QueueFileGone as exc:
        return str(exc)
    return None


def _run_worker(settings: Any, status_path: str) -> None:
    from purgebridge.store import open_queue
    from purgebridge.telemetry.metrics import Metrics
    from purgebridge.worker.worker import Worker

    stopping = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_args: stopping.set())
    write_status(status_path, {"at": time.time(), "running": False, "pid": os.getpid(), "nodes": [],
                               "starting": True})  # the status file can be written: checked before anything
    queue = open_queue(settings)
    queue.release_leases()  # claims of a worker that was killed come back now
    listen = getattr(queue, "listen", None)  # SQLite: hear the API process's commits (Redis: pub/sub)
    if listen is not None:
        listen()
    worker = Worker(queue, settings, metrics=Metrics(),
                    publish=functools.partial(write_status, status_path)).start()
    log.info("purge worker process %d started (queue %s)", os.getpid(), queue.path)
    gone = None
    try:
        while not stopping.wait(STATUS_INTERVAL):
            gone = _queue_gone(queue)
            if gone:  # one clear line, not a traceback per node per second
                break
            worker.report()  # also while idle: a fresh snapshot says the worker is alive
    finally:
        worker.stop(timeout=max(10.0, settings.timeout * 4))
        final = worker.snapshot()
        final["running"] = False
        try:
            write_status(status_path, final)
        except OSError as exc:  # the status file is what failed: the exception on its way says so
            log.warning("cannot write the worker's last status: %s", exc)
        if not gone:
            stats = queue.stats()
            log.info("worker stopped: %d purge(s) left queued, %d dead letter(s)", stats["depth"], stats["dead"])
        queue.close()  # the next start expands what the journal still holds
    if gone:
        raise _QueueGone(gone)


class WorkerSupervisor:
    """Runs :func:`worker_main` in its own process; restarts it when it dies; stops it with the relay."""

    def __init__(self, settings: Any, secrets: list, run_dir: Optional[str] = None,
                 on_fatal: Optional[Any] = None) -> None:
        self.settings = settings
        self.secrets = secrets
        self.run_dir = run_dir or tempfile.mkdtemp(prefix="purgebridge-")
        self.status_path = os.path.join(self.run_dir, STATUS_FILE)
        self.process: Optional[multiprocessing.process.BaseProcess] = None
        self.starts = 0
        self.fatal = ""  # why the whole relay must stop (the queue file is gone); empty while all is well
        self.on_fatal = on_fatal  # called once with that reason (serve stops the relay)
        self._stopping = threading.Event()
        self._restarting = threading.Event()
        self._exited = threading.Event()  # set by _run once the current process has been reaped
        self._thread: Optional[threading.Thread] = None
        self._queue_file: Optional[Tuple[int, int]] = None  # the queue file the relay started with

    def start(self) -> None:
        self._queue_file = queue_file_identity(self.settings.queue)  # serve created it before this start
        self._thread = threading.Thread(target=self._run, name="worker-supervisor", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        # This thread starts the process and outlives it: PR_SET_PDEATHSIG is tied to the starting thread.
        # It is also the only thread that joins (reaps) the process: a second join in stop() used to find
        # it reaped already, take it for alive, and log "did not stop in time" 0.12 s after it stopped.
        context = multiprocessing.get_context("spawn")
        delay = RESPAWN_DELAY
        while not self._stopping.is_set():
            process = context.Process(target=worker_main, name="purgebridge-worker",
                                      args=(self.settings, self.secrets, self.status_path, self._queue_file))
            self._exited.clear()
            process.start()
            self.process = process
            self.starts += 1
            started = time.monotonic()
            gone = self._watch(process)
            self._exited.set()
            if self._stopping.is_set():
                return
            if self._restarting.is_set() and not gone:  # asked for by restart(): no error, no delay
                self._restarting.clear()
                continue
            if gone or process.exitcode == EXIT_QUEUE_GONE:
                self.fatal = "the queue file was deleted or replaced (PURGEBRIDGE_QUEUE); stopping the relay"
                log.error("%s so that its service manager starts it again on a new file", self.fatal)
                if self.on_fatal is not None:
                    self.on_fatal(self.fatal)
                return
            delay = RESPAWN_DELAY if time.monotonic() - started > STARTED_AFTER else delay
            log.error("purge worker process %d exited with %s%s; starting a new one in %.0f s",
                      process.pid, process.exitcode,
                      " (it could not start: see its error above)" if process.exitcode == EXIT_FAILED_START else "",
                      delay)
            self._stopping.wait(delay)
            delay = min(delay * 2, RESPAWN_DELAY_MAX)

    def _watch(self, process: multiprocessing.process.BaseProcess) -> bool:
        """Join ``process``; True when the queue file was deleted or replaced meanwhile (then it is stopped).

        The worker process notices that itself while it runs, but one that is
        starting may meet a missing file as "disk I/O error" and would be
        started again forever on a file no event reaches: the supervisor,
        which saw the file the relay started with, decides.
        """
        gone = False
        while process.exitcode is None:
            process.join(STATUS_INTERVAL)
            if not gone and queue_file_gone(self.settings.queue, self._queue_file):
                gone = True
                process.terminate()  # it stops in order, as for a relay stop; this loop reaps it
        return gone

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
        if process is not None and not self._exited.is_set():
            process.terminate()
            if not self._exited.wait(max(30.0, self.settings.timeout * 8)):
                log.warning("purge worker process %d did not stop in time; killing it", process.pid)
                process.kill()
                self._exited.wait(5)
        if self._thread is not None:
            self._thread.join(5)
        try:
            os.unlink(self.status_path)
            os.rmdir(self.run_dir)
        except OSError:
            pass
