-- Jobs by id (Store.get and every read that returns jobs): A = {ids}. Payloads, false for a missing job.
local out = {}
for i, id in ipairs(A.ids) do
    if redis.call('EXISTS', jkey(id)) == 1 then out[i] = payload(id) else out[i] = false end
end
return out
