-- update_indexes.lua: cross-session index entries of the sessions of one index shard.
--
-- KEYS[1]     P:{ix:N}:seen      zset  session -> last write (ms); prunes expired sessions
-- KEYS[2..8]  P:{ix:N}:start|end|duration|spans|traces|tokens|cost   sort zsets
-- KEYS[9..]   per session, in order, the keys its mask names:
--             P:{ix:N}:user:U (mask 1), P:{ix:N}:thread:T (mask 2), P:{ix:N}:name:NAME (mask 4)
-- ARGV[1]  now (ms)     ARGV[2]  retention (ms)     ARGV[3]  thread idle (ms)
-- ARGV[4]  extra TTL (ms) given to user, thread and name indexes, which callers may refresh
--          less often than every write
-- ARGV[5]  figures: per session struct '>dddddddB' (last write ms, start µs, end µs, spans,
--          traces, tokens, cost, mask)
-- ARGV[6..] session ids, in the order of the figures
--
-- Scores only move one way (ZADD LT for start, GT for the rest), so two receivers updating
-- the same session in any order converge on the newest figures. Every index key gets a TTL;
-- sessions whose last write is older than the retention are removed (at most 200 per call).
-- Returns the number of expired sessions removed.

local now, retention, thread_idle, slack = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4])
local figures = ARGV[5]
local z = {{}, {}, {}, {}, {}, {}, {}, {}}
local extra = 9
local off = 1
for a = 6, #ARGV do
  local id = ARGV[a]
  local seen, st, en, spans, traces, tokens, cost, mask, nxt = struct.unpack('>dddddddB', figures, off)
  off = nxt
  local scores = {seen, st, en, en - st, spans, traces, tokens, cost}
  for i = 1, 8 do
    local t = z[i]
    t[#t + 1] = scores[i]
    t[#t + 1] = id
  end
  if mask % 2 == 1 then
    redis.call('ZADD', KEYS[extra], 'GT', seen, id)
    redis.call('PEXPIRE', KEYS[extra], retention + slack)
    extra = extra + 1
  end
  if math.floor(mask / 2) % 2 == 1 then
    redis.call('ZADD', KEYS[extra], 'LT', st, id)
    redis.call('PEXPIRE', KEYS[extra], thread_idle + slack)
    extra = extra + 1
  end
  if math.floor(mask / 4) % 2 == 1 then
    redis.call('ZADD', KEYS[extra], 'GT', seen, id)
    redis.call('PEXPIRE', KEYS[extra], retention + slack)
    extra = extra + 1
  end
end
if #z[1] > 0 then
  redis.call('ZADD', KEYS[1], 'GT', unpack(z[1]))
  redis.call('ZADD', KEYS[2], 'LT', unpack(z[2]))
  for i = 3, 8 do redis.call('ZADD', KEYS[i], 'GT', unpack(z[i])) end
end

local expired = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', '(' .. string.format('%d', now - retention),
                           'LIMIT', 0, 200)
if #expired > 0 then
  for i = 1, 8 do redis.call('ZREM', KEYS[i], unpack(expired)) end
end
for i = 1, 8 do redis.call('PEXPIRE', KEYS[i], retention) end
return #expired
