"""Group commit of accepted events: many requests, one transaction, one fsync.

Why: accepting an event used to mean mapping it (~40 URLs), writing ~120
(node, item) delivery rows and an fsync, all inside the request -- about 270
events a second. Now a request only appends the raw validated event to the
journal and waits for a durable commit; mapping and the delivery rows happen
afterwards, in batches, in the worker process (``purgebridge.worker.expansion``).

Requests hand their event (a :class:`JournalEntry`) to the queue's writer
thread (``purgebridge.store.writer``) and block. The writer takes every
event waiting at that moment and writes them (signature into the replay
cache, event into the journal) in ONE transaction with ONE commit
(``synchronous=FULL``), then wakes each request with its own result:
stored, or a replay (signature already stored, or twice in the same group:
:func:`group_rows`). While a commit is on the disk the next group gathers,
so the number of fsyncs per second stays about constant whatever the load.
A request not taken into a transaction within ``wait`` seconds is withdrawn
(nothing of it is stored) and answered 503; one already taken waits for
that transaction's outcome, which is always the truth.
"""

from dataclasses import dataclass, field
import time
from typing import Iterable, List, Optional, Set, Tuple
import uuid

JournalRow = Tuple[str, str, str, float, bytes, Optional[str]]  # id, source, site, received_at, body, signature


@dataclass(slots=True)
class JournalEntry:
    """One accepted event on its way into the journal (slots, not frozen: made once per request, so kept cheap)."""

    source: str
    site: str
    body: bytes
    signature: Optional[str] = None
    event_id: str = field(default_factory=lambda: uuid.uuid4().hex)
    received_at: float = field(default_factory=time.time)

    def row(self) -> JournalRow:
        return (self.event_id, self.source, self.site, self.received_at, self.body, self.signature)


def group_rows(entries: Iterable[JournalEntry], replays: Set[str]) -> Tuple[List[bool], List[JournalRow]]:
    """The rows a group stores and one stored-or-replay flag per entry.

    An entry is a replay when its signature is in ``replays`` (fresh in the
    replay cache) or an earlier entry of the same group used it.
    """
    seen, stored, rows = set(replays), [], []
    for entry in entries:
        if entry.signature and entry.signature in seen:
            stored.append(False)
            continue
        if entry.signature:
            seen.add(entry.signature)
        rows.append(entry.row())
        stored.append(True)
    return stored, rows
