-- update_indexes.lua: cross-session index entries of the sessions of one or more index shards
-- (one shard per call on Redis Cluster, where each shard is its own slot).
--
-- KEYS, per shard block, in order:
--   P:{ix:N}:seen      zset  session -> last write (ms); prunes expired sessions
--   P:{ix:N}:start|end|duration|spans|traces|tokens|cost   sort zsets
--   then per session of the block, the keys its mask names, in this order:
--   P:{ix:N}:user:U (mask 1), P:{ix:N}:thread:T (mask 2)
-- ARGV[1]  now (ms)     ARGV[2]  retention (ms)     ARGV[3]  thread idle (ms)
-- ARGV[4]  extra TTL (ms) given to user and thread indexes, which callers may refresh
--          less often than every write
-- ARGV[5..] per shard block: the number of sessions k, then k x 10 values:
--          session id, mask, last write ms, start µs, end µs, duration µs, spans, traces,
--          tokens, cost (scores as decimal strings, used as they are)
--
-- Scores only move one way (ZADD LT for start, GT for the rest), so two receivers updating
-- the same session in any order converge on the newest figures. Every index key gets a TTL;
-- sessions whose last write is older than the retention are removed (at most 200 per shard
-- and call). Returns the number of expired sessions removed.

local now, retention, thread_idle, slack = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4])
local FLAGS = {'GT', 'LT', 'GT', 'GT', 'GT', 'GT', 'GT', 'GT'}
local removed = 0
local k = 1  -- next key
local a = 5  -- next argument

local function zadd(key, flag, pairs_)
  for i = 1, #pairs_, 1000 do
    redis.call('ZADD', key, flag, unpack(pairs_, i, math.min(i + 999, #pairs_)))
  end
end

while a <= #ARGV do
  local count = tonumber(ARGV[a])
  a = a + 1
  local base = k
  k = k + 8
  local z = {{}, {}, {}, {}, {}, {}, {}, {}}
  for _ = 1, count do
    local id, mask, seen, st = ARGV[a], tonumber(ARGV[a + 1]), ARGV[a + 2], ARGV[a + 3]
    for i = 1, 8 do
      local t = z[i]
      t[#t + 1] = ARGV[a + 1 + i]
      t[#t + 1] = id
    end
    if mask % 2 == 1 then
      redis.call('ZADD', KEYS[k], 'GT', seen, id)
      redis.call('PEXPIRE', KEYS[k], retention + slack)
      k = k + 1
    end
    if math.floor(mask / 2) % 2 == 1 then
      redis.call('ZADD', KEYS[k], 'LT', st, id)
      redis.call('PEXPIRE', KEYS[k], thread_idle + slack)
      k = k + 1
    end
    a = a + 10
  end
  if count > 0 then
    for i = 1, 8 do zadd(KEYS[base + i - 1], FLAGS[i], z[i]) end
  end
  local expired = redis.call('ZRANGEBYSCORE', KEYS[base], '-inf', '(' .. string.format('%d', now - retention),
                             'LIMIT', 0, 200)
  if #expired > 0 then
    for i = 0, 7 do redis.call('ZREM', KEYS[base + i], unpack(expired)) end
    removed = removed + #expired
  end
  for i = 0, 7 do redis.call('PEXPIRE', KEYS[base + i], retention) end
end
return removed
