-- delete_session.lua: remove one session's own keys at once.
--
-- KEYS[1..3]  P:{S}:sum, P:{S}:chunks, P:{S}:ids
-- Returns the summary fields needed to clean the indexes: {user, thread, name}, or {} when
-- the session did not exist.

local s = redis.call('HMGET', KEYS[1], 'id', 'user', 'thread', 'name')
redis.call('DEL', KEYS[1], KEYS[2], KEYS[3])
if not s[1] then return {} end
return {s[2] or '', s[3] or '', s[4] or ''}
