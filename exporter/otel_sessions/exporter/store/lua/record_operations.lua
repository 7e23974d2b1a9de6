-- record_operations.lua: service and operation names of one service shard, for the Jaeger API.
--
-- KEYS[1]     P:{jo:N}:services        zset  service -> last seen (ms)
-- KEYS[2..]   P:{jo:N}:ops:SERVICE     zset  "kind NUL operation" -> last seen (ms), one per service
-- ARGV[1]  now (ms)    ARGV[2]  TTL (ms)    ARGV[3]  most members kept per key
-- then for each KEYS[i], i >= 2: the service name, the number of members, the members.
--
-- Every key gets the TTL in the same script call (no key without a TTL, ever); members not
-- seen within the TTL are removed, and each key keeps at most ARGV[3] members (newest win).
-- Returns the number of services written.

local now, ttl, most = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local cutoff = now - ttl

local function trim(key)
  redis.call('ZREMRANGEBYSCORE', key, '-inf', '(' .. cutoff)
  local extra = redis.call('ZCARD', key) - most
  if extra > 0 then
    redis.call('ZREMRANGEBYRANK', key, 0, extra - 1)
  end
  redis.call('PEXPIRE', key, ttl)
end

local a = 4
for i = 2, #KEYS do
  local service, count = ARGV[a], tonumber(ARGV[a + 1])
  redis.call('ZADD', KEYS[1], now, service)
  for j = 1, count do
    redis.call('ZADD', KEYS[i], now, ARGV[a + 1 + j])
  end
  trim(KEYS[i])
  a = a + 2 + count
end
trim(KEYS[1])
return #KEYS - 1
