-- write_session.lua: sessions' parts of an export request, each atomically (the whole call is).
--
-- One call writes one or more sessions: on one Redis the sessions of a request (up to
-- SESSIONS_PER_CALL in sessions.py; fewer calls cost Redis less than one per session), on
-- Redis Cluster one (each session is its own slot). Per session, in order:
--   KEYS: its 4 or 6 keys K[1..6] below;
--   ARGV: the number of its keys, the number of its arguments, then its arguments A[1..] below.
-- Returns one reply per session, in order (see the end of this header).
--
-- A session's keys:
-- K[1]  P:{S}:sum     hash: summary (field names in schema.py, class Field)
-- K[2]  P:{S}:chunks  list: compressed span chunks, oldest first (store/codec.py)
-- K[3]  P:{S}:ids     string: 8-byte digests of the spans stored, of the traces counted and
--                     the usage markers of traces with model-call usage, in any order.
--                     Beyond 128 digests they are spread over 2^k bucket strings
--                     P:{S}:ids:k:b (b = bytes 1-2 of the digest mod 2^k, chosen by the
--                     span's trace, so a trace's digests share a bucket; k in the summary
--                     field idb), k growing by one whenever the buckets hold 128 digests
--                     each on average: names built here from K[3], the same hash tag,
--                     so the same cluster slot.
-- K[4]  P:{S}:agg     hash: usage marker -> "in out cost" of the largest aggregating span
--                     counted for a trace whose model calls carried no usage (yet)
-- K[5..6] P:{S}:logs, P:{S}:logids: the session's log keys (write_logs.lua), whose TTL
--          slides with every write of the session that has log records (optional)
--
-- A[1]  now_ms          A[2]  ttl_ms, set on every key written
-- A[3]  max_spans       spans kept; the oldest chunks go beyond it, and digests beyond
--                       twice it (the oldest half of a bucket)
-- A[4]  flags           SessionFlags: 1 ended, 2 escalated, 4 a root span failed, 8 cost estimated
-- A[5]  span_digests    n x 8 bytes, distinct
-- A[6]  trace_digests   8 bytes per distinct trace of those spans
-- A[7]  markers         8 bytes per trace whose model calls carry usage in this write
-- A[8]  start_us        A[9]  end_us            (decimal)
-- A[10] channel         pub/sub channel announcing new chunks ("" = none)
-- A[11] chunk           the chunk holding the n spans
-- A[12] n_counters      A[13] n_aggregates      A[14] n_once
-- then n_counters (field, amount) pairs: added to the summary ("cost" a float, the rest integers)
-- then n_aggregates (marker, in, out, cost) quadruples: the largest aggregating-span usage of a
--          trace whose model calls carry none in this write
-- then n_once (field, value) pairs: set when the field is absent (id, name, user, thread,
--          prev, x:<metadata key>)
-- then labels to the end of A, one field name each ("m:model", "s:service", ...), set to "1"
--
-- Usage is counted at the model calls: an aggregate counts for its trace only while no model
-- call of that trace carried usage, and only its largest one; when a model call's usage comes
-- later, the aggregate counted before is taken back. So the totals are the same in whatever
-- order, and in however many requests, the spans arrive.
--
-- The spans are written all or nothing. When every span was seen before, nothing changes
-- and the reply carries the session's current figures with status 0 (the caller still
-- refreshes the indexes: a write that landed after a timeout is then listed). When only some
-- were, nothing changes and the reply is {-1, mask} with mask[i] = '1' for each new span:
-- the caller sends again with only those. Otherwise the status is n. Figures reply:
-- {status, start_us, end_us, spans, traces, tokens, cost (string), last write ms}.
--
-- Cost per write is in the digests it writes, not in the session's size: a lookup reads the
-- bucket of its trace, about 128 digests (reading a string into Lua costs about 2 µs per KiB,
-- so one large string would make every write slower as the session grows); new digests are
-- appended (APPEND), never rewritten, but when the buckets double (amortized: each digest
-- moves once per doubling). At 2^k >= max_spans / 64 the buckets stop doubling, and from
-- then on a bucket past 256 digests drops its oldest half; any bucket past 4096 (one huge
-- trace) does too. So a session keeps at most 2^k x 256 digests (4 to 8 times max_spans), and
-- a retry of a span older than that may count again.
--
-- Redis calls per write (Redis time is mostly their number and the summary fields they touch):
-- HMGET of the summary; for a session with spans stored, GET of the digest string or of each
-- bucket looked in, and one HMGET of the usage aggregates when usage markers are new; SET
-- (or APPEND + PEXPIRE) of the digests; RPUSH of the chunk; HSET of the summary, whose fields
-- every write changes come first in a new summary (a listpack hash is searched from its start);
-- PUBLISH; PEXPIRE of the summary and the chunk list, and of the log keys only when the session
-- has log records.

