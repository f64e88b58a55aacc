"""Housekeeping: purges too old to deliver become dead letters, and their node gets a ban instead.

A node unreachable for ``max_age`` (PURGEBRIDGE_MAX_AGE, a day) may still
hold pages its dead-lettered purges were meant to drop. Rather than count on
someone running ``purgebridge queue retry``, the worker queues a ban of each
site whose purges were lost for that node: it is sent when the node answers
again and leaves it with nothing stale (PURGEBRIDGE_DEAD_LETTER_BAN, on by
default). Should the node stay away another ``max_age``, the ban is
dead-lettered in turn and queued again: one per site per ``max_age``.
"""

import logging
import threading
import time
from typing import Any, Dict, Optional, Sequence

from purgebridge.core.invalidation import purge_all_for
from purgebridge.worker.sites import SiteCache

log = logging.getLogger(__name__)


class Housekeeper:
    """One round with :meth:`housekeep`; :meth:`run` does a round every ``interval`` seconds until stopped."""

    def __init__(self, queue: Any, settings: Any, nodes: Sequence[Any], sites: SiteCache) -> None:
        self.queue = queue
        self.settings = settings
        self.nodes = nodes
        self.sites = sites

    def run(self, stopping: threading.Event, interval: float) -> None:
        while not stopping.wait(interval):
            try:
                self.housekeep()
            except Exception:  # keep the thread alive; the next round tries again
                log.exception("queue housekeeping failed")

    def housekeep(self, now: Optional[float] = None) -> Dict[str, int]:
        """Dead-letter what is too old; queue a ban of the sites whose purges a node lost. Returns node -> count."""
        since = getattr(self.queue, "clock", time.time)() if now is None else now
        expired = self.queue.expire(now=now)
        if not expired:
            return expired
        max_age = getattr(self.settings, "max_age", 0.0)
        banning = getattr(self.settings, "dead_letter_ban", True)
        sites = set(self.sites.hosts)
        served = {node.name for node in self.nodes}   # not a node taken out of the config since
        for node, count in sorted(expired.items()):
            if not banning or node not in served:
                why = "dead-letter bans are off" if not banning else "the node is no longer configured"
                log.error("node %s: %d purge(s) dead-lettered after %.0f s; no ban queued (%s)",
                          node, count, max_age, why,
                          extra={"node": node, "dead_lettered": count, "reason": "max_age"})
                continue
            # Only the sites whose purges were lost: one tenant's stuck rows never ban another's pages.
            hosts = sorted(self.queue.dead_hosts(node, since) & sites)
            if not hosts:
                log.error("node %s: %d purge(s) dead-lettered; none for a configured site, nothing to ban",
                          node, count, extra={"node": node, "dead_lettered": count, "reason": "max_age"})
                continue
            self.queue.enqueue([node], [purge_all_for(host) for host in hosts], "dead-letter-ban", now=now)
            log.error("node %s: %d purge(s) dead-lettered after %.0f s; a ban of their site(s) %s is queued "
                      "for it instead, sent when it answers again", node, count, max_age, ", ".join(hosts),
                      extra={"node": node, "dead_lettered": count, "reason": "max_age", "sites": ",".join(hosts)})
        return expired
