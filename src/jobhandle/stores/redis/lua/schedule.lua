-- Every change of a schedule (create, fire, pause, resume, delete), as a compare-and-set: store.py read the
-- schedule and computed the change (cron arithmetic is Python's); it applies only if the schedule is still as
-- read. A = {schedule_id, now, expect = {absent = true} | {paused, generation, next_fire_at},
--            set = fields | null, delete, cancel = {user_id, key, reason} | null, job = spec | null}.
-- Returns {'ok', insert's answer for the job or false} | {'changed'} | {'missing'} | {'exists'}.
local skey = P .. ':schedule:' .. A.schedule_id
local cur = redis.call('HMGET', skey, 'paused', 'generation', 'next_fire_at')
if A.expect.absent then
    if cur[1] then return {'exists'} end
else
    if not cur[1] then return {'missing'} end
    local e = A.expect
    if cur[1] ~= e.paused or cur[2] ~= e.generation or (cur[3] or '') ~= e.next_fire_at then return {'changed'} end
end
if A.cancel ~= NULL then -- the job of a fire that has not come yet
    local id = redis.call('HGET', P .. ':idem', idem_field(A.cancel.user_id, A.cancel.key))
    local j = id and state(id)
    if j and j.status == 'scheduled' then
        move(j, 'cancelled', {completed_at = later_of(A.now, j.created_at), error = A.cancel.reason})
    end
end
local answer = false
if A.job ~= NULL then
    local decided, err = insert({A.job}, A.now)
    if err then error('schedule job refused: ' .. err[1]) end
    answer = decided[1]
end
if A.delete then
    redis.call('DEL', skey)
    redis.call('ZREM', P .. ':schedules', A.schedule_id)
    redis.call('ZREM', P .. ':schedules_due', A.schedule_id)
else
    local s = {id = A.schedule_id}
    local hset, hdel = {}, {}
    for name, value in pairs(A.set) do
        if value == NULL then hdel[#hdel + 1] = name else hset[#hset + 1] = name; hset[#hset + 1] = value end
    end
    redis.call('HSET', skey, unpack(hset))
    if #hdel > 0 then redis.call('HDEL', skey, unpack(hdel)) end
    redis.call('ZADD', P .. ':schedules', A.set.created_at, A.schedule_id)
    if A.set.paused == '0' and A.set.next_fire_at ~= NULL then
        redis.call('ZADD', P .. ':schedules_due', A.set.next_fire_at, A.schedule_id)
    else
        redis.call('ZREM', P .. ':schedules_due', A.schedule_id)
    end
end
return {'ok', answer}
