"""A small pipelined HTTP/1.1 client for PURGE/BAN requests.

Why not ``requests``: one request at a time per connection tops out near a
thousand purges a second, and a WordPress post maps to dozens of URLs on every
node. PURGE requests have no body and tiny answers, so HTTP/1.1 pipelining --
writing the next requests before the previous answers arrive -- keeps the
socket busy and lets one connection carry tens of thousands per second.

The client keeps a sliding window of ``depth`` requests in flight: each time
answers are parsed, as many new requests are written. Answers come back in
order (RFC 9112 section 9.3.2), so the n-th answer belongs to the n-th request.
If the node closes the connection or times out part-way, the answers already
read are kept and the rest are reported as not answered so the caller can
retry them (PURGE, BAN and key purges are idempotent).

``Transport`` is the interface the fan-out uses; ``FakeTransport`` in the tests
implements the same ``exchange`` call without a network.
"""

from collections import deque
from dataclasses import dataclass
import logging
import socket
import time

import httptools

from purgebridge.errors import ConnectError, ProtocolError, ReadTimeout, TransportError

log = logging.getLogger(__name__)

_KEPT_BODY = 512  # bytes of an answer's body kept (synth text for reports); the rest is read and dropped
_READ_SIZE = 256 * 1024  # one recv: a few thousand PURGE answers, so few system calls per batch
_SHARED_ANSWERS = 64  # distinct (status, reason, body) answers a parser keeps one Response object for


@dataclass(frozen=True)
class Response:
    """One parsed answer: status, reason and the start of the body (only synth text comes back).

    Header fields are not kept: nothing reads them. Framing (Content-Length,
    chunked, Connection) is judged by the C parser.
    """

    status: int
    reason: str
    body: bytes = b""


class _Parser:
    """Incremental response parser: feed bytes, take complete responses.

    The framing is llhttp's (through ``httptools``), the C parser Node.js
    uses: Content-Length and chunked bodies, header names in any case,
    answers split at any byte. Why not Python: parsing was most of the CPU a
    bulk purge spent (3 us an answer against 0.5 us here), and on a machine
    the Varnish nodes share, that CPU is taken from them. Only the callbacks
    needed are defined (no per-header callback), so an answer costs three
    calls into Python.

    An answer whose body is delimited by closing the connection (no length,
    not chunked) cannot be pipelined: it marks the parser ``closing`` and
    completes only if the node closes, which ``exchange`` reports as a
    close mid-response, so nothing after it counts as answered.
    """

    def __init__(self):
        self._done = deque()
        self._reason = b""
        self._body = b""
        self._in_answer = False
        self._shared = {}
        self._last = False  # the answer being read is the connection's last (Connection: close, body until close)
        self.closing = False  # that last answer is complete: nothing after it is read
        self._http = httptools.HttpResponseParser(self)

    def feed(self, data):
        """Parse ``data``; raises ProtocolError for bytes that are not an HTTP/1.x answer."""
        if self.closing:
            return
        try:
            self._http.feed_data(data)
        except _LastAnswer:
            pass
        except httptools.HttpParserCallbackError as exc:
            if not isinstance(exc.__context__, _LastAnswer):
                raise
        except httptools.HttpParserError as exc:
            text = bytes(data[:60]).decode("latin-1")
            raise ProtocolError(f"not an HTTP/1.1 answer ({exc}): {text!r}") from None

    @property
    def pending(self):
        """True when part of an answer has been read but not completed."""
        return self._in_answer

    def take(self):
        """Return the next complete Response or None if more bytes are needed."""
        return self._done.popleft() if self._done else None

    def take_all(self):
        """Every complete Response parsed so far, in order (the read loop's fast path)."""
        done = list(self._done)
        self._done.clear()
        return done

    # llhttp callbacks -----------------------------------------------------

    def on_message_begin(self):
        self._in_answer = True
        self._reason = b""
        self._body = b""

    def on_status(self, reason):
        self._reason += reason  # may arrive in pieces when a read splits the status line

    def on_headers_complete(self):
        if not self._http.should_keep_alive():  # Connection: close, HTTP/1.0, or a body until close
            self._last = True

    def on_body(self, body):
        if len(self._body) < _KEPT_BODY:
            self._body = (self._body + body)[:_KEPT_BODY]

    def on_message_complete(self):
        self._in_answer = False
        key = (self._http.get_status_code(), self._reason, self._body)
        response = self._shared.get(key)
        if response is None:  # answers repeat (200 Purged, 404 ...): one immutable object each
            response = Response(key[0], self._reason.decode("latin-1"), self._body)
            if len(self._shared) < _SHARED_ANSWERS:
                self._shared[key] = response
        self._done.append(response)
        if self._last:
            self.closing = True
            raise _LastAnswer()  # stops llhttp here: whatever follows is not an answer to us


class _LastAnswer(Exception):
    """Raised from a callback to stop parsing after the connection's last answer."""


class Connection:
    """One persistent, pipelined connection to a node."""

    def __init__(self, host, port, timeout):
        self.host, self.port, self.timeout = host, port, timeout
        self.sock = None

    def open(self):
        try:
            self.sock = socket.create_connection((self.host, self.port), timeout=self.timeout)
        except socket.timeout:
            raise ConnectError(f"connect timed out after {self.timeout:g}s") from None
        except OSError as exc:
            raise ConnectError(f"connect failed: {exc.strerror or exc}") from None
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def close(self):
        if self.sock is not None:
            try:
                self.sock.close()
            finally:
                self.sock = None

    def exchange(self, requests, depth):
        """Send encoded requests pipelined ``depth`` deep; return the responses.

        Returns ``(responses, error)``: ``responses[i]`` answers ``requests[i]``
        for every i below ``len(responses)``; ``error`` is the TransportError
        that stopped the exchange early, or None. The connection stays open for
        the next call unless the node closed it or an error happened.
        """
        if self.sock is None:
            try:
                self.open()
            except TransportError as exc:
                return [], exc
        parser = _Parser()
        responses = []
        sock = self.sock
        sent = 0
        total = len(requests)
        try:
            first = min(depth, total)
            sock.settimeout(self.timeout)  # once: recv waits at most this long for a byte
            sock.sendall(b"".join(requests[:first]))
            sent = first
            deadline = time.monotonic() + self.timeout
            while len(responses) < total:
                data = sock.recv(_READ_SIZE)
                if not data:
                    raise ProtocolError("node closed the connection"
                                        + (" mid-response" if parser.pending else ""))
                parser.feed(data)
                got = parser.take_all()
                if parser.closing:
                    responses.extend(got[:total - len(responses)])
                    self.close()
                    if len(responses) < total:
                        return responses, ProtocolError("node closed the connection (Connection: close)")
                    return responses, None
                if got:
                    responses.extend(got)
                    deadline = time.monotonic() + self.timeout  # progress resets the clock
                    more = min(len(got), total - sent)
                    if more:
                        sock.sendall(b"".join(requests[sent:sent + more]))
                        sent += more
                elif time.monotonic() > deadline:  # bytes trickle in but no answer completes
                    raise socket.timeout()
            return responses, None
        except socket.timeout:
            self.close()
            return responses, ReadTimeout(f"no answer within {self.timeout:g}s")
        except ProtocolError as exc:
            self.close()
            return responses, exc
        except OSError as exc:
            self.close()
            return responses, ProtocolError(f"connection error: {exc.strerror or exc}")
