-- Shared Lua helpers. P = key prefix. A delivery that merges into a waiting one
-- keeps the oldest first_at (latency counts from it) and the newest last_at
-- (max age counts from it), as in the SQLite backend.
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
