"""The worker with a fake deliver: ack/nack/dead per outcome, nodes independent, graceful stop."""

import json
import logging
import threading
import time

import pytest

from purgebridge.config.settings import load_settings
from purgebridge.core.invalidation import purge_for_url
from purgebridge.delivery.fanout import Outcome, Result
from purgebridge.telemetry.metrics import Metrics
from purgebridge.store.sqlite import Queue
from purgebridge.testing import FakeClock
from purgebridge.worker.worker import Worker
from fixtures.queue import wait_until

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
        assert wait_until(lambda: fake.sent(down.name))   # tried once while down (its thread may start later)
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
    """1,000 updates sharing 30 URLs: whatever arrives while a batch is on the wire merges into the next.

    The fake node answers a batch only once 50 more updates were enqueued
    (a node busy for that long), so the test does not depend on this
    machine's speed. Batching by completion must then send far fewer purges
    than naive, and every URL once more after its last update.
    """
    settings = make_settings(PURGEBRIDGE_NODES="127.0.0.1:9001")
    sent_at = {}
    enqueued = [0]
    progress = threading.Condition()

    def answer(node, item):
        sent_at.setdefault(item.target, []).append(time.monotonic())
        return Outcome.PURGED, 200, "HTTP 200 OK"

    class BusyNode(FakeDeliver):
        def __call__(self, node, items, settings, retries=None, **kwargs):
            results = super().__call__(node, items, settings, retries=retries, **kwargs)
            with progress:
                target = enqueued[0] + 50
                progress.wait_for(lambda: enqueued[0] >= target or enqueued[0] >= 1000, timeout=5)
            return results

    fake = BusyNode(answer)
    worker = Worker(queue, settings, deliver=fake, poll=0.05).start()
    shared = [url(f"/shared/{i}/") for i in range(30)]
    last_enqueued = {}
    try:
        for i in range(1000):
            items = shared + [url(f"/post/{i % 10}/")]
            queue.enqueue(["127.0.0.1:9001"], items, "wordpress")
            now = time.monotonic()
            for item in items:
                last_enqueued[item.target] = now
            with progress:
                enqueued[0] += 1
                progress.notify_all()
        assert wait_until(lambda: queue.stats()["depth"] == 0, timeout=10)
    finally:
        worker.stop(timeout=5)
    naive = 1000 * 31
    sent = len(fake.sent("127.0.0.1:9001"))
    assert sent <= naive * 0.05, (sent, naive)
    for target, when in last_enqueued.items():
        assert max(sent_at[target]) >= when, f"{target} was not purged after its last update"


def test_isolated_events_and_a_steady_stream_are_never_held_back(queue):
    """Batching by completion: an event is sent as soon as the node is free, never after a timer."""
    settings = make_settings(PURGEBRIDGE_NODES="127.0.0.1:9001")
    fake = FakeDeliver(delay=0.001)
    worker = Worker(queue, settings, deliver=fake, poll=30).start()
    waits = []
    try:
        for n in range(20):  # 50 events a second, each on its own
            started = time.monotonic()
            queue.enqueue(["127.0.0.1:9001"], [url(f"/x/{n}/")], "wordpress")
            assert wait_until(lambda: queue.stats()["depth"] == 0, timeout=5)
            waits.append(time.monotonic() - started)
            time.sleep(0.02)
    finally:
        worker.stop(timeout=5)
    assert len(fake.calls) == 20
    assert sorted(waits)[-2] < 0.1, waits   # no batch held back for a rate (it was up to 0.5 s)


