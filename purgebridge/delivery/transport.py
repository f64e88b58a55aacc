"""A small pipelined HTTP/1.1 client for PURGE/BAN requests.

Why not ``requests``: one request at a time per connection tops out near a
thousand purges a second, and a WordPress post maps to dozens of URLs on every
node. PURGE requests have no body and tiny answers, so HTTP/1.1 pipelining --
writing the next requests before the previous answers arrive -- keeps the
socket busy and lets one connection carry tens of thousands per second.

The client keeps up to ``depth`` requests in flight per connection, and one
thread serves all of a node's connections (``exchange_all``). Answers come back in
order (RFC 9112 section 9.3.2), so the n-th answer belongs to the n-th request.
If the node closes the connection or times out part-way, the answers already
read are kept and the rest are reported as not answered so the caller can
retry them (PURGE, BAN and key purges are idempotent).

``Transport`` is the interface the fan-out uses; ``FakeTransport`` in the tests
implements the same ``exchange`` call without a network.
"""

from dataclasses import dataclass
import logging
import selectors
import socket
import time
from typing import Callable, List, Optional, Sequence, Tuple, Union

import httptools

from purgebridge.core.errors import ConnectError, ProtocolError, ReadTimeout, TransportError

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
    needed are defined (no per-header callback), so an answer costs four
    calls into Python.

    An answer whose body is delimited by closing the connection (no length,
    not chunked) cannot be pipelined: it never completes, and when the node
    closes, ``exchange`` reports a close mid-response, so nothing from it on
    counts as answered.
    """

    def __init__(self):
        self._done = []
        self._reason = b""
        self._body = b""
        self._in_answer = False
        self._shared = {}
        self.closing = False  # the node's last answer (Connection: close) is complete: nothing after it is read
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
        return self._done.pop(0) if self._done else None

    def take_all(self):
        """Every complete Response parsed so far, in order (the read loop's fast path)."""
        done, self._done = self._done, []
        return done

    # llhttp callbacks -----------------------------------------------------

    def on_message_begin(self):
        self._in_answer = True
        self._reason = b""
        self._body = b""

    def on_status(self, reason):
        self._reason += reason  # may arrive in pieces when a read splits the status line

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
        if not self._http.should_keep_alive():  # Connection: close or HTTP/1.0 (a body until close never gets here)
            self.closing = True
            raise _LastAnswer()  # stops llhttp here: whatever follows is not an answer to us


class _LastAnswer(Exception):
    """Raised from a callback to stop parsing after the connection's last answer."""


class Connection:
    """One persistent, pipelined connection to a node."""

    def __init__(self, host: str, port: int, timeout: float) -> None:
        self.host, self.port, self.timeout = host, port, timeout
        self.sock: Optional[socket.socket] = None
        self.finished_at = 0.0  # time.monotonic() when its last exchange ended

    def open(self) -> None:
        try:
            self.sock = socket.create_connection((self.host, self.port), timeout=self.timeout)
        except socket.timeout:
            raise ConnectError(f"connect timed out after {self.timeout:g}s") from None
        except OSError as exc:
            raise ConnectError(f"connect failed: {exc.strerror or exc}") from None
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def close(self) -> None:
        if self.sock is not None:
            try:
                self.sock.close()
            finally:
                self.sock = None

    def exchange(self, requests: Sequence[bytes], depth: int) -> Tuple[List[Response], Optional[TransportError]]:
        """Send encoded requests pipelined ``depth`` deep; return the responses.

        Returns ``(responses, error)``: ``responses[i]`` answers ``requests[i]``
        for every i below ``len(responses)``; ``error`` is the TransportError
        that stopped the exchange early, or None. The connection stays open for
        the next call unless the node closed it or an error happened.
        """
        return exchange_all([self], [requests], depth)[0]


def exchange_all(connections: Sequence["Connection"], batches: Sequence[Sequence[bytes]],
                 depth: Union[int, Sequence[int]],
                 on_answers: Optional[Callable[[List[Response]], None]] = None,
                 ) -> List[Tuple[List[Response], Optional[TransportError]]]:
    """``connections[i].exchange(batches[i], depth)`` for every i at once, in the calling thread.

    Why one thread for several connections (of one node or of several): a
    Python thread per connection made them take turns on the GIL for every
    few answers (30,000 URLs on 3 nodes: 0.45-0.65 s of CPU in three threads,
    0.22-0.25 s in one). Here one ``selectors`` loop reads whichever socket
    has answers. ``depth`` is one number or one per connection;
    ``on_answers`` (optional) sees every batch of answers as it is read.
    Returns one ``(responses, error)`` per connection, as
    ``Connection.exchange`` does; each connection's ``finished_at`` says when
    its part ended.
    """
    depths = [depth] * len(connections) if isinstance(depth, int) else list(depth)
    exchanges = [_Exchange(conn, batch, d, on_answers) for conn, batch, d in zip(connections, batches, depths)]
    waiting = {}
    for ex in exchanges:
        if ex.start():
            waiting[ex.conn.sock.fileno()] = ex
        else:
            ex.conn.finished_at = time.monotonic()
    if waiting:
        with selectors.DefaultSelector() as selector:
            for fd, ex in waiting.items():
                selector.register(fd, selectors.EVENT_READ, ex)
            # Deadlines only move later (progress resets them), so the earliest one seen is a safe
            # moment to look at them all again; a read does not cost a scan of every connection.
            earliest = min(ex.deadline for ex in waiting.values())
            while waiting:
                events = selector.select(max(earliest - time.monotonic(), 0))
                for key, _ in events:
                    if not key.data.readable():
                        key.data.conn.finished_at = time.monotonic()
                        selector.unregister(key.fd)
                        del waiting[key.fd]
                if waiting and (not events or time.monotonic() >= earliest):
                    now = time.monotonic()
                    for fd, ex in list(waiting.items()):
                        if now >= ex.deadline:  # silence, or bytes trickling in without a complete answer
                            ex.fail(socket.timeout())
                            ex.conn.finished_at = now
                            selector.unregister(fd)
                            del waiting[fd]
                    earliest = min((ex.deadline for ex in waiting.values()), default=now)
    return [(ex.responses, ex.error) for ex in exchanges]


class _Exchange:
    """One connection's part of an exchange: its requests, how many left, the answers so far.

    The window: ``depth`` requests go out at once; more follow when half of
    them are answered, not after every read (a read brings a few answers, and
    a write per read was as many system calls again; half the window still
    keeps the node busy).
    """

    def __init__(self, conn, requests, depth, on_answers=None):
        self.conn, self.requests, self.depth = conn, requests, max(1, depth)
        self.on_answers = on_answers
        self.parser = _Parser()
        self.responses = []
        self.sent = 0
        self.error = None
        self.deadline = 0.0

    def start(self):
        """Open if needed and write the first window; False when already finished."""
        if not self.requests:
            return False
        if self.conn.sock is None:
            try:
                self.conn.open()
            except TransportError as exc:
                self.error = exc
                return False
        try:
            self.conn.sock.settimeout(self.conn.timeout)  # a write to a stalled node fails after this long
            self._send(min(self.depth, len(self.requests)))
        except OSError as exc:
            self.fail(exc)
            return False
        self.deadline = time.monotonic() + self.conn.timeout
        return True

    def _send(self, count):
        self.conn.sock.sendall(b"".join(self.requests[self.sent:self.sent + count]))
        self.sent += count

    def readable(self):
        """Read what the node sent; False when this exchange is finished (answered, or failed)."""
        total = len(self.requests)
        try:
            data = self.conn.sock.recv(_READ_SIZE)
            if not data:
                raise ProtocolError("node closed the connection"
                                    + (" mid-response" if self.parser.pending else ""))
            self.parser.feed(data)
            got = self.parser.take_all()
            if self.parser.closing:
                got = got[:total - len(self.responses)]
                self.responses.extend(got)
                if self.on_answers is not None:
                    self.on_answers(got)
                self.conn.close()
                if len(self.responses) < total:
                    self.error = ProtocolError("node closed the connection (Connection: close)")
                return False
            if got:
                self.responses.extend(got)
                if self.on_answers is not None:
                    self.on_answers(got)
                if len(self.responses) >= total:
                    return False
                self.deadline = time.monotonic() + self.conn.timeout  # progress resets the clock
                in_flight = self.sent - len(self.responses)
                if self.sent < total and in_flight <= self.depth // 2:
                    self._send(min(self.depth - in_flight, total - self.sent))
            return True
        except (OSError, ProtocolError) as exc:
            self.fail(exc)
            return False

    def fail(self, exc):
        """Stop here: close the connection and say why (the answers so far are kept)."""
        self.conn.close()
        if isinstance(exc, socket.timeout):
            self.error = ReadTimeout(f"no answer within {self.conn.timeout:g}s")
        elif isinstance(exc, ProtocolError):
            self.error = exc
        else:
            self.error = ProtocolError(f"connection error: {exc.strerror or exc}")
