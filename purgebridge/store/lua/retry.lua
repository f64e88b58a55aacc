-- ARGV: P, node, now
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
