-- write_session.lua: one session's part of an export request, atomically.
--
-- KEYS[1]  P:{S}:sum     hash: summary (fields listed in summary.py)
-- KEYS[2]  P:{S}:chunks  list: compressed span chunks, oldest first
-- KEYS[3]  P:{S}:ids     hash: 1-byte bucket -> concatenated 16-byte span ids (idempotency)
-- KEYS[4]  P:{S}:traces  hash: 16-byte trace id -> struct '>ddIIddd' + root span name
-- ARGV[1]  now (ms)                 ARGV[2]  ttl (ms), set on every key
-- ARGV[3]  max spans kept           ARGV[4]  session id
-- ARGV[5]  name        ARGV[6] user id     ARGV[7] thread id     ARGV[8] previous session id
--          (empty = not given; the first value given wins)
-- ARGV[9]  flags: 1 ended (session.end), 2 escalated, 4 a root span failed, 8 cost estimated
-- ARGV[10] span ids: n x 16 bytes (span id + low half of trace id)
-- ARGV[11] totals of all n spans: struct '>ddddddd' (spans, errors, input tokens, output
--          tokens, cost USD, earliest start µs, latest end µs)
-- ARGV[12] per trace: struct '>c16ddIIdddH' (trace id, start, end, spans, errors, input,
--          output, cost, name length) + root span name
-- ARGV[13] labels, NUL-separated ("m:model", "s:service", "a:agent", "t:tool")
-- ARGV[14] metadata, NUL-separated key, value, key, value ...
-- ARGV[15] pub/sub channel announcing new spans ("" = none)
-- ARGV[16] per-span records, n x 73 bytes, struct '>c16c16Bddddd' (id, trace id, flags
--          1 error|2 root|4 cost estimated, start, end, input, output, cost); read only
--          when some but not all spans were seen before
-- ARGV[17..] chunks to store when at least one span is new
--
-- Returns {new spans, start µs, end µs, spans, traces, tokens, cost (string), last write ms}.
-- Spans seen before (same trace and span id) are neither counted nor stored again.

local sum, chunks, ids, traces = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local now, ttl, max_spans = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local idblob = ARGV[10]
local n = #idblob / 16

