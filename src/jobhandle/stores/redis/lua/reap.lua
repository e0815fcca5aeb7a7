-- Store.reap_workers: A = {silent_since}. Deletes the registrations of workers not seen since then.
local ids = redis.call('ZRANGEBYSCORE', P .. ':workers', '-inf', '(' .. A.silent_since)
for _, w in ipairs(ids) do
    redis.call('DEL', P .. ':worker:' .. w)
    redis.call('ZREM', P .. ':workers', w)
end
return ids
