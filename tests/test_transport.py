"""Transport: pipelining, partial answers and every way a node can misbehave."""

import pytest

from purgebridge.errors import ConnectError, ProtocolError, ReadTimeout
from purgebridge.invalidation import encode_request
from purgebridge.transport import Connection, _Parser


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


def test_parser_refuses_response_without_length():
    p = _Parser()
    p.feed(b"HTTP/1.1 200 OK\r\nServer: x\r\n\r\nbody")
    with pytest.raises(ProtocolError):
        p.take()


def test_parser_reads_framing_fields_in_any_case_and_ignores_the_rest():
    parser = _Parser()
    parser.feed(b"HTTP/1.1 200 Purged\r\nX-Odd: no colon trouble: here\r\nCONTENT-length:  3\r\n"
                b"connection: Close\r\n\r\nabcHTTP/1.1 404 Not in cache\r\nContent-Length: 0\r\n\r\n")
    first = parser.take()
    assert (first.status, first.reason, first.body) == (200, "Purged", b"abc")
    assert parser.closing   # "Close" in any case ends the pipeline after this answer
