-- Store.hold_lease / release_lease: A = {name, holder, ms (0: release)}. P:lease:<name> holds the holder's
-- name and expires by itself (the server's clock). Returns 1 when `holder` holds the lease now, else 0.
local key = P .. ':lease:' .. A.name
local current = redis.call('GET', key)
if A.ms == 0 then
    if current == A.holder then redis.call('DEL', key) end
    return 0
end
if current and current ~= A.holder then return 0 end
redis.call('SET', key, A.holder, 'PX', A.ms)
return 1
