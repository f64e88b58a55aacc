"""``purgebridge serve``: the relay app on granian, with the worker in the app's process.

Why granian: on this 2-core machine a no-op WSGI app answers about 1,200 to
1,700 requests a second on waitress and about 24,000 on granian, whose HTTP
side is Rust and which enters Python only to call the app. waitress's own
per-request Python was the ceiling of accepted events per second (see
docs/benchmarks.md), so the server is granian's, not ours.

Processes: granian's supervisor is the process you start; it binds the
socket and forks ONE app process. The app process holds everything that has
state -- the Flask app, the journal writer, the queue connection and the
worker threads -- so the worker still runs in the same process as the HTTP
API, and ``/v1/status`` and ``/metrics`` see it directly. One app process
rather than several: the journal's group commit and the worker's in-memory
coalescing work best in one place; more relays scale out on Redis
(docs/scaling.md). If the app process dies, the supervisor starts a new one
(it expands what the journal holds and re-sends what was leased).

The app process dies with its supervisor (``PR_SET_PDEATHSIG``): a SIGKILL
of ``purgebridge serve`` still kills the whole relay, as a crash would, and
no orphan keeps the port or the queue.

Shutdown (SIGTERM or SIGINT to the supervisor, or to the whole group as
systemd does): granian stops accepting and lets the app process finish; then
the journal writes what it accepted, the worker finishes the batches in
flight and whatever was not claimed stays queued for the next start.
"""

import ctypes
import functools
import logging
import signal
import sys

from purgebridge.errors import ConfigError, PurgebridgeError

log = logging.getLogger(__name__)

THREADS = 8            # Python threads granian calls the app on (requests block on the journal's commit)
SWITCH_INTERVAL = 0.001
_PR_SET_PDEATHSIG = 1  # linux/prctl.h

_running = {}  # the app process's own service, for its shutdown; empty in the supervisor


def check_can_serve(settings, sites, insecure=False):
    """Refuse configurations that would only ever refuse requests, or accept unsigned ones."""
    if not settings.nodes:
        raise ConfigError("PURGEBRIDGE_NODES", settings.nodes_text,
                          "no Varnish nodes configured: set PURGEBRIDGE_NODES or PURGEBRIDGE_VCL")
    if not len(sites):
        raise ConfigError("PURGEBRIDGE_SITES", ",".join(settings.sites),
                          "no sites configured: set PURGEBRIDGE_SITES or PURGEBRIDGE_SITES_FILE")
    if not sites.has_any_secret() and not (insecure or settings.insecure):
        raise ConfigError("PURGEBRIDGE_SECRET", "",
                          "a secret is required to serve (WordPress events are signed with it); "
                          "pass --insecure only for local play")


