"""``purgebridge serve``: the relay's API on granian and its purge worker, as separate processes.

Why granian: on this 2-core machine a no-op WSGI app answers about 1,200 to
1,700 requests a second on waitress and about 24,000 on granian, whose HTTP
side is Rust and which enters Python only to call the app. waitress's own
per-request Python was the ceiling of accepted events per second (see
docs/benchmarks.md), so the server is granian's, not ours.

The processes -- this supervisor, ONE api process (:func:`_load_app`, called
by granian in it) and ONE purge worker process
(:class:`~purgebridge.worker.process.WorkerSupervisor`) -- what each does, how
they restart and how they stop are described once, in docs/operations.md
("Process model", "Stopping", "Reload"); the folders in docs/architecture.md.
"""

from dataclasses import dataclass
import errno
import functools
import logging
import os
import signal
import socket
import sys
from typing import Any, Callable, Optional

from purgebridge.config.settings import check_credentials
from purgebridge.store.contract import redact_location
from purgebridge.core.errors import ConfigError, PurgebridgeError

log = logging.getLogger(__name__)

THREADS = 8            # Python threads for the Flask routes (signed events are answered on the event loop)
# Connections. granian stops accepting once ``backpressure`` connections are
# open (its default: backlog / workers = 1,024), so about 1,030 silent TCP
# connections made every new client, signed events included, wait in the
# kernel's accept queue until granian closed one (7.8-9.9 s). An idle
# connection costs granian no Python and a few KiB of Rust, so the cap is set
# far above what WordPress needs (one connection per PHP worker sending: a
# network of hundreds of sites stays under 1,000) and silent or idle
# connections are closed after HEADER_DEADLINE. A bound per client address
# belongs in front of the socket (docs/security.md, nftables ``ct count``):
# granian has none, and a silent connection never reaches Python.
HEADER_DEADLINE = 5.0   # seconds for a client to send its request headers, idle keep-alive included
MAX_CONNECTIONS = 16_384  # open connections granian serves at once (``backpressure``); needs file descriptors
BACKLOG = 4_096         # the kernel's accept queue (Linux caps it at net.core.somaxconn, 4,096 by default)
FD_RESERVE = 512        # file descriptors kept for the queue, logs, node connections and the worker


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

    if is_redis(settings.queue):  # the URL's form only (a Sentinel URL's hosts and service)
        from purgebridge.store.redis import connect

        connect(settings.queue)[0].close()  # builds the client, connects nowhere; ConfigError when malformed
        return
    try:
        open_queue(settings).close()
    except Exception as exc:  # noqa: BLE001 - sqlite3 and OS errors alike
        raise ConfigError("PURGEBRIDGE_QUEUE", settings.queue,
                          f"cannot open the queue file ({type(exc).__name__}: {exc})") from None


def check_address_free(settings):
    """Refuse an address another relay (or any program) already listens on, before granian binds it.

    granian binds with SO_REUSEPORT, so a second ``serve`` on the same address
    used to start and silently take half of the connections into another
    configuration and another queue. A plain bind (SO_REUSEADDR only, as every
    server sets) fails while anything listens there, and succeeds beside
    connections left in TIME_WAIT by a relay that just stopped.
    """
    host, port = settings.listen
    family = socket.AF_INET6 if ":" in str(host) else socket.AF_INET
    probe = socket.socket(family, socket.SOCK_STREAM)
    try:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        probe.bind((host, port))
    except OSError as exc:
        text = f"[{host}]:{port}" if family == socket.AF_INET6 else f"{host}:{port}"
        if exc.errno == errno.EADDRINUSE:
            raise ConfigError("PURGEBRIDGE_LISTEN", text,
                              "address already in use: another relay or program listens there "
                              "(stop it, or listen elsewhere)") from None
        raise ConfigError("PURGEBRIDGE_LISTEN", text, f"cannot listen there ({exc.strerror})") from None
    finally:
        probe.close()


@dataclass
class ServeConfig:
    """What the API process is built from; replaced in place by a reload, pickled into each new API process."""

    settings: Any
    secrets: list


