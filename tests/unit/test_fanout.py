"""Fan-out: classification, retries with backoff, request construction, reports."""

import pytest

from purgebridge.config.settings import load_settings
from purgebridge.core.errors import InvalidURL
from purgebridge.core.backoff import backoff_delay
from purgebridge.delivery.fanout import Outcome, classify, deliver, fan_out
from purgebridge.core.invalidation import MAX_KEY_HEADER, ban_for, keys_for, purge_all_for, purge_for_url
from purgebridge.core.nodes import Node


def settings(**over):
    base = {"PURGEBRIDGE_RETRIES": 2, "PURGEBRIDGE_BACKOFF": 0.01, "PURGEBRIDGE_BACKOFF_MAX": 0.05,
            "PURGEBRIDGE_TIMEOUT": 1}
    base.update(over)
    return load_settings(base, environ={}, dotenv_path="")


@pytest.fixture
def servers(fault_server):
    return fault_server


@pytest.mark.parametrize("status,outcome,retry", [
    (200, Outcome.PURGED, False), (204, Outcome.PURGED, False), (404, Outcome.NOT_CACHED, False),
    (403, Outcome.REFUSED, False), (405, Outcome.REFUSED, False), (500, Outcome.FAILED, True),
    (503, Outcome.FAILED, True), (408, Outcome.FAILED, True), (429, Outcome.FAILED, True),
    (400, Outcome.FAILED, False), (301, Outcome.FAILED, False),
])
def test_classify_every_status_class(status, outcome, retry):
    assert classify(status) == (outcome, retry)


def test_backoff_doubles_caps_and_jitters():
    assert backoff_delay(1, 0.1, 5, rng=lambda: 1.0) == pytest.approx(0.1)
    assert backoff_delay(3, 0.1, 5, rng=lambda: 1.0) == pytest.approx(0.4)
    assert backoff_delay(30, 0.1, 5, rng=lambda: 1.0) == pytest.approx(5)
    assert backoff_delay(3, 0.1, 5, rng=lambda: 0.0) == pytest.approx(0.2)


def test_purge_request_headers():
    item = purge_for_url("https://Example.test:8443/a/b?c=1#frag")
    assert (item.method, item.host, item.target) == ("PURGE", "example.test:8443", "/a/b?c=1")
    assert item.headers == (("X-Forwarded-Proto", "https"),)
    assert item.encode().startswith(b"PURGE /a/b?c=1 HTTP/1.1\r\nHost: example.test:8443\r\n")
    assert purge_for_url("http://example.test/", proto_header="").headers == ()
    assert purge_for_url("http://example.test:80/").host == "example.test"


def test_ban_and_keys_requests():
    ban = ban_for("example.test", "^/category/")
    assert (ban.method, ban.host, ban.headers) == ("BAN", "example.test", (("X-Ban-Url", "^/category/"),))
    assert purge_all_for("example.test:8080").headers == (("X-Ban-Url", "."),)
    with pytest.raises(InvalidURL):
        ban_for("example.test", "(unclosed")
    with pytest.raises(InvalidURL):
        ban_for("bad host", ".")
    many = keys_for("example.test", [f"post-{i}" for i in range(3000)])
    assert len(many) > 1
    assert all(len(item.headers[0][1]) <= MAX_KEY_HEADER for item in many)
    assert sum(len(item.headers[0][1].split()) for item in many) == 3000
    assert keys_for("example.test", ["a"], soft=True)[0].headers[0][0] == "xkey-softpurge"
    with pytest.raises(InvalidURL):
        keys_for("example.test", ["has space"])


def test_round_trip_to_dict():
    item = purge_for_url("https://example.test/x")
    assert type(item).from_dict(item.to_dict()) == item


def test_5xx_is_retried_until_success(servers):
    s = servers(lambda n, line: ("status", 503) if n < 2 else ("status", 200))
    node = Node(s.host, s.port)
    sleeps = []
    [result] = deliver(node, [purge_for_url("http://example.test/a")], settings(), sleep=sleeps.append)
    assert result.outcome is Outcome.PURGED and result.attempts == 3
    assert len(sleeps) == 2 and sleeps[0] < sleeps[1] * 2.5


def test_retries_exhausted_reports_failed(servers):
    s = servers(lambda n, line: ("status", 500))
    [result] = deliver(Node(s.host, s.port), [purge_for_url("http://example.test/a")], settings(), sleep=lambda d: None)
    assert result.outcome is Outcome.FAILED and result.attempts == 3 and result.status == 500
    assert s.count == 3


