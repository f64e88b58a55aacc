"""Expansion of the journal: accepted events mapped, coalesced and handed on.

The write side -- the group commit of accepted events -- is storage
(``purgebridge.store.journal``). This is the read side, run by the worker:
:func:`gather` maps and coalesces up to ``limit`` journal events not handed
out yet in memory; the worker sends the result straight to the nodes
(``worker``). :func:`expand` is the queued variant: the batch is mapped
with ``mapping.map_batch`` and coalesced in memory first (a burst of updates
that all touch the front page yields one front-page purge per node), then
the delivery rows are inserted or merged and the events marked expanded, in
one transaction. A crash before that commit leaves the events unexpanded:
the next expansion does them again (at-least-once; a PURGE is idempotent).
"""

from dataclasses import dataclass
import functools
import json
import logging

from purgebridge.core import invalidation
from purgebridge.core.mapping import map_batch
from purgebridge.store.contract import payload

log = logging.getLogger(__name__)

EXPAND_BATCH = 500  # journal events mapped and stored per expansion transaction

# The URLs most events share (front page, feeds, archives, categories) become the same
# PURGE again and again: built once, an invalidation also keeps its key and its encoded
# request (both cached on it) for every later batch and every node. A few MB at most.
_purge_for_url = functools.lru_cache(maxsize=4096)(invalidation.purge_for_url)


class _HostBatch:
    """What a batch invalidates on one host: URLs and keys with their oldest/newest acceptance.

    ``urls`` maps a URL to a ``[first_at, last_at]`` list, widened in place.
    """

    __slots__ = ("urls", "keys", "keys_span", "purge_all", "bans")

    def __init__(self):
        self.urls = {}
        self.keys = set()
        self.keys_span = None
        self.purge_all = None
        self.bans = {}  # regex -> (first_at, last_at): site purges of one site of a shared host

    @staticmethod
    def _widen(span, at):
        return (at, at) if span is None else (min(span[0], at), max(span[1], at))

    def add(self, mapped, at):
        if mapped.purge_all:
            self.purge_all = self._widen(self.purge_all, at)
            return
        for regex in mapped.bans:
            self.bans[regex] = self._widen(self.bans.get(regex), at)
        urls = self.urls
        for url in mapped.urls:  # the hot loop of a flood: no call per URL
            span = urls.get(url)
            if span is None:
                urls[url] = [at, at]
            elif at < span[0]:
                span[0] = at
            elif at > span[1]:
                span[1] = at
        if mapped.keys:
            self.keys.update(mapped.keys)
            self.keys_span = self._widen(self.keys_span, at)

    def items(self, host, proto_header):
        """``(Invalidation, (first_at, last_at))`` pairs; a ban of the host makes the rest redundant."""
        if self.purge_all:
            return [(invalidation.purge_all_for(host), self.purge_all)]
        found = [(_purge_for_url(url, proto_header), tuple(span)) for url, span in self.urls.items()]
        if self.keys:
            found.extend((item, self.keys_span) for item in invalidation.keys_for(host, sorted(self.keys)))
        found.extend((invalidation.ban_for(host, regex), span) for regex, span in sorted(self.bans.items()))
        return found


def _count(mapped):
    """Invalidations one event means on its own (what a relay without coalescing would queue)."""
    if mapped.purge_all:
        return 1
    return len(mapped.urls) + (1 if mapped.keys else 0) + len(mapped.bans)


@dataclass
class Expansion:
    """One batch of journal events, mapped and coalesced, not stored anywhere yet.

    ``events``: ``[(event_id, count)]``, count = what the event meant on its
    own (for the merge totals); ``items``: key -> ``(Invalidation, first_at,
    last_at)``, one per distinct invalidation of the whole batch.
    """

    events: list
    items: dict
    failed: int = 0

    @property
    def naive(self):
        """Invalidations per node a relay without coalescing would send for these events."""
        return sum(count for _id, count in self.events)

    def rows(self):
        return [(key, payload(item), first_at, last_at) for key, (item, first_at, last_at) in self.items.items()]


def gather(queue, options_for, proto_header="X-Forwarded-Proto", limit=EXPAND_BATCH):
    """Read up to ``limit`` journal events and map and coalesce them; None when there are none.

    ``options_for(host)`` gives the site's ``MappingOptions``. An event that
    cannot be mapped (impossible for one that passed validation, short of a
    bug) is logged, counted as ``expansion_failed`` and marked expanded with
    the batch, so one bad row never blocks the journal.
    """
    events = queue.pending_events(limit)
    if not events:
        return None
    hosts, counts, memo, failed = {}, [], {}, 0
    for event_id, _source, host, body, received_at in events:
        try:
            data = json.loads(body)
            memo_key = None
            if len(events) > 1:  # bursts repeat the same change with another sent_at: map each distinct one once
                memo_key = (host, data["site"], json.dumps(data["changes"], separators=(",", ":")))
            mapped = memo.get(memo_key)
            if mapped is None:
                mapped = map_batch(data["site"], data["changes"], options_for(host))
                if memo_key is not None:
                    memo[memo_key] = mapped
        except Exception as exc:  # noqa: BLE001 - one bad event must not stop the journal
            log.error("journal event %s (%s) could not be expanded: %s: %s", event_id, host,
                      type(exc).__name__, exc)
            failed += 1
            counts.append((event_id, 0))
            continue
        hosts.setdefault(host, _HostBatch()).add(mapped, received_at)
        counts.append((event_id, _count(mapped)))
    items = {}
    for host, batch in hosts.items():
        try:
            pairs = batch.items(host, proto_header)
        except Exception as exc:  # noqa: BLE001 - same reasoning as above
            log.error("journal: invalidations for %s could not be built: %s: %s", host, type(exc).__name__, exc)
            failed += 1
            continue
        for item, (first_at, last_at) in pairs:
            key = item.key
            if key in items:
                _item, first, last = items[key]
                items[key] = (_item, min(first, first_at), max(last, last_at))
            else:
                items[key] = (item, first_at, last_at)
    return Expansion(events=counts, items=items, failed=failed)


def expand(queue, nodes, options_for, proto_header="X-Forwarded-Proto", limit=EXPAND_BATCH):
    """Expand up to ``limit`` journal events into queued deliveries; returns how many events were taken.

    The queued path (tests, an app without a worker): every (node, item) is
    stored as a delivery row for the node workers to claim. The worker uses
    :func:`gather` and delivers directly instead (``worker``).
    """
    try:
        batch = gather(queue, options_for, proto_header, limit)
        if batch is None:
            return 0
        stored = queue.store_expansion(nodes, batch.events, batch.rows(), failed=batch.failed)
    except BaseException:
        queue.rewind_journal()  # nothing was stored: hand these events out again next time
        raise
    log.debug("expanded %d journal event(s) into %d invalidation(s) x %d node(s): %d new row(s), %d merged",
              len(batch.events), len(batch.items), len(nodes), stored.rows, stored.merged)
    return len(batch.events)
