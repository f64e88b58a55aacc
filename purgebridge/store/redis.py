"""The delivery queue on Redis Streams: several relays share one queue, and a dead relay's work.

Why Redis: one relay on a SQLite file is a single point of failure. With
``PURGEBRIDGE_QUEUE=redis://host:port/db`` any number of ``purgebridge serve``
processes accept events into, and drain, the same queue. Redis Streams
consumer groups hand every entry to exactly one relay at a time, and
``XAUTOCLAIM`` gives the entries a relay claimed but never confirmed (it was
SIGKILLed, its machine died) to another relay once their lease ran out.

The contract is the SQLite one, method for method (``purgebridge.store.contract``);
``tests/integration/test_queue_contract.py`` runs the same tests on both. Differences:
``release_leases`` does nothing (other relays may be alive and holding their
leases: a dead relay's claims come back through ``XAUTOCLAIM`` after the lease
time instead), and leases are measured in Redis server time, not ``now``:
a claim's ``lease`` is ``XAUTOCLAIM``'s minimum idle time, so every relay on
one Redis must use the same lease (they do: it comes from the shared settings).

Keys, all under ``prefix`` (default ``purgebridge:``), N a node name::

    events            stream of accepted, not yet expanded events; group "expanders"
    sig:<signature>   replay cache: SET NX EX <window>, in the same script as the XADD
    q:N               stream of deliveries due for node N; group "workers" (one per node)
    rec:<rid>         hash: one delivery (key digest, first/last enqueue, attempts, lease, state, ...)
    item:<rid>        string: the invalidation (JSON). Apart from rec because a hash field over 64
                      bytes turns Redis's compact listpack into a hash table: 2x the memory
    ready:N           hash sha1(item key) -> rid of the delivery not claimed yet (what new ones merge into)
    backoff:N         zset rid -> due time: failed deliveries waiting to be put back on q:N
    age:N             zset rid -> first_at of every live delivery (oldest pending age)
    last:N            zset rid -> last_at of every live delivery (what max age expires, without a scan)
    dead:N            zset rid -> dead_at: dead letters
    nodes, counters, seq, wake, wake:journal (pub/sub channels)

Every change of state is one Lua script, so it is atomic across relays;
with ``appendfsync always`` (docs/scaling.md) Redis has it on disk before it
answers, so "accepted means stored" holds as with SQLite. Memory is bounded by
what is undelivered: an expanded event is XACKed and XDELed, a delivered one
XACKed, XDELed and its record deleted; replay keys expire on their own.
"""

import logging
import os
from urllib.parse import urlsplit, urlunsplit
import random
import socket
import threading
import time
import uuid
import hashlib
import json
from pathlib import Path
from typing import Any, Callable, Dict, Iterable, List, Optional, Sequence, Set

import redis

from purgebridge.core.errors import ConfigError, QueueClosed, QueueError, SignatureError
from purgebridge.core.invalidation import key_of
from purgebridge.store.contract import (REPLAY_WINDOW, redact_location, Backend, Claim, CounterRow, Enqueued, EventCount, PendingEvent,
                                        QueuedItem, dead_letter, site_stats, summarise_stats, unique_payloads)

log = logging.getLogger(__name__)

PREFIX = "purgebridge:"
EVENTS_GROUP = "expanders"
SOCKET_TIMEOUT = 5.0
LUA = Path(__file__).with_name("lua")  # one script per change of state, each prefixed with lib.lua


def _script(name):
    """The Lua source of one script: the shared helpers (lib.lua), then ``name``.lua."""
    return (LUA / "lib.lua").read_text(encoding="utf-8") + (LUA / f"{name}.lua").read_text(encoding="utf-8")


def _digest(key):
    """The item key as stored: 40 hex characters, so the record stays a compact listpack hash."""
    return hashlib.sha1(key.encode()).hexdigest()


def _text(value):
    return value.decode() if isinstance(value, bytes) else value


WAIT_TIMEOUT = 1.0  # seconds an accepting write waits for its replicas (Sentinel) before it counts as failed
SENTINEL_SCHEME = "redis+sentinel://"


class ReplicationLag(redis.RedisError):
    """Fewer replicas than ``wait_replicas`` confirmed an accepting write in time."""


