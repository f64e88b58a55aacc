"""The worker with a fake deliver: ack/nack/dead per outcome, nodes independent, graceful stop."""

import logging
import threading
import time

import pytest

from purgebridge.config import load_settings
from purgebridge.fanout import Outcome, Result, purge_for_url
from purgebridge.metrics import Metrics
from purgebridge.queue import Queue
from purgebridge.worker import CPU_SAMPLE, PACE_CREDIT, Worker, _Pacer, thread_cpu

NODES = "127.0.0.1:9001,127.0.0.1:9002"


def make_settings(**extra):
    values = {"PURGEBRIDGE_NODES": NODES, "PURGEBRIDGE_BACKOFF": "0.01", "PURGEBRIDGE_BACKOFF_MAX": "0.05"}
    values.update(extra)
    return load_settings(values, environ={}, dotenv_path="")


def url(path):
    return purge_for_url(f"https://blog.example.test{path}")


class FakeDeliver:
    """Records every call; ``answer(node, item)`` -> (outcome, status, reason)."""

    def __init__(self, answer=None, delay=0.0):
        self.answer = answer or (lambda node, item: (Outcome.PURGED, 200, "HTTP 200 OK"))
        self.delay = delay
        self.calls = []
        self.lock = threading.Lock()

    def __call__(self, node, items, settings, retries=None, **kwargs):
        assert retries == 0, "the worker retries through the queue, not inside deliver"
        with self.lock:
            self.calls.append((node.name, [i.target for i in items]))
        if self.delay:
            time.sleep(self.delay)
        results = []
        for item in items:
            outcome, status, reason = self.answer(node, item)
            results.append(Result(node, item, outcome, status, reason, 1, self.delay))
        return results

    def sent(self, node_name):
        with self.lock:
            return [t for name, targets in self.calls if name == node_name for t in targets]


@pytest.fixture
def queue(tmp_path):
    q = Queue(tmp_path / "q.sqlite3", backoff=0.01, backoff_max=0.05)
    yield q
    q.close()


def wait_until(predicate, timeout=10.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.01)
    return False


def test_process_settles_each_outcome(queue):
    settings = make_settings()
    answers = {"/ok/": (Outcome.PURGED, 200, "HTTP 200 OK"), "/gone/": (Outcome.NOT_CACHED, 404, "HTTP 404"),
               "/acl/": (Outcome.REFUSED, 405, "HTTP 405 Method Not Allowed"),
               "/bad/": (Outcome.FAILED, 400, "HTTP 400 Bad Request"),
               "/down/": (Outcome.FAILED, None, "connection refused"),
               "/busy/": (Outcome.FAILED, 503, "HTTP 503 Service Unavailable")}
    fake = FakeDeliver(lambda node, item: answers[item.target])
    metrics = Metrics(queue)
    worker = Worker(queue, settings, deliver=fake, metrics=metrics)
    node = settings.nodes[0]
    queue.enqueue([node.name], [url(p) for p in answers], "wordpress")
    worker.process(node, queue.claim(node.name))
    stats = queue.stats()
    assert stats["dead"] == 2           # refused + a 400 the node will never accept
    assert stats["pending"] == 2        # no answer and 503: retried later
    reasons = sorted(d["reason"] for d in queue.dead_letters())
    assert reasons == ["HTTP 400 Bad Request", "HTTP 405 Method Not Allowed"]
    assert stats["totals"]["purged"] == 1 and stats["totals"]["not_cached"] == 1
    state = worker.node_status()[0]
    assert state["up"] is True and state["last_error"]
    text = metrics.render().decode()
    assert 'purgebridge_purges_total{node="127.0.0.1:9001",outcome="refused"} 1.0' in text
    assert "purgebridge_event_to_purged_seconds_count 2.0" in text


