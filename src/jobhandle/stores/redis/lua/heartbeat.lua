-- Store.heartbeat: A = {worker_id, fields (the registration), now, lease}. Extends the leases of the worker's
-- running jobs; returns their ids.
local w = A.worker_id
local wkey = P .. ':worker:' .. w
if redis.call('EXISTS', wkey) == 1 then -- as a registration is first written, only these change later
    redis.call('HSET', wkey, 'last_seen', A.now, 'state', A.fields.state, 'concurrency', A.fields.concurrency)
else
    local hset = {}
    for name, value in pairs(A.fields) do hset[#hset + 1] = name; hset[#hset + 1] = value end
    redis.call('HSET', wkey, 'last_seen', A.now, unpack(hset))
end
redis.call('ZADD', P .. ':workers', A.now, w)
local ids = {}
for _, id in ipairs(redis.call('SMEMBERS', P .. ':wjobs:' .. w)) do
    local j = state(id)
    if j and j.status == 'running' and j.worker_id == w then
        redis.call('HSET', jkey(id), 'lease_expires_at', A.lease)
        redis.call('ZADD', P .. ':leases', A.lease, id)
        ids[#ids + 1] = id
    end
end
return ids
