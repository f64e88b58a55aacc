"""Send a batch of invalidations to every Varnish node and say what happened.

This is the one place that knows how a purge is addressed and how an answer is
judged. Every node is worked on at once over persistent pipelined
connections (see ``transport``): the first attempt of all nodes in one read
loop, retries per node in a thread of its own. A slow or dead node never holds
back the others' answers; only their retries wait for its first attempt to
end (at most the timeout).

How an answer is classified (``classify``):

=============  ==========================  =======================================
outcome        answers                     retried?
=============  ==========================  =======================================
purged         2xx                         --
not_cached     404                         -- (counts as success: nothing to drop)
refused        403, 405                    no: the node's ACL does not allow us
failed         408, 429, 5xx, no answer    yes, with exponential backoff + jitter
failed         other 3xx/4xx               no: the request itself is wrong
=============  ==========================  =======================================

Variants: each PURGE carries the URL's scheme in ``X-Forwarded-Proto`` (name
configurable, ``PURGEBRIDGE_PROTO_HEADER``) because VCLs that serve http and
https usually hash on it; purge ``http://`` and ``https://`` URLs to reach both.
"""

from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from enum import Enum
from functools import cached_property
import logging
import threading
import time

from purgebridge.core.backoff import backoff_delay
from purgebridge.core.errors import ProtocolError
from purgebridge.core.invalidation import Invalidation
from purgebridge.delivery.transport import Connection, exchange_all

log = logging.getLogger(__name__)


class Outcome(str, Enum):
    PURGED = "purged"
    NOT_CACHED = "not_cached"
    REFUSED = "refused"
    FAILED = "failed"
    SKIPPED = "skipped"  # a key purge to a node without key purges: its URL purges cover the pages

    @property
    def ok(self):
        return self in (Outcome.PURGED, Outcome.NOT_CACHED, Outcome.SKIPPED)


def classify(status):
    """``(outcome, retryable)`` for an HTTP status."""
    if 200 <= status < 300:
        return Outcome.PURGED, False
    if status == 404:
        return Outcome.NOT_CACHED, False
    if status in (403, 405):
        return Outcome.REFUSED, False
    if status in (408, 429) or status >= 500:
        return Outcome.FAILED, True
    return Outcome.FAILED, False


NO_KEY_PURGES = (501, 405)  # what a node whose VCL has no key purges answers PURGEKEYS


def key_support(result):
    """What a node's answer to PURGEKEYS says: True (key purges work), False (501/405: none), None (no answer)."""
    if result.status is None:
        return None
    if result.status in NO_KEY_PURGES:
        return False
    return True if result.outcome.ok else None


@dataclass
class Result:
    node: object
    item: Invalidation
    outcome: Outcome
    status: object = None
    reason: str = ""
    attempts: int = 0
    seconds: float = 0.0
    permanent: bool = False  # can never succeed (cannot even be encoded): dead letter at once, never retried

    def to_dict(self):
        return {"node": self.node.name, "item": self.item.label or self.item.key, "method": self.item.method,
                "outcome": self.outcome.value, "status": self.status, "reason": self.reason,
                "attempts": self.attempts}