def _die_with_parent():
    """Ask Linux to SIGKILL this process when its parent (granian's supervisor) dies."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        if libc.prctl(_PR_SET_PDEATHSIG, int(signal.SIGKILL), 0, 0, 0) != 0:
            log.warning("prctl(PR_SET_PDEATHSIG) failed (errno %d): the app process may outlive a killed "
                        "supervisor", ctypes.get_errno())
    except (OSError, AttributeError):
        log.warning("prctl is not available here: the app process may outlive a killed supervisor")


def _load_app(settings, secrets, listen_text):
    """In the app process: open the queue, start the worker, build the app. Called by granian."""
    from purgebridge.app import create_app
    from purgebridge.logs import setup_logging
    from purgebridge.queue import Queue
    from purgebridge.worker import Worker

    _die_with_parent()
    setup_logging(settings.log_format, secrets=secrets)  # granian configured logging its own way
    queue = Queue.from_settings(settings)
    queue.release_leases()  # claims of a previous run that was killed come back now
    worker = Worker(queue, settings)
    app = create_app(settings=settings, queue=queue, worker=worker)
    service = app.extensions["purgebridge"]
    service.owns_queue = True
    _running["service"] = service
    _tune_interpreter()
    worker.start()
    from purgebridge.auditwatch import start_continuous_audit  # opt-in (PURGEBRIDGE_AUDIT_SAMPLE); docs/audit.md
    start_continuous_audit(settings, service.sites.hosts, service.metrics.registry)
    log.info("purgebridge relay listening on http://%s (%d site(s), %d node(s), queue %s)",
             listen_text, len(service.sites), len(settings.nodes), queue.path)
    return app


def _tune_interpreter():
    """Shorter GIL hand-offs and fewer full collections in the app process, for the latency tail.

    The default switch interval (5 ms) is half the 10 ms event-to-purge
    budget: a node thread whose answers arrived should not wait that long
    while another thread parses. The objects that live as long as the
    process (app, settings, mapping tables) are frozen out of the collector's
    way. (Measured effect on the p99 is within this machine's noise.)
    """
    import gc

    sys.setswitchinterval(SWITCH_INTERVAL)
    gc.collect()
    gc.freeze()


def _app_process(*args, **kwargs):
    """granian's WSGI worker, then this relay's own orderly stop once granian has stopped serving."""
    from granian.server import MPServer

    try:
        MPServer._spawn_wsgi_worker(*args, **kwargs)
    finally:
        service = _running.pop("service", None)
        if service is not None:
            _stop_service(service)


def _stop_service(service):
    if service.worker is not None:
        service.worker.stop(timeout=max(10.0, service.settings.timeout * 4))
    stats = service.queue.stats()
    log.info("stopped: %d purge(s) left queued, %d dead letter(s)", stats["depth"], stats["dead"])
    service.queue.close()  # writes what the journal still holds; it is expanded at the next start


def serve(settings, insecure=False, threads=THREADS):
    """Run the relay until SIGTERM/SIGINT. Raises ConfigError before binding anything if misconfigured."""
    from granian.constants import HTTPModes, Interfaces
    from granian.log import LogLevels
    from granian.server import MPServer

    from purgebridge.logs import secrets_of, setup_logging
    from purgebridge.sites import load_sites

    sites = load_sites(settings)
    check_can_serve(settings, sites, insecure)
    from purgebridge.auditwatch import check_settings as check_audit_settings
    check_audit_settings(settings)
    secrets = secrets_of(settings, sites)
    setup_logging(settings.log_format, secrets=secrets)
    if not sites.has_any_secret():
        log.warning("serving without a secret (--insecure): every WordPress event will be refused with 401; "
                    "webhook and admin routes still need their tokens")
    host, port = settings.listen
    listen_text = f"[{host}]:{port}" if ":" in str(host) else f"{host}:{port}"
    server = MPServer(
        "purgebridge.app:create_app",  # a name for the process title; the app comes from _load_app
        address=host, port=port, interface=Interfaces.WSGI, workers=1, blocking_threads=threads,
        http=HTTPModes.http1, websockets=False, backlog=1024,
        log_enabled=True, log_level=LogLevels.warning,
        respawn_failed_workers=True,
        workers_kill_timeout=int(max(30, settings.timeout * 8)),
    )
    server.serve(spawn_target=_app_process, target_loader=functools.partial(_load_app, settings, secrets, listen_text),
                 wrap_loader=False)


def fetch_status(settings, base_url=None, timeout=5.0):
    """GET /v1/status from a running relay (for ``purgebridge status``); returns the JSON dict.

    Raises :class:`PurgebridgeError` with a one-line reason when it cannot.
    """
    import requests

    if base_url is None:
        host, port = settings.listen
        if host in ("0.0.0.0", "::", ""):
            host = "127.0.0.1"
        base_url = f"http://{'[' + host + ']' if ':' in host else host}:{port}"
    headers = {"Authorization": f"Bearer {settings.admin_token}"} if settings.admin_token else {}
    try:
        response = requests.get(base_url.rstrip("/") + "/v1/status", headers=headers, timeout=timeout)
    except requests.RequestException as exc:
        raise PurgebridgeError(f"cannot reach the relay at {base_url}: {exc}") from None
    if response.status_code != 200:
        try:
            reason = response.json().get("error", "")
        except ValueError:
            reason = response.text[:200]
        raise PurgebridgeError(f"relay at {base_url} answered {response.status_code}: {reason}")
    return response.json()


def main(argv=None):
    """``python -m purgebridge.server [--insecure]``: serve with settings from the environment."""
    from purgebridge.config import load_settings

    argv = sys.argv[1:] if argv is None else argv
    try:
        settings = load_settings()
        serve(settings, insecure="--insecure" in argv)
    except ConfigError as exc:
        print(f"purgebridge: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
