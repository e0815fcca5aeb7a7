-- Part of Store.cleanup: the round robin forgets users with nothing waiting that were last served before
-- A.before (P:served: user -> when last served). A user still waiting keeps its turn and is looked at again
-- later. A = {before, batch}. Returns how many users it looked at.
local users = redis.call('ZRANGEBYSCORE', P .. ':served', '-inf', '(' .. A.before, 'LIMIT', 0, A.batch)
for _, user in ipairs(users) do
    if redis.call('EXISTS', P .. ':uready:' .. user) == 1 then
        redis.call('ZADD', P .. ':served', A.now, user)
    else
        redis.call('HDEL', P .. ':turns', user)
        redis.call('ZREM', P .. ':served', user)
    end
end
return #users
