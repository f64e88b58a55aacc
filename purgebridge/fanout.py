"""Send a batch of invalidations to every Varnish node and say what happened.

This is the one place that knows how a purge is addressed and how an answer is
judged. Every node is worked on in parallel, each over persistent pipelined
connections (see ``transport``); a slow or dead node never holds back the
others.

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

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from enum import Enum
from functools import cached_property
import logging
import random
import re
import threading
import time

from purgebridge.errors import InvalidURL, ProtocolError
from purgebridge.transport import Connection, encode_request
from purgebridge.urls import check_ban_regex, host_header as _host_header, split_url

log = logging.getLogger(__name__)

MAX_KEY_HEADER = 7500  # bytes of one xkey-purge header; Varnish's default limit is 8k
_KEY = re.compile(r"^[A-Za-z0-9._:/-]{1,200}$")


class Outcome(str, Enum):
    PURGED = "purged"
    NOT_CACHED = "not_cached"
    REFUSED = "refused"
    FAILED = "failed"
    SKIPPED = "skipped"  # a key purge to a node without key purges: its URL purges cover the pages

    @property
    def ok(self):
        return self in (Outcome.PURGED, Outcome.NOT_CACHED, Outcome.SKIPPED)


@dataclass(frozen=True)
class Invalidation:
    """One request to send to a node; ``label`` is what reports show."""

    method: str
    target: str
    host: str
    headers: tuple = ()
    label: str = ""

    # Both cached: one invalidation goes to every node, and is merged by key
    # several times on its way there.
    @cached_property
    def key(self):
        """Identity of the request: two equal keys purge the same thing."""
        extra = "".join(f"\n{n}:{v}" for n, v in self.headers)
        return f"{self.method} {self.host}{self.target}{extra}"

    @cached_property
    def wire(self):
        return encode_request(self.method, self.target, self.host, self.headers)

    def encode(self):
        return self.wire

    def to_dict(self):
        return {"method": self.method, "target": self.target, "host": self.host,
                "headers": [list(h) for h in self.headers], "label": self.label}

    @classmethod
    def from_dict(cls, data):
        return cls(data["method"], data["target"], data["host"],
                   tuple(tuple(h) for h in data.get("headers", ())), data.get("label", ""))


def purge_for_url(url, proto_header="X-Forwarded-Proto"):
    """PURGE for one URL; raises InvalidURL before anything is sent."""
    scheme, host, target = split_url(url)
    headers = ((proto_header, scheme),) if proto_header else ()
    return Invalidation("PURGE", target, host, headers, url)


def ban_for(host, regex):
    """BAN of every object on ``host`` whose path+query matches ``regex`` (checked by ``urls.check_ban_regex``)."""
    regex = check_ban_regex(regex)
    host = _host_header(host)
    return Invalidation("BAN", "/", host, (("X-Ban-Url", regex),), f"ban {host} {regex}")


def purge_all_for(host):
    """A ban of everything cached for ``host``."""
    return ban_for(host, ".")


def keys_for(host, keys, soft=False):
    """PURGEKEYS requests for surrogate keys, chunked under MAX_KEY_HEADER bytes."""
    host = _host_header(host)
    header = "xkey-softpurge" if soft else "xkey-purge"
    chunks, current = [], []
    for key in dict.fromkeys(keys):
        if not _KEY.match(key):
            raise InvalidURL(key, "surrogate keys are 1-200 of A-Z a-z 0-9 . _ : / -")
        if current and len(" ".join(current + [key])) > MAX_KEY_HEADER:
            chunks.append(current)
            current = []
        current.append(key)
    if current:
        chunks.append(current)
    return [Invalidation("PURGEKEYS", "/", host, ((header, " ".join(c)),), f"keys {' '.join(c)}")
            for c in chunks]


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


def backoff_delay(attempt, base, cap, rng=random.random):
    """Delay before try ``attempt`` (1 = first retry): base*2^(n-1), capped, jittered to 50-100 %."""
    delay = min(cap, base * (2 ** (attempt - 1)))
    return delay * (0.5 + rng() / 2)


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
        if not encoded:
            return []
        n = min(len(self.conns), max(1, len(encoded) // max(1, self.depth)))
        if n <= 1:
            return self._send_on(self.conns[0], encoded)
        size = -(-len(encoded) // n)
        slices = [encoded[i:i + size] for i in range(0, len(encoded), size)]
        with ThreadPoolExecutor(max_workers=len(slices)) as pool:
            parts = list(pool.map(self._send_on, self.conns[:len(slices)], slices))
        return [answer for part in parts for answer in part]

    def _send_on(self, conn, encoded):
        was_open = conn.sock is not None
        responses, error = conn.exchange(encoded, self.depth)
        if was_open and not responses and isinstance(error, ProtocolError):
            # A kept-alive connection the node had closed meanwhile: once more on a fresh one.
            responses, error = conn.exchange(encoded, self.depth)
        return list(responses) + [error] * (len(encoded) - len(responses))

    def close(self):
        for conn in self.conns:
            conn.close()




def deliver(node, items, settings, retries=None, client=None, sleep=time.sleep, progress=None):
    """Send ``items`` to one node with retries; return one Result per item, in order."""
    retries = settings.retries if retries is None else retries
    own_client = client is None
    if own_client:
        client = NodeClient(node, settings.timeout, settings.connections, settings.pipeline)
    started = time.monotonic()
    results = [None] * len(items)
    encoded, pending = [None] * len(items), []
    for index, item in enumerate(items):  # one by one: a row that cannot be encoded fails alone, not the batch
        try:
            encoded[index] = item.encode()
            pending.append(index)
        except (UnicodeError, ValueError) as exc:
            results[index] = Result(node, item, Outcome.FAILED, None, f"cannot be sent: {exc}", 0, permanent=True)
            if progress:
                progress(1)
    attempt = 0
    try:
        while pending:
            attempt += 1
            answers = client.send([encoded[i] for i in pending])
            again = []
            for index, answer in zip(pending, answers):
                if isinstance(answer, Exception):
                    outcome, retryable, status, reason = Outcome.FAILED, True, None, str(answer)
                else:
                    outcome, retryable = classify(answer.status)
                    status, reason = answer.status, f"HTTP {answer.status} {answer.reason}".strip()
                results[index] = Result(node, items[index], outcome, status, reason, attempt)
                if retryable and attempt <= retries:
                    again.append(index)
                elif progress:
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
    node: object
    results: list
    seconds: float

    def count(self, outcome):
        return sum(1 for r in self.results if r.outcome is outcome)

    @property
    def problems(self):
        return [r for r in self.results if not r.outcome.ok]


@dataclass
class Report:
    nodes: list
    seconds: float = 0.0
    errors: list = field(default_factory=list)

    @property
    def ok(self):
        return not self.errors and all(not n.problems for n in self.nodes)

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
    """Send every item to every node, all nodes at once; return a Report."""
    started = time.monotonic()
    lock = threading.Lock()

    def tick(n):
        with lock:
            progress(n)

    def one(node):
        t0 = time.monotonic()
        results = deliver(node, items, settings, progress=tick if progress else None)
        return NodeReport(node, results, time.monotonic() - t0)

    if not nodes:
        return Report([], 0.0, ["no nodes configured"])
    with ThreadPoolExecutor(max_workers=len(nodes)) as pool:
        reports = list(pool.map(one, nodes))
    return Report(reports, time.monotonic() - started)
