-- write_session.lua: one session's part of an export request, atomically.
--
-- KEYS[1]  P:{S}:sum     hash: summary (see store.py SUMMARY_FIELDS)
-- KEYS[2]  P:{S}:chunks  list: compressed span chunks, oldest first
-- KEYS[3]  P:{S}:ids     hash: 1-byte bucket -> concatenated 16-byte span ids (idempotency)
-- KEYS[4]  P:{S}:traces  hash: 16-byte trace id -> struct '>ddIIddd' + root span name
-- ARGV[1]  now (ms)                 ARGV[2]  ttl (ms), set on every key
-- ARGV[3]  max spans kept           ARGV[4]  session id
-- ARGV[5]  name        ARGV[6] user id     ARGV[7] thread id     ARGV[8] previous session id
--          (empty = not given; the first value given wins)
-- ARGV[9]  flags: 1 ended (session.end), 2 escalated
-- ARGV[10] records: n x 73 bytes, struct '>c16c16Bddddd'
--          (dedupe id, trace id, flags 1 error|2 root|4 cost estimated, start µs, end µs,
--           input tokens, output tokens, cost USD)
-- ARGV[11] labels, NUL-separated ("m:model", "s:service", "a:agent", "t:tool")
-- ARGV[12] metadata, NUL-separated key, value, key, value ...
-- ARGV[13] root span names: repeated struct '>c16H' (trace id, length) + name
-- ARGV[14] pub/sub channel announcing new spans ("" = none)
-- ARGV[15..] chunks to store when at least one span is new
--
-- Returns {new spans, start µs, end µs, spans, traces, tokens, cost (string), last write ms}.
-- Spans seen before (same trace and span id) are neither stored nor counted again.

local sum, chunks, ids, traces = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local now, ttl, max_spans = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local records = ARGV[10]
local REC = 73

-- idempotency: membership of a 16-byte id in its bucket (aligned match only)
local buckets, dirty = {}, {}
local function is_new(id)
  local b = string.sub(id, 8, 8)
  local cur = buckets[b]
  if cur == nil then
    cur = redis.call('HGET', ids, b) or ''
    buckets[b] = cur
  end
  local pos = 1
  while true do
    local s = string.find(cur, id, pos, true)
    if not s then break end
    if (s - 1) % 16 == 0 then return false end
    pos = s + 1
  end
  buckets[b] = cur .. id
  dirty[b] = true
  return true
end

