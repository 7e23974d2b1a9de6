-- join_traces.lua: trace -> session joining for a set of traces (on Redis Cluster, the traces
-- of one trace shard, which is one slot).
--
-- The trace map lives in small hashes per epoch and bucket (keys.py): field = the 16 trace id
-- bytes, value = the trace's session. A trace is looked up in the current and the previous
-- epoch; found only in the previous one, it is written again into the current one, so an
-- entry lives at least the retention after its trace's last span.
--
-- KEYS, in fives per trace:   P:{tj:N}mE.B (hash: the current epoch's bucket of the trace),
--                             P:{tj:N}mE-1.B (hash: the previous epoch's bucket),
--                             P:{tj:N}:p:TRACE (list: chunks of spans waiting for a session),
--                             P:{tj:N}:parked (zset: traces with parked spans -> last park ms),
--                             P:{tj:N}:lp:TRACE (list: chunks of log records waiting for one)
-- ARGV[1]  ttl (ms) of current-epoch buckets: the time to the epoch's end plus the retention
-- ARGV[2]  ttl (ms) of the lists of parked spans and records and of the parked-trace index:
--          the retention
-- ARGV[3]  now (ms)
-- ARGV[4]  most traces kept in one parked-trace index (the newest win)
-- ARGV[5..] three values per trace, in KEYS order: trace id (16 bytes), then
--          'c', session id  -- claim: this trace names that session (the first claim wins)
--          'p', chunk       -- park: spans without a session; kept unless the trace is known
--          'l', log chunk   -- park log records without a session, the same way (the
--                              parked-trace index lists traces with parked spans only)
--
-- Returns one entry per trace:
--   claim -> {session, k, span chunk 1..k, log chunk, ...}  the winning session, the k span
--            chunks and then the log chunks parked so far (the caller writes them into the
--            session, then trims the lists); a trace with parked spans leaves the
--            parked-trace index
--   park  -> {session} when the trace already has one (nothing parked), else {} (a trace
--            whose spans were parked gets now as its score in the parked-trace index)
-- Checking and parking happen in one step, so nothing is parked after its trace was
-- claimed: nothing waits forever.

local bucket_ttl, pending_ttl = ARGV[1], ARGV[2]
local now, most_parked = tonumber(ARGV[3]), tonumber(ARGV[4])
local out = {}

-- ARGV position of the first of the three values of the trace whose keys start at KEYS[k]
local function arg(k) return 5 + (k - 1) / 5 * 3 end

-- parked spans are rare: look for them once for all claimed traces
local claimed_pending = {}
for k = 1, #KEYS, 5 do
  if ARGV[arg(k) + 1] == 'c' then
    claimed_pending[#claimed_pending + 1] = KEYS[k + 2]
    claimed_pending[#claimed_pending + 1] = KEYS[k + 4]
  end
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

-- every parked-trace index written is trimmed and gets its TTL at the end of this call
local parked_indexes = {}

for k = 1, #KEYS, 5 do
  local current, previous, pending, parked, log_pending = KEYS[k], KEYS[k + 1], KEYS[k + 2], KEYS[k + 3], KEYS[k + 4]
  local a = arg(k)
  local trace, op, value = ARGV[a], ARGV[a + 1], ARGV[a + 2]
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
    local entry = {owner, 0}
    if any_pending then
      local spans = redis.call('LRANGE', pending, 0, -1)
      if #spans > 0 then redis.call('ZREM', parked, trace) end
      entry[2] = #spans
      for _, c in ipairs(spans) do entry[#entry + 1] = c end
      for _, c in ipairs(redis.call('LRANGE', log_pending, 0, -1)) do entry[#entry + 1] = c end
    end
    out[#out + 1] = entry
  else
    local owner = redis.call('HGET', current, trace) or carried(current, previous, trace)
    if owner then
      out[#out + 1] = {owner}
    elseif op == 'l' then
      redis.call('RPUSH', log_pending, value)
      redis.call('PEXPIRE', log_pending, pending_ttl)
      out[#out + 1] = {}
    else
      redis.call('RPUSH', pending, value)
      redis.call('PEXPIRE', pending, pending_ttl)
      redis.call('ZADD', parked, now, trace)
      parked_indexes[parked] = true
      out[#out + 1] = {}
    end
  end
end

for parked in pairs(parked_indexes) do
  redis.call('ZREMRANGEBYSCORE', parked, '-inf', '(' .. (now - tonumber(pending_ttl)))
  local extra = redis.call('ZCARD', parked) - most_parked
  if extra > 0 then redis.call('ZREMRANGEBYRANK', parked, 0, extra - 1) end
  redis.call('PEXPIRE', parked, pending_ttl)
end
return out
