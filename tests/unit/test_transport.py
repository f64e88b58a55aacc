"""Transport: pipelining, partial answers and every way a node can misbehave."""

import pytest

from purgebridge.core.errors import ConnectError, ProtocolError, ReadTimeout
from purgebridge.core.invalidation import encode_request
from purgebridge.delivery.transport import Connection, _Parser, exchange_all


def reqs(n):
    return [encode_request("PURGE", f"/p/{i}", "example.test", (("X-Forwarded-Proto", "http"),)) for i in range(n)]


@pytest.fixture
def server(fault_server):
    return fault_server


def test_encode_request_has_host_and_headers():
    raw = encode_request("PURGE", "/a?b=1", "example.test:8080", (("X-Forwarded-Proto", "https"),))
    assert raw == (b"PURGE /a?b=1 HTTP/1.1\r\nHost: example.test:8080\r\nUser-Agent: purgebridge\r\n"
                   b"X-Forwarded-Proto: https\r\n\r\n")


def test_pipelined_answers_come_back_in_order(server):
    s = server(lambda n, line: ("status", 200 if n % 2 else 404))
    conn = Connection(s.host, s.port, timeout=2)
    responses, error = conn.exchange(reqs(500), depth=32)
    assert error is None
    assert [r.status for r in responses] == [404 if i % 2 == 0 else 200 for i in range(500)]
    assert s.connections == 1
    assert s.requests[499].startswith("PURGE /p/499 HTTP/1.1")


def test_connection_is_reused_between_exchanges(server):
    s = server(lambda n, line: ("status", 200))
    conn = Connection(s.host, s.port, timeout=2)
    conn.exchange(reqs(10), depth=4)
    conn.exchange(reqs(10), depth=4)
    assert s.connections == 1


def test_close_mid_pipeline_keeps_earlier_answers(server):
    s = server(lambda n, line: ("close",) if n == 7 else ("status", 200))
    responses, error = Connection(s.host, s.port, timeout=2).exchange(reqs(20), depth=20)
    assert len(responses) == 7
    assert isinstance(error, ProtocolError)


def test_connection_close_header_stops_after_that_answer(server):
    s = server(lambda n, line: ("status", 200, {"Connection": "close"}) if n == 2 else ("status", 200))
    conn = Connection(s.host, s.port, timeout=2)
    responses, error = conn.exchange(reqs(5), depth=5)
    assert len(responses) == 3 and isinstance(error, ProtocolError)
    assert conn.sock is None


def test_reset_is_a_protocol_error(server):
    s = server(lambda n, line: ("reset",) if n == 3 else ("status", 200))
    responses, error = Connection(s.host, s.port, timeout=2).exchange(reqs(10), depth=1)
    assert len(responses) == 3
    assert isinstance(error, ProtocolError)


def test_half_written_response(server):
    s = server(lambda n, line: ("half",))
    responses, error = Connection(s.host, s.port, timeout=2).exchange(reqs(3), depth=3)
    assert responses == [] and isinstance(error, ProtocolError)
    assert "mid-response" in str(error)


def test_garbage_is_not_http(server):
    s = server(lambda n, line: ("garbage",))
    responses, error = Connection(s.host, s.port, timeout=2).exchange(reqs(1), depth=1)
    assert responses == [] and isinstance(error, ProtocolError)


def test_slow_answer_times_out(server):
    s = server(lambda n, line: ("sleep", 1.0, 200))
    responses, error = Connection(s.host, s.port, timeout=0.2).exchange(reqs(2), depth=2)
    assert responses == [] and isinstance(error, ReadTimeout)


def test_connection_refused():
    import socket
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()  # nothing listens there now
    responses, error = Connection("127.0.0.1", port, timeout=1).exchange(reqs(1), depth=1)
    assert responses == [] and isinstance(error, ConnectError)


def test_parser_handles_chunked_and_split_reads():
    p = _Parser()
    data = (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n"
            b"HTTP/1.1 404 Not Found\r\nContent-Length: 3\r\n\r\nabc")
    for i in range(len(data)):  # one byte at a time
        p.feed(data[i:i + 1])
    first, second = p.take(), p.take()
    assert (first.status, first.body) == (200, b"hello")
    assert (second.status, second.body) == (404, b"abc")
    assert p.take() is None


def test_answer_without_length_is_never_counted_as_answered():
    """A body delimited by close cannot be pipelined: nothing from it on is confirmed."""
    p = _Parser()
    p.feed(b"HTTP/1.1 200 OK\r\nServer: x\r\n\r\nbody")
    assert p.take() is None and p.pending