def _checked(settings, insecure):
    """The sites of ``settings`` and the secrets to mask, or ConfigError: the checks ``serve`` runs at start."""
    from purgebridge.audit.watch import check_settings as check_audit_settings
    from purgebridge.config.sites import load_sites
    from purgebridge.telemetry.logs import secrets_of

    sites = load_sites(settings)
    check_can_serve(settings, sites, insecure)
    check_audit_settings(settings)
    return sites, secrets_of(settings, sites)


def reload_config(config, supervisor, load, insecure=False):
    """SIGHUP: read the settings again and restart the worker with them; granian then replaces the API process.

    Returns True when the new settings were taken. A new configuration that
    would not start is refused with one log line naming the variable, and the
    running one stays in force (the API process is still replaced, with it).
    """
    from purgebridge.telemetry.logs import setup_logging

    old = config.settings
    try:
        new = load()
        for name, attr in (("PURGEBRIDGE_LISTEN", "listen"), ("PURGEBRIDGE_QUEUE", "queue")):
            if getattr(new, attr) != getattr(old, attr):
                log.warning("reload: %s changed; it takes effect at the next restart (still %s)",
                            name, getattr(old, attr) if attr == "listen" else redact_location(old.queue))
                new = new.replace(**{attr: getattr(old, attr)})
        sites, secrets = _checked(new, insecure)
    except ConfigError as exc:
        log.error("reload refused, the running configuration stays: %s", exc)
        return False
    except Exception as exc:  # noqa: BLE001 - a file read half-written: the relay must keep running
        log.error("reload refused, the running configuration stays: %s: %s", type(exc).__name__, exc)
        return False
    config.settings, config.secrets = new, secrets
    setup_logging(new.log_format, secrets=secrets)
    supervisor.restart(new, secrets)
    log.info("reload: %d site(s), %d node(s); replacing the API and worker processes", len(sites), len(new.nodes))
    return True


def _load_app(config, listen_text, status_path, threads=THREADS):
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

    settings, secrets = config.settings, config.secrets
    die_with_parent("API process")
    setup_logging(settings.log_format, secrets=secrets)  # granian configured logging its own way
    queue = open_queue(settings)
    app = create_app(settings=settings, queue=queue, worker=WorkerView(status_path))
    service = app.extensions["purgebridge"]
    service.owns_queue = True
    start_continuous_audit(settings, service.sites.hosts, service.metrics.registry)
    log.info("purgebridge relay listening on http://%s (%d site(s), %d node(s), queue %s)",
             listen_text, len(service.sites), len(settings.nodes), queue.path)
    return RSGIAdapter.for_app(app, threads)


def check_config(settings, insecure=False):
    """``serve --check``: every check ``serve`` and its reload run, without binding (``ExecReload`` runs it first).

    Returns a one-line summary; raises ConfigError naming the variable.
    """
    from purgebridge.store import is_redis

    sites, _secrets = _checked(settings, insecure)
    summary = f"configuration ok: {len(sites)} site(s), {len(settings.nodes)} node(s)"
    if not is_redis(settings.queue) and not os.path.exists(settings.queue):
        # Not created here: run as root before the first start, it would be root's file, not the service user's.
        return f"{summary}; the queue {settings.queue} does not exist yet (serve creates it)"
    check_queue(settings)
    return summary


def connection_cap(wanted=MAX_CONNECTIONS):
    """Raise the soft file-descriptor limit so ``wanted`` connections fit; the cap that does fit.

    systemd's default soft limit is 1,024 (hard 524,288): without raising it
    granian would run out of descriptors long before ``backpressure``.
    """
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    need = wanted + FD_RESERVE
    if soft != resource.RLIM_INFINITY and soft < need:
        target = need if hard == resource.RLIM_INFINITY else min(need, hard)
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
            soft = target
        except (ValueError, OSError) as exc:
            log.warning("cannot raise the open-file limit to %d (%s)", target, exc)
    cap = wanted if soft == resource.RLIM_INFINITY else max(64, min(wanted, soft - FD_RESERVE))
    if cap < wanted:
        log.warning("serving at most %d connections at once: the open-file limit is %d "
                    "(raise LimitNOFILE= to %d for %d)", cap, soft, need, wanted)
    return cap