def connect(url: str, socket_timeout: float = SOCKET_TIMEOUT):
    """``(client, replicas to WAIT for)`` for ``redis://``, ``rediss://``, ``unix://`` or a Sentinel URL.

    ``redis+sentinel://[:password@]host:port[,host:port...]/<service>[/<db>][?wait_replicas=N]``
    asks the Sentinels which server is the primary of ``service`` and asks
    them again after a failover (redis-py's ``redis.sentinel``, which does
    the discovery and the reconnection: no need to write our own). With
    Sentinel, every accepting write waits for ``wait_replicas`` replicas
    (default 1; docs/scaling.md says what that does and does not
    guarantee); a plain URL may ask for it with ``?wait_replicas=N`` too.
    """
    from urllib.parse import parse_qs

    parts = urlsplit(url)
    query = parse_qs(parts.query)
    sentinel = url.lower().startswith(SENTINEL_SCHEME)
    try:
        wait_replicas = int(query.get("wait_replicas", ["1" if sentinel else "0"])[0])
    except ValueError:
        raise ConfigError("PURGEBRIDGE_QUEUE", redact_location(url), "wait_replicas: expected a whole number") from None
    if not sentinel:
        plain = urlunsplit(parts._replace(query="&".join(
            f"{k}={v}" for k, values in query.items() if k != "wait_replicas" for v in values)))
        return redis.Redis.from_url(plain, socket_timeout=socket_timeout, socket_connect_timeout=socket_timeout,
                                    health_check_interval=30), wait_replicas
    from redis.sentinel import Sentinel

    credentials, _, hosts = parts.netloc.rpartition("@")
    password = credentials.partition(":")[2] or None if credentials else None
    names = [p for p in parts.path.split("/") if p]
    addresses = []
    for entry in hosts.split(","):
        host, _, port = entry.strip().rpartition(":")
        if not host or not port.isdigit():
            raise ConfigError("PURGEBRIDGE_QUEUE", redact_location(url),
                              f"Sentinel address {entry!r}: expected host:port (redis+sentinel://h1:26379,"
                              "h2:26379,h3:26379/<service>/<db>)")
        addresses.append((host.strip("[]"), int(port)))
    if not names or len(names) > 2 or (len(names) == 2 and not names[1].isdigit()):
        raise ConfigError("PURGEBRIDGE_QUEUE", redact_location(url),
                          "expected the Sentinel service name and an optional db: .../<service>/<db>")
    kwargs: Dict[str, Any] = {"socket_timeout": socket_timeout, "socket_connect_timeout": socket_timeout}
    client = Sentinel(addresses, sentinel_kwargs=kwargs, **kwargs).master_for(
        names[0], db=int(names[1]) if len(names) == 2 else 0, password=password, health_check_interval=30)
    return client, wait_replicas


