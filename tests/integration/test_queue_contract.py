"""One contract for every queue backend: the same tests on SQLite and on Redis Streams.

Each test gets ``make``, a factory of queues on ONE store (a SQLite file, or
a Redis database): two queues from it are two relays sharing the work. Time
is real and short (leases and backoffs of a few tenths of a second) because
Redis measures a lease in its own clock (``XAUTOCLAIM``'s idle time), not in
a ``now`` the test could pass. Backend-only behaviour (SQLite's start-up
``release_leases``, its file format) stays in test_queue.py / test_journal.py.
"""

import json
import threading
import time

import pytest

from purgebridge.core.errors import SignatureError
from purgebridge.core.invalidation import purge_for_url
from purgebridge.store.sqlite import Queue

NODES = ["a", "b"]


def url(path):
    return purge_for_url(f"https://blog.example.test{path}")


def item_row(path, at):
    item = url(path)
    return item.key, json.dumps(item.to_dict(), separators=(",", ":")), at, at


@pytest.fixture(params=["sqlite", "redis"])
def make(request, tmp_path):
    """``make(**kwargs)`` -> a queue on this test's store; every one made is closed afterwards."""
    made = []
    defaults = {"backoff": 0.2, "backoff_max": 1.0, "max_age": 3600, "rng": lambda: 1.0}
    if request.param == "sqlite":
        path = tmp_path / "q.sqlite3"

        def build(**kwargs):
            return Queue(path, **{**defaults, **kwargs})
    else:
        from purgebridge.store.redis import RedisQueue

        location = request.getfixturevalue("redis_url")

        def build(**kwargs):
            return RedisQueue(location, **{**defaults, "journal_idle": 0.3, **kwargs})

    def factory(**kwargs):
        queue = build(**kwargs)
        made.append(queue)
        return queue

    factory.backend = request.param
    yield factory
    for queue in made:
        queue.close()


@pytest.fixture
def queue(make):
    return make()


def leftovers(queue):
    """What a backend still stores for deliveries and journal entries that are done (must be nothing)."""
    if isinstance(queue, Queue):
        db = queue._db()
        found = {"deliveries": db.execute("SELECT COUNT(*) FROM deliveries").fetchone()[0],
                 "event bodies": db.execute("SELECT COUNT(*) FROM events WHERE body IS NOT NULL").fetchone()[0]}
        return {k: v for k, v in found.items() if v}
    r, p = queue.redis, queue.prefix
    found = {"records": len(list(r.scan_iter(match=f"{p}rec:*", count=1000))),
             "items": len(list(r.scan_iter(match=f"{p}item:*", count=1000))),
             "events stream": r.xlen(f"{p}events")}
    for node in queue._nodes():
        found[f"q:{node}"] = r.xlen(f"{p}q:{node}")
        found[f"ready:{node}"] = r.hlen(f"{p}ready:{node}")
        found[f"age:{node}"] = r.zcard(f"{p}age:{node}")
        found[f"last:{node}"] = r.zcard(f"{p}last:{node}")
        found[f"pending:{node}"] = r.xpending(f"{p}q:{node}", "workers")["pending"]
    return {k: v for k, v in found.items() if v}


def drain(queue, node, lease=30.0):
    got = []
    while True:
        claims = queue.claim(node, limit=100, lease=lease)
        if not claims:
            return got
        got.extend(c.item["target"] for c in claims)
        queue.ack(claims)


# --- accepted means stored -----------------------------------------------------------------------

def test_enqueued_rows_are_visible_to_another_relay_at_once(make):
    first, second = make(), make()
    got = first.enqueue(NODES, [url("/x/"), url("/y/"), url("/x/")], "wordpress")
    assert (got.items, got.rows, got.merged) == (2, 4, 0)
    assert sorted(c.item["target"] for c in second.claim("a")) == ["/x/", "/y/"]
    stats = second.stats()
    assert stats["nodes"]["b"]["pending"] == 2 and stats["nodes"]["a"]["in_flight"] == 2
    assert stats["depth"] == 4 and stats["totals"]["events"] == 1


