"""``purgebridge serve``: the relay's API on granian and its purge worker, as separate processes.

Why granian: on this 2-core machine a no-op WSGI app answers about 1,200 to
1,700 requests a second on waitress and about 24,000 on granian, whose HTTP
side is Rust and which enters Python only to call the app. waitress's own
per-request Python was the ceiling of accepted events per second (see
docs/benchmarks.md), so the server is granian's, not ours.

Processes (docs/operations.md, "Process model"): the process you start is
granian's supervisor. It binds the socket and forks ONE API process, which
validates, journals durably and answers 202 (the Flask app and the journal
writer); and, through :class:`~purgebridge.worker.process.WorkerSupervisor`,
ONE purge worker process, which expands, coalesces and sends. Each has its
own interpreter and GIL, so the operating system schedules accepting and
purging. The API process wakes the worker through the queue (``wakeup``:
a datagram per commit for SQLite, pub/sub for Redis) and sees its state in
a status file. Either child is started again when it dies (it expands what
the journal holds and re-sends what was leased); both die with the
supervisor (``PR_SET_PDEATHSIG``): a SIGKILL of ``purgebridge serve`` still
kills the whole relay, as a crash would, and no orphan keeps the port or
the queue.

Shutdown (SIGTERM or SIGINT to the supervisor, or to the whole group as
systemd does): granian stops accepting and lets the API process answer the
requests in flight (each 202 was committed before it was sent); then the
worker process finishes the batches in flight and whatever was not sent
stays in the journal or the queue for the next start.
"""

import functools
import logging
import sys

from purgebridge.config.settings import check_credentials
from purgebridge.core.errors import ConfigError, PurgebridgeError

log = logging.getLogger(__name__)

THREADS = 8            # Python threads the API runs on (requests block on the journal's commit)
HEADER_DEADLINE = 10.0  # seconds for a client to send its request headers (granian closes slower ones)


def check_can_serve(settings, sites, insecure=False):
    """Refuse configurations that would only ever refuse requests, or accept unsigned ones."""
    if not settings.nodes:
        raise ConfigError("PURGEBRIDGE_NODES", settings.nodes_text,
                          "no Varnish nodes configured: set PURGEBRIDGE_NODES or PURGEBRIDGE_VCL")
    if not len(sites):
        raise ConfigError("PURGEBRIDGE_SITES", ",".join(settings.sites),
                          "no sites configured: set PURGEBRIDGE_SITES or PURGEBRIDGE_SITES_FILE")
    check_credentials(settings, sites)
    takes_other = bool(settings.webhook_token) or sites.takes_cms_requests(settings)
    if not sites.has_any_secret() and not takes_other and not (insecure or settings.insecure):
        raise ConfigError("PURGEBRIDGE_SECRET", "",
                          "a secret is required to serve (WordPress events are signed with it), unless the "
                          "relay takes only webhooks (PURGEBRIDGE_WEBHOOK_TOKEN), CMS requests (a site's \"cms\" "
                          "settings) or PURGEs (PURGEBRIDGE_PURGE_ALLOW); pass --insecure only for local play")


def check_queue(settings):
    """Open a queue file once before serving: one that cannot be opened stops ``serve`` with one line.

    A corrupt, unreadable or misplaced file (a directory, not SQLite) used to
    show two tracebacks and granian's "Worker crash loop detected". A Redis
    queue is not checked here: Redis may come up after the relay.
    """
    from purgebridge.store import is_redis, open_queue

    if is_redis(settings.queue):
        return
    try:
        open_queue(settings).close()
    except Exception as exc:  # noqa: BLE001 - sqlite3 and OS errors alike
        raise ConfigError("PURGEBRIDGE_QUEUE", settings.queue,
                          f"cannot open the queue file ({type(exc).__name__}: {exc})") from None


def _load_app(settings, secrets, listen_text, status_path, threads=THREADS):
    """In the API process: open the queue and build the app; the worker runs in its own process. Called by granian.

    The Flask app is served through :class:`~purgebridge.api.intake.RSGIAdapter`:
    bodies are read on granian's event loop with a deadline, so a slow client
    never holds one of the ``threads`` app threads (issue 13, docs/security.md).
    """
    from purgebridge.api.app import create_app
    from purgebridge.audit.watch import start_continuous_audit  # opt-in (PURGEBRIDGE_AUDIT_SAMPLE); docs/audit.md
    from purgebridge.telemetry.logs import setup_logging
    from purgebridge.api.intake import RSGIAdapter
    from purgebridge.store import open_queue
    from purgebridge.worker.process import die_with_parent
    from purgebridge.worker.status import WorkerView

    die_with_parent("API process")
    setup_logging(settings.log_format, secrets=secrets)  # granian configured logging its own way
    queue = open_queue(settings)
    app = create_app(settings=settings, queue=queue, worker=WorkerView(status_path))
    service = app.extensions["purgebridge"]
    service.owns_queue = True
    start_continuous_audit(settings, service.sites.hosts, service.metrics.registry)
    log.info("purgebridge relay listening on http://%s (%d site(s), %d node(s), queue %s)",
             listen_text, len(service.sites), len(settings.nodes), queue.path)
    return RSGIAdapter(app, threads=threads, max_body=app.config["PURGEBRIDGE_MAX_BODY"],
                       body_deadline=settings.body_timeout, events=app.extensions["purgebridge.events"])


def serve(settings, insecure=False, threads=THREADS):
    """Run the relay until SIGTERM/SIGINT. Raises ConfigError before binding anything if misconfigured."""
    from granian.constants import HTTPModes, Interfaces
    from granian.http import HTTP1Settings
    from granian.log import LogLevels
    from granian.server import MPServer

    from purgebridge.telemetry.logs import secrets_of, setup_logging
    from purgebridge.config.sites import load_sites
    from purgebridge.worker.process import WorkerSupervisor

    sites = load_sites(settings)
    check_can_serve(settings, sites, insecure)
    check_queue(settings)
    from purgebridge.audit.watch import check_settings as check_audit_settings
    check_audit_settings(settings)
    secrets = secrets_of(settings, sites)
    setup_logging(settings.log_format, secrets=secrets)
    if not sites.has_any_secret():
        log.warning("serving without a WordPress secret: every WordPress event will be refused with 401; "
                    "webhook, CMS, PURGE and admin routes still need their own token, secret or address")
    host, port = settings.listen
    listen_text = f"[{host}]:{port}" if ":" in str(host) else f"{host}:{port}"
    supervisor = WorkerSupervisor(settings, secrets)
    server = MPServer(
        "purgebridge.api.app:create_app",  # a name for the process title; the app comes from _load_app
        address=host, port=port, interface=Interfaces.RSGI, workers=1, blocking_threads=1,
        http=HTTPModes.http1, websockets=False, backlog=1024,
        http1_settings=HTTP1Settings(header_read_timeout=int(HEADER_DEADLINE * 1000)),
        log_enabled=True, log_level=LogLevels.warning,
        respawn_failed_workers=True,
        workers_kill_timeout=int(max(30, settings.timeout * 8)),
    )
    server.on_startup(supervisor.start)
    server.on_shutdown(supervisor.stop)
    server.serve(target_loader=functools.partial(_load_app, settings, secrets, listen_text, supervisor.status_path,
                                                 threads),
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
    """``python -m purgebridge.service.server [--insecure]``: serve with settings from the environment."""
    from purgebridge.config.settings import load_settings

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
