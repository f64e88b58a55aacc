"""The expander thread: every committed journal event, mapped and coalesced, into each node's inbox.

It reads the journal events committed so far (a plain read, up to
``batch`` at a time), maps and coalesces them (``expansion.gather``), opens
a direct batch for them in the bookkeeping and merges their invalidations
into every node's inbox, in one step under the bookkeeping lock; then wakes
the node threads and, once it has read everything, sleeps until the next
commit.
"""

import logging
import threading
import time
from typing import Any, Dict, Optional, Sequence

from purgebridge.core.errors import QueueFileGone
from purgebridge.worker import expansion
from purgebridge.worker.recorder import Recorder
from purgebridge.worker.sites import SiteCache

log = logging.getLogger(__name__)


class Expander:
    def __init__(self, queue: Any, settings: Any, nodes: Sequence[Any], sites: SiteCache,
                 recorder: Recorder, senders: Dict[str, Any], batch: int) -> None:
        self.queue = queue
        self.settings = settings
        self.nodes = nodes
        self.sites = sites
        self.recorder = recorder
        self.senders = senders
        self.batch = batch

    def run(self, stopping: threading.Event, poll: float) -> None:
        """Hand every committed journal event to the inboxes, a batch as soon as the last one is mapped."""
        while not stopping.is_set():
            generation = self.queue.journal_generation
            try:
                done = self.dispatch()
            except QueueFileGone:  # the process's loop sees it too, stops the relay and says it in one line
                stopping.wait(poll)
                continue
            except Exception:  # keep the thread alive; the events are read again
                log.exception("expanding the journal failed")
                self.queue.rewind_journal()
                stopping.wait(poll)
                continue
            if done < self.batch:  # read it all: sleep until the next commit (at once if one came)
                self.queue.wait_journal(generation, poll)

    def dispatch(self) -> int:
        """Read, map and coalesce one batch of journal events into the node inboxes; returns how many events."""
        found = expansion.gather(self.queue, self.sites.options_for, self.settings.proto_header, self.batch)
        if found is None:
            return 0
        merged = (found.naive - len(found.items)) * len(self.nodes)
        with self.recorder.lock:
            seq = self.recorder.open_batch(found.events, merged, found.failed)
            if seq is None:
                return len(found.events)
            for sender in self.senders.values():
                sender.inbox.put(seq, found.items)
        self.queue.notify_deliveries()  # wakes the node threads
        return len(found.events)

    def expand(self, limit: Optional[int] = None) -> int:
        """Expand one batch of journal events into queued deliveries (no inbox); returns how many events."""
        return expansion.expand(self.queue, [node.name for node in self.nodes], self.sites.options_for,
                                self.settings.proto_header, limit or self.batch)

    def expand_rest(self, budget: float) -> None:
        """At stop: expand what is committed into queued deliveries while it is quick; the rest waits."""
        deadline = time.monotonic() + budget
        try:
            while time.monotonic() < deadline and self.expand():
                pass
            left = self.queue.journal_pending()
        except QueueFileGone:
            return
        except Exception:
            log.exception("expanding the journal at shutdown failed; it is expanded at the next start")
            return
        if left:
            log.info("%d journal event(s) left to expand at the next start", left)