def test_appended_event_is_stored_before_append_returns(make):
    first, second = make(), make()
    event_id = first.append("wordpress", "blog.example.test", b'{"k": 1}', "sha256=01")
    assert second.journal_pending() == 1
    assert second.stats()["depth"] == 1
    ((got_id, source, site, body, received_at),) = second.pending_events()
    assert (got_id, source, site, json.loads(body)) == (event_id, "wordpress", "blog.example.test", {"k": 1})
    assert abs(received_at - time.time()) < 5


# --- replay detection ------------------------------------------------------------------------------

def test_replayed_signature_is_refused_and_stores_nothing(make):
    first, second = make(), make()
    first.append("wordpress", "h", b"{}", "sha256=ab")
    with pytest.raises(SignatureError) as info:
        second.append("wordpress", "h", b"{}", "sha256=ab")
    assert info.value.replay
    assert first.journal_pending() == 1
    first.enqueue(["a"], [url("/x/")], "webhook", signature="sha256=cd")
    with pytest.raises(SignatureError):
        second.enqueue(["a"], [url("/y/")], "webhook", signature="sha256=cd")
    assert [c.item["target"] for c in second.claim("a")] == ["/x/"]


def test_replays_racing_on_two_relays_store_one_event(make):
    relays = [make() for _ in range(4)]
    results = []

    def post(q):
        try:
            q.append("wordpress", "h", b"{}", "sha256=race")
            results.append("stored")
        except SignatureError:
            results.append("replay")

    threads = [threading.Thread(target=post, args=(q,)) for q in relays]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
    assert sorted(results) == ["replay"] * 3 + ["stored"]
    assert relays[0].journal_pending() == 1


# --- expansion: per (node, item), at-least-once, a dead relay's events taken over --------------------

def test_expansion_writes_one_delivery_per_node_and_item_and_forgets_the_event(make):
    queue = make()
    ids = [queue.append("wordpress", "h", b"{}", f"sha256={n}") for n in range(3)]
    events = queue.pending_events()
    assert [e[0] for e in events] == ids
    now = time.time()
    stored = queue.store_expansion(NODES, [(i, 2) for i in ids], [item_row("/", now), item_row("/p/", now)])
    assert (stored.rows, stored.merged) == (4, 3 * 2 * 2 - 4)
    assert queue.journal_pending() == 0 and queue.pending_events() == []
    assert sorted(drain(queue, "a")) == ["/", "/p/"] and sorted(drain(queue, "b")) == ["/", "/p/"]
    assert leftovers(queue) == {}


def test_events_a_dead_relay_read_but_never_expanded_are_expanded_by_another(make):
    dead, alive = make(), make()
    event_id = dead.append("wordpress", "h", b"{}", "sha256=ee")
    assert [e[0] for e in dead.pending_events()] == [event_id]   # read, then the relay is SIGKILLed
    time.sleep(0.4)                                               # past the takeover idle time (0.3 s)
    assert [e[0] for e in alive.pending_events()] == [event_id]
    now = time.time()
    assert alive.store_expansion(["a"], [(event_id, 1)], [item_row("/x/", now)]).rows == 1
    # The "dead" one was only slow: its late store writes nothing twice.
    assert dead.store_expansion(["a"], [(event_id, 1)], [item_row("/x/", now)]).rows == 0
    assert drain(alive, "a") == ["/x/"]


# --- the worker's direct path: events handed out once, finished without rows, failures requeued ------