local new, errors, tin, tout, cost = 0, 0, 0, 0, 0
local min_start, max_end = nil, nil
local failed, estimated = false, false
local per_trace, trace_order = {}, {}
for off = 1, #records, REC do
  local id, tid, fl, st, en, it, ot, c = struct.unpack('>c16c16Bddddd', records, off)
  if is_new(id) then
    new = new + 1
    local err = fl % 2 == 1
    local root = math.floor(fl / 2) % 2 == 1
    if math.floor(fl / 4) % 2 == 1 then estimated = true end
    if err then
      errors = errors + 1
      if root then failed = true end
    end
    tin, tout, cost = tin + it, tout + ot, cost + c
    if min_start == nil or st < min_start then min_start = st end
    if max_end == nil or en > max_end then max_end = en end
    local t = per_trace[tid]
    if t == nil then
      t = {st, en, 0, 0, 0, 0, 0}
      per_trace[tid] = t
      trace_order[#trace_order + 1] = tid
    end
    if st < t[1] then t[1] = st end
    if en > t[2] then t[2] = en end
    t[3] = t[3] + 1
    if err then t[4] = t[4] + 1 end
    t[5], t[6], t[7] = t[5] + it, t[6] + ot, t[7] + c
  end
end

-- first-value-wins session fields
redis.call('HSETNX', sum, 'id', ARGV[4])
local given = {name = ARGV[5], user = ARGV[6], thread = ARGV[7], prev = ARGV[8]}
for field, value in pairs(given) do
  if value ~= '' then redis.call('HSETNX', sum, field, value) end
end
local flags = tonumber(ARGV[9])
if flags % 2 == 1 then redis.call('HSET', sum, 'ended', '1') end
if math.floor(flags / 2) % 2 == 1 then redis.call('HSET', sum, 'escalated', '1') end

if new > 0 then
  for b, _ in pairs(dirty) do redis.call('HSET', ids, b, buckets[b]) end

  -- root names by trace
  local roots, names, off = ARGV[13], {}, 1
  while off <= #roots do
    local tid, len, nxt = struct.unpack('>c16H', roots, off)
    names[tid] = string.sub(roots, nxt, nxt + len - 1)
    off = nxt + len
  end

  local new_traces = 0
  for _, tid in ipairs(trace_order) do
    local t = per_trace[tid]
    local old = redis.call('HGET', traces, tid)
    local name = names[tid] or ''
    if old then
      local st, en, n, e, i, o, c, nxt = struct.unpack('>ddIIddd', old)
      if st < t[1] then t[1] = st end
      if en > t[2] then t[2] = en end
      t[3], t[4], t[5], t[6], t[7] = t[3] + n, t[4] + e, t[5] + i, t[6] + o, t[7] + c
      if name == '' then name = string.sub(old, nxt) end
    else
      new_traces = new_traces + 1
    end
    redis.call('HSET', traces, tid, struct.pack('>ddIIddd', t[1], t[2], t[3], t[4], t[5], t[6], t[7]) .. name)
  end

  redis.call('HINCRBY', sum, 'spans', new)
  if new_traces > 0 then redis.call('HINCRBY', sum, 'traces', new_traces) end
  if errors > 0 then redis.call('HINCRBY', sum, 'errors', errors) end
  if tin > 0 then redis.call('HINCRBY', sum, 'in', string.format('%d', tin)) end
  if tout > 0 then redis.call('HINCRBY', sum, 'out', string.format('%d', tout)) end
  if cost > 0 then redis.call('HINCRBYFLOAT', sum, 'cost', string.format('%.12g', cost)) end
  if estimated then redis.call('HSET', sum, 'est', '1') end
  if failed then redis.call('HSET', sum, 'failed', '1') end
  local cur = tonumber(redis.call('HGET', sum, 'start'))
  if cur == nil or min_start < cur then redis.call('HSET', sum, 'start', string.format('%d', min_start)) end
  cur = tonumber(redis.call('HGET', sum, 'end'))
  if cur == nil or max_end > cur then redis.call('HSET', sum, 'end', string.format('%d', max_end)) end
  redis.call('HSETNX', sum, 'first_seen', ARGV[1])
  redis.call('HSET', sum, 'seen', ARGV[1])

  local labels = ARGV[11]
  local pos = 1
  while pos <= #labels do
    local stop = string.find(labels, '\0', pos, true) or (#labels + 1)
    redis.call('HSET', sum, string.sub(labels, pos, stop - 1), '1')
    pos = stop + 1
  end
  local meta, key = ARGV[12], nil
  pos = 1
  while pos <= #meta do
    local stop = string.find(meta, '\0', pos, true) or (#meta + 1)
    local part = string.sub(meta, pos, stop - 1)
    if key == nil then key = part else redis.call('HSETNX', sum, 'x:' .. key, part); key = nil end
    pos = stop + 1
  end

  -- span bodies, bounded: the oldest chunks go first
  local stored = 0
  for i = 15, #ARGV do
    redis.call('RPUSH', chunks, ARGV[i])
    stored = stored + struct.unpack('>I', ARGV[i], 2)
  end
  stored = redis.call('HINCRBY', sum, 'stored', stored)
  while stored > max_spans do
    local oldest = redis.call('LPOP', chunks)
    if not oldest then break end
    local n = struct.unpack('>I', oldest, 2)
    stored = redis.call('HINCRBY', sum, 'stored', -n)
    redis.call('HINCRBY', sum, 'dropped', n)
  end
  if ARGV[14] ~= '' then redis.call('PUBLISH', ARGV[14], redis.call('LLEN', chunks)) end
end

for i = 1, 4 do redis.call('PEXPIRE', KEYS[i], ttl) end

local s = redis.call('HMGET', sum, 'start', 'end', 'spans', 'traces', 'in', 'out', 'cost', 'seen')
return {new, tonumber(s[1]) or 0, tonumber(s[2]) or 0, tonumber(s[3]) or 0, tonumber(s[4]) or 0,
        (tonumber(s[5]) or 0) + (tonumber(s[6]) or 0), s[7] or '0', tonumber(s[8]) or 0}