class NodeClient:
    """Persistent connections to one node, reused across ``deliver`` calls."""

    def __init__(self, node, timeout, connections=1, depth=64):
        self.node = node
        self.depth = depth
        self.conns = [Connection(node.host, node.port, timeout) for _ in range(max(1, connections))]

    def send(self, encoded):
        """Send encoded requests split over the connections; return (responses-or-errors per request)."""
        return send_together([self], [encoded])[0]

    def split(self, encoded):
        """The connections to use for ``encoded`` and the slice each carries (one slice per ``depth``)."""
        n = min(len(self.conns), max(1, len(encoded) // max(1, self.depth)))
        size = -(-len(encoded) // n)
        slices = [encoded[i:i + size] for i in range(0, len(encoded), size)]
        return self.conns[:len(slices)], slices

    def close(self):
        for conn in self.conns:
            conn.close()


def send_together(clients, batches, on_answers=None):
    """``clients[i].send(batches[i])`` for every i, all connections of all clients in one read loop.

    Returns one list per client: a Response or the TransportError that stands
    for it, per request. A kept-alive connection the node had closed
    meanwhile is tried once more on a fresh one.
    """
    plan = []  # (client index, connection, slice)
    for index, (client, encoded) in enumerate(zip(clients, batches)):
        if encoded:
            conns, slices = client.split(encoded)
            plan.extend((index, conn, part) for conn, part in zip(conns, slices))
    conns = [conn for _, conn, _ in plan]
    parts = [part for _, _, part in plan]
    depths = [clients[index].depth for index, _, _ in plan]
    was_open = [conn.sock is not None for conn in conns]
    outcomes = exchange_all(conns, parts, depths, on_answers)
    again = [k for k, (responses, error) in enumerate(outcomes)
             if was_open[k] and not responses and isinstance(error, ProtocolError)]
    if again:
        retried = exchange_all([conns[k] for k in again], [parts[k] for k in again], [depths[k] for k in again],
                               on_answers)
        for k, outcome in zip(again, retried):
            outcomes[k] = outcome
    answers = [[] for _ in clients]
    for (index, _, part), (responses, error) in zip(plan, outcomes):
        answers[index].extend(responses)
        answers[index].extend([error] * (len(part) - len(responses)))
    return answers


def _encode_all(items):
    """``(encoded, sendable, unencodable)``: the wire bytes per item (None where it cannot be encoded),
    the indexes that can be sent, and ``{index: error}`` for the rest (they fail alone, not the batch)."""
    try:  # the whole batch at once (each item encodes once, for every node) ...
        return [item.encode() for item in items], list(range(len(items))), {}
    except (UnicodeError, ValueError):  # ... else one by one
        encoded, sendable, unencodable = [None] * len(items), [], {}
        for index, item in enumerate(items):
            try:
                encoded[index] = item.encode()
                sendable.append(index)
            except (UnicodeError, ValueError) as exc:
                unencodable[index] = exc
        return encoded, sendable, unencodable


def _judge(answer):
    """``(outcome, retryable, status, reason)`` for one answer, or for the TransportError that stands for it."""
    if isinstance(answer, Exception):
        return Outcome.FAILED, True, None, str(answer)
    outcome, retryable = classify(answer.status)
    return outcome, retryable, answer.status, f"HTTP {answer.status} {answer.reason}".strip()


def deliver(node, items, settings, retries=None, client=None, sleep=time.sleep, progress=None,
            first_answers=None):
    """Send ``items`` to one node with retries; return one Result per item, in order.

    ``first_answers``: the answers to the first attempt when the caller has
    already sent it (``fan_out`` sends every node's first attempt in one read
    loop); answers that are final there were already counted by its progress.
    """
    retries = settings.retries if retries is None else retries
    own_client = client is None
    if own_client:
        client = NodeClient(node, settings.timeout, settings.connections, settings.pipeline)
    started = time.monotonic()
    results = [None] * len(items)
    encoded, pending, unencodable = _encode_all(items)
    for index, exc in unencodable.items():
        results[index] = Result(node, items[index], Outcome.FAILED, None, f"cannot be sent: {exc}", 0,
                                permanent=True)
        if progress:
            progress(1)
    attempt = 0
    try:
        while pending:
            attempt += 1
            counted = attempt == 1 and first_answers is not None
            answers = first_answers if counted else client.send([encoded[i] for i in pending])
            again = []
            judged = {}  # answers repeat (the transport shares one object per distinct answer): judge each once
            for index, answer in zip(pending, answers):
                verdict = judged.get(id(answer))
                if verdict is None:
                    verdict = judged[id(answer)] = _judge(answer)
                outcome, retryable, status, reason = verdict
                results[index] = Result(node, items[index], outcome, status, reason, attempt)
                if retryable and attempt <= retries:
                    again.append(index)
                elif progress and not (counted and not isinstance(answer, Exception)):
                    progress(1)
            pending = again
            if pending:
                delay = backoff_delay(attempt, settings.backoff, settings.backoff_max)
                log.info("node %s: %d purges failed (%s), retry %d/%d in %.2fs", node.name, len(pending),
                         results[pending[0]].reason, attempt, retries, delay)
                sleep(delay)
    finally:
        if own_client:
            client.close()
    elapsed = time.monotonic() - started
    for result in results:
        result.seconds = elapsed
    return results


@dataclass
class NodeReport:
    """One node's results; counted once (a bulk purge has tens of thousands, and the report reads them often)."""

    node: object
    results: list
    seconds: float

    @cached_property
    def _counts(self):
        return Counter(r.outcome for r in self.results)

    def count(self, outcome):
        return self._counts[outcome]

    @cached_property
    def problems(self):
        if all(self._counts[o] == 0 for o in Outcome if not o.ok):
            return []
        return [r for r in self.results if not r.outcome.ok]


@dataclass
class Report:
    nodes: list
    seconds: float = 0.0
    errors: list = field(default_factory=list)

    @property
    def ok(self):
        return not self.errors and all(not n.problems for n in self.nodes)

    def table(self):
        """Per-node table for people (``purgebridge purge``, the demo): node, purged, not cached, failed, refused, time."""
        headers = ["node", "purged", "not cached", "failed", "refused", "time"]
        rows = [[n["node"], n["purged"], n["not_cached"], n["failed"], n["refused"], f"{n['seconds'] * 1000:.0f} ms"]
                for n in self.to_dict()["nodes"]]
        widths = [max(len(str(v)) for v in col) for col in zip(headers, *rows)]
        lines = ["  ".join(str(v).ljust(w) if i == 0 else str(v).rjust(w) for i, (v, w) in enumerate(zip(row, widths)))
                 for row in [headers] + rows]
        problems = self.to_dict()["problems"]
        if problems:
            lines.append("")
            lines.append("not acknowledged:")
            for p in problems:
                lines.append(f"  {p['node']}  {p['outcome']:<8} {p['item']}  ({p['reason']}, {p['attempts']} tries)")
        for error in self.errors:
            lines.append(f"error: {error}")
        return "\n".join(lines)

    def to_dict(self):
        return {
            "ok": self.ok,
            "seconds": round(self.seconds, 4),
            "nodes": [{
                "node": n.node.name,
                "purged": n.count(Outcome.PURGED),
                "not_cached": n.count(Outcome.NOT_CACHED),
                "failed": n.count(Outcome.FAILED),
                "refused": n.count(Outcome.REFUSED),
                "seconds": round(n.seconds, 4),
            } for n in self.nodes],
            "problems": [r.to_dict() for n in self.nodes for r in n.problems],
            "errors": list(self.errors),
        }


def fan_out(nodes, items, settings, progress=None):
    """Send every item to every node, all nodes at once; return a Report.

    The first attempt of every node runs in one read loop in this thread
    (``send_together``): one thread per node made them take turns on the GIL
    for every few answers. Retries then run per node, each in its own thread
    with its own backoff, once every node's first attempt has ended (at most
    ``PURGEBRIDGE_TIMEOUT`` after the last answer of the slowest node). A
    node's time in the report is its own: the end of its first attempt, or
    of its last retry.
    """
    started = time.monotonic()
    if not nodes:
        return Report([], 0.0, ["no nodes configured"])
    lock = threading.Lock()

    def tick(n):
        with lock:
            progress(n)

    def final_answers(responses):  # progress of the shared loop: answers no retry will follow
        final = sum(1 for r in responses if not classify(r.status)[1]) if settings.retries else len(responses)
        if final:
            tick(final)

    clients = [NodeClient(node, settings.timeout, settings.connections, settings.pipeline) for node in nodes]
    try:
        encoded, sendable, _ = _encode_all(items)
        batch = [encoded[i] for i in sendable]
        firsts = send_together(clients, [batch] * len(clients), final_answers if progress else None)

        def one(index):
            node, client = nodes[index], clients[index]
            results = deliver(node, items, settings, client=client, first_answers=firsts[index],
                              progress=tick if progress else None)
            retried = any(r.attempts > 1 for r in results)
            first_end = max((conn.finished_at for conn in client.conns), default=started)
            seconds = (time.monotonic() if retried else max(first_end, started)) - started
            for result in results:  # deliver timed only the retries; the node's time includes the first attempt
                result.seconds = seconds
            return NodeReport(node, results, seconds)

        with ThreadPoolExecutor(max_workers=len(nodes)) as pool:
            reports = list(pool.map(one, range(len(nodes))))
    finally:
        for client in clients:
            client.close()
    return Report(reports, time.monotonic() - started)
