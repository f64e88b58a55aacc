"""Choosing the queue backend from PURGEBRIDGE_QUEUE, and what only the Redis one does (cross-relay wake-ups)."""

import sys
import threading

import pytest

from purgebridge.store import is_redis, open_queue
from purgebridge.config.settings import load_settings
from purgebridge.core.errors import ConfigError
from purgebridge.core.invalidation import purge_for_url
from purgebridge.store.sqlite import Queue


def settings_for(queue):
    return load_settings({"PURGEBRIDGE_QUEUE": queue, "PURGEBRIDGE_NODES": "127.0.0.1:6081"}, environ={},
                         dotenv_path="")


def test_scheme_decides():
    assert is_redis("redis://127.0.0.1:6379/0") and is_redis("rediss://r.example.test/1")
    assert not is_redis("/var/lib/purgebridge/queue.sqlite3") and not is_redis("redis.sqlite3")


def test_a_path_opens_sqlite(tmp_path):
    queue = open_queue(settings_for(str(tmp_path / "q.sqlite3")))
    try:
        assert isinstance(queue, Queue)
    finally:
        queue.close()


def test_a_redis_url_opens_the_redis_backend_with_the_retry_settings(redis_url):
    from purgebridge.store.redis import RedisQueue

    queue = open_queue(settings_for(redis_url))
    try:
        assert isinstance(queue, RedisQueue) and queue.writable()
        assert queue.path == redis_url
    finally:
        queue.close()


def test_missing_redis_py_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "redis", None)  # import redis -> ImportError
    monkeypatch.delitem(sys.modules, "purgebridge.store.redis", raising=False)
    with pytest.raises(ConfigError) as info:
        open_queue(settings_for("redis://127.0.0.1:1/0"))
    assert "purgebridge[redis]" in str(info.value) and info.value.variable == "PURGEBRIDGE_QUEUE"


def test_work_accepted_by_one_relay_wakes_the_others(redis_url):
    """Pub/sub: a relay's idle workers and expander hear of another relay's work at once, not at their poll."""
    from purgebridge.store.redis import RedisQueue

    accepting, idle = RedisQueue(redis_url), RedisQueue(redis_url)
    timers = []
    try:
        generation = idle.generation
        timers.append(threading.Timer(0.3, lambda: accepting.enqueue(["a"], [purge_for_url("http://h.test/x/")],
                                                                     "webhook")))
        timers[-1].start()
        assert idle.wait(generation, timeout=5) != generation
        timers[-1].join(5)
        # Taken only now: the enqueue above may have moved it, and then this would not wait for the append.
        journal_generation = idle.journal_generation
        timers.append(threading.Timer(0.1, lambda: accepting.append("wordpress", "h.test", b"{}", "sha256=01")))
        timers[-1].start()
        assert idle.wait_journal(journal_generation, timeout=5) != journal_generation
    finally:
        for timer in timers:
            timer.join(5)   # never close a queue under a timer that is still using it
        accepting.close()
        idle.close()


def test_redis_down_is_a_503_not_a_crash():
    """append raises QueueError (answered 503, the plugin retries); writable() is False for /readyz."""
    from fixtures.redis_server import _free_port
    from purgebridge.core.errors import QueueError
    from purgebridge.store.redis import RedisQueue

    queue = RedisQueue(f"redis://127.0.0.1:{_free_port()}/0", socket_timeout=0.5)  # nothing listens there
    try:
        with pytest.raises(QueueError):
            queue.append("wordpress", "h", b"{}", "sha256=02")
        assert not queue.writable()
    finally:
        queue.close()
