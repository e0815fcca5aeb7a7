-- One batch of Store.cleanup for one terminal status: A = {status, cutoff, batch, skip}. A job finished before
-- the cutoff was created before it, so the candidates are a range of status:<status> (scored by creation);
-- `skip` steps over candidates kept earlier (created before the cutoff, finished after it).
-- Returns {deleted, kept, candidates looked at}.
local cutoff = tonumber(A.cutoff)
local ids = redis.call('ZRANGEBYSCORE', P .. ':status:' .. A.status, '-inf', '(' .. A.cutoff,
                       'LIMIT', A.skip, A.batch)
local deleted, kept = 0, 0
for _, id in ipairs(ids) do
    local j = state(id)
    local completed = tonumber(redis.call('HGET', jkey(id), 'completed_at') or '')
    if j and j.status == A.status and completed and completed < cutoff then
        count(j, j.status, nil)
        redis.call('DEL', jkey(id), P .. ':ph:' .. id, P .. ':eh:' .. id)
        redis.call('ZREM', P .. ':changes', id)
        redis.call('ZREM', P .. ':created', id)
        redis.call('ZREM', P .. ':user:' .. j.user_id, id)
        redis.call('ZREM', P .. ':ids', id)
        if redis.call('EXISTS', P .. ':user:' .. j.user_id) == 0 then
            redis.call('ZREM', P .. ':usernames', j.user_id)
        end
        if j.idempotency_key then
            local field = idem_field(j.user_id, j.idempotency_key)
            if redis.call('HGET', P .. ':idem', field) == id then redis.call('HDEL', P .. ':idem', field) end
        end
        for _, parent in ipairs(redis.call('HKEYS', P .. ':deps:' .. id)) do
            redis.call('SREM', P .. ':dependants:' .. parent, id)
        end
        for _, child in ipairs(redis.call('SMEMBERS', P .. ':dependants:' .. id)) do
            redis.call('HDEL', P .. ':deps:' .. child, id)
        end
        redis.call('DEL', P .. ':deps:' .. id, P .. ':dependants:' .. id)
        deleted = deleted + 1
    else
        kept = kept + 1
    end
end
return {deleted, kept, #ids}