def test_backoff_follows_the_clock_not_the_wall():
    """With a fake clock: a silent node is down for its (jittered) backoff, then tried again."""
    settings = make_settings(PURGEBRIDGE_NODES="127.0.0.1:9001", PURGEBRIDGE_BACKOFF="1", PURGEBRIDGE_BACKOFF_MAX="1")
    clock = FakeClock()
    answers = {"/up/": (Outcome.PURGED, 200, "HTTP 200 OK"), "/down/": (Outcome.FAILED, None, "connection refused")}
    fake = FakeDeliver(lambda node, item: answers[item.target])
    worker = Worker(None, settings, deliver=fake, clock=clock)
    sender = worker.senders["127.0.0.1:9001"]
    sender.send([url("/up/")])
    assert not sender.is_down() and worker.states["127.0.0.1:9001"].up is True
    sender.send([url("/down/")])                                  # no answer: down for 0.5-1 s (jittered backoff)
    assert sender.is_down() and worker.states["127.0.0.1:9001"].up is False
    clock.advance(0.49)
    assert sender.is_down()
    clock.advance(0.52)
    assert not sender.is_down()


def test_a_hot_url_is_sent_once_per_window_and_once_more_after_its_last_update(queue):
    """Coalescing per (node, URL), driven through the node's direct path with a fake clock."""
    from fixtures.app import event_body, post_change

    settings = make_settings(PURGEBRIDGE_NODES="127.0.0.1:9001")
    clock = FakeClock()
    fake = FakeDeliver()
    worker = Worker(queue, settings, deliver=fake, clock=clock, window=0.05)
    node = settings.nodes[0]

    def update(post):
        queue.append("wordpress", "blog.example.test", json.dumps(event_body([post_change(post)])).encode(), None)
        assert worker.dispatch() == 1

    def sent_now():  # the URL paths purged by this step (key purges left out)
        before = len(fake.calls)
        worker.send_direct(node)
        return [t for _name, targets in fake.calls[before:] for t in targets if t.startswith("/") and t != "/"
                or t == "/" and front_page_purges.pop(0)]

    front_page_purges: list = []
    real_call = fake.__call__

    def recording(node, items, settings, **kwargs):
        front_page_purges.extend(item.method == "PURGE" for item in items if item.target == "/")
        return real_call(node, items, settings, **kwargs)

    worker.deliver = recording

    update(7)
    first = sent_now()
    assert "/" in first and "/2026/11/26/post-7/" in first       # not purged recently: at once
    clock.advance(0.01)
    update(8)                                                      # shares the front page with post 7
    second = sent_now()
    assert "/2026/11/26/post-8/" in second and "/" not in second    # its own URL at once, the hot one held
    assert queue.journal_pending() == 1                             # post 8's event waits for its held URLs
    for _ in range(5):                                              # more updates within the window: merged
        clock.advance(0.005)
        update(8)
        assert "/" not in sent_now()
    clock.advance(0.03)                                             # a window after "/" and post 8 last left
    trailing = sent_now()
    assert trailing.count("/") == 1 and trailing.count("/2026/11/26/post-8/") == 1                                # the trailing purge, once for all updates
    assert queue.journal_pending() == 0                             # every event is out of the node's hands
    assert sent_now() == []                                         # nothing left over
    clock.advance(0.2)
    update(9)                                                       # quiet again: at once
    assert "/" in sent_now()


def test_stop_sends_the_urls_held_for_their_window(queue):
    """A graceful stop does not leave hot URLs for the next start: they go, and their events are marked."""
    from fixtures.app import event_body, post_change

    settings = make_settings()
    fake = FakeDeliver()
    worker = Worker(queue, settings, deliver=fake, poll=0.05, window=30.0).start()
    body = json.dumps(event_body([post_change(7)])).encode()
    try:
        queue.append("wordpress", "blog.example.test", body, None)
        assert wait_until(lambda: all(fake.sent(n.name).count("/2026/11/26/post-7/") == 1 for n in settings.nodes))
        queue.append("wordpress", "blog.example.test", body, None)   # the same post again: held for 30 s
        assert wait_until(lambda: all(entry["inbox"] > 0 for entry in worker.node_status()))
    finally:
        assert worker.stop(timeout=5)
    for node in settings.nodes:
        assert fake.sent(node.name).count("/2026/11/26/post-7/") == 2, fake.calls
    assert queue.journal_pending() == 0


