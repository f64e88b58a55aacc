"""Batch bookkeeping and the recorder thread: purge first, record afterwards.

Every read of the journal the expander hands to the node inboxes is one
direct *batch* (a sequence number and its journal events). A batch is
*settled* once every node has it out of its hands: sent and confirmed, or
written to the durable queue for a retry (each node's ``covered``). Settled
batches are collected here and the recorder thread writes them -- the status
snapshot first, then the journal marks of every batch settled meanwhile in
one transaction -- off the node threads' way: a node thread goes back to its
next batch the moment it confirmed one.

The recorder's commits skip the fsync (``relax_durability``): a mark lost in
a power cut only means its events are read and purged again at the next
start (at-least-once, a PURGE is idempotent); the journal row that made the
event durable was fsynced by the API process before its 202. A crash before
the mark has the same effect.
"""

from collections import deque
from dataclasses import dataclass
import logging
import threading
from typing import Any, Callable, Deque, Dict, List, Optional, Set, Tuple

log = logging.getLogger(__name__)

EventCount = Tuple[str, int]   # (journal event id, invalidations it meant on its own)


@dataclass
class Batch:
    seq: int
    events: List[EventCount]
    merged: int            # (node, item) pairs saved by coalescing within the batch
    failed: int            # events that could not be expanded


class Recorder:
    """The direct batches in flight, the counts confirmed for them, and the thread that writes them.

    ``lock`` guards the batches, the counts and every node's inbox (the
    expander fills the inboxes and opens a batch in one step under it).
    """

    def __init__(self, queue: Any, senders: Dict[str, Any], report: Callable[[], None], poll: float) -> None:
        self.queue = queue
        self.senders = senders
        self.report = report
        self.poll = poll
        self.lock = threading.Lock()
        self.seq = 0
        self.batches: Deque[Batch] = deque()   # not settled on every node yet, oldest first
        self.in_flight: Set[str] = set()        # their event ids (a Redis takeover could hand one out again)
        self.counts: Dict[Tuple[str, str], int] = {}  # (outcome, node) -> confirmed, not written yet
        self._unmarked: Deque[tuple] = deque()  # (events, counters, failed): settled, not marked yet
        self._mark_lock = threading.Lock()
        self._wake = threading.Condition(threading.Lock())
        self._recording = False                 # the thread runs: settled batches are its to write
        self._thread: Optional[threading.Thread] = None
        self._mark_failing = False

    # --- bookkeeping (callers hold ``lock``) ---------------------------------------

    def open_batch(self, events: List[EventCount], merged: int, failed: int) -> Optional[int]:
        """Open a batch of the events not in flight yet; its sequence number, or None if none is new."""
        events = [event for event in events if event[0] not in self.in_flight]
        if not events:
            return None
        self.seq += 1
        self.batches.append(Batch(self.seq, events, merged, failed))
        self.in_flight.update(event_id for event_id, _count in events)
        return self.seq

    def confirmed(self, node: str, outcomes: Dict[str, int]) -> None:
        for outcome, count in outcomes.items():
            self.counts[(outcome, node)] = self.counts.get((outcome, node), 0) + count

    # --- settling (a node thread, after its batch) -------------------------------------

    def settle(self) -> None:
        """Hand the recorder every batch that all nodes have out of their hands."""
        with self.lock:
            low = min((sender.covered for sender in self.senders.values()), default=self.seq)
            done = []
            while self.batches and self.batches[0].seq <= low:
                done.append(self.batches.popleft())
            if not done:
                return
            counts, self.counts = self.counts, {}
        events = [event for batch in done for event in batch.events]
        counters = [(outcome, node, n) for (outcome, node), n in counts.items()]
        counters.append(("merged", "", sum(batch.merged for batch in done)))
        with self._mark_lock:
            self._unmarked.append((events, counters, sum(batch.failed for batch in done)))
        if self._recording:
            with self._wake:
                self._wake.notify()
        else:  # no recorder thread (a test driving the node by hand): write it now
            self.report()
            self.mark_delivered()

    # --- the thread -------------------------------------------------------------------

    def start(self, relax: Callable[[], None]) -> None:
        self._recording = True
        self._thread = threading.Thread(target=self._run, args=(relax,), name="purge-recorder", daemon=True)
        self._thread.start()

    def _run(self, relax: Callable[[], None]) -> None:
        relax()
        while True:
            with self._wake:
                while not self._unmarked and self._recording:
                    self._wake.wait()
                if not self._unmarked:
                    return
            self.report()  # before the mark: whoever reads the journal as drained finds the counts here
            if not self.mark_delivered():
                with self._wake:  # retry the marks alone after a pause, not in a hot loop
                    self._wake.wait_for(lambda: not self._recording, self.poll)

    def stop(self, timeout: Optional[float]) -> None:
        """After the node threads ended: write what they settled last, then stop the thread."""
        with self._wake:
            self._recording = False
            self._wake.notify()
        if self._thread is not None:
            self._thread.join(timeout)
        if not (self._thread and self._thread.is_alive()) and self._unmarked:
            self.mark_delivered()  # a last try (the thread gave up on a failing disk): else the next start

    def mark_delivered(self) -> bool:
        """Mark delivered journal events expanded, all settled batches in one transaction; True when done.

        When the mark fails (a full disk) the events stay in memory and only
        the mark is tried again -- by the thread after ``poll`` -- never the
        purges: they were confirmed, and re-sending them in a loop filled the
        log and the nodes before. The failure is logged once when it starts
        and once when it ends. (After a restart they are read from the
        journal and sent again: at-least-once.)
        """
        with self._mark_lock:
            if not self._unmarked:
                return True
            taken = list(self._unmarked)
            events = [event for entry in taken for event in entry[0]]
            totals: Dict[Tuple[str, str], int] = {}
            for _events, counters, _failed in taken:
                for outcome, node, count in counters:
                    totals[(outcome, node)] = totals.get((outcome, node), 0) + count
            try:
                self.queue.finish_expansion(events, [(outcome, node, count) for (outcome, node), count
                                                     in totals.items()], failed=sum(entry[2] for entry in taken))
            except Exception as exc:  # noqa: BLE001 - the disk, a vanished file: retry the mark alone
                if not self._mark_failing:
                    log.error("marking %d delivered journal event(s) failed (%s: %s); the mark is retried, "
                              "the purges are not sent again", len(events), type(exc).__name__, exc)
                self._mark_failing = True
                return False
            for _entry in taken:
                self._unmarked.popleft()
            with self.lock:
                self.in_flight.difference_update(event_id for event_id, _count in events)
            if self._mark_failing:
                log.warning("marking delivered journal events works again")
                self._mark_failing = False
            return True