-- idempotency: an id is new unless its bucket holds it at a 16-byte boundary
local names, seen_bucket = {}, {}
for off = 1, #idblob, 16 do
  local b = string.sub(idblob, off + 7, off + 7)
  if not seen_bucket[b] then seen_bucket[b] = true; names[#names + 1] = b end
end
local buckets, dirty = {}, {}
local current = redis.call('HMGET', ids, unpack(names))
for i, b in ipairs(names) do buckets[b] = current[i] or '' end
local is_new, new = {}, 0
for off = 1, #idblob, 16 do
  local id = string.sub(idblob, off, off + 15)
  local b = string.sub(id, 8, 8)
  local cur, pos, found = buckets[b], 1, false
  while true do
    local s = string.find(cur, id, pos, true)
    if not s then break end
    if (s - 1) % 16 == 0 then found = true; break end
    pos = s + 1
  end
  if not found then
    buckets[b] = cur .. id
    dirty[b] = true
    is_new[off] = true
    new = new + 1
  end
end

-- figures of the new spans: precomputed for the whole batch, recomputed when only some are new
local t_spans, t_err, t_in, t_out, t_cost, t_start, t_end = struct.unpack('>ddddddd', ARGV[11])
local per_trace, trace_order, root_names = {}, {}, {}
local blob, off = ARGV[12], 1
while off <= #blob do
  local tid, st, en, c, e, i, o, co, len, nxt = struct.unpack('>c16ddIIdddH', blob, off)
  per_trace[tid] = {st, en, c, e, i, o, co}
  trace_order[#trace_order + 1] = tid
  root_names[tid] = string.sub(blob, nxt, nxt + len - 1)
  off = nxt + len
end
if new > 0 and new < n then
  t_spans, t_err, t_in, t_out, t_cost, t_start, t_end = 0, 0, 0, 0, 0, nil, nil
  per_trace, trace_order = {}, {}
  local records, k = ARGV[16], 0
  for roff = 1, #records, 73 do
    local _, tid, fl, st, en, it, ot, co = struct.unpack('>c16c16Bddddd', records, roff)
    if is_new[k * 16 + 1] then
      local err = fl % 2 == 1
      t_spans, t_in, t_out, t_cost = t_spans + 1, t_in + it, t_out + ot, t_cost + co
      if err then t_err = t_err + 1 end
      if t_start == nil or st < t_start then t_start = st end
      if t_end == nil or en > t_end then t_end = en end
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
      t[5], t[6], t[7] = t[5] + it, t[6] + ot, t[7] + co
    end
    k = k + 1
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
local tokens = (tonumber(cur['in']) or 0) + (tonumber(cur['out']) or 0)
if new > 0 then
  local dirty_set = {}
  for b, _ in pairs(dirty) do dirty_set[#dirty_set + 1] = b; dirty_set[#dirty_set + 1] = buckets[b] end
  redis.call('HSET', ids, unpack(dirty_set))

  local old = redis.call('HMGET', traces, unpack(trace_order))
  local trace_set = {}
  for i, tid in ipairs(trace_order) do
    local t = per_trace[tid]
    local name = root_names[tid] or ''
    if old[i] then
      local st, en, c, e, it, ot, co, nxt = struct.unpack('>ddIIddd', old[i])
      if st < t[1] then t[1] = st end
      if en > t[2] then t[2] = en end
      t[3], t[4], t[5], t[6], t[7] = t[3] + c, t[4] + e, t[5] + it, t[6] + ot, t[7] + co
      if name == '' then name = string.sub(old[i], nxt) end
    else
      trace_count = trace_count + 1
    end
    trace_set[#trace_set + 1] = tid
    trace_set[#trace_set + 1] = struct.pack('>ddIIddd', t[1], t[2], t[3], t[4], t[5], t[6], t[7]) .. name
  end
  redis.call('HSET', traces, unpack(trace_set))

  spans = spans + t_spans
  if start == nil or t_start < start then start = t_start end
  if finish == nil or t_end > finish then finish = t_end end
  total_cost = string.format('%.12g', (tonumber(total_cost) or 0) + t_cost)
  tokens = tokens + t_in + t_out
  seen = now
  put('spans', spans)
  put('traces', trace_count)
  put('errors', (tonumber(cur['errors']) or 0) + t_err)
  put('in', string.format('%d', (tonumber(cur['in']) or 0) + t_in))
  put('out', string.format('%d', (tonumber(cur['out']) or 0) + t_out))
  put('cost', total_cost)
  put('start', string.format('%d', start))
  put('end', string.format('%d', finish))
  put('seen', ARGV[1])
  if not cur['first_seen'] then put('first_seen', ARGV[1]) end
  if math.floor(flags / 4) % 2 == 1 then put('failed', '1') end
  if math.floor(flags / 8) % 2 == 1 then put('est', '1') end

  local labels = ARGV[13]
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
  for i = 17, #ARGV do
    length = redis.call('RPUSH', chunks, ARGV[i])
    stored = stored + struct.unpack('>I', ARGV[i], 2)
  end
  while stored > max_spans do
    local oldest = redis.call('LPOP', chunks)
    if not oldest then break end
    local c = struct.unpack('>I', oldest, 2)
    stored, dropped, length = stored - c, dropped + c, length - 1
  end
  put('stored', stored)
  if dropped > 0 then put('dropped', dropped) end
  if ARGV[15] ~= '' then redis.call('PUBLISH', ARGV[15], length) end

  -- metadata: the first value per key wins
  local meta, key = ARGV[14], nil
  pos = 1
  while pos <= #meta do
    local stop = string.find(meta, '\0', pos, true) or (#meta + 1)
    local part = string.sub(meta, pos, stop - 1)
    if key == nil then key = part elseif redis.call('HEXISTS', sum, 'x:' .. key) == 0 then
      put('x:' .. key, part); key = nil
    else key = nil end
    pos = stop + 1
  end
end
if #set > 0 then redis.call('HSET', sum, unpack(set)) end

for i = 1, 4 do redis.call('PEXPIRE', KEYS[i], ttl) end

return {new, start or 0, finish or 0, spans, trace_count, tokens, total_cost, seen}
