"""The SQLite queue on a fixed clock: what tests/integration/test_queue_contract.py (run on SQLite and Redis) does not pin down.

Atomic enqueue with the replay cache, exact backoff and max-age times, leases, dead letters, durability."""

import sqlite3
import threading

import pytest

from purgebridge.core.errors import SignatureError
from purgebridge.core.invalidation import purge_for_url
from purgebridge.store.sqlite import Queue
from purgebridge.store.contract import redact_location

T0 = 1_800_000_000.0


def url(path):
    return purge_for_url(f"https://blog.example.test{path}")


@pytest.fixture
def qpath(tmp_path):
    return tmp_path / "q.sqlite3"


@pytest.fixture
def queue(qpath):
    q = Queue(qpath, backoff=1.0, backoff_max=8.0, max_age=3600, rng=lambda: 1.0)
    yield q
    q.close()


def test_enqueue_writes_one_row_per_node_and_item(queue):
    got = queue.enqueue(["a", "b"], [url("/x/"), url("/y/"), url("/x/")], "wordpress", now=T0)
    assert (got.items, got.rows, got.merged) == (2, 4, 0)
    stats = queue.stats(now=T0 + 5)
    assert stats["depth"] == 4 and stats["pending"] == 4
    assert stats["nodes"]["a"]["pending"] == 2
    assert stats["oldest_pending_age"] == 5
    assert stats["totals"]["events"] == 1


def test_coalescing_merges_into_waiting_rows_and_keeps_oldest_time(queue):
    queue.enqueue(["a"], [url("/"), url("/p1/")], "wordpress", now=T0)
    got = queue.enqueue(["a"], [url("/"), url("/p2/")], "wordpress", now=T0 + 10)
    assert (got.rows, got.merged) == (1, 1)
    claims = {c.key: c for c in queue.claim("a", now=T0 + 20)}
    assert len(claims) == 3
    assert claims[url("/").key].first_at == T0
    assert queue.stats()["totals"]["merged"] == 1


def test_burst_of_identical_items_stays_one_row(queue):
    for i in range(1000):
        queue.enqueue(["a", "b", "c"], [url("/"), url("/feed/"), url(f"/post-{i}/")], "wordpress", now=T0 + i)
    stats = queue.stats(now=T0 + 1000)
    assert stats["depth"] == 3 * (2 + 1000)
    assert stats["totals"]["merged"] == 3 * 2 * 999


def test_lease_expiry_returns_claims(queue):
    queue.enqueue(["a"], [url("/x/")], "wordpress", now=T0)
    first = queue.claim("a", lease=30, now=T0)
    assert len(first) == 1
    assert queue.claim("a", now=T0 + 29) == []
    again = queue.claim("a", lease=30, now=T0 + 31)
    assert [c.id for c in again] == [first[0].id]
    assert again[0].attempts == 2
    # The crashed worker's late ack does not delete the row now leased by another.
    queue.ack(first, now=T0 + 32)
    assert queue.stats()["depth"] == 1
    queue.ack(again, now=T0 + 33)
    assert queue.stats()["depth"] == 0


def test_backoff_doubles_with_cap_and_jitter(qpath):
    q = Queue(qpath, backoff=1.0, backoff_max=8.0, rng=lambda: 0.0)
    assert [q.backoff_delay(n) for n in range(1, 7)] == [0.5, 1.0, 2.0, 4.0, 4.0, 4.0]
    q.rng = lambda: 1.0
    assert [q.backoff_delay(n) for n in range(1, 7)] == [1.0, 2.0, 4.0, 8.0, 8.0, 8.0]
    q.close()


def test_nack_waits_for_backoff(queue):
    queue.enqueue(["a"], [url("/x/")], "wordpress", now=T0)
    queue.nack(queue.claim("a", now=T0), "HTTP 503", now=T0)           # attempt 1 -> 1 s
    assert queue.claim("a", now=T0 + 0.9) == []
    assert queue.next_due("a", now=T0) == pytest.approx(1.0)
    second = queue.claim("a", now=T0 + 1.0)
    queue.nack(second, "HTTP 503", now=T0 + 1.0)                      # attempt 2 -> 2 s
    assert queue.claim("a", now=T0 + 2.9) == []
    assert len(queue.claim("a", now=T0 + 3.0)) == 1
    assert queue.stats()["totals"]["failed_attempts"] == 2


def test_nack_merges_when_same_item_was_queued_meanwhile(queue):
    queue.enqueue(["a"], [url("/x/")], "wordpress", now=T0)
    claims = queue.claim("a", now=T0)
    queue.enqueue(["a"], [url("/x/")], "wordpress", now=T0 + 1)
    queue.nack(claims, "timeout", now=T0 + 2)
    stats = queue.stats(now=T0 + 2)
    assert stats["depth"] == 1
    (claim,) = queue.claim("a", now=T0 + 100)
    assert claim.first_at == T0  # latency still counts from the first enqueue


def test_refused_goes_to_dead_letters_and_retry_dead(queue):
    queue.enqueue(["a"], [url("/x/"), url("/y/")], "wordpress", now=T0)
    claims = queue.claim("a", now=T0)
    queue.dead(claims[:1], "HTTP 405 Method Not Allowed", now=T0)
    queue.ack(claims[1:], now=T0)
    stats = queue.stats(now=T0)
    assert (stats["depth"], stats["dead"]) == (0, 1)
    (letter,) = queue.dead_letters()
    assert letter["reason"] == "HTTP 405 Method Not Allowed" and letter["node"] == "a"
    assert letter["item"]["target"] == "/x/"
    assert queue.claim("a", now=T0 + 10_000) == []
    assert queue.retry_dead(now=T0 + 1) == 1
    assert [c.item["target"] for c in queue.claim("a", now=T0 + 1)] == ["/x/"]
    assert queue.stats()["dead"] == 0


