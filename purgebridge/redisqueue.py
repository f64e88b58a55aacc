"""The delivery queue on Redis Streams: several relays share one queue, and a dead relay's work.

Why Redis: one relay on a SQLite file is a single point of failure. With
``PURGEBRIDGE_QUEUE=redis://host:port/db`` any number of ``purgebridge serve``
processes accept events into, and drain, the same queue. Redis Streams
consumer groups hand every entry to exactly one relay at a time, and
``XAUTOCLAIM`` gives the entries a relay claimed but never confirmed (it was
SIGKILLed, its machine died) to another relay once their lease ran out.

The contract is the SQLite one, method for method (see ``purgebridge.queue``);
``tests/test_queue_contract.py`` runs the same tests on both. Differences:
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
import random
import socket
import threading
import time
import uuid
import hashlib
import json
from urllib.parse import urlsplit, urlunsplit

import redis

from purgebridge import fanout
from purgebridge.errors import SignatureError
from purgebridge.fanout import Invalidation
from purgebridge.journal import JournalError
from purgebridge.queue import REPLAY_WINDOW, Claim, Enqueued, summarise_stats
from purgebridge.wakeup import Signal

log = logging.getLogger(__name__)

PREFIX = "purgebridge:"
EVENTS_GROUP = "expanders"
WORKERS_GROUP = "workers"
SOCKET_TIMEOUT = 5.0

# Shared Lua helpers. P = key prefix. A delivery that merges into a waiting one
# keeps the oldest first_at (latency counts from it) and the newest last_at
# (max age counts from it), as in the SQLite backend.
_LUA_LIB = r"""
local P = ARGV[1]
local function group(stream)
  redis.pcall('XGROUP', 'CREATE', stream, 'workers', '0', 'MKSTREAM')
end
local function count(name, node, n)
  if n ~= 0 then redis.call('HINCRBY', P .. 'counters', name .. '|' .. node, n) end
end
local function push(node, rid)
  local sid = redis.call('XADD', P .. 'q:' .. node, '*', 'rid', rid)
  redis.call('HSET', P .. 'rec:' .. rid, 'sid', sid)
end
-- fold record rid (not waiting) into the waiting delivery of the same key, if any
local function merge_into_ready(node, rid)
  local rec = P .. 'rec:' .. rid
  local key = redis.call('HGET', rec, 'key')
  local other = redis.call('HGET', P .. 'ready:' .. node, key)
  if not other or other == rid then return false end
  local orec = P .. 'rec:' .. other
  redis.call('HINCRBY', orec, 'merges', 1)
  local mine = redis.call('HGET', rec, 'first_at')
  if tonumber(mine) < tonumber(redis.call('HGET', orec, 'first_at')) then
    redis.call('HSET', orec, 'first_at', mine)
    redis.call('ZADD', P .. 'age:' .. node, mine, other)
  end
  redis.call('DEL', rec, P .. 'item:' .. rid)
  redis.call('ZREM', P .. 'age:' .. node, rid)
  redis.call('ZREM', P .. 'last:' .. node, rid)
  return true
end
-- a new delivery, or merged into the waiting one of the same key; returns 1 if new
local function add(node, key, payload, first_at, last_at)
  local ready = P .. 'ready:' .. node
  local rid = redis.call('HGET', ready, key)
  if rid then
    local rec = P .. 'rec:' .. rid
    redis.call('HINCRBY', rec, 'merges', 1)
    if tonumber(redis.call('HGET', rec, 'last_at')) < tonumber(last_at) then
      redis.call('HSET', rec, 'last_at', last_at)
      redis.call('ZADD', P .. 'last:' .. node, last_at, rid)
    end
    return 0
  end
  rid = tostring(redis.call('INCR', P .. 'seq'))
  redis.call('HSET', P .. 'rec:' .. rid, 'key', key, 'first_at', first_at, 'last_at', last_at, 'attempts', 0,
             'merges', 0, 'lease', '', 'error', '', 'state', 'ready')
  redis.call('SET', P .. 'item:' .. rid, payload)
  redis.call('HSET', ready, key, rid)
  redis.call('ZADD', P .. 'age:' .. node, first_at, rid)
  redis.call('ZADD', P .. 'last:' .. node, last_at, rid)
  push(node, rid)
  return 1
