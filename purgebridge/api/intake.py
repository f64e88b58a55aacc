"""The WSGI app served over granian's RSGI interface, so no slow client holds a Python thread.

Why: on granian's WSGI interface the app is called as soon as the headers
are in, and ``wsgi.input.read()`` then waits for the body on one of the app's
few Python threads, with no deadline. Eight connections that sent
``Content-Length: 100`` and one byte stopped every route, ``/healthz``
included, for as long as they stayed open. Here the body is read by
granian's event loop (``await protocol()``, no thread held) within
``BODY_DEADLINE`` seconds, and only a complete body is handed to the WSGI app
on the thread pool. A client that is too slow gets 408 and the connection is
closed; one that has ``PER_CLIENT`` requests waiting for their bodies already
gets 429. Slow headers and idle keep-alive connections never reach Python at
all: granian's Rust side holds them (``header_read_timeout`` in
``server.py`` closes the slow ones).

Signed events (``POST /v1/events/wordpress``, the hot path) do not go to
the thread pool: ``events`` (``signed_events.SignedEvents.answer``) checks
them on the loop and awaits the journal's commit there, so an event costs no
request thread and two thread hand-offs fewer (docs/operations.md). This is
the one place request bodies are read and held to ``max_body``: neither the
signed-event route nor the Flask routes read or measure a body again.

Concurrency in three sentences: the event loop thread waits for bodies,
checks signed events and awaits their journal commit, and hands every other
complete request to ``pool``; ``pool``'s ``threads`` threads run the WSGI
app exactly as granian's WSGI threads did; the per-client counter is touched
only on the event loop thread, so it needs no lock.
"""

import asyncio
from concurrent.futures import ThreadPoolExecutor
import io
import logging
import sys
from typing import Any, Callable, Dict, List, Optional, Tuple
from urllib.parse import unquote_to_bytes

log = logging.getLogger(__name__)

BODY_DEADLINE = 10.0  # seconds for a whole body to arrive (256 KiB at 26 KB/s); PURGEBRIDGE_BODY_TIMEOUT
PER_CLIENT = 32  # requests of one client address whose bodies may be arriving at once
_REASONS = {408: "Request Timeout", 413: "Content Too Large", 429: "Too Many Requests"}


def _path_info(path: str) -> str:
    """The request path as WSGI's PATH_INFO has it: percent-decoded, as latin-1."""
    return unquote_to_bytes(path).decode("latin-1") if "%" in path or not path.isascii() else path


def _split_address(text: str) -> Tuple[str, str]:
    host, _, port = (text or "").rpartition(":")
    return host.strip("[]"), port