def test_retry_dead_merges_into_waiting_twin(queue):
    queue.enqueue(["a"], [url("/x/")], "wordpress", now=T0)
    queue.dead(queue.claim("a", now=T0), "HTTP 403", now=T0)
    queue.enqueue(["a"], [url("/x/")], "wordpress", now=T0 + 1)
    assert queue.retry_dead(now=T0 + 2) == 1
    assert queue.stats()["depth"] == 1 and queue.stats()["dead"] == 0


def test_retry_dead_for_one_node(queue):
    queue.enqueue(["a", "b"], [url("/x/")], "wordpress", now=T0)
    queue.dead(queue.claim("a", now=T0), "HTTP 403", now=T0)
    queue.dead(queue.claim("b", now=T0), "HTTP 403", now=T0)
    assert queue.retry_dead(node="b", now=T0) == 1
    assert queue.stats()["nodes"]["a"]["dead"] == 1


def test_max_age_keeps_last_error_in_reason(queue):
    queue.enqueue(["a"], [url("/x/")], "wordpress", now=T0)
    queue.nack(queue.claim("a", now=T0), "connection refused", now=T0)
    queue.expire(now=T0 + 4000)
    assert "connection refused" in queue.dead_letters()[0]["reason"]


def test_replay_cache_is_in_the_same_transaction(queue):
    queue.enqueue(["a"], [url("/x/")], "wordpress", signature="sha256=ab", now=T0)
    with pytest.raises(SignatureError) as info:
        queue.enqueue(["a"], [url("/y/")], "wordpress", signature="sha256=ab", now=T0 + 10)
    assert info.value.replay
    stats = queue.stats()
    assert stats["depth"] == 1 and stats["totals"]["events"] == 1   # the refused one left nothing
    queue.enqueue(["a"], [url("/z/")], "wordpress", signature="sha256=ab", now=T0 + 301)  # the window has passed
    queue.expire(now=T0 + 1001)
    assert queue._db().execute("SELECT COUNT(*) FROM signatures").fetchone()[0] == 0


def test_restart_durability(qpath):
    q = Queue(qpath)
    q.enqueue(["a", "b"], [url("/x/"), url("/y/")], "wordpress", signature="sha256=cd", now=T0)
    leased = q.claim("a", lease=30, now=T0)
    assert len(leased) == 2
    q.close()  # as if the process died right after claiming
    q2 = Queue(qpath)
    with pytest.raises(SignatureError):  # the replay cache survived the restart
        q2.enqueue(["b"], [url("/z/")], "wordpress", signature="sha256=cd", now=T0 + 1)
    assert len(q2.claim("b", now=T0 + 1)) == 2
    assert q2.claim("a", now=T0 + 1) == []            # still leased
    assert len(q2.claim("a", now=T0 + 31)) == 2       # lease ran out: they come back
    q2.close()


def test_data_is_committed_before_enqueue_returns(qpath):
    """Another connection (another process) sees the rows as soon as enqueue returned."""
    q = Queue(qpath)
    q.enqueue(["a"], [url("/x/")], "wordpress", now=T0)
    other = sqlite3.connect(qpath)
    assert other.execute("SELECT COUNT(*) FROM deliveries").fetchone()[0] == 1
    assert other.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    other.close()
    q.close()


def test_concurrent_enqueue_and_claim_lose_nothing(queue):
    errors = []

    def produce(n):
        try:
            for i in range(100):
                queue.enqueue(["a"], [url(f"/t{n}/{i}/")], "wordpress")
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=produce, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    seen = set()
    while any(t.is_alive() for t in threads) or queue.stats()["pending"]:
        claims = queue.claim("a", limit=50)
        seen.update(c.item["target"] for c in claims)
        queue.ack(claims)
    for t in threads:
        t.join()
    assert not errors
    assert len(seen) == 400


def test_writable(queue, qpath):
    assert queue.writable()
    queue.close()
    assert not queue.writable()


def test_release_leases_at_startup(qpath):
    q = Queue(qpath)
    q.enqueue(["a"], [url("/x/")], "wordpress", now=T0)
    assert len(q.claim("a", lease=30, now=T0)) == 1
    q.close()
    q2 = Queue(qpath)
    assert q2.claim("a", now=T0 + 1) == []
    assert q2.release_leases(now=T0 + 1) == 1
    assert len(q2.claim("a", now=T0 + 1)) == 1
    q2.close()


def test_rows_backing_off_expire_too(qpath):
    """A row waiting out a long backoff is dead-lettered at max age, not only when it is due."""
    q = Queue(qpath, backoff=100, backoff_max=100, max_age=3600, rng=lambda: 1.0)
    q.enqueue(["a"], [url("/x/")], "wordpress", now=T0)
    q.nack(q.claim("a", now=T0 + 3550), "timeout", now=T0 + 3550)   # next try at T0 + 3650
    assert q.next_due("a", now=T0 + 3601) > 0
    assert q.expire(now=T0 + 3599) == {}
    assert q.expire(now=T0 + 3601) == {"a": 1}
    q.close()


@pytest.mark.parametrize("location,shown", [
    ("redis://:s3cret@127.0.0.1:6379/0", "redis://***@127.0.0.1:6379/0"),
    ("rediss://user:s3cret@127.0.0.1/2", "rediss://***@127.0.0.1/2"),
    ("redis://127.0.0.1:6379/0", "redis://127.0.0.1:6379/0"),
    ("/var/lib/purgebridge/queue.sqlite3", "/var/lib/purgebridge/queue.sqlite3"),
])
def test_a_queue_location_is_shown_without_its_credentials(location, shown):
    assert redact_location(location) == shown
