"""The in-process test client: Flask's client API, every request served the way ``purgebridge serve`` serves it.

``create_app`` makes this the app's ``test_client_class``, so
``app.test_client().post(...)`` builds the request with werkzeug's
``EnvironBuilder`` as usual, then turns it into what granian hands Python (an
RSGI ``scope`` and ``protocol``) and awaits :class:`~purgebridge.api.intake.RSGIAdapter`
on an event loop thread of the app's own, exactly as built by
:meth:`RSGIAdapter.for_app <purgebridge.api.intake.RSGIAdapter.for_app>`. So the tests read bodies with the one
body reader, answer signed events on the loop and run every other route on
the adapter's thread pool: there is no second, test-only way in. What this
cannot show -- granian's own HTTP parsing, slow clients, real sockets -- is
in tests/integration (test_server_integration.py, test_slow_clients.py).
"""

import asyncio
from http import HTTPStatus
import threading
from typing import Any, Dict, Iterable, Iterator, AsyncIterator, List, Optional, Tuple
from urllib.parse import quote

from flask import Flask
from flask.testing import FlaskClient
from werkzeug.datastructures import Headers

from purgebridge.api.intake import RSGIAdapter

THREADS = 4  # the adapter's request threads in tests (``serve`` runs service.server.THREADS)
TIMEOUT = 60.0  # seconds one request may take before the test fails instead of hanging
CHUNK = 64 * 1024  # bytes per chunk of a chunked request body

_lock = threading.Lock()


class _Served:
    """One app's adapter and the event loop thread that runs it, as granian's loop does."""

    def __init__(self, app: Flask) -> None:
        self.adapter = RSGIAdapter.for_app(app, threads=THREADS)
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="purgebridge-test-loop", daemon=True)
        self.thread.start()

    def call(self, scope: "_Scope", protocol: "_Protocol") -> None:
        asyncio.run_coroutine_threadsafe(self.adapter.__rsgi__(scope, protocol), self.loop).result(TIMEOUT)

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)
        self.loop.close()
        self.adapter.close()


def served(app: Flask) -> _Served:
    """The app's adapter and loop, started on first use."""
    with _lock:
        found = app.extensions.get("purgebridge.served")
        if found is None:
            found = app.extensions["purgebridge.served"] = _Served(app)
        return found


def close(app: Flask) -> None:
    """Stop the app's loop thread and the adapter's threads (if a test client started them)."""
    with _lock:
        found = app.extensions.pop("purgebridge.served", None)
    if found is not None:
        found.close()


class _Scope:
    """The attributes of granian's RSGI HTTP scope that the adapter reads."""

    proto = "http"

    def __init__(self, environ: Dict[str, Any]) -> None:
        self.method: str = environ["REQUEST_METHOD"]
        self.path = quote(environ.get("PATH_INFO", "/").encode("latin-1"), safe="/:@!$&'()*+,;=-._~")
        self.query_string: str = environ.get("QUERY_STRING", "")
        self.scheme: str = environ.get("wsgi.url_scheme", "http")
        self.http_version = environ.get("SERVER_PROTOCOL", "HTTP/1.1").partition("/")[2] or "1.1"
        self.client = f"{environ.get('REMOTE_ADDR') or '127.0.0.1'}:{environ.get('REMOTE_PORT') or 40000}"
        self.server = f"{environ.get('SERVER_NAME', 'localhost')}:{environ.get('SERVER_PORT', '80')}"
        headers = {key[5:].lower().replace("_", "-"): value for key, value in environ.items()
                   if key.startswith("HTTP_")}
        if environ.get("CONTENT_TYPE"):
            headers["content-type"] = environ["CONTENT_TYPE"]
        if environ.get("CONTENT_LENGTH") and "transfer-encoding" not in headers:  # chunked: no length, as sent
            headers["content-length"] = environ["CONTENT_LENGTH"]
        self.headers = headers


class _Protocol:
    """granian's RSGI HTTP protocol: the body at once (``await protocol()``) or in chunks, and the answer kept."""

    def __init__(self, body: bytes) -> None:
        self.body = body
        self.answer: Optional[Tuple[int, List[Tuple[str, str]], bytes]] = None

    async def __call__(self) -> bytes:
        return self.body

    def __aiter__(self) -> AsyncIterator[bytes]:
        return self._chunks()

    async def _chunks(self) -> AsyncIterator[bytes]:
        for start in range(0, len(self.body), CHUNK):
            yield self.body[start:start + CHUNK]

    def response_bytes(self, status: int, headers: List[Tuple[str, str]], body: bytes) -> None:
        self.answer = (status, list(headers), body)

    def response_empty(self, status: int, headers: List[Tuple[str, str]]) -> None:
        self.answer = (status, list(headers), b"")


class RSGITestClient(FlaskClient):
    """Flask's test client whose requests are served by the app's RSGI adapter (module docstring)."""

    def run_wsgi_app(self, environ: Dict[str, Any], buffered: bool = False
                     ) -> Tuple[Iterable[bytes], str, Headers]:
        app = self.application
        assert isinstance(app, Flask)
        protocol = _Protocol(environ["wsgi.input"].read())
        served(app).call(_Scope(environ), protocol)
        assert protocol.answer is not None, "the adapter sent no answer"
        status, headers, payload = protocol.answer
        return _once(payload), f"{status} {HTTPStatus(status).phrase}", Headers(headers)


def _once(payload: bytes) -> Iterator[bytes]:
    yield payload
