"""The SQLite queue's one writer thread: every write goes through it, each caller gets its own outcome.

The journal's group commit on top of it is tested in test_journal.py; here
the writer's own promises: one thread, one write connection; a task's error
rolls back and reaches its caller; a write not started in time is withdrawn
(QueueBusy) and never runs; appends do not starve other writes; durability
is per caller; close finishes what was submitted and refuses the rest.
"""

import sqlite3
import threading
import time

import pytest

from purgebridge.core.errors import QueueBusy, QueueClosed, QueueError
from fixtures.queue import (HOST, body_for, in_threads, lock_held_by_another_process,
                            signature_of, writer_held)

NODE = "127.0.0.1:9001"


def item(n):
    return (f"PURGE http://{HOST}/p{n}/", '{"method":"PURGE"}', 1.0, 1.0)


def test_every_write_of_every_thread_runs_on_the_one_writer_thread(queue):
    connections = []
    original = queue.writer._connect

    def counted():
        connections.append(threading.current_thread().name)
        return original()

    queue.writer._connect = counted
    queue.writer._db.close()
    queue.writer._db = None   # the next write opens the connection again, through ``counted``
    ran_on = []

    def writes(n):
        queue.requeue(NODE, [item(n)])
        queue.ack(queue.claim(NODE, limit=1))
        queue.append("wordpress", HOST, body_for(n), signature_of(n))
        ran_on.append(queue._write(lambda db: threading.current_thread().name))

    assert in_threads(writes, 8) == []
    assert set(ran_on) == {"queue-writer"} and connections == ["queue-writer"]   # one thread, one connection
    assert queue.journal_pending() == 8 and queue.stats()["totals"]["purged"] == 8


def test_an_error_in_a_write_rolls_it_back_and_reaches_only_its_caller(queue):
    def half_then_fail(db):
        db.execute("INSERT INTO counters(name, node, value) VALUES ('half', '', 1)")
        raise ValueError("no room")

    with pytest.raises(ValueError, match="no room"):
        queue._write(half_then_fail)
    assert "half" not in queue.stats()["totals"]
    queue.requeue(NODE, [item(1)])   # the writer goes on with the next write
    assert queue.stats()["nodes"][NODE]["pending"] == 1


def test_a_write_not_started_in_time_is_withdrawn_and_never_runs(queue):
    queue.write_wait = 0.1
    with lock_held_by_another_process(queue):
        with pytest.raises(QueueBusy, match="not started within"):
            queue.requeue(NODE, [item(1)])
    assert queue.writable()   # the writer has its turn now: the withdrawn write did not run
    assert queue.stats()["nodes"] == {}


def test_appends_and_other_writes_take_turns(queue):
    """A stream of appends does not hold back other writes: a task waits for at most one group."""
    order = []
    original = queue.writer._write_group

    def recorded(db, entries):
        order.append(("group", len(entries)))
        return original(db, entries)

    queue.writer._write_group = recorded
    queue.writer.max_group = 3   # six appends waiting make two groups
    appenders = [threading.Thread(target=queue.append, args=("wordpress", HOST, body_for(n), signature_of(n)))
                 for n in range(6)]
    tasks = [threading.Thread(target=queue._write, args=(lambda db: order.append(("task", 0)),)) for _ in range(2)]
    with writer_held(queue):
        for thread in appenders:
            thread.start()
        deadline = time.monotonic() + 5
        while queue.writer.pending_appends() < 6 and time.monotonic() < deadline:
            time.sleep(0.005)
        for thread in tasks:
            thread.start()
        while len(queue.writer._tasks) < 2 and time.monotonic() < deadline:
            time.sleep(0.005)
    for thread in tasks + appenders:
        thread.join(10)
    assert order == [("group", 3), ("task", 0), ("task", 0), ("group", 3)], order   # both tasks the group passed


def test_durability_is_chosen_per_caller(queue):
    """An append and an ordinary write commit FULL (fsync); a worker thread that relaxed commits NORMAL."""
    synchronous = lambda db: db.execute("PRAGMA synchronous").fetchone()[0]  # noqa: E731 - 2 FULL, 1 NORMAL
    seen = []

    def relaxed():
        queue.relax_durability()
        seen.append(queue._write(synchronous))

    thread = threading.Thread(target=relaxed)
    thread.start()
    thread.join(10)
    seen.append(queue._write(synchronous))
    assert seen == [1, 2]


def test_close_finishes_what_was_submitted_and_refuses_the_rest(queue):
    done = []
    with writer_held(queue):
        thread = threading.Thread(target=lambda: done.append(queue._write(lambda db: "written")))
        thread.start()
        time.sleep(0.05)
        closer = threading.Thread(target=queue.close)
        closer.start()
        time.sleep(0.05)
        with pytest.raises(QueueClosed):
            queue.requeue(NODE, [item(1)])
    closer.join(10)
    thread.join(10)
    assert done == ["written"]


def test_a_write_from_inside_a_write_is_refused_not_deadlocked(queue):
    with pytest.raises(RuntimeError, match="writer thread itself"):
        queue._write(lambda db: queue._write(lambda inner: None))


def test_queue_busy_is_a_queue_error_so_readiness_reports_it(queue):
    assert issubclass(QueueBusy, QueueError)
    queue.write_wait = 0.1
    with lock_held_by_another_process(queue):
        assert not queue.writable()
    assert queue.writable()
