-- Store.age_pending: A = {now, interval, max_boost, limit}. A job aged k levels sits in aging:k scored by when it
-- became due, so the jobs owed a level are one range read per level. Returns how many jobs rose.
local now, interval, max_boost = tonumber(A.now), tonumber(A.interval), A.max_boost
local risen = 0
for k = 0, max_boost - 1 do
    local ids = redis.call('ZRANGEBYSCORE', P .. ':aging:' .. k, '-inf', now - (k + 1) * interval,
                           'LIMIT', 0, A.limit - risen)
    for _, id in ipairs(ids) do
        local j = state(id)
        local since = tonumber(j.run_at or j.created_at)
        local boost = math.min(max_boost, math.floor((now - since) / interval))
        if boost > tonumber(j.aged) then
            move(j, 'pending', {aged = string.format('%d', boost)})
            risen = risen + 1
        end
    end
    if risen >= A.limit then break end
end
return risen