class RSGIAdapter:
    """``__rsgi__`` for granian: read the body on the loop with a deadline, then call ``app`` on a thread."""

    def __init__(self, app: Callable, threads: int, max_body: int, body_deadline: float = BODY_DEADLINE,
                 per_client: int = PER_CLIENT, events: Optional[Any] = None) -> None:
        self.app = app
        self.events = events  # SignedEvents: answered on the loop; None sends them to ``app``
        self.max_body = max_body
        self.body_deadline = body_deadline
        self.per_client = per_client
        self.pool = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="purgebridge-http")
        self.reading: Dict[str, int] = {}  # client address -> bodies being read (event loop thread only)

    @classmethod
    def for_app(cls, app: Any, threads: int) -> "RSGIAdapter":
        """What granian serves, and what the in-process test client drives (``purgebridge.api.testing``): the
        app built by ``create_app``, its body limit, the body deadline of its settings, its signed-event route."""
        return cls(app, threads=threads, max_body=app.config["PURGEBRIDGE_MAX_BODY"],
                   body_deadline=app.extensions["purgebridge"].settings.body_timeout,
                   events=app.extensions["purgebridge.events"])

    async def __rsgi__(self, scope, protocol) -> None:
        if scope.proto != "http":
            protocol.response_empty(404, [])
            return
        client, _port = _split_address(scope.client)
        body = await self._body(scope, protocol, client)
        if body is None:
            return
        if self.events is not None and _path_info(scope.path) == self.events.PATH:
            status, answer_headers, payload = await self.events.answer(scope.method, body, scope.headers, self.pool)
        else:
            status, answer_headers, payload = await asyncio.get_running_loop().run_in_executor(
                self.pool, self._call_app, scope, body)
        protocol.response_bytes(status, answer_headers, payload)

    async def _body(self, scope, protocol, client: str) -> Optional[bytes]:
        """The whole body, or None after answering 408/413/429 itself."""
        length = scope.headers.get("content-length")
        if scope.method in ("GET", "HEAD") and not length and "transfer-encoding" not in scope.headers:
            return b""
        try:
            declared = None if length is None else int(length)
        except ValueError:
            declared = None  # granian refuses a bad Content-Length itself; the app sees what was read
        if declared is not None and declared > self.max_body:
            return self._refuse(protocol, 413, f"body over {self.max_body // 1024} KiB")
        if self.reading.get(client, 0) >= self.per_client:
            return self._refuse(protocol, 429, "too many requests from this address are still sending their body")
        self.reading[client] = self.reading.get(client, 0) + 1
        try:
            async with asyncio.timeout(self.body_deadline):  # no task of its own, unlike wait_for
                if declared is not None and "transfer-encoding" not in scope.headers:
                    return await protocol()  # the whole body at once: granian reads exactly Content-Length
                return await self._read(protocol)
        except asyncio.TimeoutError:
            log.info("refused %s %s from %s: 408 body not complete within %.0f s", scope.method, scope.path,
                     client, self.body_deadline)
            return self._refuse(protocol, 408, f"body not complete within {self.body_deadline:g} s")
        except _TooLarge:
            return self._refuse(protocol, 413, f"body over {self.max_body // 1024} KiB")
        finally:
            self.reading[client] -= 1
            if not self.reading[client]:
                del self.reading[client]

    async def _read(self, protocol) -> bytes:
        chunks: List[bytes] = []
        size = 0
        async for chunk in protocol:
            size += len(chunk)
            if size > self.max_body:
                raise _TooLarge()
            chunks.append(chunk)
        return b"".join(chunks)

    @staticmethod
    def _refuse(protocol, status: int, message: str) -> None:
        payload = ('{"error": "%s"}' % message).encode("utf-8")
        protocol.response_bytes(status, [("content-type", "application/json"), ("connection", "close")], payload)
        return None

    def _call_app(self, scope, body: bytes) -> Tuple[int, List[Tuple[str, str]], bytes]:
        """Run the WSGI app on a pool thread; the response is collected whole (all of ours are small)."""
        status_code, response_headers = 500, []  # what start_response sets; a WSGI app always calls it

        def start_response(status: str, headers: List[Tuple[str, str]], exc_info=None) -> Callable:
            nonlocal status_code, response_headers
            status_code, response_headers = int(status.split(" ", 1)[0]), headers
            return lambda data: None

        result = self.app(self._environ(scope, body), start_response)
        try:
            payload = b"".join(result)
        finally:
            if hasattr(result, "close"):
                result.close()
        return status_code, response_headers, payload

    @staticmethod
    def _environ(scope, body: bytes) -> Dict[str, object]:
        server_host, server_port = _split_address(scope.server)
        client_host, client_port = _split_address(scope.client)
        environ = {
            "REQUEST_METHOD": scope.method,
            "SCRIPT_NAME": "",
            "PATH_INFO": _path_info(scope.path),
            "QUERY_STRING": scope.query_string,
            "SERVER_NAME": server_host, "SERVER_PORT": server_port,
            "SERVER_PROTOCOL": f"HTTP/{scope.http_version}",
            "REMOTE_ADDR": client_host, "REMOTE_PORT": client_port,
            "CONTENT_LENGTH": str(len(body)),
            "wsgi.version": (1, 0), "wsgi.url_scheme": scope.scheme, "wsgi.input": io.BytesIO(body),
            "wsgi.errors": sys.stderr, "wsgi.multithread": True, "wsgi.multiprocess": False,
            "wsgi.run_once": False, "wsgi.input_terminated": True,
        }
        for name, value in scope.headers.items():
            key = name.upper().replace("-", "_")
            if key == "CONTENT_TYPE":
                environ["CONTENT_TYPE"] = value
            elif key != "CONTENT_LENGTH":
                key = "HTTP_" + key
                environ[key] = f"{environ[key]},{value}" if key in environ else value
        return environ

    def close(self) -> None:
        self.pool.shutdown(wait=True)


class _TooLarge(Exception):
    """A chunked body ran past ``max_body``."""
