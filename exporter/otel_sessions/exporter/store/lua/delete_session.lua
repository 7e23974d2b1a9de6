-- delete_session.lua: remove one session's own keys at once.
--
-- KEYS[1..4]  P:{S}:sum, P:{S}:chunks, P:{S}:ids, P:{S}:agg; and the 64 digest buckets
--             P:{S}:ids:0..63 of a large session, named here from KEYS[3] (same hash tag)
-- Returns the summary fields needed to clean the indexes: {user, thread, name}, or {} when
-- the session did not exist.

local s = redis.call('HMGET', KEYS[1], 'id', 'user', 'thread', 'name', 'idb')
redis.call('DEL', KEYS[1], KEYS[2], KEYS[3], KEYS[4])
if s[5] == '1' then
  for b = 0, 63 do redis.call('DEL', KEYS[3] .. ':' .. b) end
end
if not s[1] then return {} end
return {s[2] or '', s[3] or '', s[4] or ''}