class RedisQueue(Backend):
    """Redis Streams implementation of the queue contract (``purgebridge.store.contract``)."""

    def __init__(self, url: str, backoff: float = 0.1, backoff_max: float = 5.0, max_age: float = 86400.0,
                 replay_window: float = REPLAY_WINDOW, clock: Callable[[], float] = time.time,
                 rng: Callable[[], float] = random.random, prefix: str = PREFIX, journal_idle: float = 10.0,
                 lease: float = 30.0, socket_timeout: float = SOCKET_TIMEOUT, consumer: Optional[str] = None) -> None:
        super().__init__(backoff, backoff_max, max_age, replay_window, clock, rng)
        self.url = url
        self.path = redact_location(url)  # what logs and /v1/status show as the queue's location
        self.prefix = prefix
        self._rewound = False
        self.journal_idle = journal_idle  # an event read but not expanded this long is taken over
        self.lease = lease                # the lease expire() assumes for claims it finds (set by claim)
        self.consumer = consumer or f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:8]}"
        # Any: redis-py types every reply as a sync-or-async union, which says nothing here
        self.redis: Any
        self.redis, self.wait_replicas = connect(url, socket_timeout)
        self._scripts = {name: self.redis.register_script(_script(name)) for name in (
            "append", "store", "claim", "ack", "nack", "dead", "expire", "retry")}
        self._listener = None
        self._listener_lock = threading.Lock()
        self._closed = False
        self._events_group = False  # created on first read: a relay starts (and says "not ready") without Redis

    def _ensure_events_group(self):
        if self._events_group:
            return
        try:
            self.redis.xgroup_create(self._key("events"), EVENTS_GROUP, id="0", mkstream=True)
        except redis.ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise
        self._events_group = True

    def _key(self, *parts):
        return self.prefix + ":".join(parts)

    def _run(self, name, *args):
        if self._closed:
            raise QueueClosed("queue is closed")
        return self._scripts[name](args=[self.prefix, *args])

    def _replicated(self, name, *args):
        """Run an accepting script, then ``WAIT`` on the same connection until ``wait_replicas`` have it.

        Redis replicates asynchronously: without the WAIT, a primary killed
        right after its answer can take an accepted event with it when a
        replica is promoted. Fewer replicas than asked within
        ``WAIT_TIMEOUT`` raise ``ReplicationLag`` (the caller answers 503 and
        the sender retries); the write may still be on the primary, so a
        retried event can be purged twice, never lost.
        """
        if not self.wait_replicas:
            return self._run(name, *args)
        if self._closed:
            raise RuntimeError("queue is closed")
        pipe = self.redis.pipeline(transaction=False)  # one connection: WAIT counts that connection's writes
        self._scripts[name](args=[self.prefix, *args], client=pipe)
        pipe.execute_command("WAIT", self.wait_replicas, int(WAIT_TIMEOUT * 1000))
        result, acked = pipe.execute()
        if int(acked) < self.wait_replicas:
            raise ReplicationLag(f"{acked} of {self.wait_replicas} replica(s) confirmed the write "
                                 f"within {WAIT_TIMEOUT:g} s")
        return result

    def close(self) -> None:
        self._closed = True
        self._changed.fire()
        self._journal_changed.fire()
        listener = self._listener
        if listener is not None:
            listener.join(timeout=3)
        self.redis.close()

    # --- wake-ups: pub/sub, so a relay hears of work another relay accepted ---------

    def _listen(self):
        """Fire the local signals on every message of the wake channels; reconnect on errors."""
        wake, wake_journal = self._key("wake").encode(), self._key("wake:journal").encode()
        while not self._closed:
            pubsub = self.redis.pubsub(ignore_subscribe_messages=True)
            try:
                pubsub.subscribe(wake, wake_journal)
                while not self._closed:
                    message = pubsub.get_message(timeout=0.5)
                    if message is None:
                        continue
                    (self._journal_changed if message["channel"] == wake_journal else self._changed).fire()
            except redis.RedisError as exc:
                log.warning("redis queue: wake-up channel lost (%s); polling until it is back", exc)
                time.sleep(1.0)
            finally:
                try:
                    pubsub.close()
                except redis.RedisError:
                    pass

    def _ensure_listener(self):
        with self._listener_lock:
            if self._listener is None and not self._closed:
                self._listener = threading.Thread(target=self._listen, name="redis-queue-wake", daemon=True)
                self._listener.start()

    _listening = _ensure_listener

    # --- accepting -----------------------------------------------------------------

    def append(self, source: str, site: str, body: bytes, signature: Optional[str] = None,
               now: Optional[float] = None) -> str:
        """Journal one validated event (replay check in the same script); returns its stream id."""
        now = self.clock() if now is None else now
        try:
            event_id = self._replicated("append", signature or "", int(self.replay_window), source, site,
                                        bytes(body), repr(now))
        except redis.RedisError as exc:
            log.error("redis queue: journal append failed: %s", exc)
            raise QueueError(f"queue not writable: {type(exc).__name__}") from None
        if event_id is None:
            raise SignatureError("signature already used (replay)", replay=True)
        self._journal_changed.fire()
        return _text(event_id)

    def _store(self, nodes, items, events, mode, signature="", failed=0, counted=0, now=None):
        args = [repr(now), signature or "", int(self.replay_window), len(nodes), *nodes, len(items)]
        for key, payload, first_at, last_at in items:
            args.extend((_digest(key), payload, repr(first_at), repr(last_at)))
        args.extend((len(events), *events, mode, failed, counted))
        # accepting a webhook or admin purge (mode "enqueue") is a promise like a 202 event: replicated first
        result = self._replicated("store", *args) if mode == "enqueue" else self._run("store", *args)
        if result is None:
            raise SignatureError("signature already used (replay)", replay=True)
        rows, merged, marked = (int(v) for v in result)
        if rows:
            self._changed.fire()
        return rows, merged, marked

    def enqueue(self, nodes: Sequence[str], items: Iterable[Any], source: str, signature: Optional[str] = None,
                site: str = "", now: Optional[float] = None) -> Enqueued:
        """Store one event's deliveries directly (webhook and admin purges); see the contract."""
        now = self.clock() if now is None else now
        rows = [(key, payload, now, now) for key, payload in unique_payloads(items)]
        added, merged, _ = self._store(list(nodes), rows, [], "enqueue", signature, counted=len(rows), now=now)
        return Enqueued(event_id=uuid.uuid4().hex, items=len(rows), rows=added, merged=merged)

    # --- expansion ---------------------------------------------------------------------

    def pending_events(self, limit: int = 500) -> List[PendingEvent]:
        """Events to expand: a dead relay's stale ones first (XAUTOCLAIM), then new ones (XREADGROUP).

        After :meth:`rewind_journal`, first this consumer's own unacknowledged
        ones (its pending entries list, read from id 0).
        """
        stream = self._key("events")
        self._ensure_events_group()
        entries: List[Any] = []
        if self._rewound:
            self._rewound = False
            for _stream, found in self.redis.xreadgroup(EVENTS_GROUP, self.consumer, {stream: "0"},
                                                        count=limit) or []:
                entries.extend(found)
        if len(entries) < limit:
            _next, stale, *_deleted = self.redis.xautoclaim(stream, EVENTS_GROUP, self.consumer,
                                                            int(self.journal_idle * 1000), "0-0",
                                                            count=limit - len(entries))
            entries.extend(stale)
        entries = [entry for entry in entries if entry[1]]
        if len(entries) < limit:
            fresh = self.redis.xreadgroup(EVENTS_GROUP, self.consumer, {stream: ">"}, count=limit - len(entries))
            for _stream, found in fresh or []:
                entries.extend(found)
        out = []
        for event_id, fields in entries:
            if not fields:
                continue
            out.append((_text(event_id), _text(fields[b"source"]), _text(fields[b"site"]), fields[b"body"],
                        float(fields[b"received_at"])))
        return out

    def rewind_journal(self) -> None:
        """Hand out this consumer's read-but-unexpanded events again (after an expansion that failed)."""
        self._rewound = True

    def finish_expansion(self, events: List[EventCount], counters: Iterable[CounterRow] = (), failed: int = 0,
                         now: Optional[float] = None) -> int:
        """Events the worker delivered directly: XACK + XDEL them (one MULTI), then add the counters."""
        if not events:
            return 0
        stream = self._key("events")
        pipe = self.redis.pipeline(transaction=True)
        for event_id, _count in events:
            pipe.xack(stream, EVENTS_GROUP, event_id)
            pipe.xdel(stream, event_id)
        results = pipe.execute()
        marked = sum(results[1::2])
        pipe = self.redis.pipeline(transaction=True)
        for name, node, value in [*counters, ("expanded", "", marked), ("expansion_failed", "", failed)]:
            if value:
                pipe.hincrby(self._key("counters"), f"{name}|{node}", value)
        pipe.execute()
        return marked

    def requeue(self, node: str, items: List[QueuedItem], now: Optional[float] = None) -> None:
        """What the direct path could not confirm on ``node``: waiting deliveries (merged by key)."""
        now = self.clock() if now is None else now
        if items:
            self._store([node], [tuple(item) for item in items], [], "defer", now=now)

    def store_expansion(self, nodes: Sequence[str], events: List[EventCount], items: List[QueuedItem],
                        failed: int = 0, now: Optional[float] = None) -> Enqueued:
        """Deliveries of a batch of journal events, and the events XACKed + XDELed, in one script."""
        now = self.clock() if now is None else now
        if not events:
            return Enqueued(event_id="", items=0, rows=0, merged=0)
        counted = sum(count for _id, count in events)
        rows, merged, marked = self._store(list(nodes), items, [event_id for event_id, _ in events], "expand",
                                           failed=failed, counted=counted, now=now)
        tag = events[-1][0]
        if not marked:
            return Enqueued(event_id=tag, items=0, rows=0, merged=0)
        return Enqueued(event_id=tag, items=len(items), rows=rows, merged=merged)

    def journal_pending(self) -> int:
        return self.redis.xlen(self._key("events"))

    # --- delivering ------------------------------------------------------------------------

    def claim(self, node: str, limit: int = 256, lease: float = 30.0, now: Optional[float] = None) -> List[Claim]:
        now = self.clock() if now is None else now
        token = uuid.uuid4().hex
        self.lease = lease  # what expire() takes as "lease ran out" (every relay uses the same one)
        rows = self._run("claim", node, repr(now), int(limit), max(1, int(lease * 1000)), self.consumer, token)
        claims = []
        for rid, payload, attempts, first_at in rows:
            item = json.loads(payload)
            claims.append(Claim(id=int(rid), node=node, key=key_of(item), item=item,
                                attempts=int(attempts), first_at=float(first_at), lease=token))
        return claims

    @staticmethod
    def _by_node_and_lease(claims):
        groups = {}
        for claim in claims:
            groups.setdefault((claim.node, claim.lease), []).append(claim)
        return groups.items()

    def ack(self, claims: List[Claim], outcome: str = "purged", now: Optional[float] = None) -> List[float]:
        now = self.clock() if now is None else now
        for (node, lease), group in self._by_node_and_lease(claims):
            self._run("ack", node, repr(now), outcome, lease, *[c.id for c in group])
        return [max(0.0, now - claim.first_at) for claim in claims]

    def nack(self, claims: List[Claim], reason: str, now: Optional[float] = None) -> None:
        now = self.clock() if now is None else now
        reason = str(reason)[:500]
        for (node, lease), group in self._by_node_and_lease(claims):
            args: List[Any] = []
            for claim in group:
                args.extend((claim.id, repr(now + self.backoff_delay(claim.attempts))))
            self._run("nack", node, repr(now), reason, lease, *args)
        if claims:
            self._changed.fire()

    def dead(self, claims: List[Claim], reason: str, now: Optional[float] = None) -> None:
        now = self.clock() if now is None else now
        for (node, lease), group in self._by_node_and_lease(claims):
            self._run("dead", node, repr(now), str(reason)[:500], lease, *[c.id for c in group])

    def _nodes(self):
        return sorted(_text(n) for n in self.redis.smembers(self._key("nodes")))

    def expire(self, now: Optional[float] = None) -> Dict[str, int]:
        """Dead-letter deliveries older than ``max_age``; returns ``{node: rows}``. Replay keys expire by themselves (EX)."""
        now = self.clock() if now is None else now
        per_node = {}
        for node in self._nodes():
            count = int(self._run("expire", node, repr(now), repr(now - self.max_age), max(1, int(self.lease * 1000))))
            if count:
                per_node[node] = count
        return per_node

    def release_leases(self, now: Optional[float] = None) -> int:
        """Nothing to do: other relays may hold live leases; a dead one's come back via XAUTOCLAIM."""
        return 0

    def retry_dead(self, node: Optional[str] = None, now: Optional[float] = None) -> int:
        now = self.clock() if now is None else now
        nodes = [node] if node else self._nodes()
        count = sum(int(self._run("retry", name, repr(now))) for name in nodes)
        if count:
            self._changed.fire()
        return count

    # --- reads ------------------------------------------------------------------------------

    def next_due(self, node: str, now: Optional[float] = None) -> Optional[float]:
        """0 if something waits on the node's stream or a claim's lease ran out, else seconds to the next
        backoff or lease end, else None.

        Claims of a dead relay count once their lease is over (``XPENDING ...
        IDLE lease``): the worker polls this every second, so they are taken
        over by ``claim``'s XAUTOCLAIM then. Before, only a node with new work
        claimed, and 20 claims of two killed relays sat 107-124 s until an
        unrelated event came (issue 25.6).
        """
        now = self.clock() if now is None else now
        stream = self._key("q", node)
        pipe = self.redis.pipeline(transaction=False)
        pipe.hlen(self._key("ready", node))
        pipe.zcard(self._key("backoff", node))
        pipe.zrange(self._key("backoff", node), 0, 0, withscores=True)
        pipe.exists(stream)
        waiting, backing_off, first, has_stream = pipe.execute()
        if waiting > backing_off:
            return 0.0
        if has_stream and self._expired_claims(stream):
            return 0.0
        if first:
            return max(0.0, first[0][1] - now)
        return None

    def _expired_claims(self, stream: str) -> bool:
        """Whether a claim on ``stream`` has been idle (unconfirmed) for longer than the lease."""
        try:
            return bool(self.redis.xpending_range(stream, "workers", min="-", max="+", count=1,
                                                  idle=max(1, int(self.lease * 1000))))
        except redis.ResponseError:  # no group yet: nothing was ever claimed
            return False

    def dead_hosts(self, node: str, since: float) -> Set[str]:
        """Hosts of ``node``'s dead letters dead-lettered at or after ``since`` (whom a dead-letter ban must cover)."""
        hosts = set()
        for rid in self.redis.zrangebyscore(self._key("dead", node), since, "+inf"):
            payload = self.redis.get(self._key("item", _text(rid)))
            if payload:
                hosts.add(json.loads(payload).get("host", ""))
        return hosts - {""}

    def dead_letters(self, limit: int = 100, node: Optional[str] = None) -> List[Dict[str, Any]]:
        letters = []
        for name in ([node] if node else self._nodes()):
            for rid, _dead_at in self.redis.zrange(self._key("dead", name), 0, limit - 1, withscores=True):
                rid = _text(rid)
                fields = {_text(k): _text(v) for k, v in self.redis.hgetall(self._key("rec", rid)).items()}
                payload = self.redis.get(self._key("item", rid))
                if fields and payload:
                    letters.append(dead_letter(int(rid), name, json.loads(payload), float(fields["first_at"]),
                                               float(fields["dead_at"]), int(fields["attempts"]), fields["error"]))
        letters.sort(key=lambda letter: (letter["dead_at"], letter["id"]))
        return letters[:limit]

    def depth(self) -> int:
        return self.stats()["depth"] - self.stats()["journal_pending"]

    def stats(self, now: Optional[float] = None) -> Dict[str, Any]:
        now = self.clock() if now is None else now
        nodes = self._nodes()
        pipe = self.redis.pipeline(transaction=False)
        for name in nodes:
            pipe.hlen(self._key("ready", name))
            pipe.zcard(self._key("age", name))
            pipe.zcard(self._key("dead", name))
            pipe.zrange(self._key("age", name), 0, 0, withscores=True)
        pipe.hgetall(self._key("counters"))
        pipe.xlen(self._key("events"))
        pipe.xrange(self._key("events"), "-", "+", count=1)
        results = pipe.execute()
        entries = {}
        for index, name in enumerate(nodes):
            ready, live, dead, oldest = results[4 * index:4 * index + 4]
            age = max(0.0, now - oldest[0][1]) if oldest else None
            entries[name] = {"pending": ready, "in_flight": max(0, live - ready), "dead": dead,
                             "oldest_pending_age": age}
        counters, journal_pending, first_event = results[-3:]
        rows = []
        for field, value in counters.items():
            name, _, node = _text(field).partition("|")
            rows.append((name, node, int(value)))
        journal_age = max(0.0, now - float(first_event[0][1][b"received_at"])) if first_event else None
        return summarise_stats(entries, rows, journal_pending, journal_age)

    SITE_SCAN = 20000  # rows per node and state read for site_deliveries (a bigger backlog is counted in part)

    def site_deliveries(self, host: str, now: Optional[float] = None) -> Dict[str, Any]:
        """One site's waiting and dead-lettered purges per node (``site_stats``), read row by row (bounded)."""
        now = self.clock() if now is None else now
        rows = []
        for name in self._nodes():
            for state, zset in (("ready", "age"), ("dead", "dead")):
                members = self.redis.zrange(self._key(zset, name), 0, self.SITE_SCAN - 1, withscores=True)
                pipe = self.redis.pipeline(transaction=False)
                for rid, _score in members:
                    pipe.get(self._key("item", _text(rid)))
                    pipe.hget(self._key("rec", _text(rid)), "error")
                found = pipe.execute() if members else []
                count, oldest, last, error = 0, None, None, ""
                for (rid, score), payload, err in zip(members, found[0::2], found[1::2]):
                    if not payload or json.loads(payload).get("host") != host:
                        continue
                    count += 1
                    oldest = score if oldest is None else min(oldest, score)
                    last = score if last is None else max(last, score)
                    error = _text(err) if err else error
                if count:
                    rows.append((name, state, count, None if state == "dead" else oldest,
                                 last if state == "dead" else None, error))
        pending, oldest_event = 0, None
        for _event_id, fields in self.redis.xrange(self._key("events"), "-", "+", count=self.SITE_SCAN):
            if _text(fields.get(b"site", b"")) == host:
                pending += 1
                received = float(fields[b"received_at"])
                oldest_event = received if oldest_event is None else min(oldest_event, received)
        return site_stats(rows, pending, oldest_event, now)

    def memory(self) -> int:
        """Bytes Redis uses (``INFO memory`` used_memory): for /metrics and the sizing in docs/scaling.md."""
        return int(self.redis.info("memory")["used_memory"])

    def writable(self) -> bool:
        """True when Redis takes a write (a full disk or a failing AOF makes it refuse: MISCONF)."""
        if self._closed:
            return False
        try:
            self.redis.set(self._key("writable"), "1", ex=60)
            return True
        except redis.RedisError as exc:
            log.error("queue %s is not writable: %s", self.path, exc)
            return False