local function write_one(K, A)
  local sum, chunks, ids, agg = K[1], K[2], K[3], K[4]
  local now_ms, ttl_ms, max_spans, flags = A[1], A[2], tonumber(A[3]), tonumber(A[4])
  local span_digests, trace_digests, markers = A[5], A[6], A[7]
  local start_us, end_us = tonumber(A[8]), tonumber(A[9])
  local channel, chunk = A[10], A[11]
  local n_counters, n_aggregates, n_once = tonumber(A[12]), tonumber(A[13]), tonumber(A[14])
  local first_counter = 15
  local first_aggregate = first_counter + 2 * n_counters
  local first_once = first_aggregate + 4 * n_aggregates
  local first_label = first_once + 2 * n_once
  local n = #span_digests / 8

  local PER_BUCKET, BUCKET_CAP, HUGE_BUCKET = 128, 256, 4096  -- digests: average before doubling; most
  -- in a bucket once the buckets stop doubling; most in any bucket
  local MAX_K = math.max(1, math.ceil(math.log(math.max(2, max_spans / 64)) / math.log(2)))

  -- the figures fields, then the first-value-wins fields this write names
  local F = {'start', 'end', 'spans', 'traces', 'in', 'out', 'cost', 'stored', 'dropped', 'seen', 'idb', 'idn',
             'logs'}
  local FIGURES = #F
  for i = first_counter, first_aggregate - 1, 2 do
    if A[i] ~= 'in' and A[i] ~= 'out' and A[i] ~= 'cost' then F[#F + 1] = A[i] end
  end
  local FIXED = #F
  for i = first_once, first_label - 1, 2 do F[#F + 1] = A[i] end
  local values = redis.call('HMGET', sum, unpack(F))
  local cur = {}
  for i = 1, FIXED do cur[F[i]] = values[i] end

  local function figures(status)
    return {status, tonumber(cur['start']) or 0, tonumber(cur['end']) or 0, tonumber(cur['spans']) or 0,
            tonumber(cur['traces']) or 0, (tonumber(cur['in']) or 0) + (tonumber(cur['out']) or 0),
            cur['cost'] or '0', tonumber(cur['seen']) or 0}
  end

  -- --- the digest store: one string, then 2^k bucket strings ------------------------------------
  local k = tonumber(cur['idb']) or 0
  local digests = tonumber(cur['idn']) or 0
  local content, pending, added = {}, {}, 0  -- bucket -> stored bytes; bucket -> new digests
  local adding = {}  -- the new digests, as a set (a request may hold tens of thousands of traces)

  local function key_of(level, b) if level == 0 then return ids end return ids .. ':' .. level .. ':' .. b end
  local function bucket_in(level, d)
    if level == 0 then return 0 end
    return (string.byte(d, 1) * 256 + string.byte(d, 2)) % (2 ^ level)
  end

  local fresh = not cur['spans']  -- no span stored yet: no digest string, no usage aggregate
  local function stored(b)
    local c = content[b]
    if c == nil then
      c = fresh and '' or (redis.call('GET', key_of(k, b)) or '')
      content[b] = c
    end
    return c
  end

  -- true when d occurs in hay at an 8-byte boundary
  local function occurs(hay, d)
    local pos = 1
    while true do
      local s = string.find(hay, d, pos, true)
      if not s then return false end
      if (s - 1) % 8 == 0 then return true end
      pos = s + 1
    end
  end

  local function has(d)
    local b = bucket_in(k, d)
    return adding[d] or occurs(stored(b), d)
  end

  local function add(d)
    local b = bucket_in(k, d)
    local p = pending[b]
    if not p then p = {}; pending[b] = p end
    p[#p + 1] = d
    adding[d] = true
    added = added + 1
  end

  -- write the new digests; returns the bucket level now in use
  local function flush_digests()
    local total = digests + added
    if k < MAX_K and total > PER_BUCKET * (2 ^ k) then
      -- double the buckets (or split the single string): every digest moves once
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
    for b, p in pairs(pending) do
      local key, more = key_of(k, b), table.concat(p)
      local size = #stored(b) + #more
      if (k >= MAX_K and size > 8 * BUCKET_CAP) or size > 8 * HUGE_BUCKET then  -- bounded: the oldest half goes
        local keep = stored(b) .. more
        redis.call('SET', key, string.sub(keep, 8 * math.floor(#keep / 16) + 1), 'PX', ttl_ms)
      elseif k == 0 then  -- the single string of a small session (at most 1 KiB): rewritten at its
        -- exact size (APPEND would leave up to as much again allocated, per session)
        redis.call('SET', key, stored(b) .. more, 'PX', ttl_ms)
      else
        redis.call('APPEND', key, more)
        redis.call('PEXPIRE', key, ttl_ms)
      end
    end
    return k
  end

  -- --- idempotency: all or nothing -------------------------------------------------------------
  if cur['spans'] then
    local mask, new = {}, 0
    for off = 1, #span_digests, 8 do
      if has(string.sub(span_digests, off, off + 7)) then
        mask[#mask + 1] = '0'
      else
        mask[#mask + 1] = '1'
        new = new + 1
      end
    end
    if new == 0 then return figures(0) end
    if new < n then return {-1, table.concat(mask)} end
  end

  local new_traces = 0
  if fresh then
    -- nothing stored yet (so one string, k = 0): every span and trace digest is new (the caller
    -- sends them distinct), written as they came, without a look-up each
    pending[0] = {span_digests, trace_digests}
    new_traces = #trace_digests / 8
    added = n + new_traces
  else
    for off = 1, #span_digests, 8 do add(string.sub(span_digests, off, off + 7)) end
    for off = 1, #trace_digests, 8 do
      local t = string.sub(trace_digests, off, off + 7)
      if not has(t) then
        new_traces = new_traces + 1
        add(t)
      end
    end
  end

  -- --- usage: model calls count; an aggregate only for a trace without them ---------------------
  local d_in, d_out, d_cost = 0, 0, 0
  local agg_written = false
  -- the aggregates counted before for the markers this write names, read in one HMGET (a
  -- session without spans has none)
  local new_markers, counted_of = {}, {}
  for off = 1, #markers, 8 do
    local m = string.sub(markers, off, off + 7)
    if not has(m) then new_markers[#new_markers + 1] = m end
  end
  for i = first_aggregate, first_once - 1, 4 do
    if not has(A[i]) then new_markers[#new_markers + 1] = A[i] end
  end
  if not fresh and #new_markers > 0 then
    local counted = redis.call('HMGET', agg, unpack(new_markers))
    for i, m in ipairs(new_markers) do counted_of[m] = counted[i] or nil end
  end
  local function parse_agg(v)
    local a, b, c = string.match(v, '^(%S+) (%S+) (%S+)$')
    return tonumber(a) or 0, tonumber(b) or 0, tonumber(c) or 0
  end
  for off = 1, #markers, 8 do
    local m = string.sub(markers, off, off + 7)
    if not has(m) then
      add(m)
      local counted = counted_of[m]
      counted_of[m] = nil
      if counted then  -- an aggregate counted before: the model calls' usage replaces it
        local a_in, a_out, a_cost = parse_agg(counted)
        d_in, d_out, d_cost = d_in - a_in, d_out - a_out, d_cost - a_cost
        redis.call('HDEL', agg, m)
      end
    end
  end
  for i = first_aggregate, first_once - 1, 4 do
    local m = A[i]
    local a_in, a_out, a_cost = tonumber(A[i + 1]), tonumber(A[i + 2]), tonumber(A[i + 3])
    if not has(m) then
      local counted = counted_of[m]
      local o_in, o_out, o_cost = 0, 0, 0
      if counted then o_in, o_out, o_cost = parse_agg(counted) end
      if a_in + a_out > o_in + o_out or (a_in + a_out == o_in + o_out and a_cost > o_cost) then
        d_in, d_out, d_cost = d_in + a_in - o_in, d_out + a_out - o_out, d_cost + a_cost - o_cost
        local v = string.format('%d %d %.17g', a_in, a_out, a_cost)
        redis.call('HSET', agg, m, v)
        counted_of[m] = v
        agg_written = true
      end
    end
  end
  if agg_written then redis.call('PEXPIRE', agg, ttl_ms) end
  local level = flush_digests()

  -- --- span bodies, bounded: the oldest chunks go first -------------------------------------------
  local kept = (tonumber(cur['stored']) or 0) + n
  local dropped = tonumber(cur['dropped']) or 0
  local length = redis.call('RPUSH', chunks, chunk)
  while kept > max_spans do
    local oldest = redis.call('LPOP', chunks)
    if not oldest then break end
    local c = struct.unpack('>I', oldest, 2)
    kept, dropped, length = kept - c, dropped + c, length - 1
  end

  -- --- the summary -----------------------------------------------------------------------------
  local set = {}
  local function put(field, value) set[#set + 1] = field; set[#set + 1] = value end

  local totals = {['in'] = (tonumber(cur['in']) or 0) + d_in, out = (tonumber(cur['out']) or 0) + d_out,
                  cost = (tonumber(cur['cost']) or 0) + d_cost}
  for i = first_counter, first_aggregate - 1, 2 do
    local field, amount = A[i], tonumber(A[i + 1])
    if totals[field] ~= nil then
      totals[field] = totals[field] + amount
    else
      put(field, string.format('%d', (tonumber(cur[field]) or 0) + amount))
    end
  end
  local input, output = math.max(0, totals['in']), math.max(0, totals['out'])
  local total_cost = string.format('%.12g', math.max(0, totals['cost']))
  put('in', string.format('%d', input))
  put('out', string.format('%d', output))
  put('cost', total_cost)

  local spans = (tonumber(cur['spans']) or 0) + n
  local trace_count = (tonumber(cur['traces']) or 0) + new_traces
  local old_start, old_end = tonumber(cur['start']), tonumber(cur['end'])
  if old_start and old_start < start_us then start_us = old_start end
  if old_end and old_end > end_us then end_us = old_end end
  put('spans', spans)
  put('traces', trace_count)
  put('start', string.format('%d', start_us))
  put('end', string.format('%d', end_us))
  put('seen', now_ms)
  put('stored', kept)
  if dropped > 0 then put('dropped', dropped) end
  put('idn', math.min(digests + added, 4 * max_spans))
  if level ~= k then put('idb', level) end
  -- the fields every write changes come first in a new summary, so later writes find them early
  for i = first_once, first_label - 1, 2 do
    if not values[FIXED + (i - first_once) / 2 + 1] then put(A[i], A[i + 1]) end
  end
  if flags % 2 == 1 then put('ended', '1') end
  if math.floor(flags / 2) % 2 == 1 then put('escalated', '1') end
  if math.floor(flags / 4) % 2 == 1 then put('failed', '1') end
  if math.floor(flags / 8) % 2 == 1 then put('est', '1') end
  for i = first_label, #A do put(A[i], '1') end

  redis.call('HSET', sum, unpack(set))
  if channel ~= '' then redis.call('PUBLISH', channel, length) end

  redis.call('PEXPIRE', sum, ttl_ms)
  redis.call('PEXPIRE', chunks, ttl_ms)
  if cur['logs'] then for i = 5, #K do redis.call('PEXPIRE', K[i], ttl_ms) end end

  return {n, start_us, end_us, spans, trace_count, input + output, total_cost, tonumber(now_ms)}
end

local replies, k, a = {}, 1, 1
while a <= #ARGV do
  local n_keys, n_args = tonumber(ARGV[a]), tonumber(ARGV[a + 1])
  local K, A = {}, {}
  for i = 1, n_keys do K[i] = KEYS[k + i - 1] end
  for i = 1, n_args do A[i] = ARGV[a + 1 + i] end
  replies[#replies + 1] = write_one(K, A)
  k, a = k + n_keys, a + 2 + n_args
end
return replies