end
-- remove the claim's stream entry; true if rid is still leased with this token
local function settle(node, rid, token)
  local rec = P .. 'rec:' .. rid
  if redis.call('HGET', rec, 'lease') ~= token or token == '' then return false end
  local sid = redis.call('HGET', rec, 'sid')
  if sid and sid ~= '' then
    redis.call('XACK', P .. 'q:' .. node, 'workers', sid)
    redis.call('XDEL', P .. 'q:' .. node, sid)
  end
  redis.call('HSET', rec, 'sid', '', 'lease', '')
  return true
end
local function bury(node, rid, now, reason)
  local rec = P .. 'rec:' .. rid
  redis.call('HSET', rec, 'state', 'dead', 'dead_at', now, 'error', reason, 'lease', '', 'sid', '')
  redis.call('ZADD', P .. 'dead:' .. node, now, rid)
  redis.call('ZREM', P .. 'age:' .. node, rid)
  redis.call('ZREM', P .. 'last:' .. node, rid)
end
"""

# ARGV: P, signature ('' for none), window, source, site, body, received_at
_APPEND = _LUA_LIB + r"""
local sig = ARGV[2]
if sig ~= '' then
  if not redis.call('SET', P .. 'sig:' .. sig, ARGV[7], 'NX', 'EX', ARGV[3]) then return false end
end
local id = redis.call('XADD', P .. 'events', '*', 'source', ARGV[4], 'site', ARGV[5], 'body', ARGV[6],
                      'received_at', ARGV[7], 'signature', sig)
count('events', '', 1)
redis.call('PUBLISH', P .. 'wake:journal', '1')
return id
"""

# ARGV: P, now, signature, window, nnodes, nodes..., nitems, (key, payload, first_at, last_at)...,
#       nevents, event ids..., mode ('enqueue' | 'expand'), failed, counted
# 'enqueue': the replay check and one event counted. 'expand': the events are XACKed and XDELed
# from the journal first; if none was still there (another relay did them), nothing is written.
_STORE = _LUA_LIB + r"""
local now, sig, i = ARGV[2], ARGV[3], 5
local nodes = {}
for n = 1, tonumber(ARGV[i]) do nodes[n] = ARGV[i + n] end
i = i + #nodes + 1
local nitems = tonumber(ARGV[i])
local items_at = i + 1
i = i + 4 * nitems + 1
local nevents = tonumber(ARGV[i])
local events_at = i + 1
i = i + nevents + 1
local mode, failed, counted = ARGV[i], tonumber(ARGV[i + 1]), tonumber(ARGV[i + 2])
local marked = 0
if mode == 'expand' then
  for e = 0, nevents - 1 do
    local id = ARGV[events_at + e]
    redis.call('XACK', P .. 'events', 'expanders', id)
    marked = marked + redis.call('XDEL', P .. 'events', id)  -- 0: another relay expanded it already
  end
  if marked == 0 then return {0, 0, 0} end
  count('expanded', '', marked)
  count('expansion_failed', '', failed)
elseif mode == 'defer' then
  -- deliveries the worker's direct path could not confirm: no event, no signature
  counted = 0
else
  if sig ~= '' then
    if not redis.call('SET', P .. 'sig:' .. sig, now, 'NX', 'EX', ARGV[4]) then return false end
  end
  count('events', '', 1)
