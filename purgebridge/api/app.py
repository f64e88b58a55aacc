"""The Flask application factory for the relay service.

``create_app`` wires the pieces once per app -- settings, allowed sites, the
queue, metrics and (optionally) the worker -- and keeps them on
``app.extensions["purgebridge"]`` so routes never reach for globals. Tests
build as many apps as they like, each with its own queue file and metrics
registry.
"""

from dataclasses import dataclass, field
import logging
import time

from flask import Flask, jsonify
from werkzeug.exceptions import HTTPException

from purgebridge.config.settings import load_settings
from purgebridge.telemetry.metrics import Metrics
from purgebridge.store import open_queue
from purgebridge.config.sites import load_sites

log = logging.getLogger(__name__)

MAX_BODY = 256 * 1024


@dataclass
class Service:
    """Everything the routes need; one per app."""

    settings: object
    sites: object
    queue: object
    metrics: object
    worker: object = None
    options: dict = field(default_factory=dict)  # host -> mapping.MappingOptions
    started_at: float = field(default_factory=time.time)
    owns_queue: bool = False

    def mapping_options(self, host):
        if host not in self.options:
            self.options[host] = self.sites.mapping_options(host, self.settings)
        return self.options[host]

    def close(self):
        """Close the queue (if this app opened it)."""
        if self.owns_queue:
            self.queue.close()


def create_app(overrides=None, *, settings=None, environ=None, queue=None, worker=None):
    """Build the relay's Flask app.

    ``overrides`` maps variable names to values, as CLI flags do
    (``{"PURGEBRIDGE_SECRET": "...", "PURGEBRIDGE_QUEUE": "/tmp/q.sqlite3"}``);
    ``settings`` skips loading entirely; ``environ`` replaces ``os.environ``
    (and then no ``.env`` file is read, so tests never depend on the shell).
    ``queue`` injects an open queue; ``worker`` is the worker process's
    :class:`~purgebridge.worker.status.WorkerView` (as ``purgebridge serve``
    runs it): status and metrics then come from its snapshots. Without it the
    app journals events and nothing expands them (tests expand by hand).
    Raises ``ConfigError`` for bad settings.
    """
    if settings is None:
        settings = load_settings(overrides, environ=environ, dotenv_path="" if environ is not None else None)
    sites = load_sites(settings, environ)
    owns_queue = queue is None
    if queue is None:
        queue = open_queue(settings)
    metrics = Metrics(queue, worker=None if worker is None else worker.snapshot)
    service = Service(settings=settings, sites=sites, queue=queue, metrics=metrics, worker=worker, owns_queue=owns_queue)
    for site in sites:  # bad per-site mapping options fail now, not on the first event
        service.mapping_options(site.host)

    app = Flask("purgebridge")
    app.config["PURGEBRIDGE_MAX_BODY"] = MAX_BODY
    # One byte more than allowed: for a chunked body (no Content-Length) werkzeug stops reading at
    # this limit without an error, so a body of MAX_BODY + 1 bytes is how "too large" shows.
    app.config["MAX_CONTENT_LENGTH"] = MAX_BODY + 1
    app.config["JSON_SORT_KEYS"] = False
    app.extensions["purgebridge"] = service

    from purgebridge.api.routes import bp
    import purgebridge.api.cms  # noqa: F401 - Ghost, templates and the PURGE front door, on the same blueprint

    app.register_blueprint(bp)
    from purgebridge.api.signed_events import EventFastPath

    events = EventFastPath(app.wsgi_app, service, MAX_BODY)  # the signed-event route without Flask's overhead
    app.wsgi_app = app.extensions["purgebridge.events"] = events  # WSGI, and for RSGI ``rsgi.RSGIAdapter``

    @app.errorhandler(HTTPException)
    def http_error(exc):  # JSON for every error, including 404/405/413 raised by Flask itself
        return jsonify({"error": exc.description or exc.name, "status": exc.code}), exc.code

    log.info("relay app ready: %d site(s), %d node(s), queue %s",
             len(sites), len(settings.nodes), queue.path)
    return app
