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

-- read every record once; collect the id buckets and traces they touch
local recs, bucket_names, bucket_seen = {}, {}, {}
for off = 1, #records, REC do
  local id, tid, fl, st, en, it, ot, c = struct.unpack('>c16c16Bddddd', records, off)
  recs[#recs + 1] = {id, tid, fl, st, en, it, ot, c}
  local b = string.sub(id, 8, 8)
  if not bucket_seen[b] then
    bucket_seen[b] = true
    bucket_names[#bucket_names + 1] = b
  end
end
local buckets = {}
if #bucket_names > 0 then
  local values = redis.call('HMGET', ids, unpack(bucket_names))
  for i, b in ipairs(bucket_names) do buckets[b] = values[i] or '' end
end

-- idempotency: an id is new unless its bucket holds it at a 16-byte boundary
local dirty = {}
local function is_new(id)
  local b = string.sub(id, 8, 8)
  local cur = buckets[b]
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
for _, r in ipairs(recs) do
  local id, tid, fl, st, en, it, ot, c = r[1], r[2], r[3], r[4], r[5], r[6], r[7], r[8]
  if is_new(id) then
    new = new + 1
    local err = fl % 2 == 1
    if math.floor(fl / 4) % 2 == 1 then estimated = true end
    if err then
      errors = errors + 1
      if math.floor(fl / 2) % 2 == 1 then failed = true end
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

local F = {'id', 'name', 'user', 'thread', 'prev', 'start', 'end', 'spans', 'traces', 'errors',
           'in', 'out', 'cost', 'stored', 'dropped', 'seen', 'first_seen'}
local cur = {}
local values = redis.call('HMGET', sum, unpack(F))
for i, f in ipairs(F) do cur[f] = values[i] end
local set = {}
local function put(field, value) set[#set + 1] = field; set[#set + 1] = value end

-- first-value-wins session fields
local given = {id = ARGV[4], name = ARGV[5], user = ARGV[6], thread = ARGV[7], prev = ARGV[8]}
for _, f in ipairs({'id', 'name', 'user', 'thread', 'prev'}) do
  if not cur[f] and given[f] ~= '' then put(f, given[f]) end
end
local flags = tonumber(ARGV[9])
if flags % 2 == 1 then put('ended', '1') end
if math.floor(flags / 2) % 2 == 1 then put('escalated', '1') end

local spans = tonumber(cur['spans']) or 0
local trace_count = tonumber(cur['traces']) or 0
local start = tonumber(cur['start'])
local finish = tonumber(cur['end'])
local total_cost = cur['cost'] or '0'
local seen = tonumber(cur['seen']) or 0
if new > 0 then
  local dirty_set = {}
  for b, _ in pairs(dirty) do dirty_set[#dirty_set + 1] = b; dirty_set[#dirty_set + 1] = buckets[b] end
  redis.call('HSET', ids, unpack(dirty_set))

  -- root names by trace
  local roots, names, off = ARGV[13], {}, 1
  while off <= #roots do
    local tid, len, nxt = struct.unpack('>c16H', roots, off)
    names[tid] = string.sub(roots, nxt, nxt + len - 1)
    off = nxt + len
  end

  local old = redis.call('HMGET', traces, unpack(trace_order))
  local trace_set = {}
  for i, tid in ipairs(trace_order) do
    local t = per_trace[tid]
    local name = names[tid] or ''
    if old[i] then
      local st, en, n, e, it, ot, c, nxt = struct.unpack('>ddIIddd', old[i])
      if st < t[1] then t[1] = st end
      if en > t[2] then t[2] = en end
      t[3], t[4], t[5], t[6], t[7] = t[3] + n, t[4] + e, t[5] + it, t[6] + ot, t[7] + c
      if name == '' then name = string.sub(old[i], nxt) end
    else
      trace_count = trace_count + 1
    end
    trace_set[#trace_set + 1] = tid
    trace_set[#trace_set + 1] = struct.pack('>ddIIddd', t[1], t[2], t[3], t[4], t[5], t[6], t[7]) .. name
  end
  redis.call('HSET', traces, unpack(trace_set))

  spans = spans + new
  if start == nil or min_start < start then start = min_start end
  if finish == nil or max_end > finish then finish = max_end end
  total_cost = string.format('%.12g', (tonumber(total_cost) or 0) + cost)
  seen = now
  put('spans', spans)
  put('traces', trace_count)
  put('errors', (tonumber(cur['errors']) or 0) + errors)
  put('in', string.format('%d', (tonumber(cur['in']) or 0) + tin))
  put('out', string.format('%d', (tonumber(cur['out']) or 0) + tout))
  put('cost', total_cost)
  put('start', string.format('%d', start))
  put('end', string.format('%d', finish))
  put('seen', ARGV[1])
  if not cur['first_seen'] then put('first_seen', ARGV[1]) end
  if estimated then put('est', '1') end
  if failed then put('failed', '1') end

  local labels = ARGV[11]
  local pos = 1
  while pos <= #labels do
    local stop = string.find(labels, '\0', pos, true) or (#labels + 1)
    put(string.sub(labels, pos, stop - 1), '1')
    pos = stop + 1
  end

  -- span bodies, bounded: the oldest chunks go first
  local stored = tonumber(cur['stored']) or 0
  local dropped = tonumber(cur['dropped']) or 0
  local length = 0
  for i = 15, #ARGV do
    length = redis.call('RPUSH', chunks, ARGV[i])
    stored = stored + struct.unpack('>I', ARGV[i], 2)
  end
  while stored > max_spans do
    local oldest = redis.call('LPOP', chunks)
    if not oldest then break end
    local n = struct.unpack('>I', oldest, 2)
    stored, dropped, length = stored - n, dropped + n, length - 1
  end
  put('stored', stored)
  if dropped > 0 then put('dropped', dropped) end
  if ARGV[14] ~= '' then redis.call('PUBLISH', ARGV[14], length) end
end
if #set > 0 then redis.call('HSET', sum, unpack(set)) end

if new > 0 then
  -- metadata: first value wins per key
  local meta, key, pos = ARGV[12], nil, 1
  while pos <= #meta do
    local stop = string.find(meta, '\0', pos, true) or (#meta + 1)
    local part = string.sub(meta, pos, stop - 1)
    if key == nil then key = part else redis.call('HSETNX', sum, 'x:' .. key, part); key = nil end
    pos = stop + 1
  end
end

for i = 1, 4 do redis.call('PEXPIRE', KEYS[i], ttl) end

local tokens = (tonumber(cur['in']) or 0) + (tonumber(cur['out']) or 0) + tin + tout
if new == 0 then tokens = (tonumber(cur['in']) or 0) + (tonumber(cur['out']) or 0) end
return {new, start or 0, finish or 0, spans, trace_count, tokens, total_cost, seen}
