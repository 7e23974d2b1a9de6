-- delete_session.lua: remove one session's own keys at once.
--
-- KEYS[1..4]  P:{S}:sum, P:{S}:chunks, P:{S}:ids, P:{S}:agg; and the 2^k digest buckets
--             P:{S}:ids:k:b of a large session (k = summary field idb), named here from
--             KEYS[3] as write_session.lua names them (same hash tag, same slot)
-- KEYS[5..6]  P:{S}:logs, P:{S}:logids (optional); and the 2^k log digest buckets
--             P:{S}:logids:k:b (k = summary field lidb), named from KEYS[6] as
--             write_logs.lua names them
-- KEYS[7]     P:{S}:conv, the cached conversation figures (optional)
-- Returns the summary fields needed to clean the indexes: {user, thread}, or {} when the
-- session did not exist.

local s = redis.call('HMGET', KEYS[1], 'id', 'user', 'thread', 'idb', 'lidb')
redis.call('DEL', unpack(KEYS))
local k = tonumber(s[4]) or 0
if k > 0 then
  for b = 0, (2 ^ k) - 1 do redis.call('DEL', KEYS[3] .. ':' .. k .. ':' .. b) end
end
local lk = tonumber(s[5]) or 0
if lk > 0 and KEYS[6] then
  for b = 0, (2 ^ lk) - 1 do redis.call('DEL', KEYS[6] .. ':' .. lk .. ':' .. b) end
end
if not s[1] then return {} end
return {s[2] or '', s[3] or ''}
