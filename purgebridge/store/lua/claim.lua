-- ARGV: P, node, now, limit, lease_ms, consumer, token
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
