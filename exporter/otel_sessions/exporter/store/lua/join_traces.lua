-- join_traces.lua: trace -> session joining for a set of traces (on Redis Cluster, the traces
-- of one trace shard, which is one slot).
--
-- The trace map lives in small hashes per epoch and bucket (keys.py): field = the 16 trace id
-- bytes, value = the trace's session. A trace is looked up in the current and the previous
-- epoch; found only in the previous one, it is written again into the current one, so an
-- entry lives at least the retention after its trace's last span.
--
-- KEYS, in threes per trace:  P:{tj:N}mE.B (hash: the current epoch's bucket of the trace),
--                             P:{tj:N}mE-1.B (hash: the previous epoch's bucket),
--                             P:{tj:N}:p:TRACE (list: chunks of spans waiting for a session)
-- ARGV[1]  ttl (ms) of current-epoch buckets: the time to the epoch's end plus the retention
-- ARGV[2]  ttl (ms) of the lists of parked spans: the retention
-- ARGV[3..] three values per trace, in KEYS order: trace id (16 bytes), then
--          'c', session id  -- claim: this trace names that session (the first claim wins)
--          'p', chunk       -- park: spans without a session; kept unless the trace is known
--
-- Returns one entry per trace:
--   claim -> {session, pending chunk, ...}  the winning session and the chunks parked so far
--            (the caller writes them into the session, then trims the list)
--   park  -> {session} when the trace already has one (nothing parked), else {}
-- Checking and parking happen in one step, so a span is never parked after its trace was
-- claimed: nothing waits forever.

local bucket_ttl, pending_ttl = ARGV[1], ARGV[2]
local out = {}

-- parked spans are rare: look for them once for all claimed traces
local claimed_pending = {}
for k = 1, #KEYS, 3 do
  if ARGV[k + 3] == 'c' then claimed_pending[#claimed_pending + 1] = KEYS[k + 2] end
end
local any_pending = false
for i = 1, #claimed_pending, 1000 do
  if redis.call('EXISTS', unpack(claimed_pending, i, math.min(i + 999, #claimed_pending))) > 0 then
    any_pending = true
    break
  end
end

-- every bucket written gets its TTL in this same call (once per call and bucket)
local expiring = {}
local function expire(bucket)
  if not expiring[bucket] then
    redis.call('PEXPIRE', bucket, bucket_ttl)
    expiring[bucket] = true
  end
end

-- the session of a trace known from the previous epoch, carried into the current one
local function carried(current, previous, trace)
  local owner = redis.call('HGET', previous, trace)
  if owner then
    redis.call('HSET', current, trace, owner)
    expire(current)
  end
  return owner
end

for k = 1, #KEYS, 3 do
  local current, previous, pending = KEYS[k], KEYS[k + 1], KEYS[k + 2]
  local trace, op, value = ARGV[k + 2], ARGV[k + 3], ARGV[k + 4]
  if op == 'c' then
    local owner
    if redis.call('HSETNX', current, trace, value) == 1 then
      expire(current)
      owner = redis.call('HGET', previous, trace)
      if owner and owner ~= value then
        redis.call('HSET', current, trace, owner)
      else
        owner = value
      end
    else
      owner = redis.call('HGET', current, trace)
    end
    local entry = {}
    if any_pending then entry = redis.call('LRANGE', pending, 0, -1) end
    table.insert(entry, 1, owner)
    out[#out + 1] = entry
  else
    local owner = redis.call('HGET', current, trace) or carried(current, previous, trace)
    if owner then
      out[#out + 1] = {owner}
    else
      redis.call('RPUSH', pending, value)
      redis.call('PEXPIRE', pending, pending_ttl)
      out[#out + 1] = {}
    end
  end
end
return out
