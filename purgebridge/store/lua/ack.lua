-- ARGV: P, node, now, outcome, token, rids...
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
