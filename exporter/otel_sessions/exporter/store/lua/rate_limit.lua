-- rate_limit.lua: a tenant's token bucket (--tenants quota), shared by every receiver and worker.
--
-- KEYS[1]  P:quota:SIGNAL  hash  t: time of the last take (ms, Redis's clock), v: tokens left then
--                                (negative after a request larger than the bucket: a debt)
-- ARGV[1]  rate (tokens per second, > 0)    ARGV[2]  bucket size (tokens)    ARGV[3]  tokens asked for
--
-- The bucket refills at the rate up to its size. A request is admitted, and its tokens taken,
-- when the bucket holds them all, or when it is full (so a request larger than the bucket
-- passes once and leaves a debt that later requests wait out). Nothing changes when it is not.
-- The key's TTL is the time to refill it: a key that expired was a full bucket.
-- Returns 0 when admitted, else the milliseconds to wait until the request would be (>= 1).

local rate, size, n = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local clock = redis.call('TIME')
local now = tonumber(clock[1]) * 1000 + math.floor(tonumber(clock[2]) / 1000)
local state = redis.call('HMGET', KEYS[1], 't', 'v')
local t, v = tonumber(state[1]), tonumber(state[2])
if t == nil or v == nil then
  t, v = now, size
end
if now > t then
  v = math.min(size, v + (now - t) * rate / 1000)
end
if v >= n or v >= size then
  v = v - n
  redis.call('HSET', KEYS[1], 't', math.max(now, t), 'v', string.format('%.3f', v))
  redis.call('PEXPIRE', KEYS[1], math.ceil((size - v) * 1000 / rate) + 1000)
  return 0
end
return math.max(1, math.ceil((math.min(n, size) - v) * 1000 / rate))
