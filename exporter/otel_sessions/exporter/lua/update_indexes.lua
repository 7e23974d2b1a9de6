-- update_indexes.lua: cross-session index entries of the sessions of one index shard.
--
-- KEYS[1]     P:{ix:N}:seen      zset  session -> last write (ms); prunes expired sessions
-- KEYS[2..8]  P:{ix:N}:start|end|duration|spans|traces|tokens|cost   sort zsets
-- KEYS[9..]   per session, in order, the keys its mask names:
--             P:{ix:N}:user:U (mask 1), P:{ix:N}:thread:T (mask 2), P:{ix:N}:name:NAME (mask 4)
-- ARGV[1]  now (ms)         ARGV[2]  retention (ms)       ARGV[3]  thread idle (ms)
-- ARGV[4]  sessions in this call, then 9 values per session:
--          id, last write ms, start µs, end µs, spans, traces, tokens, cost, mask
--
-- Scores only move one way (ZADD LT for start, GT for the rest), so two receivers updating
-- the same session in any order converge on the newest figures. Every index key gets a TTL;
-- sessions whose last write is older than the retention are removed (at most 200 per call).
-- Returns the number of expired sessions removed.

local now, retention, thread_idle = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local n = tonumber(ARGV[4])
local extra = 9
local a = 5
for _ = 1, n do
  local id, seen, st, en = ARGV[a], ARGV[a + 1], tonumber(ARGV[a + 2]), tonumber(ARGV[a + 3])
  local mask = tonumber(ARGV[a + 8])
  redis.call('ZADD', KEYS[1], 'GT', seen, id)
  redis.call('ZADD', KEYS[2], 'LT', st, id)
  redis.call('ZADD', KEYS[3], 'GT', en, id)
  redis.call('ZADD', KEYS[4], 'GT', en - st, id)
  redis.call('ZADD', KEYS[5], 'GT', ARGV[a + 4], id)
  redis.call('ZADD', KEYS[6], 'GT', ARGV[a + 5], id)
  redis.call('ZADD', KEYS[7], 'GT', ARGV[a + 6], id)
  redis.call('ZADD', KEYS[8], 'GT', ARGV[a + 7], id)
  if mask % 2 == 1 then
    redis.call('ZADD', KEYS[extra], 'GT', seen, id)
    redis.call('PEXPIRE', KEYS[extra], retention)
    extra = extra + 1
  end
  if math.floor(mask / 2) % 2 == 1 then
    redis.call('ZADD', KEYS[extra], 'LT', st, id)
    redis.call('PEXPIRE', KEYS[extra], thread_idle)
    extra = extra + 1
  end
  if math.floor(mask / 4) % 2 == 1 then
    redis.call('ZADD', KEYS[extra], 'GT', seen, id)
    redis.call('PEXPIRE', KEYS[extra], retention)
    extra = extra + 1
  end
  a = a + 9
end

local expired = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', '(' .. (now - retention), 'LIMIT', 0, 200)
for _, id in ipairs(expired) do
  for i = 1, 8 do redis.call('ZREM', KEYS[i], id) end
end
for i = 1, 8 do redis.call('PEXPIRE', KEYS[i], retention) end
return #expired
