-- Store.list_jobs: A = {statuses, job_type, user_id, queue, idempotency_key, search, created_after,
-- created_before, sort, descending, limit, offset}. Candidates come from the narrowest index at hand, in
-- creation order; sorted by creation, the walk stops once the page is complete, otherwise every candidate
-- is read and sorted (ties by sequence number, nulls first ascending, as SQL does).
local wanted = {}
for _, s in ipairs(A.statuses) do wanted[s] = true end
local source
if A.idempotency_key ~= NULL and A.user_id ~= NULL then
    source = false
elseif #A.statuses == 1 then
    source = P .. ':status:' .. A.statuses[1]
elseif A.user_id ~= NULL then
    source = P .. ':user:' .. A.user_id
else
    source = P .. ':created'
end
local lo = A.created_after ~= NULL and A.created_after or '-inf'
local hi = A.created_before ~= NULL and '(' .. A.created_before or '+inf'
local by_created = A.sort == 'created_at'
local need = A.offset + A.limit
local search = A.search ~= NULL and A.search or nil
local sort_field = A.sort == 'priority' and 'priority' or A.sort
local matches, last_created = {}, nil

local function consider(id)
    local f = redis.call('HMGET', jkey(id), 'status', 'job_type', 'user_id', 'queue', 'idempotency_key', 'seq',
                         'created_at', sort_field, 'aged')
    if not f[1] then return end
    if #A.statuses > 0 and not wanted[f[1]] then return end
    if A.job_type ~= NULL and f[2] ~= A.job_type then return end
    if A.user_id ~= NULL and f[3] ~= A.user_id then return end
    if A.queue ~= NULL and f[4] ~= A.queue then return end
    if A.idempotency_key ~= NULL and f[5] ~= A.idempotency_key then return end
    local created = tonumber(f[7])
    if A.created_after ~= NULL and created < tonumber(A.created_after) then return end
    if A.created_before ~= NULL and created >= tonumber(A.created_before) then return end
    if search and id:sub(1, #search) ~= search:lower() and not string.find(f[3], search, 1, true) then return end
    local key = f[8]
    if key and sort_field ~= 'status' then key = tonumber(key) end
    if key and sort_field == 'priority' then key = key + tonumber(f[9]) end
    matches[#matches + 1] = {id, key, tonumber(f[6])}
    last_created = created
end

if source == false then -- keys are per user: without one, every job is a candidate
    local id = redis.call('HGET', P .. ':idem', idem_field(A.user_id, A.idempotency_key))
    if id then consider(id) end
else
    local pos, CHUNK = 0, 500
    local done = false
    while not done do
        local got
        if A.descending then
            got = redis.call('ZREVRANGEBYSCORE', source, hi, lo, 'WITHSCORES', 'LIMIT', pos, CHUNK)
        else
            got = redis.call('ZRANGEBYSCORE', source, lo, hi, 'WITHSCORES', 'LIMIT', pos, CHUNK)
        end
        for i = 1, #got, 2 do
            if by_created and #matches >= need and tonumber(got[i + 1]) ~= last_created then
                done = true
                break
            end
            consider(got[i])
        end
        if #got < 2 * CHUNK then done = true end
        pos = pos + CHUNK
    end
end

local function before(a, b) -- ascending by (key, seq), a missing key first
    if a[2] ~= b[2] then
        if not a[2] then return true end
        if not b[2] then return false end
        return a[2] < b[2]
    end
    return a[3] < b[3]
end
if A.descending then
    table.sort(matches, function(a, b) return before(b, a) end)
else
    table.sort(matches, before)
end
local out = {}
for i = A.offset + 1, math.min(#matches, need) do out[#out + 1] = payload(matches[i][1]) end
return out