def test_same_key_claimed_twice_is_sent_once(queue):
    settings = make_settings()
    node = settings.nodes[0]
    queue.enqueue([node.name], [url("/x/")], "wordpress")
    first = queue.claim(node.name, lease=0.0)          # lease immediately expired: a "crashed" claim
    queue.enqueue([node.name], [url("/x/")], "wordpress")
    claims = queue.claim(node.name)
    assert len(claims) == 2 and {c.id for c in claims} >= {first[0].id}
    fake = FakeDeliver()
    Worker(queue, settings, deliver=fake).process(node, claims)
    assert fake.calls == [(node.name, ["/x/"])]
    assert queue.stats()["depth"] == 0


def test_deliver_exception_nacks_everything(queue):
    settings = make_settings()
    node = settings.nodes[0]

    def boom(*args, **kwargs):
        raise RuntimeError("unexpected")
    queue.enqueue([node.name], [url("/x/"), url("/y/")], "wordpress")
    worker = Worker(queue, settings, deliver=boom)
    worker.process(node, queue.claim(node.name))
    assert queue.stats()["pending"] == 2
    assert worker.node_status()[0]["up"] is False


def test_down_node_does_not_hold_back_the_other(queue):
    settings = make_settings()
    down, up = settings.nodes
    fake = FakeDeliver(lambda node, item: (Outcome.FAILED, None, "connection refused") if node == down
                       else (Outcome.PURGED, 200, "HTTP 200 OK"))
    worker = Worker(queue, settings, deliver=fake, poll=0.05).start()
    try:
        queue.enqueue([n.name for n in settings.nodes], [url(f"/p{i}/") for i in range(50)], "wordpress")
        assert wait_until(lambda: queue.stats()["nodes"][up.name]["pending"] == 0
                          and queue.stats()["nodes"][up.name]["in_flight"] == 0)
        assert sorted(fake.sent(up.name)) == sorted(f"/p{i}/" for i in range(50))
        waiting = queue.stats()["nodes"][down.name]   # one snapshot: a claim moves rows between the two
        assert waiting["pending"] + waiting["in_flight"] == 50
        # The node comes back: it gets every purge.
        fake.answer = lambda node, item: (Outcome.PURGED, 200, "HTTP 200 OK")
        assert wait_until(lambda: queue.stats()["depth"] == 0)
        assert set(fake.sent(down.name)) == {f"/p{i}/" for i in range(50)}
        assert len(fake.sent(down.name)) > 50   # it was tried while down, too
    finally:
        assert worker.stop(timeout=5)


def test_worker_wakes_on_enqueue_quickly(queue):
    settings = make_settings()
    fake = FakeDeliver()
    worker = Worker(queue, settings, deliver=fake, poll=30).start()
    try:
        time.sleep(0.05)
        started = time.monotonic()
        queue.enqueue([n.name for n in settings.nodes], [url("/x/")], "wordpress")
        assert wait_until(lambda: queue.stats()["depth"] == 0, timeout=5)
        assert time.monotonic() - started < 1.0   # not the 30 s poll
    finally:
        worker.stop(timeout=5)


def test_stop_finishes_in_flight_and_keeps_the_rest(queue):
    settings = make_settings(PURGEBRIDGE_NODES="127.0.0.1:9001")
    fake = FakeDeliver(delay=0.5)
    worker = Worker(queue, settings, deliver=fake, batch=10, poll=0.05).start()
    queue.enqueue(["127.0.0.1:9001"], [url(f"/p{i}/") for i in range(30)], "wordpress")
    assert wait_until(lambda: fake.calls)
    assert worker.stop(timeout=5)
    stats = queue.stats()
    assert stats["in_flight"] == 0                      # the batch in flight was settled
    assert stats["pending"] == 30 - len(fake.sent("127.0.0.1:9001"))
    assert stats["pending"] > 0                         # and the rest stayed queued
    assert not worker.running


