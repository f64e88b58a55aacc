-- ARGV: P, node, now, reason, token, (rid, due)...
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