def test_pending_events_hands_each_event_out_once_until_rewound(make):
    queue = make()
    first = queue.append("wordpress", "h", b"{}", "sha256=d1")
    assert [e[0] for e in queue.pending_events()] == [first]
    second = queue.append("wordpress", "h", b"{}", "sha256=d2")
    assert [e[0] for e in queue.pending_events()] == [second]   # the first is being delivered: not again
    assert queue.pending_events() == []
    queue.rewind_journal()                                        # that delivery failed: both come back
    assert [e[0] for e in queue.pending_events()] == [first, second]
    assert queue.journal_pending() == 2


def test_finished_events_leave_no_rows_and_count_what_was_delivered(make):
    queue = make()
    ids = [queue.append("wordpress", "h", b"{}", f"sha256=f{n}") for n in range(3)]
    queue.pending_events()
    counters = [("purged", "a", 4), ("not_cached", "b", 1), ("merged", "", 2)]
    assert queue.finish_expansion([(i, 2) for i in ids], counters) == 3
    assert queue.journal_pending() == 0 and leftovers(queue) == {}
    stats = queue.stats()
    assert stats["depth"] == 0
    assert stats["totals"]["purged"] == 4 and stats["totals"]["merged"] == 2 and stats["totals"]["expanded"] == 3
    assert stats["nodes"]["b"]["totals"]["not_cached"] == 1
    assert queue.finish_expansion([(ids[0], 2)], counters) == 0   # twice (a slow relay): marks nothing again
    # A new queue object (the next start) finds nothing to send again.
    assert make().pending_events() == []


def test_requeued_deliveries_are_retried_on_that_node_only_and_merge(make):
    queue = make()
    now = time.time()
    queue.enqueue(["a"], [url("/waiting/")], "webhook")
    queue.requeue("a", [item_row("/waiting/", now - 5), item_row("/new/", now)])
    assert queue.stats()["nodes"]["a"]["pending"] == 2            # /waiting/ merged into the row already there
    assert "b" not in queue.stats()["nodes"]
    assert sorted(drain(queue, "a")) == ["/new/", "/waiting/"]
    assert leftovers(queue) == {}


# --- coalescing -------------------------------------------------------------------------------------

def test_pending_duplicates_merge_and_keep_the_oldest_time(queue):
    queue.enqueue(["a"], [url("/"), url("/p1/")], "wordpress", now=time.time() - 10)
    got = queue.enqueue(["a"], [url("/"), url("/p2/")], "wordpress")
    assert (got.rows, got.merged) == (1, 1)
    claims = {c.item["target"]: c for c in queue.claim("a")}
    assert sorted(claims) == ["/", "/p1/", "/p2/"]
    assert time.time() - claims["/"].first_at >= 10
    assert queue.stats()["totals"]["merged"] == 1


def test_in_flight_item_is_not_merged_into(queue):
    queue.enqueue(["a"], [url("/")], "wordpress")
    first = queue.claim("a")
    got = queue.enqueue(["a"], [url("/")], "wordpress")
    assert (got.rows, got.merged) == (1, 0)
    queue.ack(first)
    assert [c.item["target"] for c in queue.claim("a")] == ["/"]


def test_burst_stays_one_delivery_per_node_and_key(queue):
    for i in range(200):
        queue.enqueue(NODES, [url("/"), url("/feed/"), url(f"/post-{i}/")], "wordpress")
    stats = queue.stats()
    assert stats["depth"] == 2 * (2 + 200)
    assert stats["totals"]["merged"] == 2 * 2 * 199


# --- leases: at-least-once, a dead relay's claims come back --------------------------------------------

def test_claims_of_a_dead_relay_come_back_to_another_after_the_lease(make):
    # Every relay runs with the same settings, hence the same lease (Redis: XAUTOCLAIM's min idle time).
    dead, alive = make(), make()
    dead.enqueue(["a"], [url("/x/")], "wordpress")
    first = dead.claim("a", lease=0.3)
    assert len(first) == 1
    assert alive.claim("a", lease=0.3) == []          # leased: not handed out twice
    time.sleep(0.45)
    again = alive.claim("a", lease=0.3)
    assert [c.item["target"] for c in again] == ["/x/"] and again[0].attempts == 2
    dead.ack(first)                                    # a late ack of the old lease deletes nothing
    assert alive.stats()["depth"] == 1
    alive.ack(again)
    assert alive.stats()["depth"] == 0
    assert leftovers(alive) == {}


