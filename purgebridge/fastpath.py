"""``POST /v1/events/wordpress`` as plain WSGI, in front of the Flask app.

Why: on this 2-core machine a no-op Flask route on waitress (the server then) answered about
1,500 requests a second over 8 keep-alive connections, a plain WSGI callable
about 2,300; Flask's per-request machinery (request context, URL matching,
response object, error handlers) costs more than everything the accept path
itself does. So this one hot route skips it. The checks and their order are
not duplicated here: :func:`routes.accept_wordpress_event` does them for both
this middleware and the Flask route (which stays registered for the URL map,
the OpenAPI document, and any app mounted without the middleware). Refusals
have the same status, JSON body, metric and log line as the Flask route's.
"""

import json
import logging

from purgebridge.routes import (SIGNATURE_HEADER, TIMESTAMP_HEADER, Refused, accept_wordpress_event, accepted_body,
                                refusal_log)

log = logging.getLogger("purgebridge.routes")

PATH = "/v1/events/wordpress"
_REASONS = {202: "Accepted", 400: "Bad Request", 401: "Unauthorized", 403: "Forbidden", 409: "Conflict",
            413: "Content Too Large", 503: "Service Unavailable"}


def _environ_key(header):
    return "HTTP_" + header.upper().replace("-", "_")


_TIMESTAMP = _environ_key(TIMESTAMP_HEADER)
_SIGNATURE = _environ_key(SIGNATURE_HEADER)


class EventFastPath:
    """WSGI middleware: answers POST ``PATH`` itself, passes everything else to ``app``."""

    def __init__(self, app, service, max_body):
        self.app = app
        self.service = service
        self.max_body = max_body

    def __call__(self, environ, start_response):
        if environ.get("PATH_INFO") != PATH or environ.get("REQUEST_METHOD") != "POST":
            return self.app(environ, start_response)
        try:
            body = self._body(environ)
            accepted = accept_wordpress_event(self.service, body, environ.get(_TIMESTAMP, ""),
                                              environ.get(_SIGNATURE, ""))
        except Refused as exc:
            self.service.metrics.event("wordpress_event", exc.status)
            refusal_log.info("refused POST %s: %d %s", PATH, exc.status, exc.message)
            answer = {"error": exc.message}
            if exc.field:
                answer["field"] = exc.field
            return self._answer(start_response, exc.status, json.dumps(answer).encode("utf-8"))
        return self._answer(start_response, 202, accepted_body(*accepted))

    def _body(self, environ):
        """The raw body, refusing more than ``max_body``: by Content-Length before reading, else by what was read."""
        too_large = Refused(413, f"body over {self.max_body // 1024} KiB")
        stream = environ["wsgi.input"]
        try:
            length = int(environ.get("CONTENT_LENGTH") or -1)
        except ValueError:
            length = -1
        if length > self.max_body:
            raise too_large
        if length >= 0:
            data = stream.read(length)
        elif environ.get("wsgi.input_terminated"):  # chunked: the server tells where the body ends
            data = stream.read(self.max_body + 1)
        else:  # neither a length nor a terminated stream: no body can be read safely (as werkzeug does)
            data = b""
        if len(data) > self.max_body:
            raise too_large
        return data

    @staticmethod
    def _answer(start_response, status, payload):
        start_response(f"{status} {_REASONS.get(status, '')}".rstrip(),
                       [("Content-Type", "application/json"), ("Content-Length", str(len(payload)))])
        return [payload]
