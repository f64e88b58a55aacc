-- ARGV: P, node, now, cutoff, lease_ms. Waiting deliveries (and claimed ones whose lease ran
-- out) last enqueued before cutoff become dead letters.
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
