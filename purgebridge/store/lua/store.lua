-- ARGV: P, now, signature, window, nnodes, nodes..., nitems, (key, payload, first_at, last_at)...,
--       nevents, event ids..., mode ('enqueue' | 'expand'), failed, counted
-- 'enqueue': the replay check and one event counted. 'expand': the events are XACKed and XDELed
-- from the journal first; if none was still there (another relay did them), nothing is written.
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