end
local rows = 0
for _, node in ipairs(nodes) do
  redis.call('SADD', P .. 'nodes', node)
  group(P .. 'q:' .. node)
  for k = 0, nitems - 1 do
    local at = items_at + 4 * k
    rows = rows + add(node, ARGV[at], ARGV[at + 1], ARGV[at + 2], ARGV[at + 3])
  end
end
local merged = math.max(0, counted * #nodes - rows)
count('rows', '', rows)
count('merged', '', merged)
if rows > 0 then redis.call('PUBLISH', P .. 'wake', '1') end
return {rows, merged, marked}
"""

# ARGV: P, node, now, limit, lease_ms, consumer, token
_CLAIM = _LUA_LIB + r"""
local node, now, limit, token = ARGV[2], ARGV[3], tonumber(ARGV[4]), ARGV[7]
local stream = P .. 'q:' .. node
group(stream)
for _, rid in ipairs(redis.call('ZRANGEBYSCORE', P .. 'backoff:' .. node, '-inf', now, 'LIMIT', 0, 1000)) do
  redis.call('ZREM', P .. 'backoff:' .. node, rid)
  push(node, rid)
end
local entries = {}
local stale = redis.call('XAUTOCLAIM', stream, 'workers', ARGV[6], ARGV[5], '0-0', 'COUNT', limit)
for _, entry in ipairs(stale[2]) do
  if entry and entry[2] then table.insert(entries, entry) end
end
if #entries < limit then
  local fresh = redis.call('XREADGROUP', 'GROUP', 'workers', ARGV[6], 'COUNT', limit - #entries,
                          'STREAMS', stream, '>')
  if fresh then
    for _, entry in ipairs(fresh[1][2]) do table.insert(entries, entry) end
  end
end
local out = {}
for _, entry in ipairs(entries) do
  local sid, rid = entry[1], entry[2][2]
  local rec = P .. 'rec:' .. rid
  if redis.call('HGET', rec, 'sid') ~= sid then
    -- a leftover of a delivery that was settled or expired meanwhile
    redis.call('XACK', stream, 'workers', sid)
    redis.call('XDEL', stream, sid)
  else
    local key = redis.call('HGET', rec, 'key')
    if redis.call('HGET', P .. 'ready:' .. node, key) == rid then
      redis.call('HDEL', P .. 'ready:' .. node, key)  -- in flight now: new ones no longer merge into it
    end
    local attempts = redis.call('HINCRBY', rec, 'attempts', 1)
    redis.call('HSET', rec, 'lease', token, 'state', 'leased')
    table.insert(out, {rid, redis.call('GET', P .. 'item:' .. rid), attempts, redis.call('HGET', rec, 'first_at')})
  end
end
return out
"""

# ARGV: P, node, now, outcome, token, rids...
_ACK = _LUA_LIB + r"""
local node, n = ARGV[2], 0
for a = 6, #ARGV do
  local rid = ARGV[a]
  if settle(node, rid, ARGV[5]) then
    redis.call('DEL', P .. 'rec:' .. rid, P .. 'item:' .. rid)
    redis.call('ZREM', P .. 'age:' .. node, rid)
    redis.call('ZREM', P .. 'last:' .. node, rid)
    n = n + 1
  end
end
count(ARGV[4], node, n)
return n
"""

# ARGV: P, node, now, reason, token, (rid, due)...
_NACK = _LUA_LIB + r"""
local node, n = ARGV[2], 0
for a = 6, #ARGV, 2 do
  local rid = ARGV[a]
  if settle(node, rid, ARGV[5]) then
    n = n + 1
    if not merge_into_ready(node, rid) then
      local rec = P .. 'rec:' .. rid
      redis.call('HSET', rec, 'state', 'ready', 'error', ARGV[4])
      redis.call('HSET', P .. 'ready:' .. node, redis.call('HGET', rec, 'key'), rid)
      redis.call('ZADD', P .. 'backoff:' .. node, ARGV[a + 1], rid)
    end
  end
end
count('failed_attempts', node, n)
if n > 0 then redis.call('PUBLISH', P .. 'wake', '1') end
return n
"""

# ARGV: P, node, now, reason, token, rids...
_DEAD = _LUA_LIB + r"""
local node, n = ARGV[2], 0
for a = 6, #ARGV do
  if settle(node, ARGV[a], ARGV[5]) then
    bury(node, ARGV[a], ARGV[3], ARGV[4])
    n = n + 1
  end
end
count('dead_lettered', node, n)
return n
"""

# ARGV: P, node, now, cutoff, lease_ms. Waiting deliveries (and claimed ones whose lease ran
# out) last enqueued before cutoff become dead letters.
_EXPIRE = _LUA_LIB + r"""
local node, now, cutoff = ARGV[2], ARGV[3], tonumber(ARGV[4])
local stream, ready = P .. 'q:' .. node, P .. 'ready:' .. node
local function reason(rec)
  local last = redis.call('HGET', rec, 'error')
  if last and last ~= '' then return 'not delivered within max age (last error: ' .. last .. ')' end
  return 'not delivered within max age'
end
local n = 0
-- waiting ones, from the last_at index (claimed ones are left to the lease check below)
for _, rid in ipairs(redis.call('ZRANGEBYSCORE', P .. 'last:' .. node, '-inf', '(' .. ARGV[4], 'LIMIT', 0, 10000)) do
  local rec = P .. 'rec:' .. rid
  local key = redis.call('HGET', rec, 'key')
  if redis.call('HGET', rec, 'state') == 'ready' then
    local sid = redis.call('HGET', rec, 'sid')
    if sid and sid ~= '' then
      redis.call('XACK', stream, 'workers', sid)
      redis.call('XDEL', stream, sid)
    end
    redis.call('ZREM', P .. 'backoff:' .. node, rid)
    if redis.call('HGET', ready, key) == rid then redis.call('HDEL', ready, key) end
    bury(node, rid, now, reason(rec))
    n = n + 1
  end
end
group(stream)
for _, entry in ipairs(redis.call('XPENDING', stream, 'workers', 'IDLE', ARGV[5], '-', '+', 1000)) do
  local sid = entry[1]
  local body = redis.call('XRANGE', stream, sid, sid)
  if #body == 1 then
    local rid = body[1][2][2]
    local rec = P .. 'rec:' .. rid
    if redis.call('HGET', rec, 'sid') == sid and tonumber(redis.call('HGET', rec, 'last_at')) < cutoff then
      redis.call('XACK', stream, 'workers', sid)
      redis.call('XDEL', stream, sid)
      bury(node, rid, now, reason(rec))
      n = n + 1
    end
  end
end
count('dead_lettered', '', n)
return n
"""

# ARGV: P, node, now
_RETRY = _LUA_LIB + r"""
local node, now, n = ARGV[2], ARGV[3], 0
group(P .. 'q:' .. node)
for _, rid in ipairs(redis.call('ZRANGE', P .. 'dead:' .. node, 0, -1)) do
  redis.call('ZREM', P .. 'dead:' .. node, rid)
  local rec = P .. 'rec:' .. rid
  n = n + 1
  if not merge_into_ready(node, rid) then
    redis.call('HSET', rec, 'state', 'ready', 'attempts', 0, 'last_at', now, 'dead_at', '')
    redis.call('HSET', P .. 'ready:' .. node, redis.call('HGET', rec, 'key'), rid)
    redis.call('ZADD', P .. 'age:' .. node, redis.call('HGET', rec, 'first_at'), rid)
    redis.call('ZADD', P .. 'last:' .. node, now, rid)
    push(node, rid)
  end
end
count('retried', '', n)
if n > 0 then redis.call('PUBLISH', P .. 'wake', '1') end
return n
"""


def _digest(key):
    """The item key as stored: 40 hex characters, so the record stays a compact listpack hash."""
    return hashlib.sha1(key.encode()).hexdigest()


def _text(value):
    return value.decode() if isinstance(value, bytes) else value


def _redacted(url):
    """The URL without its password, for logs and ``queue.path``."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = f"{parts.username or ''}:***@{parts.hostname}" + (f":{parts.port}" if parts.port else "")
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))


