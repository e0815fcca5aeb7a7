-- Store.take_token: A = {key, per_second, burst, now}. Returns the seconds to wait (as text), "0" when taken.
-- A bucket expires when it is full again (a new bucket starts full): buckets of keys no longer used go away.
local key = P .. ':bucket:' .. A.key
local now = tonumber(A.now)
local stored = redis.call('HMGET', key, 'tokens', 'updated_at')
local tokens, updated = tonumber(A.burst), now
if stored[1] then tokens, updated = tonumber(stored[1]), tonumber(stored[2]) end
tokens = math.min(A.burst, tokens + math.max(0, now - updated) * A.per_second)
local wait = 0
if tokens >= 1 then tokens = tokens - 1 else wait = (1 - tokens) / A.per_second end
local at = math.max(now, updated)
redis.call('HSET', key, 'tokens', tokens, 'updated_at', at)
redis.call('PEXPIRE', key, math.ceil((at - now + (A.burst - tokens) / A.per_second) * 1000) + 1)
return string.format('%.17g', wait)