def test_housekeeping_expires_old_items(tmp_path):
    q = Queue(tmp_path / "q.sqlite3", max_age=0.2)
    settings = make_settings(PURGEBRIDGE_NODES="127.0.0.1:9001")
    fake = FakeDeliver(lambda node, item: (Outcome.FAILED, None, "connection refused"))
    worker = Worker(q, settings, deliver=fake, poll=0.05, housekeeping=0.05).start()
    try:
        q.enqueue(["127.0.0.1:9001"], [url("/x/")], "wordpress")
        assert wait_until(lambda: q.stats()["dead"] == 1, timeout=5)
        assert "max age" in q.dead_letters()[0]["reason"]
    finally:
        worker.stop(timeout=5)
        q.close()


def test_burst_is_coalesced_and_nothing_is_left_stale(queue):
    """1,000 updates sharing 30 URLs: far fewer sends than naive, and every URL sent after its last update."""
    settings = make_settings(PURGEBRIDGE_NODES="127.0.0.1:9001")
    sent_at = {}

    def answer(node, item):
        sent_at.setdefault(item.target, []).append(time.monotonic())
        return Outcome.PURGED, 200, "HTTP 200 OK"

    fake = FakeDeliver(answer, delay=0.002)
    worker = Worker(queue, settings, deliver=fake, poll=0.05, batch_burst=2, batch_rate=5).start()
    shared = [url(f"/shared/{i}/") for i in range(30)]
    last_enqueued = {}
    try:
        for i in range(1000):
            items = shared + [url(f"/post/{i % 10}/")]
            queue.enqueue(["127.0.0.1:9001"], items, "wordpress")
            now = time.monotonic()
            for item in items:
                last_enqueued[item.target] = now
        assert wait_until(lambda: queue.stats()["depth"] == 0, timeout=10)
    finally:
        worker.stop(timeout=5)
    naive = 1000 * 31
    sent = len(fake.sent("127.0.0.1:9001"))
    assert sent <= naive * 0.05, (sent, naive)
    for target, when in last_enqueued.items():
        assert max(sent_at[target]) >= when, f"{target} was not purged after its last update"


def test_isolated_event_is_sent_at_once_even_with_a_slow_rate(queue):
    settings = make_settings(PURGEBRIDGE_NODES="127.0.0.1:9001")
    fake = FakeDeliver()
    worker = Worker(queue, settings, deliver=fake, poll=30, batch_burst=1, batch_rate=0.1).start()
    try:
        time.sleep(0.05)
        started = time.monotonic()
        queue.enqueue(["127.0.0.1:9001"], [url("/x/")], "wordpress")
        assert wait_until(lambda: queue.stats()["depth"] == 0, timeout=5)
        assert time.monotonic() - started < 0.5
    finally:
        worker.stop(timeout=5)


class FakeClock:
    """CPU seconds the pacer reads, advanced by the test."""

    def __init__(self):
        self.cpu = 0.0

    def __call__(self):
        return self.cpu


def test_pacer_never_holds_back_outside_a_flood_or_below_a_saturated_cpu():
    process, purge = FakeClock(), FakeClock()
    pacer = _Pacer(0.1, purge, cpu_time=process)
    start = time.monotonic()
    purge.cpu = process.cpu = 10.0                        # whatever the purge work used before
    assert pacer.allows(start + 0.2, flooding=False)      # no flood: full credit again
    process.cpu += 0.05                                   # a flood, but a quarter of a CPU in use
    assert pacer.allows(start + 0.4, flooding=True)
    assert not pacer.pacing


def test_pacer_does_not_hold_back_purge_work_that_saturates_the_process_itself():
    process, purge = FakeClock(), FakeClock()
    pacer = _Pacer(0.1, purge, cpu_time=process)
    now = time.monotonic() + CPU_SAMPLE
    process.cpu += 2 * CPU_SAMPLE
    purge.cpu += 1.9 * CPU_SAMPLE                         # nearly all of it was the purge work's own
    assert pacer.allows(now, flooding=True) and not pacer.pacing


