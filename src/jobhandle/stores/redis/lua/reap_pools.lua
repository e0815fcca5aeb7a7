-- Store.reap_pools: A = {silent_since}. Deletes the registrations of worker pools not seen since then.
local ids = redis.call('ZRANGEBYSCORE', P .. ':pools', '-inf', '(' .. A.silent_since)
for _, p in ipairs(ids) do
    redis.call('DEL', P .. ':pool:' .. p)
    redis.call('ZREM', P .. ':pools', p)
end
return ids
