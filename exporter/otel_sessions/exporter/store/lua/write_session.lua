-- write_session.lua: one session's part of an export request, atomically.
--
-- KEYS[1]  P:{S}:sum     hash: summary (field names in schema.py, class Field)
-- KEYS[2]  P:{S}:chunks  list: compressed span chunks, oldest first (span_codec.py)
-- KEYS[3]  P:{S}:ids     string: 8-byte digests of the spans stored (first bit 0) and of
--                        the traces counted (first bit 1), in any order
--
-- ARGV[1]  now_ms          ARGV[2]  ttl_ms, set on every key
-- ARGV[3]  max_spans       spans kept; the oldest chunks go beyond it
-- ARGV[4]  flags           SessionFlags: 1 ended, 2 escalated, 4 a root span failed, 8 cost estimated
-- ARGV[5]  span_digests    n x 8 bytes, distinct, first bit 0
-- ARGV[6]  trace_digests   8 bytes per distinct trace of those spans, first bit 1
-- ARGV[7]  errors          ARGV[8]  input_tokens     ARGV[9]  output_tokens  (decimal integers)
-- ARGV[10] cost_usd        ARGV[11] start_us         ARGV[12] end_us         (decimal)
-- ARGV[13] channel         pub/sub channel announcing new chunks ("" = none)
-- ARGV[14] chunk           the chunk holding the n spans
-- ARGV[15] n_once          number of first-value-wins (field, value) pairs that follow:
--                          id, name, user, thread, prev and x:<metadata key>
-- ARGV[16 .. 15 + 2 n_once]  the pairs
-- ARGV[16 + 2 n_once ..]   labels, one field name each ("m:model", "s:service", ...), set to "1"
--
-- The spans are written all or nothing. When every span was seen before, nothing changes
-- and the reply carries the session's current figures with status 0 (the caller still
-- refreshes the indexes: a write that landed after a timeout is then listed). When only some
-- were, nothing changes and the reply is {-1, mask} with mask[i] = '1' for each new span:
-- the caller sends again with only those. Otherwise the status is n. Figures reply:
-- {status, start_us, end_us, spans, traces, tokens, cost (string), last write ms}.

local sum, chunks, ids = KEYS[1], KEYS[2], KEYS[3]
local now_ms, ttl_ms, max_spans, flags = ARGV[1], ARGV[2], tonumber(ARGV[3]), tonumber(ARGV[4])
local span_digests, trace_digests = ARGV[5], ARGV[6]
local errors, input_tokens, output_tokens = tonumber(ARGV[7]), tonumber(ARGV[8]), tonumber(ARGV[9])
local cost_usd, start_us, end_us = tonumber(ARGV[10]), tonumber(ARGV[11]), tonumber(ARGV[12])
local channel, chunk, n_once = ARGV[13], ARGV[14], tonumber(ARGV[15])
local first_label = 16 + 2 * n_once
local n = #span_digests / 8

-- the figures fields, then the first-value-wins fields this write names
local F = {'start', 'end', 'spans', 'traces', 'errors', 'in', 'out', 'cost', 'stored', 'dropped', 'seen'}
local FIGURES = #F
for i = 16, first_label - 1, 2 do F[#F + 1] = ARGV[i] end
local values = redis.call('HMGET', sum, unpack(F))
local cur = {}
for i = 1, FIGURES do cur[F[i]] = values[i] end

local function figures(status)
  return {status, tonumber(cur['start']) or 0, tonumber(cur['end']) or 0, tonumber(cur['spans']) or 0,
          tonumber(cur['traces']) or 0, (tonumber(cur['in']) or 0) + (tonumber(cur['out']) or 0),
          cur['cost'] or '0', tonumber(cur['seen']) or 0}
end

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
  for off = 1, #span_digests, 8 do
    if has(seen, string.sub(span_digests, off, off + 7)) then
      mask[#mask + 1] = '0'
    else
      mask[#mask + 1] = '1'
      new = new + 1
    end
  end
  if new == 0 then return figures(0) end
  if new < n then return {-1, table.concat(mask)} end
end

local new_traces, parts = 0, {seen, span_digests}
for off = 1, #trace_digests, 8 do
  local t = string.sub(trace_digests, off, off + 7)
  if #seen == 0 or not has(seen, t) then
    new_traces = new_traces + 1
    parts[#parts + 1] = t
  end
end
redis.call('SET', ids, table.concat(parts), 'PX', ttl_ms)

local set = {}
local function put(field, value) set[#set + 1] = field; set[#set + 1] = value end

for i = 16, first_label - 1, 2 do
  if not values[FIGURES + (i - 14) / 2] then put(ARGV[i], ARGV[i + 1]) end
end
if flags % 2 == 1 then put('ended', '1') end
if math.floor(flags / 2) % 2 == 1 then put('escalated', '1') end
if math.floor(flags / 4) % 2 == 1 then put('failed', '1') end
if math.floor(flags / 8) % 2 == 1 then put('est', '1') end

local spans = (tonumber(cur['spans']) or 0) + n
local trace_count = (tonumber(cur['traces']) or 0) + new_traces
local input = (tonumber(cur['in']) or 0) + input_tokens
local output = (tonumber(cur['out']) or 0) + output_tokens
local total_cost = string.format('%.12g', (tonumber(cur['cost']) or 0) + cost_usd)
local old_start, old_end = tonumber(cur['start']), tonumber(cur['end'])
if old_start and old_start < start_us then start_us = old_start end
if old_end and old_end > end_us then end_us = old_end end
put('spans', spans)
put('traces', trace_count)
put('errors', (tonumber(cur['errors']) or 0) + errors)
put('in', string.format('%d', input))
put('out', string.format('%d', output))
put('cost', total_cost)
put('start', string.format('%d', start_us))
put('end', string.format('%d', end_us))
put('seen', now_ms)
for i = first_label, #ARGV do put(ARGV[i], '1') end

-- span bodies, bounded: the oldest chunks go first
local stored = (tonumber(cur['stored']) or 0) + n
local dropped = tonumber(cur['dropped']) or 0
local length = redis.call('RPUSH', chunks, chunk)
while stored > max_spans do
  local oldest = redis.call('LPOP', chunks)
  if not oldest then break end
  local c = struct.unpack('>I', oldest, 2)
  stored, dropped, length = stored - c, dropped + c, length - 1
end
put('stored', stored)
if dropped > 0 then put('dropped', dropped) end
redis.call('HSET', sum, unpack(set))
if channel ~= '' then redis.call('PUBLISH', channel, length) end

redis.call('PEXPIRE', sum, ttl_ms)
redis.call('PEXPIRE', chunks, ttl_ms)

return {n, start_us, end_us, spans, trace_count, input + output, total_cost, tonumber(now_ms)}
