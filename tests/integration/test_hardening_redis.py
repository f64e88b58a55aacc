"""Issue 25.6: claims of a dead relay on a Redis queue are taken over on time, without new work arriving.

A "dead relay" (a RedisQueue that claims 20 deliveries and never confirms
them, as a SIGKILLed relay leaves them) and then a real ``serve`` on the same
Redis with nothing else to do: once the lease (30 s) has run out, the
relay takes the claims over and the node gets all 20. Before the fix they
sat until an unrelated event arrived for that node.
"""

import time

import pytest

from fixtures.faults import FaultServer
from fixtures.relay import free_port
from purgebridge.core.invalidation import purge_for_url
from purgebridge.store.redis import RedisQueue
from purgebridge.testing import RelayProcess

pytestmark = pytest.mark.integration

SECRET = "hardening-redis-secret-0f6e"
ADMIN = "hardening-redis-admin-b842"
LEASE = 30.0  # the relay's lease with these settings (WorkerConfig.from_settings: at least 30 s)


def test_a_dead_relays_claims_are_taken_over_without_new_work(tmp_path, redis_url):
    node = FaultServer(lambda n, line: ("status", 200))
    dead = RedisQueue(redis_url, consumer="killed-relay")
    relay = None
    try:
        name = f"{node.host}:{node.port}"
        dead.enqueue([name], [purge_for_url(f"https://blog.example.test/p{i}/") for i in range(20)], "webhook")
        assert len(dead.claim(name, 100, lease=LEASE)) == 20  # ... and the relay holding them is killed
        claimed_at = time.monotonic()
        relay = RelayProcess(tmp_path, free_port(), {
            "PURGEBRIDGE_NODES": name, "PURGEBRIDGE_SITES": "blog.example.test", "PURGEBRIDGE_SECRET": SECRET,
            "PURGEBRIDGE_QUEUE": redis_url, "PURGEBRIDGE_TIMEOUT": "1"}, ADMIN).start()
        deadline = claimed_at + LEASE + 15
        while node.count < 20 and time.monotonic() < deadline:
            time.sleep(0.2)
        assert node.count >= 20, f"{node.count} of 20 claims of the dead relay delivered {LEASE + 15:.0f} s later"
        relay.drained(timeout=10)
    finally:
        if relay is not None:
            relay.stop()
        dead.close()
        node.stop()
