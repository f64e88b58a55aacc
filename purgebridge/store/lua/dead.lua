-- ARGV: P, node, now, reason, token, rids...
local node, n = ARGV[2], 0
for a = 6, #ARGV do
  if settle(node, ARGV[a], ARGV[5]) then
    bury(node, ARGV[a], ARGV[3], ARGV[4])
    n = n + 1
  end
end
count('dead_lettered', node, n)
return n
