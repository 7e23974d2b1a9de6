-- join_traces.lua: trace -> session joining for a set of traces (on Redis Cluster, the traces
-- of one trace shard, which is one slot).
--
-- KEYS, in pairs per trace:  P:{tj:N}tTRACE (string: the trace's session; TRACE = 16 id bytes),
--                            P:{tj:N}:p:TRACE (list: chunks of spans waiting for a session)
-- ARGV[1]  ttl (ms) of both keys
-- ARGV[2..] two values per trace, in KEYS order:
--          'c', session id  -- claim: this trace names that session (the first claim wins)
--          'p', chunk       -- park: spans without a session; kept unless the trace is known
--
-- Returns one entry per trace:
--   claim -> {session, pending chunk, ...}  the winning session and the chunks parked so far
--            (the caller writes them into the session, then trims the list)
--   park  -> {session} when the trace already has one (nothing parked), else {}
-- Checking and parking happen in one step, so a span is never parked after its trace was
-- claimed: nothing waits forever.

local ttl = ARGV[1]
local out = {}

-- parked spans are rare: look for them once for all claimed traces
local claimed_pending = {}
for k = 1, #KEYS, 2 do
  if ARGV[k + 1] == 'c' then claimed_pending[#claimed_pending + 1] = KEYS[k + 1] end
end
local any_pending = false
for i = 1, #claimed_pending, 1000 do
  if redis.call('EXISTS', unpack(claimed_pending, i, math.min(i + 999, #claimed_pending))) > 0 then
    any_pending = true
    break
  end
end

for k = 1, #KEYS, 2 do
  local map, pending, op, value = KEYS[k], KEYS[k + 1], ARGV[k + 1], ARGV[k + 2]
  if op == 'c' then
    local owner = redis.call('SET', map, value, 'NX', 'PX', ttl, 'GET')
    if owner then
      redis.call('PEXPIRE', map, ttl)
    else
      owner = value
    end
    local entry = {}
    if any_pending then entry = redis.call('LRANGE', pending, 0, -1) end
    table.insert(entry, 1, owner)
    out[#out + 1] = entry
  else
    local owner = redis.call('GET', map)
    if owner then
      out[#out + 1] = {owner}
    else
      redis.call('RPUSH', pending, value)
      redis.call('PEXPIRE', pending, ttl)
      out[#out + 1] = {}
    end
  end
end
return out