def test_answer_without_length_ends_the_exchange_with_the_rest_unanswered(server):
    lengthless = b"HTTP/1.1 200 OK\r\nServer: x\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"
    s = server(lambda n, line: ("raw", lengthless, True) if n == 2 else ("status", 200))
    responses, error = Connection(s.host, s.port, timeout=2).exchange(reqs(5), depth=5)
    assert [r.status for r in responses] == [200, 200]
    assert isinstance(error, ProtocolError) and "mid-response" in str(error)


VARNISH_200 = (b"HTTP/1.1 200 Purged\r\nDate: Thu, 03 Dec 2026 21:06:26 GMT\r\nServer: Varnish\r\n"
               b"X-Varnish: 203313\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: 7\r\n"
               b"Connection: keep-alive\r\n\r\nPurged\n")
CHUNKED_404 = (b"HTTP/1.1 404 Not in cache\r\nTransfer-Encoding: chunked\r\n\r\n"
               b"4;ext=1\r\nnot \r\n6\r\ncached\r\n0\r\nX-Trailer: t\r\n\r\n")


@pytest.mark.parametrize("piece", [1, 3, 7, 50, 4096])
def test_pipelined_answers_split_at_odd_byte_boundaries(piece):
    """Answers cut anywhere (inside the status line, a header, a chunk size, the CRLFs) parse the same."""
    data = (VARNISH_200 + CHUNKED_404) * 20
    p = _Parser()
    got = []
    for at in range(0, len(data), piece):
        p.feed(data[at:at + piece])
        got.extend(p.take_all())
    assert [(r.status, r.reason, r.body) for r in got] == [(200, "Purged", b"Purged\n"),
                                                           (404, "Not in cache", b"not cached")] * 20
    assert not p.pending and not p.closing


def test_chunked_answers_over_a_socket_written_in_small_pieces(fault_server):
    s = fault_server(lambda n, line: ("raw", CHUNKED_404 if n % 3 else VARNISH_200, False), piece=5)
    responses, error = Connection(s.host, s.port, timeout=2).exchange(reqs(30), depth=8)
    assert error is None
    assert [r.status for r in responses] == [200 if i % 3 == 0 else 404 for i in range(30)]
    assert responses[1].body == b"not cached"


def test_node_closing_mid_pipeline_leaves_the_rest_unanswered(fault_server):
    """A node that goes away after 40 of 100 answers: 40 answered, 60 reported as not answered."""
    s = fault_server(lambda n, line: ("close",) if n == 40 else ("raw", VARNISH_200, False), piece=97)
    responses, error = Connection(s.host, s.port, timeout=2).exchange(reqs(100), depth=64)
    assert len(responses) == 40 and all(r.status == 200 for r in responses)
    assert isinstance(error, ProtocolError)


def test_bytes_after_the_last_answer_are_not_read_as_answers():
    p = _Parser()
    p.feed(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n" + VARNISH_200)
    assert [r.status for r in p.take_all()] == [200]
    assert p.closing
    p.feed(VARNISH_200)
    assert p.take() is None


def test_large_body_is_read_past_and_only_its_start_kept():
    body = b"x" * 100_000
    p = _Parser()
    p.feed(b"HTTP/1.1 500 Oops\r\nContent-Length: %d\r\n\r\n" % len(body) + body + VARNISH_200)
    first, second = p.take_all()
    assert (first.status, len(first.body), second.status) == (500, 512, 200)


def test_parser_reads_framing_fields_in_any_case_and_ignores_the_rest():
    parser = _Parser()
    parser.feed(b"HTTP/1.1 200 Purged\r\nX-Odd: no colon trouble: here\r\nCONTENT-length:  3\r\n"
                b"connection: Close\r\n\r\nabcHTTP/1.1 404 Not in cache\r\nContent-Length: 0\r\n\r\n")
    first = parser.take()
    assert (first.status, first.reason, first.body) == (200, "Purged", b"abc")
    assert parser.closing   # "Close" in any case ends the pipeline after this answer


def test_one_thread_serves_several_connections_and_a_stalled_one_times_out_alone(fault_server):
    fast = fault_server(lambda n, line: ("status", 200))
    stalled = fault_server(lambda n, line: ("sleep", 2.0, 200))
    conns = [Connection(fast.host, fast.port, timeout=0.3), Connection(stalled.host, stalled.port, timeout=0.3),
             Connection(fast.host, fast.port, timeout=0.3)]
    (a, a_error), (b, b_error), (c, c_error) = exchange_all(conns, [reqs(300), reqs(5), reqs(0)], depth=16)
    assert a_error is None and len(a) == 300
    assert b == [] and isinstance(b_error, ReadTimeout) and conns[1].sock is None
    assert c == [] and c_error is None and fast.connections == 1
