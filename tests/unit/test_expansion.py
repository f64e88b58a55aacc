"""The accept path's journal: group commit, replays inside a group, bounded waits, expansion and crashes."""

import json
import sqlite3
import threading
import time

import pytest

from fixtures.app import SITE, app_overrides, encode, event_body, expand_pending, post_change, send_event, signed_headers
from purgebridge.worker import expansion as journal
from purgebridge.api.app import create_app
from purgebridge.config.settings import load_settings
from purgebridge.core.errors import SignatureError
from purgebridge.delivery.fanout import Outcome, Result
from purgebridge.core.errors import QueueBusy, QueueClosed, QueueError
from purgebridge.core.mapping import MappingOptions
from purgebridge.store.sqlite import Queue
from purgebridge.worker.worker import Worker
from fixtures.queue import wait_until
from fixtures.queue import HOST, body_for, in_threads, lock_held_by_another_process, wait_until
from fixtures.queue import SlowWrites, signature_of, writer_held

NODES = ["127.0.0.1:9001", "127.0.0.1:9002"]


def options_for(host):
    return MappingOptions()


def wait_for_pending_appends(queue, count):
    deadline = time.monotonic() + 5
    while queue.writer.pending_appends() < count and time.monotonic() < deadline:
        time.sleep(0.005)
    assert queue.writer.pending_appends() == count


def events_rows(queue):
    return queue._db().execute("SELECT COUNT(*) FROM events").fetchone()[0]


# --- group commit ---------------------------------------------------------------------------------

def test_concurrent_appends_share_commits_and_all_are_stored(queue):
    slow = SlowWrites(queue, hold=0.01)
    ids = []

    def post(n):
        for i in range(10):
            ids.append(queue.append("wordpress", HOST, body_for(n * 100 + i), signature_of(n * 100 + i)))

    assert in_threads(post, 16) == [] and len(set(ids)) == 160
    assert events_rows(queue) == 160 and queue.journal_pending() == 160
    assert queue._db().execute("SELECT COUNT(*) FROM signatures").fetchone()[0] == 160
    assert queue.writer.appended == 160
    assert queue.writer.commits == len(slow.groups) < 160 / 4, slow.groups   # many events per commit
    assert max(slow.groups) > 1
    assert queue.stats()["totals"]["events"] == 160


def test_append_returns_only_after_the_commit(queue, tmp_path):
    """Another connection (another process) sees the event as soon as append returned."""
    event_id = queue.append("wordpress", HOST, body_for(1), signature_of(1))
    other = sqlite3.connect(tmp_path / "q.sqlite3")
    try:
        row = other.execute("SELECT source, site, signature, expanded_at FROM events WHERE id = ?",
                            (event_id,)).fetchone()
    finally:
        other.close()
    assert row == ("wordpress", HOST, signature_of(1), None)


