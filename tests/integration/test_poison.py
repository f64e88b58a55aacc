"""Issue 13.7: nothing poisons the queue, against real varnishd nodes.

Rows stored before validation refused them (a 40 KB URL, a ban regex with a
control character or a character outside Latin-1) used to fail every batch
they were claimed with, keep healthy nodes "down" and be retried until they
expired. Now each row is encoded on its own: a row that can never be sent is
a dead letter at once, its neighbours in the batch are purged, and the node
stays up.
"""

import time

import pytest

from purgebridge.config.settings import load_settings
from purgebridge.core.invalidation import Invalidation, purge_for_url
from purgebridge.store.sqlite import Queue
from purgebridge.worker.worker import Worker

pytestmark = pytest.mark.integration


def _poison(host):
    """Invalidations that no Varnish accepts, built the way an older relay stored them (no validation)."""
    return [Invalidation("PURGE", "/" + "a" * 40_000, host, (("X-Forwarded-Proto", "http"),), "40 KB URL"),
            Invalidation("BAN", "/", host, (("X-Ban-Url", "^/caf\u20ac"),), "ban with a euro sign"),
            Invalidation("BAN", "/", host, (("X-Ban-Url", "^/a\x01b"),), "ban with a control character")]


def test_a_poisoned_row_fails_alone_and_is_dead_at_once(cluster, site, tmp_path):
    node = cluster.node_list()[0]
    settings = load_settings({"PURGEBRIDGE_NODES": node.name, "PURGEBRIDGE_SITES": site.split(":")[0]},
                             environ={}, dotenv_path="")
    cluster.warm(["/fresh/"], site)
    queue = Queue(tmp_path / "q.sqlite3", backoff=0.01, backoff_max=0.05)
    try:
        good = purge_for_url(f"http://{site}/fresh/")
        queue.enqueue([node.name], _poison(site) + [good], "wordpress")
        worker = Worker(queue, settings)
        claims = queue.claim(node.name)
        assert len(claims) == 4
        started = time.monotonic()
        worker.process(node, claims)
        assert time.monotonic() - started < 2.0
        stats = queue.stats()
        assert stats["depth"] == 0 and stats["dead"] == 3, stats
        reasons = {letter["item"]["label"]: letter["reason"] for letter in queue.dead_letters()}
        assert set(reasons) == {"40 KB URL", "ban with a euro sign", "ban with a control character"}
        assert all("cannot be sent" in reason for reason in reasons.values()), reasons
        assert cluster.xcache(cluster.nodes[0], "/fresh/", site) == "MISS"  # the good row was purged
        state = worker.states[node.name]
        assert state.up is True, state
    finally:
        queue.close()
