"""One node's inbox: coalescing per (node, URL) with a short window and a trailing purge.

A purge whose URL (its invalidation key) did not leave for this node within
the last ``window`` seconds (PURGEBRIDGE_BATCH_GAP) goes in the next batch,
at once. A URL that did leave within the window is *hot*: it stays in the
inbox, where every further update to it merges, until the window since it
last left has passed, and then goes out once (the trailing purge). So a page
is purged at most once per window per node however often it changes, and
always once more after its last change: it is never left stale, and for no
longer than the window plus a round trip.

The inbox also keeps the bookkeeping that lets the journal be marked: every
entry remembers the oldest direct batch (``seq``) whose update it carries, so
:meth:`Inbox.take` can say up to which batch this node has everything out of
its hands. It is not thread-safe on its own: the worker's bookkeeping lock
guards it.
"""

from collections import deque
from dataclasses import dataclass
from typing import Deque, Dict, List, Optional, Tuple

from purgebridge.core.invalidation import Invalidation

Span = Tuple[Invalidation, float, float]  # (invalidation, first_at, last_at): unix times of acceptance


@dataclass
class Taken:
    """What :meth:`Inbox.take` hands to the node thread."""

    items: Dict[str, Span]     # key -> span: to send now
    covered: int               # every direct batch up to this one is out of the inbox once these are sent
    due: Optional[float]       # seconds until the first held (hot) URL may leave; None when none is held


class Inbox:
    """Purges waiting for one node, merged by key; hot keys held for the rest of their window."""

    def __init__(self, window: float) -> None:
        self.window = window
        self.items: Dict[str, Tuple[Invalidation, float, float, int]] = {}  # key -> (item, first, last, seq)
        self.upto = 0                # newest direct batch put in
        self.oldest: Optional[float] = None  # oldest first_at waiting
        self._left: Dict[str, float] = {}    # key -> monotonic time it last left (within the window)
        self._leaving: Deque[Tuple[float, List[str]]] = deque()  # (time, keys) of the batches that left

    def __len__(self) -> int:
        return len(self.items)

    def put(self, seq: int, items: Dict[str, Span]) -> None:
        """Merge one direct batch's purges (key -> (item, first_at, last_at)) into the inbox."""
        self._merge(seq, items, reset=False)
        self.upto = seq

    def restore(self, items: Dict[str, Span], seq: int) -> None:
        """Put taken purges back (they could not even be queued) as carrying batch ``seq`` and later.

        ``seq`` is the oldest batch the node has not accounted for: no later
        :meth:`take` may then report that batch out of the inbox while they wait.
        """
        self._merge(seq, items, reset=True)

    def _merge(self, seq: int, items: Dict[str, Span], reset: bool) -> None:
        """A waiting purge keeps its oldest batch, unless ``reset`` gives it ``seq`` (an older one)."""
        waiting = self.items
        oldest = self.oldest
        for key, (item, first_at, last_at) in items.items():
            if oldest is None or first_at < oldest:
                oldest = first_at
            entry = waiting.get(key)
            if entry is None:
                waiting[key] = (item, first_at, last_at, seq)
            else:
                waiting[key] = (item, min(first_at, entry[1]), max(last_at, entry[2]), seq if reset else entry[3])
        self.oldest = oldest

    def take(self, now: float, everything: bool = False) -> Taken:
        """The purges that may leave at monotonic time ``now``; they are recorded as leaving now.

        ``everything`` ignores the window (the node is down: all of it goes
        to the durable queue instead).
        """
        window = self.window
        left = self._left
        leaving = self._leaving
        horizon = now - window
        while leaving and leaving[0][0] <= horizon:  # forget what left longer than a window ago
            at, keys = leaving.popleft()
            for key in keys:
                if left.get(key) == at:
                    del left[key]
        ready: Dict[str, Span] = {}
        held: Dict[str, Tuple[Invalidation, float, float, int]] = {}
        first_due: Optional[float] = None
        held_seq: Optional[int] = None
        oldest: Optional[float] = None
        for key, entry in self.items.items():
            last = None if everything else left.get(key)
            if last is None:
                ready[key] = entry[:3]
                continue
            held[key] = entry
            due = last + window
            if first_due is None or due < first_due:
                first_due = due
            if held_seq is None or entry[3] < held_seq:
                held_seq = entry[3]
            if oldest is None or entry[1] < oldest:
                oldest = entry[1]
        self.items, self.oldest = held, oldest
        if ready and window > 0:
            keys = list(ready)
            for key in keys:
                left[key] = now
            leaving.append((now, keys))
        covered = self.upto if held_seq is None else min(self.upto, held_seq - 1)
        return Taken(ready, covered, None if first_due is None else max(0.0, first_due - now))