def test_a_window_of_zero_sends_every_update():
    from purgebridge.worker.inbox import Inbox

    inbox = Inbox(0.0)
    item = url("/x/")
    for n in range(3):
        inbox.put(n + 1, {item.key: (item, 1.0, 1.0)})
        taken = inbox.take(10.0)
        assert list(taken.items) == [item.key] and taken.covered == n + 1 and taken.due is None


def test_a_held_url_holds_the_batches_it_carries_and_no_later_one():
    """The inbox says which batches are out of its hands: a held URL keeps its oldest batch open."""
    from purgebridge.worker.inbox import Inbox

    inbox = Inbox(0.1)
    hot, cold, other = url("/hot/"), url("/cold/"), url("/other/")
    inbox.put(1, {hot.key: (hot, 1.0, 1.0)})
    assert inbox.take(100.0).covered == 1
    inbox.put(2, {hot.key: (hot, 2.0, 2.0), cold.key: (cold, 2.0, 2.0)})
    inbox.put(3, {hot.key: (hot, 3.0, 3.0)})
    taken = inbox.take(100.03)
    assert list(taken.items) == [cold.key] and taken.covered == 1 and taken.due == pytest.approx(0.07)
    assert inbox.oldest == 2.0 and len(inbox) == 1
    inbox.put(4, {other.key: (other, 4.0, 4.0)})
    assert list(inbox.take(100.05).items) == [other.key]
    taken = inbox.take(100.1)
    assert list(taken.items) == [hot.key] and taken.items[hot.key][1:] == (2.0, 3.0) and taken.covered == 4
    assert taken.due is None and inbox.oldest is None


def test_purges_put_back_after_a_failed_requeue_keep_their_batch_open():
    """A batch whose purges could not even be queued is not reported out of the inbox while they wait."""
    from purgebridge.worker.inbox import Inbox

    inbox = Inbox(0.1)
    a, b = url("/a/"), url("/b/")
    inbox.put(1, {a.key: (a, 1.0, 1.0)})
    taken = inbox.take(100.0)
    inbox.put(2, {b.key: (b, 2.0, 2.0)})                # the expander goes on meanwhile
    inbox.restore(taken.items, seq=1)                  # requeueing /a/ failed: back in, still batch 1's
    taken = inbox.take(100.01)                         # /b/ goes, /a/ is hot (left at 100.0)
    assert list(taken.items) == [b.key] and taken.covered == 0


def test_a_down_node_is_tried_once_per_backoff_not_once_per_due_batch(queue):
    """2,000 queued purges for a node that does not answer: one batch per backoff interval reaches for it."""
    settings = make_settings(PURGEBRIDGE_NODES="127.0.0.1:9001", PURGEBRIDGE_BACKOFF="0.2",
                             PURGEBRIDGE_BACKOFF_MAX="0.4")
    fake = FakeDeliver(lambda node, item: (Outcome.FAILED, None, "connection refused"))
    queue.enqueue(["127.0.0.1:9001"], [url(f"/p/{n}/") for n in range(2000)], "wordpress")
    worker = Worker(queue, settings, deliver=fake, poll=0.05).start()
    try:
        time.sleep(1.0)
    finally:
        worker.stop(timeout=5)
    # 1 s at 0.1-0.4 s of backoff: a handful of tries, not every 512-row batch every time rows fall due.
    assert 1 <= len(fake.calls) <= 8, len(fake.calls)
    assert queue.stats()["depth"] == 2000 and queue.stats()["dead"] == 0