def test_many_http_posts_at_once_are_all_accepted_with_fewer_commits(tmp_path):
    app = create_app(app_overrides(tmp_path), environ={})
    queue = app.extensions["purgebridge"].queue
    slow = SlowWrites(queue, hold=0.01)
    statuses = []

    def post(n):
        client = app.test_client()
        for i in range(5):
            statuses.append(send_event(client, body=event_body([post_change(n * 10 + i)])).status_code)

    try:
        threads = [threading.Thread(target=post, args=(n,)) for n in range(12)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(30)
        assert statuses == [202] * 60
        assert events_rows(queue) == 60
        assert queue.writer.commits == len(slow.groups) < 60 / 2, slow.groups
    finally:
        app.extensions["purgebridge"].close()


# --- replays, busy, closed ----------------------------------------------------------------------------

def test_replay_inside_one_group_gets_one_202_and_one_409(tmp_path):
    app = create_app(app_overrides(tmp_path), environ={})
    queue = app.extensions["purgebridge"].queue
    slow = SlowWrites(queue)
    raw = encode(event_body())
    headers = signed_headers(raw)
    statuses = []

    def post():
        statuses.append(app.test_client().post("/v1/events/wordpress", data=raw, headers=headers).status_code)

    try:
        threads = [threading.Thread(target=post) for _ in range(2)]
        with writer_held(queue):   # the writer is busy: both requests end up in the same group
            for thread in threads:
                thread.start()
            wait_for_pending_appends(queue, 2)
        for thread in threads:
            thread.join(10)
        assert sorted(statuses) == [202, 409]
        assert slow.groups[-1] == 2                       # one transaction saw both
        assert events_rows(queue) == 1
        assert queue._db().execute("SELECT COUNT(*) FROM signatures").fetchone()[0] == 1
    finally:
        app.extensions["purgebridge"].close()


def test_replay_of_a_stored_signature_stores_nothing(queue):
    queue.append("wordpress", HOST, body_for(1), signature_of(7))
    with pytest.raises(SignatureError) as info:
        queue.append("wordpress", HOST, body_for(2), signature_of(7))
    assert info.value.replay
    assert events_rows(queue) == 1
    assert queue.stats()["totals"]["events"] == 1


def test_old_signature_outside_the_window_is_accepted_again(tmp_path):
    clock = [1_800_000_000.0]
    q = Queue(tmp_path / "q.sqlite3", clock=lambda: clock[0])
    try:
        q.append("wordpress", HOST, body_for(1), signature_of(8))
        clock[0] += 301
        q.append("wordpress", HOST, body_for(1), signature_of(8))
        assert events_rows(q) == 2
    finally:
        q.close()


def test_append_not_written_in_time_is_withdrawn_and_503(tmp_path):
    app = create_app(app_overrides(tmp_path), environ={})
    queue = app.extensions["purgebridge"].queue
    queue.append_wait = 0.2
    try:
        with lock_held_by_another_process(queue):   # longer than the bound
            response = send_event(app.test_client())
        assert response.status_code == 503 and "busy" in response.json["error"]
        time.sleep(0.1)   # the writer gets the lock now: the withdrawn event must not be written
        assert events_rows(queue) == 0
        assert queue._db().execute("SELECT COUNT(*) FROM signatures").fetchone()[0] == 0
        assert send_event(app.test_client()).status_code == 202   # and the journal still works
    finally:
        app.extensions["purgebridge"].close()


def test_busy_is_raised_by_the_journal(queue):
    queue.append_wait = 0.1
    with writer_held(queue):
        with pytest.raises(QueueBusy):
            queue.append("wordpress", HOST, body_for(1), signature_of(1))


def test_close_writes_what_is_waiting_then_refuses(queue):
    results = []
    thread = threading.Thread(target=lambda: results.append(queue.append("wordpress", HOST, body_for(1),
                                                                             signature_of(1))))
    with writer_held(queue):
        thread.start()
        wait_for_pending_appends(queue, 1)
        closer = threading.Thread(target=queue.writer.close)
        closer.start()
        time.sleep(0.05)
        with pytest.raises(QueueClosed):
            queue.append("wordpress", HOST, body_for(2), signature_of(2))
    closer.join(10)
    thread.join(10)
    assert len(results) == 1 and events_rows(queue) == 1


def test_write_failure_answers_every_request_and_stores_nothing(queue):
    def broken(db, entries):
        raise sqlite3.OperationalError("disk I/O error")

    queue.writer._write_group = broken
    with pytest.raises(QueueError):
        queue.append("wordpress", HOST, body_for(1), signature_of(1))
    assert events_rows(queue) == 0


# --- expansion ---------------------------------------------------------------------------------------

def test_expansion_coalesces_across_events(queue):
    for n in range(50):
        queue.append("wordpress", HOST, body_for(n), signature_of(n))
    assert queue.stats()["depth"] == 50 and queue.stats()["journal_pending"] == 50
    assert journal.expand(queue, NODES, options_for, limit=500) == 50
    db = queue._db()
    front = db.execute("SELECT node, merges FROM deliveries WHERE item LIKE ?",
                       ('%"label":"https://blog.example.test/"%',)).fetchall()
    assert sorted(node for node, _merges in front) == NODES     # one front-page purge per node
    per_node = db.execute("SELECT COUNT(*) FROM deliveries WHERE node = ?", (NODES[0],)).fetchone()[0]
    totals = queue.stats()["totals"]
    naive = sum(count for (count,) in db.execute("SELECT items FROM events"))
    assert naive > 50 * 30 and per_node < naive / 2
    assert totals["rows"] == 2 * per_node and totals["merged"] == 2 * naive - totals["rows"]
    assert totals["expanded"] == 50 and queue.journal_pending() == 0
    assert db.execute("SELECT COUNT(*) FROM events WHERE body IS NOT NULL").fetchone()[0] == 0
    # Every URL each event maps to is queued for every node.
    keys = {row[0] for row in db.execute("SELECT key FROM deliveries WHERE node = ?", (NODES[1],))}
    assert any("post-49/" in key for key in keys) and any("post-0/" in key for key in keys)


def test_expansion_merges_into_rows_already_waiting_and_keeps_times(queue):
    queue.append("wordpress", HOST, body_for(1), signature_of(1))
    journal.expand(queue, NODES, options_for)
    first = queue._db().execute("SELECT first_at, last_at FROM deliveries WHERE node = ? AND item LIKE ?",
                                (NODES[0], '%"label":"https://blog.example.test/"%')).fetchone()
    time.sleep(0.01)
    queue.append("wordpress", HOST, body_for(2), signature_of(2))
    journal.expand(queue, NODES, options_for)
    rows = queue._db().execute("SELECT first_at, last_at, merges FROM deliveries WHERE node = ? AND item LIKE ?",
                               (NODES[0], '%"label":"https://blog.example.test/"%')).fetchall()
    assert len(rows) == 1
    assert rows[0][0] == first[0] and rows[0][1] > first[1] and rows[0][2] == 1


def test_keys_of_a_batch_become_one_purgekeys_per_node(queue):
    for n in range(5):
        queue.append("wordpress", HOST, body_for(n), signature_of(n))
    journal.expand(queue, NODES, options_for)
    rows = queue._db().execute("SELECT item FROM deliveries WHERE node = ? AND key LIKE 'PURGEKEYS%'",
                               (NODES[0],)).fetchall()
    assert len(rows) == 1
    header = json.loads(rows[0][0])["headers"][0][1].split()
    assert {"post-0", "post-4", "front"} <= set(header)


def test_purge_all_in_a_batch_replaces_that_hosts_urls(queue):
    queue.append("wordpress", HOST, body_for(1), signature_of(1))
    queue.append("wordpress", HOST, encode(event_body([{"kind": "site", "action": "purge_all"}])), signature_of(2))
    journal.expand(queue, NODES, options_for)
    items = [json.loads(r[0]) for r in queue._db().execute("SELECT item FROM deliveries WHERE node = ?",
                                                             (NODES[0],))]
    assert [(i["method"], i["host"]) for i in items] == [("BAN", HOST)]


def test_an_event_that_cannot_be_mapped_does_not_block_the_journal(queue):
    queue.append("wordpress", HOST, b"not json", signature_of(1))
    queue.append("wordpress", HOST, body_for(2), signature_of(2))
    assert journal.expand(queue, NODES, options_for) == 2
    assert queue.journal_pending() == 0
    assert queue.stats()["totals"]["expansion_failed"] == 1
    assert queue.stats()["nodes"][NODES[0]]["pending"] > 10


def test_crash_during_expansion_leaves_the_journal_for_the_next_run(queue):
    queue.append("wordpress", HOST, body_for(1), signature_of(1))
    original = queue.store_expansion

    def crash(nodes, events, items, failed=0, now=None):
        def half_written(db):   # half the rows written, then the process "dies" mid-transaction
            db.execute("INSERT INTO deliveries(node, key, item, state, event_id, first_at, last_at, next_at) "
                       "VALUES ('x', 'k', '{}', 'ready', 'e', 0, 0, 0)")
            raise RuntimeError("killed")
        queue._write(half_written)

    queue.store_expansion = crash
    with pytest.raises(RuntimeError):
        journal.expand(queue, NODES, options_for)
    assert queue.journal_pending() == 1 and queue.stats()["nodes"] == {}
    queue.store_expansion = original
    assert journal.expand(queue, NODES, options_for) == 1
    assert queue.journal_pending() == 0 and queue.stats()["nodes"][NODES[0]]["pending"] > 10


# --- the worker's expander ----------------------------------------------------------------------------

class Recorder:
    def __init__(self):
        self.sent = []
        self.lock = threading.Lock()

    def __call__(self, node, items, settings, retries=None, **kwargs):
        with self.lock:
            self.sent.extend((node.name, item.label) for item in items)
        return [Result(node, item, Outcome.PURGED, 200, "HTTP 200 OK", 1, 0.0) for item in items]


def make_settings(backoff="0.01"):
    return load_settings({"PURGEBRIDGE_NODES": ",".join(NODES), "PURGEBRIDGE_BACKOFF": backoff,
                          "PURGEBRIDGE_BACKOFF_MAX": max(backoff, "0.05")}, environ={}, dotenv_path="")


def test_journal_left_by_a_killed_relay_is_expanded_and_sent_by_the_next_worker(tmp_path):
    """Journal committed, no deliveries (killed before expansion): a new worker expands and sends everything."""
    first = Queue(tmp_path / "q.sqlite3")
    for n in range(3):
        first.append("wordpress", HOST, body_for(n), signature_of(n))
    first.close()   # no worker ever ran: as after a SIGKILL between the 202 and the expansion
    q = Queue(tmp_path / "q.sqlite3")
    assert q.journal_pending() == 3 and q.stats()["depth"] == 3
    fake = Recorder()
    worker = Worker(q, make_settings(), deliver=fake, poll=0.05).start()
    try:
        assert wait_until(lambda: q.stats()["depth"] == 0)
    finally:
        worker.stop(timeout=5)
        q.close()
    for node in NODES:
        labels = {label for name, label in fake.sent if name == node}
        assert {f"{SITE}/2026/11/26/post-{n}/" for n in range(3)} <= labels
        assert f"{SITE}/" in labels


def test_worker_expands_new_events_at_once(tmp_path):
    q = Queue(tmp_path / "q.sqlite3")
    fake = Recorder()
    worker = Worker(q, make_settings(), deliver=fake, poll=30).start()
    try:
        time.sleep(0.05)
        started = time.monotonic()
        q.append("wordpress", HOST, body_for(5), signature_of(5))
        assert wait_until(lambda: q.stats()["depth"] == 0 and fake.sent, timeout=5)
        assert time.monotonic() - started < 1.0   # woken by the append, not the 30 s poll
    finally:
        worker.stop(timeout=5)
        q.close()


def test_stop_expands_what_is_committed(tmp_path):
    q = Queue(tmp_path / "q.sqlite3")
    worker = Worker(q, make_settings(), deliver=Recorder(), poll=30)
    for n in range(20):
        q.append("wordpress", HOST, body_for(n), signature_of(n))
    worker.stop(timeout=5)   # never started: nothing sent, but the journal is expanded
    try:
        assert q.journal_pending() == 0 and q.stats()["pending"] > 20
    finally:
        q.close()


def test_version_1_queue_file_is_migrated_and_not_expanded_again(tmp_path):
    path = tmp_path / "old.sqlite3"
    db = sqlite3.connect(path)
    db.executescript("""
        CREATE TABLE events (id TEXT PRIMARY KEY, source TEXT NOT NULL, site TEXT NOT NULL DEFAULT '',
                             received_at REAL NOT NULL, items INTEGER NOT NULL, rows INTEGER NOT NULL,
                             merged INTEGER NOT NULL);
        INSERT INTO events VALUES ('old', 'wordpress', 'blog.example.test', 1.0, 30, 60, 0);
        PRAGMA user_version = 1;
    """)
    db.close()
    q = Queue(path)
    try:
        assert q.journal_pending() == 0
        q.append("wordpress", HOST, body_for(1), signature_of(1))
        assert q.journal_pending() == 1
        assert q._db().execute("PRAGMA user_version").fetchone()[0] == 2
    finally:
        q.close()


def test_status_shows_journal_pending(tmp_path):
    from fixtures.app import ADMIN_TOKEN, bearer

    app = create_app(app_overrides(tmp_path), environ={})
    try:
        client = app.test_client()
        assert send_event(client).status_code == 202
        queue = client.get("/v1/status", headers=bearer(ADMIN_TOKEN)).json["queue"]
        assert queue["journal_pending"] == 1 and queue["depth"] == 1
        expand_pending(app)
        queue = client.get("/v1/status", headers=bearer(ADMIN_TOKEN)).json["queue"]
        assert queue["journal_pending"] == 0 and queue["depth"] > 10
    finally:
        app.extensions["purgebridge"].close()


# --- the worker's direct path ---------------------------------------------------------------------------

class Answering(Recorder):
    """Like Recorder, but ``down`` nodes do not answer (no status), as a stopped varnishd."""

    def __init__(self, down=()):
        super().__init__()
        self.down = set(down)

    def __call__(self, node, items, settings, retries=None, **kwargs):
        with self.lock:
            self.sent.extend((node.name, item.label) for item in items)
        if node.name in self.down:
            return [Result(node, item, Outcome.FAILED, None, "connection refused", 1, 0.0) for item in items]
        return [Result(node, item, Outcome.PURGED, 200, "HTTP 200 OK", 1, 0.0) for item in items]


def test_direct_path_writes_no_delivery_rows_and_marks_events_after_every_node(tmp_path):
    q = Queue(tmp_path / "q.sqlite3")
    worker = Worker(q, make_settings(), deliver=Answering())
    try:
        q.append("wordpress", HOST, body_for(1), signature_of(1))
        assert worker.dispatch() == 1
        first = worker.nodes[0]
        worker.send_direct(first)
        assert q.journal_pending() == 1            # one node still to go: the event is not done
        worker.send_direct(worker.nodes[1])
        assert q.journal_pending() == 0
        assert q._db().execute("SELECT COUNT(*) FROM deliveries").fetchone()[0] == 0
        stats = q.stats()
        per_node = len([1 for name, _label in worker.deliver.sent if name == first.name])
        assert stats["nodes"][first.name]["totals"]["purged"] == per_node > 10
    finally:
        q.close()


def test_direct_path_requeues_what_a_down_node_missed_and_skips_it_while_down(tmp_path):
    q = Queue(tmp_path / "q.sqlite3")
    down = NODES[1]
    fake = Answering(down=[down])
    worker = Worker(q, make_settings(backoff="5"), deliver=fake)   # still down when the second event comes
    try:
        q.append("wordpress", HOST, body_for(1), signature_of(1))
        worker.dispatch()
        for node in worker.nodes:
            worker.send_direct(node)
        assert q.journal_pending() == 0            # the down node's share is in the durable queue now
        waiting = q.stats()["nodes"][down]["pending"]
        assert waiting > 10 and q.stats()["nodes"].get(NODES[0], {}).get("pending", 0) == 0
        attempts = len(fake.sent)
        q.append("wordpress", HOST, body_for(2), signature_of(2))
        worker.dispatch()
        worker.send_direct(worker.nodes[1])        # inside its backoff: queued without a connection attempt
        assert len(fake.sent) == attempts
        assert q.stats()["nodes"][down]["pending"] > waiting
    finally:
        q.close()


def test_a_crash_before_the_mark_sends_the_events_again_at_the_next_start(tmp_path):
    q = Queue(tmp_path / "q.sqlite3")
    worker = Worker(q, make_settings(), deliver=Answering())
    q.append("wordpress", HOST, body_for(1), signature_of(1))
    worker.dispatch()
    worker.send_direct(worker.nodes[0])            # then the process dies: node 2 never got it
    q.close()
    again = Queue(tmp_path / "q.sqlite3")
    fake = Answering()
    try:
        worker = Worker(again, make_settings(), deliver=fake).start()
        assert wait_until(lambda: again.journal_pending() == 0 and again.stats()["depth"] == 0)
        assert {name for name, _label in fake.sent} == set(NODES)
    finally:
        worker.stop(timeout=5)
        again.close()




def test_site_purge_of_a_subdirectory_site_bans_its_path_and_keeps_other_urls(queue):
    """On a host shared by a network's sites, one site's purge must not wipe the others' purges."""
    other = encode(event_body([post_change(7)]))
    queue.append("wordpress", HOST, other, signature_of(1))
    site2 = event_body([{"kind": "site", "action": "purge_all"}], site=f"https://{HOST}/blog2")
    queue.append("wordpress", HOST, encode(site2), signature_of(2))
    journal.expand(queue, NODES, options_for)
    items = [json.loads(r[0]) for r in queue._db().execute("SELECT item FROM deliveries WHERE node = ?",
                                                             (NODES[0],))]
    bans = [i for i in items if i["method"] == "BAN"]
    assert [dict(b["headers"])["X-Ban-Url"] for b in bans] == [r"^/blog2(?:/|\?|$)"]
    assert any(i["method"] == "PURGE" for i in items)