def serve(settings, insecure=False, threads=THREADS, load: Optional[Callable[[], Any]] = None):
    """Run the relay until SIGTERM/SIGINT. Raises ConfigError before binding anything if misconfigured.

    ``load`` reads the settings again for a reload (SIGHUP); without it a
    reload replaces the processes with the settings they had.
    """
    from granian.constants import HTTPModes, Interfaces
    from granian.http import HTTP1Settings
    from granian.log import LogLevels
    from granian.server import MPServer

    from purgebridge.telemetry.logs import setup_logging
    from purgebridge.worker.process import WorkerSupervisor

    sites, secrets = _checked(settings, insecure)
    check_queue(settings)
    check_address_free(settings)
    setup_logging(settings.log_format, secrets=secrets)
    if not sites.has_any_secret():
        log.warning("serving without a WordPress secret: every WordPress event will be refused with 401; "
                    "webhook, CMS, PURGE and admin routes still need their own token, secret or address")
    host, port = settings.listen
    listen_text = f"[{host}]:{port}" if ":" in str(host) else f"{host}:{port}"
    # The queue file deleted under a running relay: stop it (exit 1) so systemd's Restart=on-failure
    # starts it again on a new file, instead of a worker that can only fail.
    supervisor = WorkerSupervisor(settings, secrets, on_fatal=lambda _reason: os.kill(os.getpid(), signal.SIGTERM))
    config = ServeConfig(settings, secrets)
    server = MPServer(
        "purgebridge.api.app:create_app",  # a name for the process title; the app comes from _load_app
        address=host, port=port, interface=Interfaces.RSGI, workers=1, blocking_threads=1,
        http=HTTPModes.http1, websockets=False, backlog=BACKLOG, backpressure=connection_cap(),
        http1_settings=HTTP1Settings(header_read_timeout=int(HEADER_DEADLINE * 1000)),
        log_enabled=True, log_level=LogLevels.warning,
        respawn_failed_workers=True,
        workers_kill_timeout=int(max(30, settings.timeout * 8)),
    )
    server.on_startup(supervisor.start)
    server.on_shutdown(supervisor.stop)
    server.on_reload(functools.partial(reload_config, config, supervisor, load or (lambda: config.settings), insecure))
    server.serve(target_loader=functools.partial(_load_app, config, listen_text, supervisor.status_path, threads),
                 wrap_loader=False)
    if supervisor.fatal:
        raise PurgebridgeError(supervisor.fatal)


def relay_url(settings):
    """The base URL of the relay PURGEBRIDGE_LISTEN describes, as a client on this machine reaches it."""
    host, port = settings.listen
    if host in ("0.0.0.0", "::", ""):
        host = "127.0.0.1"
    return f"http://{'[' + host + ']' if ':' in host else host}:{port}"


def request_failure(exc, timeout):
    """Why a request to the relay failed, in a few words: requests' text is urllib3's whole retry story."""
    import requests

    if isinstance(exc, requests.Timeout):
        return f"no answer within {timeout:g} s"
    cause = exc
    while cause is not None:
        if isinstance(cause, ConnectionRefusedError):
            return "connection refused (is purgebridge serve running, on this address?)"
        if isinstance(cause, OSError) and cause.strerror:
            return cause.strerror[0].lower() + cause.strerror[1:]
        if isinstance(cause, OSError) and "Name or service not known" in str(cause):
            return "host name not found"
        cause = cause.__cause__ or cause.__context__ or (cause.args[0] if cause.args and
                                                          isinstance(cause.args[0], BaseException) else None)
    return type(exc).__name__


def fetch_status(settings, base_url=None, timeout=5.0):
    """GET /v1/status from a running relay (for ``purgebridge status``); returns the JSON dict.

    Raises :class:`PurgebridgeError` with a one-line reason when it cannot.
    """
    import requests

    if base_url is None:
        base_url = relay_url(settings)
    headers = {"Authorization": f"Bearer {settings.admin_token}"} if settings.admin_token else {}
    try:
        response = requests.get(base_url.rstrip("/") + "/v1/status", headers=headers, timeout=timeout)
    except requests.RequestException as exc:
        raise PurgebridgeError(f"cannot reach the relay at {base_url}: {request_failure(exc, timeout)}") from None
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