def test_a_node_answering_purgekeys_501_is_remembered_and_its_key_purges_skipped(queue):
    """Queued path: the 501 settles the key purge as skipped (no retry, no dead letter); later ones are not sent."""
    from purgebridge.core.invalidation import keys_for

    settings = make_settings(PURGEBRIDGE_NODES="127.0.0.1:9001")
    node = settings.nodes[0]
    fake = FakeDeliver(lambda node, item: (Outcome.FAILED, 501, "HTTP 501 Not Implemented")
                       if item.method == "PURGEKEYS" else (Outcome.PURGED, 200, "HTTP 200 OK"))
    metrics = Metrics(queue)
    worker = Worker(queue, settings, deliver=fake, metrics=metrics)
    queue.enqueue([node.name], [url("/a/"), *keys_for("blog.example.test", ["post-1"])], "wordpress")
    worker.process(node, queue.claim(node.name))
    state = worker.states[node.name]
    assert (state.keys, state.up, worker.senders[node.name].is_down()) == (False, True, False)
    stats = queue.stats()
    assert stats["depth"] == 0 and stats["dead"] == 0
    assert stats["nodes"][node.name]["totals"] == {"purged": 1, "skipped": 1}
    queue.enqueue([node.name], [url("/b/"), *keys_for("blog.example.test", ["post-2"])], "wordpress")
    worker.process(node, queue.claim(node.name))
    assert [target for _name, targets in fake.calls for target in targets] == ["/a/", "/", "/b/"]
    assert queue.stats()["depth"] == 0
    assert 'purgebridge_purges_total{node="127.0.0.1:9001",outcome="skipped"} 2.0' in metrics.render().decode()


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


def test_each_dead_lettered_group_is_logged_once(queue, caplog):
    """Issue 24: the store and the worker both logged a dead letter; the worker's line (with the retry command) stays."""
    settings = make_settings(PURGEBRIDGE_NODES="127.0.0.1:9001", PURGEBRIDGE_SITES="blog.example.test")
    node = settings.nodes[0]
    worker = Worker(queue, settings, deliver=FakeDeliver(lambda node, item: (Outcome.REFUSED, 403, "HTTP 403")))
    queue.enqueue([node.name], [url("/a/"), url("/b/")], "wordpress")
    with caplog.at_level(logging.INFO, logger="purgebridge"):
        worker.process(node, queue.claim(node.name))
        queue.enqueue([node.name], [url("/c/")], "wordpress", now=time.time() - 2 * settings.max_age)
        worker.housekeep()
    lines = [r.getMessage() for r in caplog.records
             if "dead-lettered" in r.getMessage() and "refuses purges" not in r.getMessage()]
    assert len(lines) == 2, lines
    assert "2 purge(s) dead-lettered" in lines[0] and "queue retry --node 127.0.0.1:9001" in lines[0]
    assert "1 purge(s) dead-lettered after" in lines[1]


def test_no_ban_for_dead_letters_when_switched_off(queue):
    settings = make_settings(PURGEBRIDGE_SITES="blog.example.test", PURGEBRIDGE_DEAD_LETTER_BAN="false")
    worker = Worker(queue, settings, deliver=FakeDeliver())
    queue.enqueue([settings.nodes[0].name], [url("/a/")], "wordpress", now=time.time() - 2 * settings.max_age)
    assert worker.housekeep() == {settings.nodes[0].name: 1}
    assert queue.claim(settings.nodes[0].name) == []


def test_a_failing_mark_is_retried_alone_never_the_purges(queue, monkeypatch, caplog):
    """Issue 13.8: with a full disk the mark of delivered events failed and the purges were sent again and again."""
    import sqlite3

    settings = make_settings()
    fake = FakeDeliver()
    failures = {"left": 6}
    real = queue.finish_expansion

    def full_disk(*args, **kwargs):
        if failures["left"]:
            failures["left"] -= 1
            raise sqlite3.OperationalError("database or disk is full")
        return real(*args, **kwargs)

    monkeypatch.setattr(queue, "finish_expansion", full_disk)
    from fixtures.app import event_body, post_change

    body = json.dumps(event_body([post_change(7)]))
    worker = Worker(queue, settings, deliver=fake, poll=0.05).start()
    try:
        with caplog.at_level(logging.ERROR, logger="purgebridge.worker.recorder"):
            queue.append("wordpress", "blog.example.test", body.encode(), None)
            assert wait_until(lambda: failures["left"] == 0 and queue.stats()["journal_pending"] == 0)
        for node in settings.nodes:
            assert fake.sent(node.name).count("/2026/11/26/post-7/") == 1, fake.calls
        assert len([r for r in caplog.records if "marking" in r.getMessage()]) == 1
    finally:
        assert worker.stop(timeout=5)