def test_refused_is_not_retried(servers):
    s = servers(lambda n, line: ("status", 405))
    [result] = deliver(Node(s.host, s.port), [purge_for_url("http://example.test/a")], settings())
    assert result.outcome is Outcome.REFUSED and result.attempts == 1 and s.count == 1


def test_reset_mid_pipeline_only_unanswered_are_resent(servers):
    s = servers(lambda n, line: ("reset",) if n == 5 else ("status", 200))
    items = [purge_for_url(f"http://example.test/{i}") for i in range(10)]
    results = deliver(Node(s.host, s.port), items, settings(PURGEBRIDGE_CONNECTIONS=1), sleep=lambda d: None)
    assert all(r.outcome is Outcome.PURGED for r in results)
    assert [r.attempts for r in results[:5]] == [1] * 5
    assert all(r.attempts == 2 for r in results[5:])


def test_fan_out_one_bad_node_does_not_hold_back_others(servers):
    good = servers(lambda n, line: ("status", 200))
    slow = servers(lambda n, line: ("sleep", 2.0, 200))
    items = [purge_for_url(f"http://example.test/{i}") for i in range(5)]
    report = fan_out([Node(good.host, good.port), Node(slow.host, slow.port)], items,
                     settings(PURGEBRIDGE_RETRIES=0, PURGEBRIDGE_TIMEOUT=0.3))
    assert not report.ok
    by_node = {n.node.port: n for n in report.nodes}
    assert by_node[good.port].count(Outcome.PURGED) == 5
    assert by_node[slow.port].count(Outcome.FAILED) == 5
    data = report.to_dict()
    assert {p["node"] for p in data["problems"]} == {f"127.0.0.1:{slow.port}"}


def test_fan_out_without_nodes_is_not_ok():
    report = fan_out([], [purge_for_url("http://example.test/")], settings())
    assert not report.ok and report.errors


def test_node_closing_mid_pipeline_unanswered_urls_are_not_confirmed(servers):
    """Two pipelined connections; the node drops one after 150 answers: exactly the answered URLs count as purged."""
    s = servers(lambda n, line: ("close",) if n == 150 else ("status", 200))
    items = [purge_for_url(f"http://example.test/{i}") for i in range(400)]
    results = deliver(Node(s.host, s.port), items,
                      settings(PURGEBRIDGE_RETRIES=0, PURGEBRIDGE_CONNECTIONS=2, PURGEBRIDGE_PIPELINE=16))
    answered = {raw.split(" ")[1] for n, raw in enumerate(s.requests) if n != 150}
    purged = {r.item.target for r in results if r.outcome is Outcome.PURGED}
    failed = [r for r in results if r.outcome is Outcome.FAILED]
    assert purged == answered
    assert failed and len(purged) + len(failed) == 400
    assert all(r.status is None and "closed" in r.reason for r in failed)


def test_fan_out_progress_counts_every_item_of_every_node_once(servers):
    """The shared first attempt counts final answers; retries and failures are counted once, when final."""
    flaky = servers(lambda n, line: ("status", 503) if n % 4 == 0 and n < 40 else ("status", 200))
    good = servers(lambda n, line: ("status", 404))
    dead_port = servers(lambda n, line: ("close",))
    items = [purge_for_url(f"http://example.test/{i}") for i in range(40)]
    ticks = []
    report = fan_out([Node(flaky.host, flaky.port), Node(good.host, good.port), Node(dead_port.host, dead_port.port)],
                     items, settings(PURGEBRIDGE_RETRIES=1, PURGEBRIDGE_BACKOFF=0.01), progress=ticks.append)
    assert sum(ticks) == 3 * 40
    by_port = {n.node.port: n for n in report.nodes}
    assert by_port[flaky.port].count(Outcome.PURGED) == 40
    assert by_port[good.port].count(Outcome.NOT_CACHED) == 40
    assert by_port[dead_port.port].count(Outcome.FAILED) == 40


def test_fan_out_reports_each_nodes_own_time(servers):
    good = servers(lambda n, line: ("status", 200))
    slow = servers(lambda n, line: ("sleep", 0.6, 200))
    items = [purge_for_url(f"http://example.test/{i}") for i in range(3)]
    report = fan_out([Node(good.host, good.port), Node(slow.host, slow.port)], items,
                     settings(PURGEBRIDGE_RETRIES=0, PURGEBRIDGE_TIMEOUT=2, PURGEBRIDGE_CONNECTIONS=1))
    assert report.ok
    by_port = {n.node.port: n.seconds for n in report.nodes}
    assert by_port[good.port] < 0.3 <= 0.6 <= by_port[slow.port]
