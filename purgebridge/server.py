"""``purgebridge serve``: the relay app on waitress with the worker in the same process.

waitress because it is a production WSGI server in pure Python (no compiler,
no extra service) that handles many concurrent keep-alive clients with a
fixed thread pool. The worker runs as threads beside it, so one process and
one SQLite file are the whole deployment.

Shutdown (SIGTERM or SIGINT): waitress stops accepting and finishes the
requests it is serving (so every 202 already promised stays true), then the
worker stops claiming, finishes the batches in flight, and exits; whatever
was not claimed stays in the queue for the next start.
"""

import logging
import signal
import sys
import threading

from purgebridge.errors import ConfigError, PurgebridgeError

log = logging.getLogger(__name__)

THREADS = 8


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


def serve(settings, insecure=False, threads=THREADS, on_ready=None):
    """Run the relay until SIGTERM/SIGINT. Raises ConfigError before binding anything if misconfigured.

    ``on_ready(host, port)`` is called once the socket is bound (tests use it
    to learn an ephemeral port).
    """
    from waitress import create_server

    from purgebridge.app import create_app
    from purgebridge.logs import secrets_of, setup_logging
    from purgebridge.queue import Queue
    from purgebridge.sites import load_sites
    from purgebridge.worker import Worker

    sites = load_sites(settings)
    check_can_serve(settings, sites, insecure)
    setup_logging(settings.log_format, secrets=secrets_of(settings, sites))
    if not sites.has_any_secret():
        log.warning("serving without a secret (--insecure): every WordPress event will be refused with 401; "
                    "webhook and admin routes still need their tokens")
    queue = Queue.from_settings(settings)
    queue.release_leases()  # claims of a previous run that was killed come back now
    worker = Worker(queue, settings)
    app = create_app(settings=settings, queue=queue, worker=worker)
    host, port = settings.listen
    server = create_server(app, host=host, port=port, threads=threads, ident="purgebridge",
                           channel_timeout=60, connection_limit=1000)
    bound_host, bound_port = server.effective_host, server.effective_port
    worker.start()
    log.info("purgebridge relay listening on http://%s:%s (%d site(s), %d node(s), queue %s)",
             f"[{bound_host}]" if ":" in str(bound_host) else bound_host, bound_port,
             len(sites), len(settings.nodes), queue.path)
    if threading.current_thread() is threading.main_thread():
        def stop(signum, _frame):
            log.info("received %s: finishing in-flight requests and purges", signal.Signals(signum).name)
            raise SystemExit(0)  # waitress's run() turns this into a graceful close

        signal.signal(signal.SIGTERM, stop)
        signal.signal(signal.SIGINT, stop)
    if on_ready:
        on_ready(bound_host, bound_port)
    try:
        server.run()
    finally:
        server.close()
        worker.stop(timeout=max(10.0, settings.timeout * 4))
        stats = queue.stats()
        log.info("stopped: %d purge(s) left queued, %d dead letter(s)", stats["depth"], stats["dead"])
        queue.close()


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
