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

from dataclasses import dataclass
import logging
import re
import socket
import time

from purgebridge.errors import ConnectError, ProtocolError, ReadTimeout, TransportError

log = logging.getLogger(__name__)

USER_AGENT = "purgebridge"
_MAX_HEADER_BYTES = 64 * 1024
_MAX_BODY_BYTES = 1024 * 1024


@dataclass(frozen=True)
class Response:
    """One parsed answer: status, reason and the start of the body (only synth text comes back).

    Header fields other than the framing ones are not kept: nothing reads
    them, and parsing every field of every answer was a tenth of a flood's
    CPU time.
    """

    status: int
    reason: str
    body: bytes = b""


def _field(head, name):
    """The value of header ``name`` (lower case bytes, with the leading CRLF) in ``head``, or None."""
    at = head.find(name)
    if at < 0:
        return None
    start = at + len(name)
    stop = head.find(b"\r\n", start)
    return head[start:stop if stop >= 0 else len(head)].strip()


MAX_LINE = 8000  # bytes of a request or header line; Varnish's http_req_hdr_len is 8 KiB by default
_CONTROL = re.compile("[\x00-\x08\x0a-\x1f\x7f]")


def encode_request(method, target, host, headers=()):
    """Serialise a body-less request. Values were validated by ``urls``.

    Raises ValueError (UnicodeError for a character outside Latin-1) for a
    request no Varnish could ever take -- a control character or a line over
    ``MAX_LINE`` bytes -- so a row stored by an older version fails alone and
    at once instead of resetting the connection on every try.
    """
    lines = [f"{method} {target} HTTP/1.1", f"Host: {host}", f"User-Agent: {USER_AGENT}"]
    lines.extend(f"{name}: {value}" for name, value in headers)
    for line in lines:
        if len(line) > MAX_LINE or _CONTROL.search(line):
            raise ValueError(f"a request line over {MAX_LINE} bytes or with a control character: {line[:60]!r}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


class _Parser:
    """Incremental response parser: feed bytes, take complete responses.

    Consumed bytes are dropped once per ``feed`` rather than once per answer:
    deleting from the front of a bytearray moves everything behind it, and a
    64 KiB read holds a hundred answers.
    """

    def __init__(self):
        self.buf = bytearray()
        self.pos = 0
        self.closing = False  # the server said Connection: close

    def feed(self, data):
        if self.pos:
            del self.buf[:self.pos]
            self.pos = 0
        self.buf += data

    @property
    def pending(self):
        """True when part of an answer has been read but not completed."""
        return len(self.buf) > self.pos

    def take(self):
        """Return the next complete Response or None if more bytes are needed."""
        buf, pos = self.buf, self.pos
        end = buf.find(b"\r\n\r\n", pos)
        if end < 0:
            if len(buf) - pos > _MAX_HEADER_BYTES:
                raise ProtocolError("response headers too large")
            return None
        # The status line, then only the framing fields, found in a lower-cased
        # copy of the header block (with a CRLF in front so every field starts
        # with one).
        eol = buf.find(b"\r\n", pos, end)
        status_line = bytes(buf[pos:end if eol < 0 else eol]).decode("latin-1").split(" ", 2)
        if len(status_line) < 2 or not status_line[0].startswith("HTTP/1.") or not status_line[1].isdigit():
            raise ProtocolError(f"not an HTTP/1.1 status line: {' '.join(status_line)[:60]!r}")
        status = int(status_line[1])
        reason = status_line[2] if len(status_line) > 2 else ""
        head = bytes(buf[eol:end]).lower() if eol >= 0 else b""
        encoding = _field(head, b"\r\ntransfer-encoding:")
        connection = _field(head, b"\r\nconnection:")
        start = end + 4
        if encoding == b"chunked":
            body, stop = self._chunked(start)
            if body is None:
                return None
        else:
            length = _field(head, b"\r\ncontent-length:")
            if length is None:
                length = b"0" if status in (204, 304) or 100 <= status < 200 else None
            if length is None:
                # Body delimited by close: only valid as the last answer.
                raise ProtocolError("response without Content-Length on a pipelined connection")
            if not length.isdigit() or int(length) > _MAX_BODY_BYTES:
                raise ProtocolError(f"bad Content-Length {length.decode('latin-1')!r}")
            stop = start + int(length)
            if len(buf) < stop:
                return None
            body = bytes(buf[start:min(stop, start + 512)])
        self.pos = stop
        if connection is not None and b"close" in connection:
            self.closing = True
        return Response(status, reason, body[:512])

    def _chunked(self, pos):
        body = bytearray()
        buf = self.buf
        while True:
            eol = buf.find(b"\r\n", pos)
            if eol < 0:
                return None, 0
            size_text = bytes(buf[pos:eol]).split(b";")[0].strip()
            try:
                size = int(size_text, 16)
            except ValueError:
                raise ProtocolError("bad chunk size") from None
            pos = eol + 2
            if size == 0:
                trailer_end = buf.find(b"\r\n", pos)
                if trailer_end < 0:
                    return None, 0
                while trailer_end != pos:  # skip trailer fields
                    pos = trailer_end + 2
                    trailer_end = buf.find(b"\r\n", pos)
                    if trailer_end < 0:
                        return None, 0
                return bytes(body), trailer_end + 2
            if len(buf) < pos + size + 2:
                return None, 0
            if len(body) < 512:
                body += buf[pos:pos + size]
            pos += size + 2


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
        sent = 0
        total = len(requests)
        try:
            first = min(depth, total)
            self.sock.sendall(b"".join(requests[:first]))
            sent = first
            deadline = time.monotonic() + self.timeout
            while len(responses) < total:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise socket.timeout()
                self.sock.settimeout(remaining)
                data = self.sock.recv(65536)
                if not data:
                    raise ProtocolError("node closed the connection"
                                        + (" mid-response" if parser.pending else ""))
                parser.feed(data)
                got = 0
                while True:
                    response = parser.take()
                    if response is None:
                        break
                    responses.append(response)
                    got += 1
                    if parser.closing:
                        break
                if parser.closing:
                    self.close()
                    if len(responses) < total:
                        return responses, ProtocolError("node closed the connection (Connection: close)")
                    return responses, None
                if got:
                    deadline = time.monotonic() + self.timeout  # progress resets the clock
                    more = min(got, total - sent)
                    if more:
                        self.sock.sendall(b"".join(requests[sent:sent + more]))
                        sent += more
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
