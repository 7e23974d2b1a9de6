-- write_logs.lua: one session's log records of an export request, atomically.
--
-- KEYS[1]  P:{S}:sum     hash: the session's summary (schema.py, class Field); a write of logs
--                        to a session that has no spans yet creates it
-- KEYS[2]  P:{S}:logs    list: compressed log chunks, oldest first (store/log_codec.py)
-- KEYS[3]  P:{S}:logids  string: 8-byte digests of the log records stored, in any order.
--                        The digest store of write_session.lua (buckets written whole, not
--                        appended to: no spare room kept): beyond 128 digests they are
--                        spread over 2^k bucket strings P:{S}:logids:k:b (b = bytes 1-2 of
--                        the digest mod 2^k, which the caller derives from the record's trace
--                        and second, so the records of one write share few buckets; k in the
--                        summary field lidb, the count in lidn), k growing by one whenever the
--                        buckets hold 128 digests each on average; names built here from
--                        KEYS[3], the same hash tag, so the same cluster slot.
-- KEYS[4..6] P:{S}:chunks, P:{S}:ids, P:{S}:agg: the session's span keys, whose TTL slides
--            with every write of the session (write_session.lua does the same for KEYS[2..3])
--
-- ARGV[1]  now_ms          ARGV[2]  ttl_ms, set on every key written
-- ARGV[3]  max_logs        records kept; the oldest chunks go beyond it; digests are bounded
--                          as write_session.lua bounds them (4 to 8 times max_logs)
-- ARGV[4]  digests         n x 8 bytes, distinct (one per record: bytes 1-2 choose the bucket)
-- ARGV[5]  start_us        ARGV[6]  end_us   earliest and latest record time (decimal)
-- ARGV[7]  channel         pub/sub channel announcing new log chunks ("" = none)
-- ARGV[8]  chunk           the chunk holding the n records
-- ARGV[9]  errors          records of the n with severity ERROR or above
-- ARGV[10] error message   the first error record's message (512 characters at most), or ""
-- ARGV[11] n_once          then n_once (field, value) pairs set when absent (id, name, user,
--                          thread, prev), then labels to the end ("s:service"), set to "1"
--
-- All or nothing, as write_session.lua: when every record was stored before, nothing changes
-- and the reply is the session's figures with status 0; when only some were, nothing changes
-- and the reply is {-1, mask} (mask[i] = '1' for each new record): the caller sends again
-- with only those. Otherwise the status is n. Figures reply (the same as write_session.lua's,
-- what the indexes take): {status, start_us, end_us, spans, traces, tokens, cost (string),
-- last write ms}. Records count as activity: the write sets `seen` and widens start/end.

local sum, logs, ids = KEYS[1], KEYS[2], KEYS[3]
local now_ms, ttl_ms, max_logs = ARGV[1], ARGV[2], tonumber(ARGV[3])
local digests = ARGV[4]
local start_us, end_us = tonumber(ARGV[5]), tonumber(ARGV[6])
local channel, chunk = ARGV[7], ARGV[8]
local errors, message = tonumber(ARGV[9]), ARGV[10]
local n_once = tonumber(ARGV[11])
local first_once, first_label = 12, 12 + 2 * tonumber(ARGV[11])
local n = #digests / 8

local PER_BUCKET, BUCKET_CAP, HUGE_BUCKET = 128, 256, 4096  -- as in write_session.lua
local MAX_K = math.max(1, math.ceil(math.log(math.max(2, max_logs / 64)) / math.log(2)))

local F = {'start', 'end', 'spans', 'traces', 'in', 'out', 'cost', 'seen', 'logs', 'lerr', 'lmsg', 'lstored',
           'ldropped', 'lidb', 'lidn'}
