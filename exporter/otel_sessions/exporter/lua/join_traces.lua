-- join_traces.lua: trace -> session joining for the traces of one trace shard.
--
-- KEYS, in pairs per trace:  P:{tj:N}:t:TRACE (string: the trace's session),
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

local ttl = tonumber(ARGV[1])
local out = {}
local k = 1
for a = 2, #ARGV, 2 do
  local map, pending = KEYS[k], KEYS[k + 1]
  local owner = redis.call('GET', map)
  if ARGV[a] == 'c' then
    if not owner then
      owner = ARGV[a + 1]
      redis.call('SET', map, owner, 'PX', ttl)
    else
      redis.call('PEXPIRE', map, ttl)
    end
    local entry = redis.call('LRANGE', pending, 0, -1)
    table.insert(entry, 1, owner)
    out[#out + 1] = entry
  else
    if owner then
      out[#out + 1] = {owner}
    else
      redis.call('RPUSH', pending, ARGV[a + 1])
      redis.call('PEXPIRE', pending, ttl)
      out[#out + 1] = {}
    end
  end
  k = k + 2
end
return out
