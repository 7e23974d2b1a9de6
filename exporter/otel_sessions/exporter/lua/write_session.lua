-- write_session.lua: one session's part of an export request, atomically.
--
-- KEYS[1]  P:{S}:sum     hash: summary (fields listed in summary.py)
-- KEYS[2]  P:{S}:chunks  list: compressed span chunks, oldest first (span_codec.py)
-- KEYS[3]  P:{S}:ids     string: 8-byte digests of the spans stored (first bit 0) and of
--                        the traces counted (first bit 1), in any order
-- ARGV[1]  now (ms)                 ARGV[2]  ttl (ms), set on every key
-- ARGV[3]  max spans kept           ARGV[4]  session id
-- ARGV[5]  name        ARGV[6] user id     ARGV[7] thread id     ARGV[8] previous session id
--          (empty = not given; the first value given wins)
-- ARGV[9]  flags: 1 ended (session.end), 2 escalated, 4 a root span failed, 8 cost estimated
-- ARGV[10] span digests, n x 8 bytes, distinct, first bit 0
-- ARGV[11] trace digests of those spans, 8 bytes each, distinct, first bit 1
-- ARGV[12..17] figures of the n spans, as decimal strings: errors, input tokens, output
--          tokens, cost USD, earliest start µs, latest end µs
-- ARGV[18] labels, NUL-separated ("m:model", "s:service", "a:agent", "t:tool")
-- ARGV[19] metadata, NUL-separated key, value, key, value ...
-- ARGV[20] pub/sub channel announcing new chunks ("" = none)
-- ARGV[21] the chunk holding the n spans
--
-- The spans are written all or nothing: when every span was seen before nothing changes and
-- the reply is {0}; when only some were, nothing changes either and the reply is
-- {-1, mask} with mask[i] = '1' for each new span, and the caller sends again with only
-- those. Otherwise the reply is
-- {n, start µs, end µs, spans, traces, tokens, cost (string), last write ms}.

local sum, chunks, ids = KEYS[1], KEYS[2], KEYS[3]
local spans_blob, traces_blob = ARGV[10], ARGV[11]
local n = #spans_blob / 8

-- true when id occurs in hay at an 8-byte boundary
local function has(hay, id)
  local pos = 1
  while true do
    local s = string.find(hay, id, pos, true)
    if not s then return false end
    if (s - 1) % 8 == 0 then return true end
    pos = s + 1
  end
end

local seen = redis.call('GET', ids) or ''
if #seen > 0 then
  local mask, new = {}, 0
  for off = 1, #spans_blob, 8 do
    if has(seen, string.sub(spans_blob, off, off + 7)) then
      mask[#mask + 1] = '0'
    else
      mask[#mask + 1] = '1'
      new = new + 1
    end
  end
  if new == 0 then return {0} end
  if new < n then return {-1, table.concat(mask)} end
end

local new_traces, parts = 0, {seen, spans_blob}
for off = 1, #traces_blob, 8 do
  local t = string.sub(traces_blob, off, off + 7)
  if #seen == 0 or not has(seen, t) then
    new_traces = new_traces + 1
    parts[#parts + 1] = t
  end
end
local ttl = ARGV[2]
redis.call('SET', ids, table.concat(parts), 'PX', ttl)

-- current summary (and the metadata keys this write names)
local F = {'id', 'name', 'user', 'thread', 'prev', 'start', 'end', 'spans', 'traces', 'errors',
           'in', 'out', 'cost', 'stored', 'dropped', 'first_seen'}
local meta, meta_pairs, pos = ARGV[19], {}, 1
while pos <= #meta do
  local stop = string.find(meta, '\0', pos, true) or (#meta + 1)
  meta_pairs[#meta_pairs + 1] = string.sub(meta, pos, stop - 1)
  pos = stop + 1
end
for i = 1, #meta_pairs - 1, 2 do F[#F + 1] = 'x:' .. meta_pairs[i] end
local values = redis.call('HMGET', sum, unpack(F))
local cur = {}
for i, f in ipairs(F) do cur[f] = values[i] end

local set = {}
local function put(field, value) set[#set + 1] = field; set[#set + 1] = value end

-- first-value-wins session fields
local given = {id = ARGV[4], name = ARGV[5], user = ARGV[6], thread = ARGV[7], prev = ARGV[8]}
for _, f in ipairs({'id', 'name', 'user', 'thread', 'prev'}) do
  if not cur[f] and given[f] ~= '' then put(f, given[f]) end
end
for i = 1, #meta_pairs - 1, 2 do
  local field = 'x:' .. meta_pairs[i]
  if not cur[field] then put(field, meta_pairs[i + 1]) end
end
local flags = tonumber(ARGV[9])
if flags % 2 == 1 then put('ended', '1') end
if math.floor(flags / 2) % 2 == 1 then put('escalated', '1') end
if math.floor(flags / 4) % 2 == 1 then put('failed', '1') end
if math.floor(flags / 8) % 2 == 1 then put('est', '1') end

local spans = (tonumber(cur['spans']) or 0) + n
local trace_count = (tonumber(cur['traces']) or 0) + new_traces
local input = (tonumber(cur['in']) or 0) + tonumber(ARGV[13])
local output = (tonumber(cur['out']) or 0) + tonumber(ARGV[14])
local total_cost = string.format('%.12g', (tonumber(cur['cost']) or 0) + tonumber(ARGV[15]))
local start, finish = tonumber(ARGV[16]), tonumber(ARGV[17])
local old_start, old_end = tonumber(cur['start']), tonumber(cur['end'])
if old_start and old_start < start then start = old_start end
if old_end and old_end > finish then finish = old_end end
put('spans', spans)
put('traces', trace_count)
put('errors', (tonumber(cur['errors']) or 0) + tonumber(ARGV[12]))
put('in', string.format('%d', input))
put('out', string.format('%d', output))
put('cost', total_cost)
put('start', string.format('%d', start))
put('end', string.format('%d', finish))
put('seen', ARGV[1])
if not cur['first_seen'] then put('first_seen', ARGV[1]) end

local labels = ARGV[18]
pos = 1
while pos <= #labels do
  local stop = string.find(labels, '\0', pos, true) or (#labels + 1)
  put(string.sub(labels, pos, stop - 1), '1')
  pos = stop + 1
end

-- span bodies, bounded: the oldest chunks go first
local stored = (tonumber(cur['stored']) or 0) + n
local dropped = tonumber(cur['dropped']) or 0
local length = redis.call('RPUSH', chunks, ARGV[21])
local max_spans = tonumber(ARGV[3])
while stored > max_spans do
  local oldest = redis.call('LPOP', chunks)
  if not oldest then break end
  local c = struct.unpack('>I', oldest, 2)
  stored, dropped, length = stored - c, dropped + c, length - 1
end
put('stored', stored)
if dropped > 0 then put('dropped', dropped) end
redis.call('HSET', sum, unpack(set))
if ARGV[20] ~= '' then redis.call('PUBLISH', ARGV[20], length) end

redis.call('PEXPIRE', sum, ttl)
redis.call('PEXPIRE', chunks, ttl)

return {n, start, finish, spans, trace_count, input + output, total_cost, tonumber(ARGV[1])}