local FIXED = #F
for i = first_once, first_label - 1, 2 do F[#F + 1] = ARGV[i] end
local values = redis.call('HMGET', sum, unpack(F))
local cur = {}
for i = 1, FIXED do cur[F[i]] = values[i] end

local function figures(status)
  return {status, tonumber(cur['start']) or 0, tonumber(cur['end']) or 0, tonumber(cur['spans']) or 0,
          tonumber(cur['traces']) or 0, (tonumber(cur['in']) or 0) + (tonumber(cur['out']) or 0),
          cur['cost'] or '0', tonumber(cur['seen']) or 0}
end

-- --- the digest store: one string, then 2^k bucket strings (write_session.lua's) ---------------
local k = tonumber(cur['lidb']) or 0
local count = tonumber(cur['lidn']) or 0
local content, pending, added = {}, {}, 0

local function key_of(level, b) if level == 0 then return ids end return ids .. ':' .. level .. ':' .. b end
local function bucket_in(level, d)
  if level == 0 then return 0 end
  return (string.byte(d, 1) * 256 + string.byte(d, 2)) % (2 ^ level)
end

local function stored(b)
  local c = content[b]
  if c == nil then
    c = redis.call('GET', key_of(k, b)) or ''
    content[b] = c
  end
  return c
end

local function occurs(hay, d)
  local pos = 1
  while true do
    local s = string.find(hay, d, pos, true)
    if not s then return false end
    if (s - 1) % 8 == 0 then return true end
    pos = s + 1
  end
end

local function add(d)
  local b = bucket_in(k, d)
  local p = pending[b]
  if not p then p = {}; pending[b] = p end
  p[#p + 1] = d
  added = added + 1
end

local function flush_digests()
  local total = count + added
  if k < MAX_K and total > PER_BUCKET * (2 ^ k) then
    local level = k + 1
    while level < MAX_K and total > PER_BUCKET * (2 ^ level) do level = level + 1 end
    local parts = {}
    for b = 0, (2 ^ k) - 1 do
      local all = stored(b) .. table.concat(pending[b] or {})
      for off = 1, #all, 8 do
        local d = string.sub(all, off, off + 7)
        local nb = bucket_in(level, d)
        local p = parts[nb]
        if not p then p = {}; parts[nb] = p end
        p[#p + 1] = d
      end
      redis.call('DEL', key_of(k, b))
    end
    for b, p in pairs(parts) do
      redis.call('SET', key_of(level, b), table.concat(p), 'PX', ttl_ms)
    end
    return level
  end
  -- each bucket is written whole (SET): the idempotency check read it already, and a string
  -- grown by APPEND keeps up to as much again in spare room (2 to 3 bytes per digest here)
  for b, p in pairs(pending) do
    local keep = stored(b) .. table.concat(p)
    if (k >= MAX_K and #keep > 8 * BUCKET_CAP) or #keep > 8 * HUGE_BUCKET then
      keep = string.sub(keep, 8 * math.floor(#keep / 16) + 1)
    end
    redis.call('SET', key_of(k, b), keep, 'PX', ttl_ms)
  end
  return k
end

-- --- idempotency: all or nothing -------------------------------------------------------------
if cur['logs'] then
  local mask, new = {}, 0
  for off = 1, #digests, 8 do
    local d = string.sub(digests, off, off + 7)
    if occurs(stored(bucket_in(k, d)), d) then
      mask[#mask + 1] = '0'
    else
      mask[#mask + 1] = '1'
      new = new + 1
    end
  end
  if new == 0 then return figures(0) end
  if new < n then return {-1, table.concat(mask)} end
end
for off = 1, #digests, 8 do add(string.sub(digests, off, off + 7)) end
local level = flush_digests()

-- --- the summary -----------------------------------------------------------------------------
local set = {}
local function put(field, value) set[#set + 1] = field; set[#set + 1] = value end

for i = first_once, first_label - 1, 2 do
  if not values[FIXED + (i - first_once) / 2 + 1] then put(ARGV[i], ARGV[i + 1]) end
end
if level > 0 then put('lidb', level) end
put('lidn', count + added)
if message ~= '' and not cur['lmsg'] then put('lmsg', message) end
put('logs', (tonumber(cur['logs']) or 0) + n)
if errors > 0 or cur['lerr'] then put('lerr', (tonumber(cur['lerr']) or 0) + errors) end
local old_start, old_end = tonumber(cur['start']), tonumber(cur['end'])
if old_start and old_start < start_us then start_us = old_start end
if old_end and old_end > end_us then end_us = old_end end
put('start', string.format('%d', start_us))
put('end', string.format('%d', end_us))
put('seen', now_ms)
cur['start'], cur['end'], cur['seen'] = start_us, end_us, now_ms
for i = first_label, #ARGV do put(ARGV[i], '1') end

-- record bodies, bounded: the oldest chunks go first
local kept = (tonumber(cur['lstored']) or 0) + n
local dropped = tonumber(cur['ldropped']) or 0
local length = redis.call('RPUSH', logs, chunk)
while kept > max_logs do
  local oldest = redis.call('LPOP', logs)
  if not oldest then break end
  local c = struct.unpack('>I', oldest, 2)
  kept, dropped, length = kept - c, dropped + c, length - 1
end
put('lstored', kept)
if dropped > 0 then put('ldropped', dropped) end
redis.call('HSET', sum, unpack(set))
if channel ~= '' then redis.call('PUBLISH', channel, length) end

redis.call('PEXPIRE', sum, ttl_ms)
redis.call('PEXPIRE', logs, ttl_ms)
for k = 4, #KEYS do redis.call('PEXPIRE', KEYS[k], ttl_ms) end

return figures(n)
