-- ARGV: P, signature ('' for none), window, source, site, body, received_at
local sig = ARGV[2]
if sig ~= '' then
  if not redis.call('SET', P .. 'sig:' .. sig, ARGV[7], 'NX', 'EX', ARGV[3]) then return false end
end
local id = redis.call('XADD', P .. 'events', '*', 'source', ARGV[4], 'site', ARGV[5], 'body', ARGV[6],
                      'received_at', ARGV[7], 'signature', sig)
count('events', '', 1)
redis.call('PUBLISH', P .. 'wake:journal', '1')
return id