def test_two_relays_draining_at_once_deliver_every_item_once(make):
    relays = [make(), make()]
    for i in range(300):
        relays[i % 2].enqueue(["a"], [url(f"/t/{i}/")], "wordpress")
    seen, lock = [], threading.Lock()

    def work(q):
        got = drain(q, "a")
        with lock:
            seen.extend(got)

    threads = [threading.Thread(target=work, args=(q,)) for q in relays]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert len(seen) == 300 and len(set(seen)) == 300


# --- backoff, dead letters, max age ----------------------------------------------------------------------

def test_nack_waits_for_backoff(queue):
    queue.enqueue(["a"], [url("/x/")], "wordpress")
    queue.nack(queue.claim("a"), "HTTP 503")                      # attempt 1 -> 0.2 s (rng 1.0)
    assert queue.claim("a") == []
    assert 0.1 < queue.next_due("a") <= 0.2
    time.sleep(0.25)
    second = queue.claim("a")
    assert second[0].attempts == 2
    queue.nack(second, "HTTP 503")                                # attempt 2 -> 0.4 s
    time.sleep(0.25)
    assert queue.claim("a") == []
    time.sleep(0.2)
    assert len(queue.claim("a")) == 1
    assert queue.stats()["totals"]["failed_attempts"] == 2
    assert [queue.backoff_delay(n) for n in range(1, 5)] == [0.2, 0.4, 0.8, 1.0]


def test_nack_merges_into_the_same_item_queued_meanwhile(queue):
    queue.enqueue(["a"], [url("/x/")], "wordpress", now=time.time() - 5)
    claims = queue.claim("a")
    queue.enqueue(["a"], [url("/x/")], "wordpress")
    queue.nack(claims, "timeout")
    assert queue.stats()["depth"] == 1
    (claim,) = queue.claim("a")
    assert time.time() - claim.first_at >= 5


def test_nodes_are_independent(queue):
    queue.enqueue(NODES, [url("/x/")], "wordpress")
    queue.nack(queue.claim("a"), "connection refused")
    claims_b = queue.claim("b")
    assert len(claims_b) == 1
    queue.ack(claims_b)
    nodes = queue.stats()["nodes"]
    assert nodes["b"]["pending"] + nodes["b"]["in_flight"] == 0 and nodes["a"]["pending"] == 1


def test_dead_letters_and_retry(queue):
    queue.enqueue(NODES, [url("/x/"), url("/y/")], "wordpress")
    claims = sorted(queue.claim("a"), key=lambda c: c.item["target"])
    queue.dead(claims[:1], "HTTP 405 Method Not Allowed")
    queue.ack(claims[1:])
    queue.dead(queue.claim("b"), "HTTP 403")
    stats = queue.stats()
    assert (stats["depth"], stats["dead"]) == (0, 3)
    letters = queue.dead_letters(node="a")
    assert [(d["node"], d["item"]["target"], d["reason"]) for d in letters] == [
        ("a", "/x/", "HTTP 405 Method Not Allowed")]
    assert queue.claim("a") == []
    assert queue.retry_dead(node="a") == 1
    assert [c.item["target"] for c in queue.claim("a")] == ["/x/"]
    assert queue.stats()["dead"] == 2
    queue.enqueue(["b"], [url("/x/")], "wordpress")   # a twin waiting: the retried letter merges into it
    assert queue.retry_dead() == 2
    assert queue.stats()["nodes"]["b"]["pending"] == 2 and queue.stats()["dead"] == 0