class RedisQueue:
    """Redis Streams implementation of the queue contract (``purgebridge.queue`` docstring)."""

    def __init__(self, url, backoff=0.1, backoff_max=5.0, max_age=86400.0, replay_window=REPLAY_WINDOW,
                 clock=time.time, rng=random.random, prefix=PREFIX, journal_idle=10.0, lease=30.0,
                 socket_timeout=SOCKET_TIMEOUT, consumer=None):
        self.url = url
        self.path = _redacted(url)  # what logs and /v1/status show as the queue's location
        self.backoff = backoff
        self.backoff_max = backoff_max
        self.max_age = max_age
        self.replay_window = replay_window
        self.clock = clock
        self.rng = rng
        self.prefix = prefix
        self._rewound = False
        self.journal_idle = journal_idle  # an event read but not expanded this long is taken over
        self.lease = lease                # the lease expire() assumes for claims it finds (set by claim)
        self.consumer = consumer or f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:8]}"
        self.redis = redis.Redis.from_url(url, socket_timeout=socket_timeout,
                                          socket_connect_timeout=socket_timeout, health_check_interval=30)
        self._scripts = {name: self.redis.register_script(source) for name, source in (
            ("append", _APPEND), ("store", _STORE), ("claim", _CLAIM), ("ack", _ACK), ("nack", _NACK),
            ("dead", _DEAD), ("expire", _EXPIRE), ("retry", _RETRY))}
        self._changed = Signal()
        self._journal_changed = Signal()
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

    @classmethod
    def from_settings(cls, settings, **kwargs):
        return cls(settings.queue, backoff=settings.backoff, backoff_max=max(settings.backoff_max, settings.backoff),
                   max_age=settings.max_age, **kwargs)

    def _key(self, *parts):
        return self.prefix + ":".join(parts)

    def _run(self, name, *args):
        if self._closed:
            raise RuntimeError("queue is closed")
        return self._scripts[name](args=[self.prefix, *args])

    def close(self):
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

    @property
    def generation(self):
        self._ensure_listener()
        return self._changed.generation

    def wait(self, generation, timeout):
        self._ensure_listener()
        return self._changed.wait(generation, timeout)

    def notify(self):
        self._changed.fire()
        self._journal_changed.fire()

    @property
    def journal_generation(self):
        self._ensure_listener()
        return self._journal_changed.generation

    def wait_journal(self, generation, timeout):
        self._ensure_listener()
        return self._journal_changed.wait(generation, timeout)

    # --- accepting -----------------------------------------------------------------

    def seen_signature(self, signature, now=None):
        return bool(self.redis.exists(self._key("sig", signature)))

    def append(self, source, site, body, signature=None, now=None):
        """Journal one validated event (replay check in the same script); returns its stream id."""
        now = self.clock() if now is None else now
        try:
            event_id = self._run("append", signature or "", int(self.replay_window), source, site, bytes(body),
                                 repr(now))
        except redis.RedisError as exc:
            log.error("redis queue: journal append failed: %s", exc)
            raise JournalError(f"queue not writable: {type(exc).__name__}") from None
        if event_id is None:
            raise SignatureError("signature already used (replay)", replay=True)
        self._journal_changed.fire()
        return _text(event_id)

    def _store(self, nodes, items, events, mode, signature="", failed=0, counted=0, now=None):
        args = [repr(now), signature or "", int(self.replay_window), len(nodes), *nodes, len(items)]
        for key, payload, first_at, last_at in items:
            args.extend((_digest(key), payload, repr(first_at), repr(last_at)))
        args.extend((len(events), *events, mode, failed, counted))
        result = self._run("store", *args)
        if result is None:
            raise SignatureError("signature already used (replay)", replay=True)
        rows, merged, marked = (int(v) for v in result)
        if rows:
            self._changed.fire()
        return rows, merged, marked

    def enqueue(self, nodes, items, source, signature=None, site="", now=None):
        """Store one event's deliveries directly (webhook and admin purges); see the contract."""
        now = self.clock() if now is None else now
        unique = {}
        for item in items:
            unique.setdefault(item.key, item)
        rows = [(key, json.dumps(item.to_dict(), separators=(",", ":")), now, now) for key, item in unique.items()]
        added, merged, _ = self._store(list(nodes), rows, [], "enqueue", signature, counted=len(rows), now=now)
        return Enqueued(event_id=uuid.uuid4().hex, items=len(rows), rows=added, merged=merged)

    # --- expansion ---------------------------------------------------------------------

    def pending_events(self, limit=500):
        """Events to expand: a dead relay's stale ones first (XAUTOCLAIM), then new ones (XREADGROUP).

        After :meth:`rewind_journal`, first this consumer's own unacknowledged
        ones (its pending entries list, read from id 0).
        """
        stream = self._key("events")
        self._ensure_events_group()
        entries = []
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

    def rewind_journal(self):
        """Hand out this consumer's read-but-unexpanded events again (after an expansion that failed)."""
        self._rewound = True

    def finish_expansion(self, events, counters=(), failed=0, now=None):
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

    def requeue(self, node, items, now=None):
        """What the direct path could not confirm on ``node``: waiting deliveries (merged by key)."""
        now = self.clock() if now is None else now
        if items:
            self._store([node], [tuple(item) for item in items], [], "defer", now=now)

    def store_expansion(self, nodes, events, items, failed=0, now=None):
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

    def journal_pending(self):
        return self.redis.xlen(self._key("events"))

    # --- delivering ------------------------------------------------------------------------

    def claim(self, node, limit=256, lease=30.0, now=None):
        now = self.clock() if now is None else now
        token = uuid.uuid4().hex
        self.lease = lease  # what expire() takes as "lease ran out" (every relay uses the same one)
        rows = self._run("claim", node, repr(now), int(limit), max(1, int(lease * 1000)), self.consumer, token)
        claims = []
        for rid, payload, attempts, first_at in rows:
            item = json.loads(payload)
            claims.append(Claim(id=int(rid), node=node, key=Invalidation.from_dict(item).key, item=item,
                                attempts=int(attempts), first_at=float(first_at), lease=token))
        return claims

    @staticmethod
    def _by_node_and_lease(claims):
        groups = {}
        for claim in claims:
            groups.setdefault((claim.node, claim.lease), []).append(claim)
        return groups.items()

    def ack(self, claims, outcome="purged", now=None):
        now = self.clock() if now is None else now
        for (node, lease), group in self._by_node_and_lease(claims):
            self._run("ack", node, repr(now), outcome, lease, *[c.id for c in group])
        return [max(0.0, now - claim.first_at) for claim in claims]

    def backoff_delay(self, attempts):
        return fanout.backoff_delay(max(1, attempts), self.backoff, self.backoff_max, self.rng)

    def nack(self, claims, reason, now=None):
        now = self.clock() if now is None else now
        reason = str(reason)[:500]
        for (node, lease), group in self._by_node_and_lease(claims):
            args = []
            for claim in group:
                args.extend((claim.id, repr(now + self.backoff_delay(claim.attempts))))
            self._run("nack", node, repr(now), reason, lease, *args)
        if claims:
            self._changed.fire()

    def dead(self, claims, reason, now=None):
        now = self.clock() if now is None else now
        for (node, lease), group in self._by_node_and_lease(claims):
            self._run("dead", node, repr(now), str(reason)[:500], lease, *[c.id for c in group])
            log.warning("dead-lettered %d purge(s) for %s: %s", len(group), node, reason)

    def _nodes(self):
        return sorted(_text(n) for n in self.redis.smembers(self._key("nodes")))

    def expire(self, now=None):
        """Dead-letter deliveries older than ``max_age``; returns ``{node: rows}``. Replay keys expire by themselves (EX)."""
        now = self.clock() if now is None else now
        per_node = {}
        for node in self._nodes():
            count = int(self._run("expire", node, repr(now), repr(now - self.max_age), max(1, int(self.lease * 1000))))
            if count:
                per_node[node] = count
        if per_node:
            log.warning("dead-lettered %d purge(s) older than %.0f s", sum(per_node.values()), self.max_age)
        return per_node

    def release_leases(self, now=None):
        """Nothing to do: other relays may hold live leases; a dead one's come back via XAUTOCLAIM."""
        return 0

    def retry_dead(self, node=None, now=None):
        now = self.clock() if now is None else now
        nodes = [node] if node else self._nodes()
        count = sum(int(self._run("retry", name, repr(now))) for name in nodes)
        if count:
            self._changed.fire()
        return count

    # --- reads ------------------------------------------------------------------------------

    def next_due(self, node, now=None):
        """0 if something waits on the node's stream, else seconds to the next backoff, else None.

        Claims held by a relay (in flight, maybe of a dead relay) are not
        counted: when their lease runs out is known only to XAUTOCLAIM, which
        the worker's regular poll runs.
        """
        now = self.clock() if now is None else now
        pipe = self.redis.pipeline(transaction=False)
        pipe.hlen(self._key("ready", node))
        pipe.zcard(self._key("backoff", node))
        pipe.zrange(self._key("backoff", node), 0, 0, withscores=True)
        waiting, backing_off, first = pipe.execute()
        if waiting > backing_off:
            return 0.0
        if first:
            return max(0.0, first[0][1] - now)
        return None

    def dead_hosts(self, node, since):
        """Hosts of ``node``'s dead letters dead-lettered at or after ``since`` (whom a dead-letter ban must cover)."""
        hosts = set()
        for rid in self.redis.zrangebyscore(self._key("dead", node), since, "+inf"):
            payload = self.redis.get(self._key("item", _text(rid)))
            if payload:
                hosts.add(json.loads(payload).get("host", ""))
        return hosts - {""}

    def dead_letters(self, limit=100, node=None):
        letters = []
        for name in ([node] if node else self._nodes()):
            for rid, _dead_at in self.redis.zrange(self._key("dead", name), 0, limit - 1, withscores=True):
                rid = _text(rid)
                fields = {_text(k): _text(v) for k, v in self.redis.hgetall(self._key("rec", rid)).items()}
                payload = self.redis.get(self._key("item", rid))
                if fields and payload:
                    letters.append({"id": int(rid), "node": name, "item": json.loads(payload),
                                    "first_at": float(fields["first_at"]), "dead_at": float(fields["dead_at"]),
                                    "attempts": int(fields["attempts"]), "reason": fields["error"]})
        letters.sort(key=lambda letter: (letter["dead_at"], letter["id"]))
        return letters[:limit]

    def depth(self):
        return self.stats()["depth"] - self.stats()["journal_pending"]

    def stats(self, now=None):
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

    def memory(self):
        """Bytes Redis uses (``INFO memory`` used_memory): for /metrics and the sizing in docs/scaling.md."""
        return int(self.redis.info("memory")["used_memory"])

    def writable(self):
        """True when Redis takes a write (a full disk or a failing AOF makes it refuse: MISCONF)."""
        if self._closed:
            return False
        try:
            self.redis.set(self._key("writable"), "1", ex=60)
            return True
        except redis.RedisError as exc:
            log.error("queue %s is not writable: %s", self.path, exc)
            return False
