-- Shared by every call of the Redis store: scripts.py puts this file in front of the calls' own bodies, after
-- filling the {placeholders} (the state machine's status sets, from models.py), into one function library
-- (Redis 7: loaded once, so these definitions are not run again on every call) or, on older servers, into
-- one script per call.
--
-- Each call's first key is the store's key prefix P (for example "{jobhandle}": the braces make every key of a
-- store one Redis Cluster hash slot); its first argument is the call's arguments as JSON (A). Every key's
-- layout is described in keys.py. Values are stored as the strings Python formatted (store.py), so numbers
-- round-trip exactly; Lua reads them with tonumber() only to compare.

local P, A, NULL -- set by begin() at the start of each call

-- The state machine (models.MACHINE), generated: from_<transition>(status) is true when that transition starts
-- from the status; may_move(from, to) when any does; move() refuses every status change it does not allow.
{machine}

local CHANGED = false -- set by every change; notify() publishes once at the end of a write script

local function jkey(id) return P .. ':job:' .. id end

-- The fields of a job that decide which indexes hold it.
local STATE = {'status', 'queue', 'job_type', 'user_id', 'priority', 'aged', 'seq', 'run_at', 'created_at',
               'worker_id', 'attempts', 'idempotency_key', 'started_at'}

-- The job's STATE fields as a table (absent fields are false), or nil when there is no such job.
local function state(id)
    local vals = redis.call('HMGET', jkey(id), unpack(STATE))
    if not vals[1] then return nil end
    local j = {id = id}
    for i, name in ipairs(STATE) do j[name] = vals[i] end
    return j
end

-- A pending job's claim level: its priority plus what it gained by waiting.
local function level(j) return string.format('%d', tonumber(j.priority) + tonumber(j.aged)) end

local function pending_key(j, lvl)
    return P .. ':pending:' .. lvl .. ':' .. #j.queue .. ':' .. j.queue .. ':' .. j.user_id
end

local function users_key(queue, lvl) return P .. ':users:' .. lvl .. ':' .. queue end

-- The field of P:idem that holds a user's idempotency key (keys are per user; the length keeps names apart).
local function idem_field(user, key) return #user .. ':' .. user .. ':' .. key end

-- The later of two times as stored (text; either may be false): created <= started <= completed is kept
-- whatever the callers' clocks say.
local function later_of(a, b)
    if not a or a == NULL then return b end
    if not b or b == NULL then return a end
    if tonumber(a) >= tonumber(b) then return a end
    return b
end

-- The (users key, user) pairs this script made sure of: the user is in that users set, and the level in the
-- queue's levels (enter).
local ENTERED = {}

-- Take a job out of the indexes of its current status.
local function leave(j)
    local s = j.status
    if s == 'pending' then
        local lvl = level(j)
        local pk = pending_key(j, lvl)
        redis.call('ZREM', pk, j.id)
        if redis.call('EXISTS', pk) == 0 then
            local uk = users_key(j.queue, lvl)
            ENTERED[uk .. '\0' .. j.user_id] = nil
            redis.call('ZREM', uk, j.user_id)
            redis.call('SREM', P .. ':uready:' .. j.user_id, uk)
            if redis.call('EXISTS', uk) == 0 then redis.call('ZREM', P .. ':levels:' .. j.queue, lvl) end
        end
        redis.call('ZREM', P .. ':aging:' .. j.aged, j.id)
    elseif s == 'scheduled' or s == 'retrying' then
        redis.call('ZREM', P .. ':due', j.id)
    elseif s == 'running' then
        redis.call('ZREM', P .. ':leases', j.id)
        if j.worker_id then redis.call('SREM', P .. ':wjobs:' .. j.worker_id, j.id) end
    end
end

-- Put a job into the indexes of its (new) status.
local function enter(j, lease)
    local s = j.status
    if s == 'pending' then
        local lvl = level(j)
        redis.call('ZADD', pending_key(j, lvl), j.seq, j.id)
        local uk = users_key(j.queue, lvl)
        local member = uk .. '\0' .. j.user_id
        if not ENTERED[member] then -- once per script: a bulk submit of one user's jobs looks once
            ENTERED[member] = true
            if not redis.call('ZSCORE', uk, j.user_id) then -- scored by the user's turn, kept in step by claim
                redis.call('ZADD', uk, redis.call('HGET', P .. ':turns', j.user_id) or 0, j.user_id)
                redis.call('SADD', P .. ':uready:' .. j.user_id, uk)
            end
            redis.call('ZADD', P .. ':levels:' .. j.queue, lvl, lvl)
        end
        redis.call('ZADD', P .. ':aging:' .. j.aged, j.run_at or j.created_at, j.id)
    elseif s == 'scheduled' or s == 'retrying' then
        redis.call('ZADD', P .. ':due', j.run_at, j.id)
    elseif s == 'running' then
        redis.call('ZADD', P .. ':leases', lease, j.id)
        redis.call('SADD', P .. ':wjobs:' .. j.worker_id, j.id)
    end
end

-- Users come and go: a user's counters (P:ucount:<user>) go once all are back at zero, which happens when its
-- last jobs are deleted (cleanup); checked only then (by flush_counts), so status changes cost nothing more.
local function forget_idle_user(user)
    local key = P .. ':ucount:' .. user
    for _, n in ipairs(redis.call('HVALS', key)) do
        if n ~= '0' then return end
    end
    redis.call('DEL', key)
end

-- Analytics rollups (analytics.py): what a script adds, written once at its end (write_rollups, called by
-- the write scripts' wrapper) into the slot of each tier: P:roll:<step>:<slot start> hashes, field
-- "<job type>\0<metric>\0<key>", each expiring when its tier no longer keeps it.
local TALLY, TALLIED = {}, false
local TIERS = {{60, 3 * 3600}, {900, 2 * 86400}, {7200, 9 * 86400}} -- analytics.TIERS: {step, keep}

local function tally(job_type, metric, key, n)
    local field = job_type .. '\0' .. metric .. '\0' .. key
    TALLY[field] = (TALLY[field] or 0) + n
    TALLIED = true
end

-- analytics.bucket_of: 0 under 1 ms, then eight buckets per doubling (frexp is exact, as in Python).
local function bucket_of(seconds)
    local ms = seconds * 1000.0
    if not (ms >= 1.0) then return 0 end
    local m, e = math.frexp(ms)
    return math.min(320, (e - 1) * 8 + math.floor((m - 0.5) * 16) + 1)
end

local function write_rollups()
    if not TALLIED then return end
    local now = tonumber(A.now)
    for _, tier in ipairs(TIERS) do
        local step, keep = tier[1], tier[2]
        local slot = math.floor(now / step) * step
        local key = P .. ':roll:' .. step .. ':' .. string.format('%d', slot)
        for field, n in pairs(TALLY) do redis.call('HINCRBY', key, field, n) end
        redis.call('EXPIREAT', key, string.format('%d', slot + keep + step))
    end
end

-- The status counters' changes, summed over the script and written once at its end (flush_counts, which the
-- write scripts' wrapper calls even when the script fails part-way): a batch of 50 jobs that each went from
-- pending to running writes 8 fields, not 400, and a finish + claim in one script writes the running count's
-- -1 and +1 as nothing. counter() reads a counter as it will be once written.
local DELTA, FORGET = {}, {} -- key -> {field -> n}; users whose jobs were deleted (their counters may be 0)

local function bump(key, field, n)
    local d = DELTA[key]
    if not d then
        d = {}
        DELTA[key] = d
    end
    d[field] = (d[field] or 0) + n
end

local function counter(key, field)
    local d = DELTA[key]
    return tonumber(redis.call('HGET', key, field) or '0') + (d and d[field] or 0)
end

local function flush_counts()
    for key, fields in pairs(DELTA) do
        for field, n in pairs(fields) do
            if n ~= 0 then redis.call('HINCRBY', key, field, n) end
        end
    end
    for user in pairs(FORGET) do forget_idle_user(user) end
end

-- Keep the counters and the per-status listings exact: a job leaves status `old` and enters `new` (either
-- may be nil: a new job, a deleted one). Jobs that ended, or failed an attempt to retry, are tallied.
local function count(j, old, new)
    local function add(s, n)
        bump(P .. ':count:status', s, n)
        bump(P .. ':count:queue', j.queue .. '\0' .. s, n)
        bump(P .. ':count:type', j.job_type .. '\0' .. s, n)
        bump(P .. ':ucount:' .. j.user_id, s, n)
    end
    if old then
        add(old, -1)
        redis.call('ZREM', P .. ':status:' .. old, j.id)
        if not new then FORGET[j.user_id] = true end
    end
    if new then
        add(new, 1)
        redis.call('ZADD', P .. ':status:' .. new, j.created_at, j.id)
        if new == 'completed' or new == 'failed' or new == 'cancelled' then
            tally(j.job_type, new, '', 1)
        elseif old == 'running' and new == 'retrying' then
            tally(j.job_type, 'retried', '', 1)
        end
    end
end

-- A new change of job `id`: its next sequence number, in the change feed (the caller writes it into the job,
-- with the change's other fields: one HSET).
local function new_seq(id)
    local seq = redis.call('INCR', P .. ':seq')
    redis.call('ZADD', P .. ':changes', seq, id)
    CHANGED = seq
    return seq
end

-- A change of job `id` that writes nothing else into it (a progress report): its new sequence number.
local function touch(id)
    local seq = new_seq(id)
    redis.call('HSET', jkey(id), 'seq', seq)
    return seq
end

-- Write `set` (field -> value, or NULL to remove the field) into job j's hash and into j.
local function write(j, set)
    local hset, hdel = {}, {}
    for name, value in pairs(set) do
        if value == NULL then
            hdel[#hdel + 1] = name
            j[name] = false
        else
            hset[#hset + 1] = name
            hset[#hset + 1] = value
            j[name] = value
        end
    end
    if #hset > 0 then redis.call('HSET', jkey(j.id), unpack(hset)) end
    if #hdel > 0 then redis.call('HDEL', jkey(j.id), unpack(hdel)) end
end

-- The one way a job changes status (or, for aging, its claim level): leave the old status's indexes, write
-- the fields with the new status and sequence number (one HSET), count, enter the new status's indexes.
local function move(j, new, set)
    if j.status ~= new and not may_move(j.status, new) then
        error('a job moved from ' .. j.status .. ' to ' .. new .. ': no transition of the state machine does that')
    end
    leave(j)
    local old = j.status
    set = set or {}
    set.status, set.seq = new, new_seq(j.id)
    write(j, set)
    if old ~= new then count(j, old, new) end
    enter(j, set.lease_expires_at)
    return j.seq
end

local function append_capped(key, entry, limit)
    redis.call('RPUSH', key, entry)
    redis.call('LTRIM', key, -limit, -1)
end

-- Everything stored about a job, for store.py to turn into a Job: {hash fields flat, progress history, error
-- history}.
local function payload(id)
    return {redis.call('HGETALL', jkey(id)), redis.call('LRANGE', P .. ':ph:' .. id, 0, -1),
            redis.call('LRANGE', P .. ':eh:' .. id, 0, -1)}
end

local function notify()
    if CHANGED then redis.call('PUBLISH', P .. ':events', CHANGED) end
end

-- Dependencies ------------------------------------------------------------------------------------------

-- Whether a dependency on a parent in status `status` is met (true), can no longer be met (false), or is
-- undecided (nil). Mirrors models.dependency_met.
local function met(condition, status)
    if not is_terminal(status) then return nil end
    if condition == 'completion' then return true end
    if condition == 'success' then return status == 'completed' end
    return status == 'failed'
end

local function unmet_message(parent, status, condition)
    local ended = status and ('ended ' .. status) or 'no longer exists'
    return 'dependency ' .. parent .. ' ' .. ended .. '; this job needed its ' .. condition
end

-- Jobs just finished: release their waiting dependants whose parents are all met, cancel those one of whose
-- parents can no longer be met, and so on down the chain (a cancelled dependant is a parent too).
local function resolve(parents, now)
    local todo = {}
    for _, p in ipairs(parents) do todo[#todo + 1] = p end
    while #todo > 0 do
        local parent = table.remove(todo)
        for _, child in ipairs(redis.call('SMEMBERS', P .. ':dependants:' .. parent)) do
            local c = state(child)
            if c and from_resolve(c.status) then
                local unmet, undecided = nil, false
                local deps = redis.call('HGETALL', P .. ':deps:' .. child)
                for i = 1, #deps, 2 do
                    local pstatus = redis.call('HGET', jkey(deps[i]), 'status')
                    local m = false
                    if pstatus then m = met(deps[i + 1], pstatus) end
                    if m == false then
                        unmet = unmet_message(deps[i], pstatus, deps[i + 1])
                        break
                    end
                    if m == nil then undecided = true end
                end
                if unmet then
                    move(c, 'cancelled', {completed_at = later_of(now, c.created_at), error = unmet,
                                          error_type = 'DependencyFailedError'})
                    todo[#todo + 1] = child
                elseif not undecided then
                    local due = c.run_at and tonumber(c.run_at) > tonumber(now)
                    move(c, due and 'scheduled' or 'pending')
                end
            end
        end
    end
end

-- Submitting --------------------------------------------------------------------------------------------

-- Insert new jobs, all or none (see Store.submit). Each spec: {job_id, fields (name -> string), run_at,
-- idempotency_key, depends_on = {{job_id, condition}...}}. Decides everything before writing anything, so a
-- refusal leaves the store as it was. Returns ({kind, ...} per spec, nil) or (nil, error reply):
--   {'new', status, seq, error or ''}  |  {'existing', job_id}  |  {'same', index of the earlier spec}
local function insert(specs, now)
    local decided, by_key, in_batch, named = {}, {}, {}, {}
    for i, spec in ipairs(specs) do
        local key = spec.idempotency_key
        if key ~= NULL then key = idem_field(spec.fields.user_id, key) end
        local d
        local existing = key ~= NULL and not by_key[key] and redis.call('HGET', P .. ':idem', key)
        if key ~= NULL and by_key[key] then
            d = {'same', by_key[key]}
        elseif existing then
            d = {'existing', existing}
        else
            if in_batch[spec.job_id] or redis.call('EXISTS', jkey(spec.job_id)) == 1 then
                return nil, {'duplicate_id', spec.job_id}
            end
            if key ~= NULL then by_key[key] = i end
            local status = 'pending'
            if spec.run_at ~= NULL and tonumber(spec.run_at) > tonumber(now) then status = 'scheduled' end
            local err = ''
            local undecided = false
            for _, dep in ipairs(spec.depends_on) do
                local pstatus = in_batch[dep.job_id] or redis.call('HGET', jkey(dep.job_id), 'status')
                if not pstatus then
                    return nil, {'unknown_parent', dep.job_id}
                end
                local m = met(dep.condition, pstatus)
                if m == false then
                    status, err = 'cancelled', unmet_message(dep.job_id, pstatus, dep.condition)
                    break
                end
                if m == nil then undecided = true end
            end
            if status ~= 'cancelled' and undecided then status = 'waiting' end
            in_batch[spec.job_id] = status
            d = {'new', status, 0, err}
        end
        decided[i] = d
    end
    for i, spec in ipairs(specs) do
        local d = decided[i]
        if d[1] == 'new' then
            local id, status = spec.job_id, d[2]
            local set = spec.fields
            set.status, set.created_at, set.aged, set.attempts, set.progress = status, now, '0', '0', '0'
            if status == 'cancelled' then
                set.completed_at, set.error, set.error_type = now, d[4], 'DependencyFailedError'
            end
            set.seq = new_seq(id)
            local j = {id = id}
            write(j, set)
            d[3] = j.seq
            count(j, nil, status)
            enter(j)
            redis.call('ZADD', P .. ':created', now, id)
            redis.call('ZADD', P .. ':user:' .. j.user_id, now, id)
            redis.call('ZADD', P .. ':ids', 0, id)
            if not named[j.user_id] then -- once per user and script
                named[j.user_id] = true
                redis.call('ZADD', P .. ':usernames', 0, j.user_id)
            end
            if spec.idempotency_key ~= NULL then
                redis.call('HSET', P .. ':idem', idem_field(j.user_id, spec.idempotency_key), id)
            end
            for _, dep in ipairs(spec.depends_on) do -- both ways, whatever the new job's status
                redis.call('HSET', P .. ':deps:' .. id, dep.job_id, dep.condition)
                redis.call('SADD', P .. ':dependants:' .. dep.job_id, id)
            end
        end
    end
    return decided, nil
end

-- Claiming ----------------------------------------------------------------------------------------------

-- Due scheduled and retrying jobs become pending.
local function promote_due(now)
    for _, id in ipairs(redis.call('ZRANGEBYSCORE', P .. ':due', '-inf', now, 'LIMIT', 0, 1000)) do
        local j = state(id)
        if j then move(j, 'pending') end
    end
end

-- The highest pending level of `queues` below `below` (nil: none).
local function next_level(queues, below)
    local best = nil
    for _, q in ipairs(queues) do
        local max = below == '+inf' and below or '(' .. below
        local top = redis.call('ZREVRANGEBYSCORE', P .. ':levels:' .. q, max, '-inf', 'LIMIT', 0, 1)[1]
        if top and (best == nil or tonumber(top) > best) then best = tonumber(top) end
    end
    return best
end

-- `user`'s next `n` pending jobs at `lvl` after seq `after`, in order: {{id, seq}...}.
local function next_of_user(queues, lvl, user, after, n)
    local found = {}
    for _, q in ipairs(queues) do
        local key = pending_key({queue = q, user_id = user}, lvl)
        local got = redis.call('ZRANGEBYSCORE', key, '(' .. after, '+inf', 'WITHSCORES', 'LIMIT', 0, n)
        for i = 1, #got, 2 do found[#found + 1] = {got[i], tonumber(got[i + 1])} end
    end
    if #queues > 1 then table.sort(found, function(a, b) return a[2] < b[2] end) end
    while #found > n do table.remove(found) end
    return found
end

local function running_of(user)
    return counter(P .. ':ucount:' .. user, 'running')
end

-- Byte order, as Redis orders members of equal score (Lua's own string comparison follows the locale).
local function bytes_before(a, b)
    for k = 1, math.min(#a, #b) do
        local x, y = a:byte(k), b:byte(k)
        if x ~= y then return x < y end
    end
    return #a < #b
end

-- The first `need` users waiting at level `slvl` in any of `queues` for whom eligible(user) holds, in turn
-- order: least recently served first, then by name. P:users:<level>:<queue> is scored by turn, so each
-- queue's order is a range read from where the last read stopped; the queues' orders merge (a user's turn is
-- the same in all of them). Reads the users it returns and the ones it skips (at their limit: each has
-- running jobs), never every user waiting. Fewer than `need` means these are all of them.
local function users_in_turn(queues, slvl, need, eligible)
    local chunk = need + 8
    local streams = {}
    for i, q in ipairs(queues) do streams[i] = {key = users_key(q, slvl), buf = {}, at = 1, from = 0, done = false} end
    local function head(st)
        if st.at > #st.buf then
            if st.done then return nil end
            local got = redis.call('ZRANGE', st.key, st.from, st.from + chunk - 1, 'WITHSCORES')
            st.from = st.from + chunk
            st.done = #got < 2 * chunk
            st.buf, st.at = {}, 1
            for k = 1, #got, 2 do st.buf[#st.buf + 1] = {tonumber(got[k + 1]), got[k]} end
            if #st.buf == 0 then return nil end
        end
        return st.buf[st.at]
    end
    local ring, seen = {}, {}
    while #ring < need do
        local best, from = nil, nil
        for _, st in ipairs(streams) do
            local h = head(st)
            if h and (best == nil or h[1] < best[1] or (h[1] == best[1] and bytes_before(h[2], best[2]))) then
                best, from = h, st
            end
        end
        if not best then break end
        from.at = from.at + 1
        local user = best[2]
        if not seen[user] then
            seen[user] = true
            if eligible(user) then ring[#ring + 1] = user end
        end
    end
    return ring
end

-- Up to `allowed` pending jobs in claim order (see Store.claim), skipping users at `per_user_max`:
-- {{id, level}...}.
local function pick_fairly(queues, allowed, per_user_max)
    local picks, running = {}, {}
    if allowed <= 0 then return picks end
    local function eligible(u)
        if running[u] == nil then running[u] = running_of(u) end
        return running[u] < per_user_max
    end
    local lvl = next_level(queues, '+inf')
    while lvl ~= nil and #picks < allowed do
        local slvl = string.format('%d', lvl)
        local ring = users_in_turn(queues, slvl, allowed - #picks, eligible)
        local after = {}
        for _, u in ipairs(ring) do after[u] = -1 end
        while #ring > 0 and #picks < allowed do
            local still = {}
            local full = false
            for _, user in ipairs(ring) do
                if full then
                    still[#still + 1] = user
                else
                    -- Several users take turns, one job each; a lone user takes all it may at once.
                    local n = 1
                    if #ring == 1 then n = math.min(allowed - #picks, per_user_max - running[user]) end
                    local found = next_of_user(queues, slvl, user, after[user], n)
                    if #found > 0 then
                        for _, f in ipairs(found) do picks[#picks + 1] = {f[1], slvl} end
                        after[user] = found[#found][2]
                        running[user] = running[user] + #found
                        if running[user] < per_user_max then still[#still + 1] = user end
                    end
                    full = #picks >= allowed
                end
            end
            ring = still
        end
        if #picks < allowed then lvl = next_level(queues, slvl) end
    end
    return picks
end

-- Claim for a worker (see Store.claim): c = {worker_id, queues, limit, lease, global_max, per_user_max}.
-- Returns the started jobs' payloads.
local function claim(c, now)
    promote_due(now)
    local allowed = c.limit
    local in_all = counter(P .. ':count:status', 'running')
    allowed = math.min(allowed, c.global_max - in_all)
    local picks = pick_fairly(c.queues, allowed, c.per_user_max)
    local out, turns = {}, {}
    for _, pick in ipairs(picks) do
        local id = pick[1]
        local j = state(id)
        local due = tonumber(j.created_at)
        if j.run_at and tonumber(j.run_at) > due then due = tonumber(j.run_at) end
        tally(j.job_type, 'wait', tostring(bucket_of(math.max(0, tonumber(later_of(now, j.created_at)) - due))), 1)
        move(j, 'running', {worker_id = c.worker_id, attempts = tonumber(j.attempts) + 1,
                            started_at = later_of(now, j.created_at), completed_at = NULL,
                            lease_expires_at = c.lease, aged = '0'})
        turns[j.user_id] = j.seq
        out[#out + 1] = payload(id)
    end
    for user, seq in pairs(turns) do -- the user's turn, and its score wherever it still waits
        redis.call('HSET', P .. ':turns', user, seq)
        redis.call('ZADD', P .. ':served', now, user)
        for _, uk in ipairs(redis.call('SMEMBERS', P .. ':uready:' .. user)) do
            redis.call('ZADD', uk, 'XX', seq, user)
        end
    end
    return out
end

-- Ending attempts ---------------------------------------------------------------------------------------

-- Is job j running under (worker_id, attempt)? The fence of progress, finish and release.
local function owns(j, worker_id, attempt)
    return j ~= nil and from_complete(j.status) and j.worker_id == worker_id and tonumber(j.attempts) == attempt
end

-- Keep created <= started <= completed in the fields `set` is about to write to job j: a handler's start time
-- (it began after the claim) and an end time from a clock behind the submitter's.
local function clamp_times(j, set)
    if set.started_at and set.started_at ~= NULL then set.started_at = later_of(set.started_at, j.created_at) end
    if set.completed_at and set.completed_at ~= NULL then
        local started = set.started_at
        if not started or started == NULL then started = j.started_at end
        set.completed_at = later_of(set.completed_at, later_of(started, j.created_at))
    end
end

-- End attempts, each fenced (see Store.finish): f = {job_id, worker_id, attempt, status, set, error_entry,
-- progress_entry (the report the outcome carries, for the history), lease_before (recovery only)}.
-- Returns one 1/0 per attempt (still owned or not); resolves the dependants of the jobs that ended.
local function finish_all(items, now, error_limit, progress_limit)
    local owned, ended = {}, {}
    for i, f in ipairs(items) do
        local j = state(f.job_id)
        local ok = owns(j, f.worker_id, f.attempt)
        if ok and f.lease_before then -- a recovery: only while the lease is still expired
            ok = tonumber(redis.call('HGET', jkey(f.job_id), 'lease_expires_at') or '0') < tonumber(f.lease_before)
        end
        if ok then
            if f.error_entry ~= NULL then append_capped(P .. ':eh:' .. f.job_id, f.error_entry, error_limit) end
            if f.progress_entry ~= NULL then
                append_capped(P .. ':ph:' .. f.job_id, f.progress_entry, progress_limit)
            end
            clamp_times(j, f.set)
            local ran = f.set.execution_time
            if ran and ran ~= NULL then tally(j.job_type, 'run', tostring(bucket_of(math.max(0, tonumber(ran)))), 1) end
            if f.status ~= 'completed' then
                local error_type = f.set.error_type
                if not error_type or error_type == NULL then error_type = 'Error' end
                tally(j.job_type, 'error', error_type, 1)
            end
            move(j, f.status, f.set)
            if is_terminal(f.status) then ended[#ended + 1] = f.job_id end
            owned[i] = 1
        else
            owned[i] = 0
        end
    end
    resolve(ended, now)
    return owned
end

-- Registrations -------------------------------------------------------------------------------------------

-- Delete the registrations not seen since `since`: P:<index> scores each id by when it was last seen, and
-- P:<record>:<id> holds it (workers, worker pools). Returns their ids.
local function reap_silent(index, record, since)
    local ids = redis.call('ZRANGEBYSCORE', P .. ':' .. index, '-inf', '(' .. since)
    for _, id in ipairs(ids) do
        redis.call('DEL', P .. ':' .. record .. ':' .. id)
        redis.call('ZREM', P .. ':' .. index, id)
    end
    return ids
end

-- Calls ---------------------------------------------------------------------------------------------------

-- The start of every call: its prefix and arguments, and nothing left from the call before (a function
-- library keeps its locals from one call to the next).
local function begin(keys, args)
    P, A, NULL = keys[1], cjson.decode(args[1]), cjson.null
    CHANGED, ENTERED, TALLY, TALLIED, DELTA, FORGET = false, {}, {}, false, {}, {}
end

-- The end of every write call, with what pcall(body) gave: write the counters' changes and what it tallied
-- for the analytics, publish once if it changed anything, and tell the caller whether it did. A body that
-- failed part-way (Redis keeps what it wrote) still has the counters of the moves it made written, then fails.
local function end_write(ok, answer)
    flush_counts()
    write_rollups()
    notify()
    if not ok then error(answer, 0) end -- as raised: no second position prefix
    if CHANGED then return {1, answer} end
    return {0, answer}
end