def test_max_age_dead_letters_counting_from_the_newest_merge(queue):
    t0 = time.time() - 4000
    queue.enqueue(["a"], [url("/old/"), url("/both/")], "wordpress", now=t0)
    queue.enqueue(["a"], [url("/both/")], "wordpress", now=t0 + 3000)
    assert queue.expire(now=t0 + 3599) == {}
    assert queue.expire(now=t0 + 3601) == {"a": 1}
    (letter,) = queue.dead_letters()
    assert letter["item"]["target"] == "/old/" and "max age" in letter["reason"]
    assert [c.item["target"] for c in queue.claim("a")] == ["/both/"]


def test_max_age_keeps_the_last_error(queue):
    queue.enqueue(["a"], [url("/x/")], "wordpress")
    queue.nack(queue.claim("a"), "connection refused")
    assert queue.expire(now=time.time() + 4000) == {"a": 1}
    assert "connection refused" in queue.dead_letters()[0]["reason"]


def test_max_age_reports_what_it_dead_lettered_per_node(queue):
    t0 = time.time() - 4000
    queue.enqueue(["a", "b"], [url("/x/"), url("/y/")], "wordpress", now=t0)
    queue.ack(queue.claim("b", 1), "purged")             # b confirmed one of them
    assert queue.expire(now=t0 + 3601) == {"a": 2, "b": 1}
    assert queue.expire(now=t0 + 3602) == {}             # nothing new the second time


def test_claims_whose_lease_ran_out_expire_too_but_live_claims_do_not(queue):
    queue.enqueue(["a"], [url("/x/")], "wordpress", now=time.time() - 4000)   # older than max age
    held = queue.claim("a", lease=0.2)
    assert queue.expire() == {}                          # still leased: its sender may confirm it
    time.sleep(0.3)
    assert queue.expire() == {"a": 1}
    assert queue.dead_letters()[0]["item"]["target"] == "/x/"
    queue.ack(held)                                      # too late: stays a dead letter
    assert queue.stats()["dead"] == 1


def test_dead_hosts_names_the_sites_of_the_rows_that_just_expired(queue):
    """Issue 13.7: the dead-letter ban covers these hosts only."""
    old = time.time() - 4000
    queue.enqueue(["a"], [url("/x/"), purge_for_url("https://shop.example.test/y")], "wordpress", now=old)
    queue.enqueue(["b"], [purge_for_url("https://other.example.test/z")], "wordpress", now=old)
    since = time.time()
    assert queue.expire() == {"a": 2, "b": 1}
    assert queue.dead_hosts("a", since) == {"blog.example.test", "shop.example.test"}
    assert queue.dead_hosts("b", since) == {"other.example.test"}
    assert queue.dead_hosts("a", time.time() + 1) == set()


# --- bounded memory, wake-ups, health ------------------------------------------------------------------------

def test_delivered_items_and_expanded_events_leave_nothing_behind(queue):
    for n in range(50):
        event_id = queue.append("wordpress", "h", b"{}", f"sha256={n:04d}")
        queue.store_expansion(NODES, [(event_id, 2)], [item_row(f"/p{n}/", time.time()), item_row("/", time.time())])
        queue.enqueue(NODES, [url(f"/w{n}/")], "webhook")
    claims = queue.claim("a", limit=1000)
    queue.nack(claims[:10], "timeout")
    queue.ack(claims[10:])
    time.sleep(0.25)
    assert len(drain(queue, "a")) == 10 and len(drain(queue, "b")) == 101
    assert queue.stats()["depth"] == 0
    assert leftovers(queue) == {}


def test_wait_wakes_on_enqueue(queue):
    generation = queue.generation
    timer = threading.Timer(0.05, lambda: queue.enqueue(["a"], [url("/x/")], "wordpress"))
    timer.start()
    assert queue.wait(generation, timeout=5) != generation
    timer.join()


def test_writable_until_closed(make):
    queue = make()
    assert queue.writable()
    queue.close()
    assert not queue.writable()
