"""The Flask application factory of the api process.

``create_app`` wires the pieces once per app -- settings, allowed sites, the
queue, metrics and the worker's status view -- into a :class:`Service` kept
on ``app.extensions["purgebridge"]``, so routes never reach for globals.
Tests build as many apps as they like, each with its own queue file and
metrics registry. What granian serves is the app behind
``intake.RSGIAdapter.for_app``.
"""

import logging
from typing import Any, Mapping, Optional

from flask import Flask, jsonify
from werkzeug.exceptions import HTTPException

from purgebridge.api.service import Service
from purgebridge.api.signed_events import SignedEvents
from purgebridge.api.testing import RSGITestClient
from purgebridge.config.settings import Settings, load_settings
from purgebridge.config.sites import load_sites
from purgebridge.store import Store, open_queue
from purgebridge.telemetry.metrics import Metrics
from purgebridge.worker.status import WorkerView

log = logging.getLogger(__name__)

MAX_BODY = 256 * 1024


def create_app(overrides: Optional[Mapping[str, str]] = None, *, settings: Optional[Settings] = None,
               environ: Optional[Mapping[str, str]] = None, queue: Optional[Store] = None,
               worker: Optional[WorkerView] = None) -> Flask:
    """Build the relay's Flask app.

    ``overrides`` maps variable names to values, as CLI flags do
    (``{"PURGEBRIDGE_SECRET": "...", "PURGEBRIDGE_QUEUE": "/tmp/q.sqlite3"}``);
    ``settings`` skips loading entirely; ``environ`` replaces ``os.environ``
    (and then no ``.env`` file is read, so tests never depend on the shell).
    ``queue`` injects an open queue; ``worker`` is the worker process's
    :class:`~purgebridge.worker.status.WorkerView` (as ``purgebridge serve``
    runs it): status and metrics then come from its snapshots. Without it the
    app journals events and nothing expands them (tests expand by hand).
    In-process tests get :class:`~purgebridge.api.testing.RSGITestClient`
    from ``app.test_client()``.
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
    app.config["PURGEBRIDGE_MAX_BODY"] = MAX_BODY  # enforced where bodies are read: intake.RSGIAdapter
    app.config["JSON_SORT_KEYS"] = False
    app.extensions["purgebridge"] = service
    app.extensions["purgebridge.events"] = SignedEvents(service)  # answered on the loop by intake.RSGIAdapter
    app.test_client_class = RSGITestClient  # in-process tests go through the adapter, as ``serve`` does

    from purgebridge.api.routes import bp
    import purgebridge.api.cms  # noqa: F401 - Ghost, templates and the PURGE front door, on the same blueprint

    app.register_blueprint(bp)
    from purgebridge.api.site_status import bp as site_status_bp

    app.register_blueprint(site_status_bp)  # the per-site node truth for the plugin (docs/wordpress.md)

    @app.errorhandler(HTTPException)
    def http_error(exc: HTTPException) -> Any:  # JSON for every error, including 404/405/413 raised by Flask itself
        return jsonify({"error": exc.description or exc.name, "status": exc.code}), exc.code

    log.info("relay app ready: %d site(s), %d node(s), queue %s",
             len(sites), len(settings.nodes), queue.path)
    return app

