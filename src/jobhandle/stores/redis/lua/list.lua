-- Store.list_jobs: A = {statuses, job_type, user_id, queue, idempotency_key, search, created_after,
-- created_before, sort, descending, limit, offset, after_created, after_id, search_end, search_id_end,
-- search_limit, scan_limit, error_contains (lower case), params (name -> JSON value)}. A search reads at most search_limit candidates of each of its two indexes;
-- a sort by another field than created_at or an offset past scan_limit is refused (returns {'too many', n}). Candidates come from the narrowest index at hand, in
-- creation order; sorted by creation, the walk stops once the page is complete, otherwise every candidate
-- is read and sorted (ties by job id, nulls first ascending, as SQL does).
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
-- A keyset position (sorts by created_at only): start the walk at its creation time, skipping the jobs of that
-- same time up to and including its job id.
local after_created = A.after_created ~= NULL and tonumber(A.after_created) or nil
local after_id = A.after_id ~= NULL and A.after_id or nil
if after_created then
    if A.descending then
        if A.created_before == NULL or after_created < tonumber(A.created_before) then hi = A.after_created end
    elseif A.created_after == NULL or after_created > tonumber(A.created_after) then
        lo = A.after_created
    end
end
local by_created = A.sort == 'created_at'
local need = A.offset + A.limit
local search = A.search ~= NULL and A.search or nil
local sort_field = A.sort == 'priority' and 'priority' or A.sort
local matches = {}

local function consider(id)
    local f = redis.call('HMGET', jkey(id), 'status', 'job_type', 'user_id', 'queue', 'idempotency_key',
                         'created_at', sort_field, 'aged')
    if not f[1] then return end
    if #A.statuses > 0 and not wanted[f[1]] then return end
    if A.job_type ~= NULL and f[2] ~= A.job_type then return end
    if A.user_id ~= NULL and f[3] ~= A.user_id then return end
    if A.queue ~= NULL and f[4] ~= A.queue then return end
    if A.idempotency_key ~= NULL and f[5] ~= A.idempotency_key then return end
    local created = tonumber(f[6])
    if A.created_after ~= NULL and created < tonumber(A.created_after) then return end
    if A.created_before ~= NULL and created >= tonumber(A.created_before) then return end
    if search and id:sub(1, #search) ~= search:lower() and f[3]:sub(1, #search) ~= search then return end
    if A.error_contains ~= NULL or A.params ~= NULL then -- filters no index serves: read only now
        local more = redis.call('HMGET', jkey(id), 'error', 'parameters')
        if A.error_contains ~= NULL and not string.find(string.lower(more[1] or ''), A.error_contains, 1, true) then
            return
        end
        if A.params ~= NULL then
            local given = cjson.decode(more[2] or '{}')
            for name, value in pairs(A.params) do
                if type(given) ~= 'table' or given[name] == nil or given[name] ~= value then return end
            end
        end
    end
    if after_created then
        if A.descending then
            if created > after_created or (created == after_created and id >= after_id) then return end
        elseif created < after_created or (created == after_created and id <= after_id) then
            return
        end
    end
    local key = f[7]
    if key and sort_field ~= 'status' then key = tonumber(key) end
    if key and sort_field == 'priority' then key = key + tonumber(f[8]) end
    matches[#matches + 1] = {id, key}
end

if source == false then -- keys are per user: without one, every job is a candidate
    local id = redis.call('HGET', P .. ':idem', idem_field(A.user_id, A.idempotency_key))
    if id then consider(id) end
elseif search then -- the start of a job id or of a user id: two lexical indexes, a bounded number of candidates
    local lo_id, hi_id = '[' .. search:lower(), '(' .. A.search_id_end
    for _, id in ipairs(redis.call('ZRANGEBYLEX', P .. ':ids', lo_id, hi_id, 'LIMIT', 0, A.search_limit)) do
        consider(id)
    end
    local users = redis.call('ZRANGEBYLEX', P .. ':usernames', '[' .. search, '(' .. A.search_end, 'LIMIT', 0,
                             A.search_limit)
    local budget = tonumber(A.search_limit)
    for _, user in ipairs(users) do
        local ids
        if A.descending then
            ids = redis.call('ZREVRANGEBYSCORE', P .. ':user:' .. user, hi, lo, 'LIMIT', 0, budget)
        else
            ids = redis.call('ZRANGEBYSCORE', P .. ':user:' .. user, lo, hi, 'LIMIT', 0, budget)
        end
        for _, id in ipairs(ids) do consider(id) end
        budget = budget - #ids
        if budget <= 0 then break end
    end
    local unique, seen = {}, {}
    for _, m in ipairs(matches) do
        if not seen[m[1]] then seen[m[1]] = true; unique[#unique + 1] = m end
    end
    matches = unique
else
    -- Sorted by another field, every candidate is read: refused past a bound (it would hold Redis for every
    -- client while it runs), and so is an offset walk that deep. The caller says so (store.py).
    local candidates = redis.call('ZCOUNT', source, lo, hi)
    if (not by_created and candidates > tonumber(A.scan_limit)) or A.offset > tonumber(A.scan_limit) then
        return {'too many', candidates}
    end
    -- The walk goes on from the last score read (skipping the members of that score already read), so each
    -- chunk costs a seek however deep the walk is; once it has passed over scan_limit candidates that do not
    -- match, the list is refused like the sorts above (a filter no index serves, matching few of many jobs).
    local limit = tonumber(A.scan_limit)
    local CHUNK, read = math.min(500, limit), 0
    local from, ties = nil, 0 -- the last score read, and how many members of that score were read
    -- A keyset position whose job is in the index: the walk starts right after it, by its rank among the
    -- jobs of its creation time (ties come in job id order, as the position's rule has it), instead of reading
    -- each of them (a bulk submit gives thousands of jobs one time).
    if after_created and (A.descending and hi == A.after_created or not A.descending and lo == A.after_created) then
        local score = redis.call('ZSCORE', source, after_id)
        if score and tonumber(score) == after_created then
            if A.descending then
                ties = redis.call('ZREVRANK', source, after_id) - redis.call('ZCOUNT', source, '(' .. score, '+inf')
                    + 1
            else
                ties = redis.call('ZRANK', source, after_id) - redis.call('ZCOUNT', source, '-inf', '(' .. score) + 1
            end
            from = score
        end
    end
    local done = false
    while not done do
        local got
        if A.descending then
            got = redis.call('ZREVRANGEBYSCORE', source, from or hi, lo, 'WITHSCORES', 'LIMIT', ties, CHUNK)
        else
            got = redis.call('ZRANGEBYSCORE', source, from or lo, hi, 'WITHSCORES', 'LIMIT', ties, CHUNK)
        end
        for i = 1, #got, 2 do
            if by_created and #matches >= need then -- ties come in job id order: the page's own order
                done = true
                break
            end
            consider(got[i])
            if got[i + 1] == from then ties = ties + 1 else from, ties = got[i + 1], 1 end
        end
        read = read + #got / 2
        if #got < 2 * CHUNK then done = true end
        if not done and read - #matches >= limit then return {'too many', read} end
    end
end

local function before(a, b) -- ascending by (key, job id), a missing key first
    if a[2] ~= b[2] then
        if not a[2] then return true end
        if not b[2] then return false end
        return a[2] < b[2]
    end
    return a[1] < b[1]
end
if A.descending then
    table.sort(matches, function(a, b) return before(b, a) end)
else
    table.sort(matches, before)
end
local out = {}
for i = A.offset + 1, math.min(#matches, need) do out[#out + 1] = payload(matches[i][1]) end
return out