def test_pacer_holds_purge_work_to_its_share_while_a_flood_saturates_the_process():
    process, purge = FakeClock(), FakeClock()
    pacer = _Pacer(0.1, purge, cpu_time=process)
    now = time.monotonic() + CPU_SAMPLE
    process.cpu += 2 * CPU_SAMPLE                         # accepting kept the CPUs busy: saturated
    assert pacer.allows(now, flooding=True) and pacer.pacing
    purge.cpu += PACE_CREDIT + 0.01                       # the purge work ran over its credit
    process.cpu += PACE_CREDIT + 0.01
    assert not pacer.allows(now, flooding=True)
    assert not pacer.allows(now + 0.05, flooding=True)    # 5 ms of credit back: still in debt
    process.cpu += 0.2
    assert pacer.allows(now + 0.2, flooding=True)         # 20 ms back: out of debt ...
    assert pacer.pacing                                   # ... and still pacing: still saturated
    purge.cpu += 1.0
    assert pacer.allows(now + 0.3, flooding=False) and not pacer.pacing   # flood over: no debt kept


def test_thread_cpu_reads_the_cpu_time_of_the_threads_given():
    done = threading.Event()
    spinner = threading.Thread(target=lambda: [None for _ in range(200_000)] and done.wait(5))
    spinner.start()
    clock = time.pthread_getcpuclockid(spinner.ident)
    try:
        assert wait_until(lambda: thread_cpu([clock]) > 0.001, timeout=5)
        assert thread_cpu([]) == 0.0
    finally:
        done.set()
        spinner.join(5)


def test_pacer_logs_one_line_when_pacing_starts_in_a_flood_and_one_when_it_ends(caplog):
    process, purge = FakeClock(), FakeClock()
    pacer = _Pacer(0.1, purge, cpu_time=process)
    now = time.monotonic()
    with caplog.at_level(logging.INFO, logger="purgebridge.worker"):
        for step in range(1, 7):   # saturated, idle, saturated ... within one flood
            process.cpu += 2 * CPU_SAMPLE if step % 2 else 0.0
            pacer.allows(now + step * CPU_SAMPLE, flooding=True)
        pacer.allows(now + 8 * CPU_SAMPLE, flooding=False)
    lines = [r.getMessage() for r in caplog.records]
    assert [line.split(":")[0].split(" after")[0] for line in lines] == ["flood", "flood over"], lines


def test_a_node_whose_purges_were_dead_lettered_for_age_gets_a_ban_of_their_sites_only(queue):
    """Issue 13.7: the ban covers the sites of the expired rows, not every configured site."""
    settings = make_settings(PURGEBRIDGE_SITES="blog.example.test,shop.example.test:8443,other.example.test")
    away, present = settings.nodes
    fake = FakeDeliver()
    worker = Worker(queue, settings, deliver=fake)
    old = time.time() - 2 * settings.max_age
    queue.enqueue([away.name], [url("/a/"), url("/b/"), purge_for_url("https://shop.example.test:8443/x")],
                  "wordpress", now=old)
    queue.enqueue([present.name], [url("/c/")], "wordpress")            # young: not expired
    assert worker.housekeep() == {away.name: 3}
    waiting = queue.claim(away.name)
    assert sorted((c.item["method"], c.item["host"]) for c in waiting) == [
        ("BAN", "blog.example.test"), ("BAN", "shop.example.test:8443")]
    assert [c.item["target"] for c in queue.claim(present.name)] == ["/c/"]   # nothing added for it


def test_no_ban_for_dead_letters_when_switched_off(queue):
    settings = make_settings(PURGEBRIDGE_SITES="blog.example.test", PURGEBRIDGE_DEAD_LETTER_BAN="false")
    worker = Worker(queue, settings, deliver=FakeDeliver())
    queue.enqueue([settings.nodes[0].name], [url("/a/")], "wordpress", now=time.time() - 2 * settings.max_age)
    assert worker.housekeep() == {settings.nodes[0].name: 1}
    assert queue.claim(settings.nodes[0].name) == []
