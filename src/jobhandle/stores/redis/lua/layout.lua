-- At open: the store's layout version (P:layout), upgrading a store of an earlier layout first, in this one
-- script (atomic: a store is upgraded once however many processes open it at once). A = {layout} (this
-- release's). Returns the version found (higher than A.layout: written by a newer release, left alone).
--
-- Layout 1 (0.1.0, no P:layout key): idempotency keys were global, the users waiting at a level were scored 0
-- and had no P:uready set. Layout 2: keys per user, users scored by turn, P:uready, P:served. Layout 3: the
-- search indexes P:ids and P:usernames.
local found = tonumber(redis.call('GET', P .. ':layout') or '0')
if found == 0 and redis.call('EXISTS', P .. ':seq') == 1 then
    found = 1
end
if found == 1 then
    local old = redis.call('HGETALL', P .. ':idem')
    redis.call('DEL', P .. ':idem')
    for i = 1, #old, 2 do
        local user = redis.call('HGET', jkey(old[i + 1]), 'user_id')
        if user then redis.call('HSET', P .. ':idem', idem_field(user, old[i]), old[i + 1]) end
    end
    local queues = {}
    for _, field in ipairs(redis.call('HKEYS', P .. ':count:queue')) do
        local cut = field:find('%z[^%z]*$')
        if cut then queues[field:sub(1, cut - 1)] = true end
    end
    for queue in pairs(queues) do
        for _, lvl in ipairs(redis.call('ZRANGE', P .. ':levels:' .. queue, 0, -1)) do
            local uk = users_key(queue, lvl)
            for _, user in ipairs(redis.call('ZRANGE', uk, 0, -1)) do
                redis.call('ZADD', uk, redis.call('HGET', P .. ':turns', user) or 0, user)
                redis.call('SADD', P .. ':uready:' .. user, uk)
            end
        end
    end
    found = 2
end
if found == 2 then -- the search indexes, from every job's id and user (once: O(jobs), in steps of 10,000)
    local start = 0
    while true do
        local ids = redis.call('ZRANGE', P .. ':created', start, start + 9999)
        for _, id in ipairs(ids) do
            redis.call('ZADD', P .. ':ids', 0, id)
            local user = redis.call('HGET', jkey(id), 'user_id')
            if user then redis.call('ZADD', P .. ':usernames', 0, user) end
        end
        if #ids < 10000 then break end
        start = start + 10000
    end
    found = 3
end
if found == 0 then found = A.layout end
if found <= A.layout then redis.call('SET', P .. ':layout', A.layout) end
return found