def test_purges_leave_before_their_bookkeeping_and_a_slow_mark_holds_no_node_back(queue, monkeypatch):
    """Purge first, record afterwards: the mark is the recorder thread's, never a node thread's.

    While the mark of the first event hangs (a slow disk), both nodes still
    get the second event at once; the journal catches up when the disk does.
    """
    from fixtures.app import event_body, post_change

    settings = make_settings()
    fake = FakeDeliver()
    disk = threading.Event()
    real = queue.finish_expansion

    def slow_disk(*args, **kwargs):
        assert disk.wait(10), "the test never let the disk go on"
        return real(*args, **kwargs)

    monkeypatch.setattr(queue, "finish_expansion", slow_disk)
    worker = Worker(queue, settings, deliver=fake, poll=0.05).start()
    try:
        for post in (7, 8):
            queue.append("wordpress", "blog.example.test", json.dumps(event_body([post_change(post)])).encode(), None)
            assert wait_until(lambda: all(f"/2026/11/26/post-{post}/" in fake.sent(node.name)
                                          for node in settings.nodes), timeout=5), fake.calls
        assert queue.journal_pending() == 2  # both sent, neither recorded yet
        disk.set()
        assert wait_until(lambda: queue.journal_pending() == 0)
    finally:
        disk.set()
        assert worker.stop(timeout=5)


@pytest.mark.filterwarnings("ignore::pytest.PytestUnhandledThreadExceptionWarning")  # the recorder "dies"
def test_events_sent_but_not_yet_recorded_are_sent_again_after_a_crash(tmp_path, monkeypatch):
    """A crash between the purges and their bookkeeping loses nothing: the next start sends them again."""
    from fixtures.app import event_body, post_change

    settings = make_settings()
    first = Queue(tmp_path / "q.sqlite3")
    crashed = threading.Event()

    def crash(*args, **kwargs):  # the process dies while writing the mark: it never lands
        crashed.set()
        raise SystemExit("killed")

    monkeypatch.setattr(first, "finish_expansion", crash)
    fake = FakeDeliver()
    worker = Worker(first, settings, deliver=fake, poll=0.05).start()
    first.append("wordpress", "blog.example.test", json.dumps(event_body([post_change(7)])).encode(), None)
    assert crashed.wait(5)
    assert all("/2026/11/26/post-7/" in fake.sent(node.name) for node in settings.nodes)
    worker._stopping.set()  # the "dead" process's node threads stop too; its recorder thread is gone
    first.notify()
    for thread in worker._threads:
        thread.join(5)
    first.close()
    again = Queue(tmp_path / "q.sqlite3")
    resent = FakeDeliver()
    worker = Worker(again, settings, deliver=resent, poll=0.05).start()
    try:
        assert wait_until(lambda: again.journal_pending() == 0)
        for node in settings.nodes:
            assert resent.sent(node.name).count("/2026/11/26/post-7/") == 1, resent.calls
    finally:
        assert worker.stop(timeout=5)
        again.close()


def test_the_expander_reads_the_journal_once_per_batch_and_sleeps_until_the_next_commit(queue, monkeypatch):
    """Filling the inboxes wakes the node threads only, not the expander for a second, empty read."""
    from fixtures.app import event_body, post_change

    settings = make_settings()
    fake = FakeDeliver()
    reads = []
    real = queue.pending_events

    def counted(*args, **kwargs):
        found = real(*args, **kwargs)
        reads.append(len(found))
        return found

    monkeypatch.setattr(queue, "pending_events", counted)
    worker = Worker(queue, settings, deliver=fake, poll=5.0).start()
    try:
        assert wait_until(lambda: reads == [0])  # the first look at start: nothing yet
        queue.append("wordpress", "blog.example.test", json.dumps(event_body([post_change(7)])).encode(), None)
        assert wait_until(lambda: queue.journal_pending() == 0 and len(fake.calls) == len(settings.nodes))
        time.sleep(0.2)
        assert reads == [0, 1]
    finally:
        assert worker.stop(timeout=5)
