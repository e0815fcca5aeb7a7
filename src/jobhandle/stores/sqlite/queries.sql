-- Named statements of the SQLite store, loaded by name (``-- name: x``).
-- {placeholders} in braces are status lists filled in from the state machine in models.py (MACHINE):
-- {<transition>_from} is the statuses that transition starts from, e.g. {cancel_from}. Every UPDATE that
-- changes a job's status guards on them; statements that must match a partial index keep its literal terms.

-- name: reserve_seqs
-- Reserves the next n (the parameter) change sequence numbers and returns the last of them.
UPDATE meta SET value = value + ? WHERE key = 'seq' RETURNING value;

-- name: set_seq
UPDATE meta SET value = :value WHERE key = 'seq';

-- name: insert_job
-- Positional: bound from tuples (SQLiteStore._insert), the cheapest binding for bulk submits. The columns that
-- most jobs leave NULL come last, so that insert_plain_job is this statement cut short.
INSERT INTO jobs (job_id, job_type, queue, status, priority, user_id, parameters, created_at, max_retries,
                  retry_delay, timeout_seconds, depends_on, seq, scheduled_time, run_at, idempotency_key,
                  cron_expression, schedule_id, error, error_type, completed_at)
VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?);

-- name: insert_plain_job
-- insert_job for a job whose last eight columns are all NULL (no run time, idempotency key, schedule or
-- error): Python's sqlite3 binds None through its adapter lookup, which cost a bulk submit ~2 us a row.
INSERT INTO jobs (job_id, job_type, queue, status, priority, user_id, parameters, created_at, max_retries,
                  retry_delay, timeout_seconds, depends_on, seq)
VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?);

-- name: insert_dependency
INSERT INTO dependencies (parent_id, job_id, condition) VALUES (?, ?, ?);

-- name: count_created_before
SELECT count(*) FROM jobs WHERE status = :status AND created_at < :before;  -- jobs_status_created

-- name: dependants
SELECT job_id FROM dependencies WHERE parent_id = :parent_id ORDER BY job_id LIMIT :limit;

-- name: dependants_count
SELECT count(*) FROM dependencies WHERE parent_id = :parent_id;

-- name: waiting_dependants
SELECT d.job_id FROM dependencies d JOIN jobs j ON j.job_id = d.job_id
WHERE d.parent_id = :parent_id AND +j.status = 'waiting';  -- through the edges, never every waiting job

-- name: parents_with_waiting_dependants
-- Which of the jobs in :ids (a JSON array) have dependants still waiting.
SELECT DISTINCT d.parent_id FROM dependencies d JOIN jobs j ON j.job_id = d.job_id
WHERE d.parent_id IN (SELECT value FROM json_each(:ids)) AND +j.status = 'waiting';

-- name: dependencies_of
SELECT d.parent_id, d.condition, p.status FROM dependencies d LEFT JOIN jobs p ON p.job_id = d.parent_id
WHERE d.job_id = :job_id;

-- name: release_waiting
UPDATE jobs SET status = CASE WHEN run_at > :now THEN 'scheduled' ELSE 'pending' END, seq = :seq
WHERE job_id = :job_id AND status IN ({resolve_from})
RETURNING queue, job_type, status, user_id, priority;

-- name: cancel_waiting
UPDATE jobs SET status = 'cancelled', completed_at = max(:now, created_at), error = :error,
                error_type = 'DependencyFailedError', seq = :seq
WHERE job_id = :job_id AND status IN ({resolve_from})
RETURNING queue, job_type, status;

-- name: delete_dependencies
DELETE FROM dependencies WHERE job_id = :job_id OR parent_id = :job_id;

-- name: ended_by_seq
-- The attempts a finish just ended (the jobs whose last change has a seq in [:first, :last]), for the counters
-- and the rollups: one read of rows the transaction holds, cheaper than RETURNING on each UPDATE.
SELECT queue, job_type, status, execution_time, error_type FROM jobs WHERE seq BETWEEN :first AND :last;

-- name: rollup_add
-- Analytics rollups (migration 5): :n more of (step, slot, job_type, metric, key).
INSERT INTO rollups (step, slot, job_type, metric, key, n) VALUES (?, ?, ?, ?, ?, ?)
ON CONFLICT (step, slot, job_type, metric, key) DO UPDATE SET n = n + excluded.n;

-- name: rollups_read
SELECT slot, job_type, metric, key, n FROM rollups WHERE step = :step AND slot >= :since AND slot <= :until;

-- name: rollups_forget
DELETE FROM rollups WHERE step = :step AND slot < :before;

-- name: count_add
-- Counters are kept by the primitives (see schema.sql): :n more (or fewer) jobs of (queue, type, status).
INSERT INTO counters (queue, job_type, status, n) VALUES (?, ?, ?, ?)
ON CONFLICT (queue, job_type, status) DO UPDATE SET n = n + excluded.n;

-- name: job_by_idempotency_key
SELECT * FROM jobs WHERE user_id = :user_id AND idempotency_key = :key;

-- name: get_job
SELECT * FROM jobs WHERE job_id = :job_id;

-- name: due_jobs
SELECT job_id, queue, job_type, status, user_id, priority FROM jobs INDEXED BY jobs_due
WHERE status IN ({promote_from}) AND run_at <= :now
ORDER BY run_at LIMIT 1000;

-- name: make_pending
UPDATE jobs SET status = 'pending', seq = :seq WHERE job_id = :job_id AND status IN ({promote_from});

-- name: next_due
SELECT min(run_at) FROM jobs INDEXED BY jobs_due WHERE status IN ({promote_from});

-- name: start_job
-- The start time is the claim's until the handler's own is written (report_progress, finish_job); never before
-- the job was created, whatever the claimer's clock says.
UPDATE jobs SET status = 'running', worker_id = :worker_id, attempts = attempts + 1,
                started_at = max(:now, created_at),
                completed_at = NULL, lease_expires_at = :lease, seq = :seq, priority = priority - aged, aged = 0
WHERE job_id = :job_id AND status IN ({claim_from});

-- name: jobs_by_seq
-- The jobs whose last change has a seq in [:first, :last]: what one transaction just wrote (cheaper than
-- RETURNING on each UPDATE).
SELECT * FROM jobs WHERE seq BETWEEN :first AND :last ORDER BY seq;

-- name: worker_upsert
INSERT INTO workers (worker_id, name, hostname, pid, queues, concurrency, started_at, last_seen, state)
VALUES (:worker_id, :name, :hostname, :pid, :queues, :concurrency, :started_at, :now, :state)
ON CONFLICT (worker_id) DO UPDATE SET last_seen = excluded.last_seen, state = excluded.state,
                                      concurrency = excluded.concurrency;

-- name: extend_leases
UPDATE jobs INDEXED BY jobs_leases SET lease_expires_at = :lease WHERE worker_id = :worker_id AND status = 'running'
RETURNING job_id;

-- name: owned_jobs
SELECT job_id FROM jobs INDEXED BY jobs_leases WHERE worker_id = :worker_id AND status = 'running';

-- name: report_progress
-- Fenced: only the (worker, attempt) that runs the job may write. History keeps its newest :limit entries.
UPDATE jobs SET
    progress = coalesce(:fraction, progress),
    progress_message = coalesce(:message, progress_message),
    items_processed = coalesce(:items_processed, items_processed),
    total_items = coalesce(:total_items, total_items),
    started_at = max(coalesce(:started_at, started_at), created_at),
    progress_history = CASE WHEN json_array_length(progress_history) >= :limit
        THEN json_insert(json_remove(progress_history, '$[0]'), '$[#]', json(:entry))
        ELSE json_insert(progress_history, '$[#]', json(:entry)) END,
    seq = :seq
WHERE job_id = :job_id AND status IN ({finish_from}) AND worker_id = :worker_id AND attempts = :attempt;

-- name: finish_job
-- Fenced end of an attempt. :status is completed, retrying or failed.
UPDATE jobs SET
    status = :status,
    result = :result,
    error = :error,
    error_type = :error_type,
    error_history = CASE WHEN :error_entry IS NULL THEN error_history
        WHEN json_array_length(error_history) >= :error_limit
        THEN json_insert(json_remove(error_history, '$[0]'), '$[#]', json(:error_entry))
        ELSE json_insert(error_history, '$[#]', json(:error_entry)) END,
    progress_history = CASE WHEN :entry IS NULL THEN progress_history
        WHEN json_array_length(progress_history) >= :limit
        THEN json_insert(json_remove(progress_history, '$[0]'), '$[#]', json(:entry))
        ELSE json_insert(progress_history, '$[#]', json(:entry)) END,
    started_at = max(coalesce(:started_at, started_at), created_at),
    completed_at = CASE WHEN :completed_at IS NULL THEN NULL
                        ELSE max(:completed_at, coalesce(:started_at, started_at), created_at) END,
    run_at = :run_at,
    lease_expires_at = NULL,
    progress = CASE WHEN :status = 'completed' THEN 1.0 ELSE coalesce(:fraction, progress) END,
    progress_message = coalesce(:message, progress_message),
    items_processed = coalesce(:items_processed, items_processed),
    total_items = coalesce(:total_items, total_items),
    execution_time = :execution_time,
    cpu_seconds = coalesce(:cpu_seconds, cpu_seconds),
    peak_memory_mb = coalesce(:peak_memory_mb, peak_memory_mb),
    seq = :seq
WHERE job_id = :job_id AND status IN ({finish_from}) AND worker_id = :worker_id AND attempts = :attempt;

-- name: release_job
UPDATE jobs SET status = 'pending', attempts = attempts - 1, worker_id = NULL, started_at = NULL,
                lease_expires_at = NULL, seq = :seq
WHERE job_id = :job_id AND status IN ({release_from}) AND worker_id = :worker_id AND attempts = :attempt
RETURNING *;

-- name: cancel_job
UPDATE jobs SET status = 'cancelled', completed_at = max(:now, coalesce(started_at, created_at)),
                lease_expires_at = NULL,
                error = coalesce(:reason, error), seq = :seq
WHERE job_id = :job_id AND status IN ({cancel_from})
RETURNING *;

-- name: restart_job
UPDATE jobs SET status = 'pending', attempts = 0, result = NULL, error = NULL, error_type = NULL,
                progress = 0, progress_message = NULL, started_at = NULL, completed_at = NULL, worker_id = NULL,
                run_at = :now, lease_expires_at = NULL, execution_time = NULL, items_processed = NULL,
                total_items = NULL, cpu_seconds = NULL, peak_memory_mb = NULL, seq = :seq,
                priority = priority - aged, aged = 0
WHERE job_id = :job_id AND status IN ({restart_from})
RETURNING *;

-- name: job_status
SELECT status FROM jobs WHERE job_id = :job_id;

-- name: expired_leases
SELECT * FROM jobs INDEXED BY jobs_leases WHERE status = 'running' AND lease_expires_at < :now LIMIT 1000;

-- name: reap_workers
DELETE FROM workers WHERE last_seen < :silent_since RETURNING worker_id;

-- name: delete_worker
DELETE FROM workers WHERE worker_id = :worker_id;

-- name: pool_upsert
INSERT INTO pools (pool_id, started_at, last_seen, doc) VALUES (:pool_id, :started_at, :now, :doc)
ON CONFLICT (pool_id) DO UPDATE SET last_seen = excluded.last_seen, doc = excluded.doc;

-- name: list_pools
SELECT doc, last_seen FROM pools ORDER BY started_at, pool_id;

-- name: delete_pool
DELETE FROM pools WHERE pool_id = :pool_id;

-- name: reap_pools
DELETE FROM pools WHERE last_seen < :silent_since RETURNING pool_id;

-- name: list_workers
SELECT w.*, (SELECT json_group_array(j.job_id) FROM jobs j INDEXED BY jobs_leases
             WHERE j.worker_id = w.worker_id AND j.status = 'running') AS current_jobs
FROM workers w ORDER BY w.started_at;

-- name: counters
SELECT queue, job_type, status, n FROM counters WHERE n <> 0;

-- name: count_by_status
SELECT status, count(*) FROM jobs WHERE user_id = :user_id GROUP BY status;

-- name: meta_get
SELECT value FROM meta WHERE key = :key;

-- name: meta_set
INSERT INTO meta (key, value) VALUES (:key, :value) ON CONFLICT (key) DO UPDATE SET value = excluded.value;

-- name: expired_terminal
SELECT job_id FROM jobs INDEXED BY jobs_created
WHERE created_at < :cutoff AND status = :status AND completed_at < :cutoff LIMIT :limit;

-- name: delete_job
DELETE FROM jobs WHERE job_id = :job_id;

-- name: changes_since
SELECT * FROM jobs WHERE seq > :seq ORDER BY seq LIMIT :limit;

-- name: last_seq
SELECT value FROM meta WHERE key = 'seq';

-- name: insert_schedule
INSERT INTO schedules (schedule_id, name, cron_expression, timezone, job_type, parameters, queue, priority,
                       user_id, max_retries, retry_delay, timeout_seconds, paused, generation, created_at,
                       next_fire_at, last_fire_at)
VALUES (:schedule_id, :name, :cron_expression, :timezone, :job_type, :parameters, :queue, :priority, :user_id,
        :max_retries, :retry_delay, :timeout_seconds, :paused, :generation, :created_at, :next_fire_at,
        :last_fire_at);

-- name: get_schedule
SELECT * FROM schedules WHERE schedule_id = :schedule_id;

-- name: list_schedules
SELECT * FROM schedules ORDER BY created_at, schedule_id;

-- name: due_schedules
SELECT * FROM schedules WHERE paused = 0 AND next_fire_at <= :now;

-- name: set_schedule_fire
UPDATE schedules SET next_fire_at = :next_fire_at, last_fire_at = :last_fire_at, paused = :paused,
                     generation = :generation
WHERE schedule_id = :schedule_id;

-- name: delete_schedule
DELETE FROM schedules WHERE schedule_id = :schedule_id;

-- name: cancel_upcoming
-- A schedule's job for a fire that has not come yet (paused or deleted schedule).
UPDATE jobs SET status = 'cancelled', completed_at = max(:now, created_at), error = :reason, seq = :seq
WHERE user_id = :user_id AND idempotency_key = :key AND status = 'scheduled'
RETURNING queue, job_type, status;

-- name: get_bucket
SELECT tokens, updated_at FROM rate_limits WHERE key = :key;

-- name: set_bucket
INSERT INTO rate_limits (key, tokens, updated_at, full_at) VALUES (:key, :tokens, :now, :full_at)
ON CONFLICT (key) DO UPDATE SET tokens = excluded.tokens, updated_at = excluded.updated_at,
                                full_at = excluded.full_at;

-- name: forget_buckets
-- Buckets full again by now are as good as none (a new bucket starts full).
DELETE FROM rate_limits WHERE full_at <= :now;

-- name: forget_turns
-- The rows of users with nothing waiting there, last served before :before (a user's rows all carry its turn:
-- one still waiting elsewhere keeps it there).
DELETE FROM ready_users WHERE served_at < :before AND (waiting = 0 OR NOT EXISTS (
    SELECT 1 FROM jobs j WHERE j.status = 'pending' AND j.queue = ready_users.queue
    AND j.priority = ready_users.level AND j.user_id = ready_users.user_id));

-- name: running_total
SELECT coalesce(sum(n), 0) FROM counters WHERE status = 'running';

-- name: running_per_user
SELECT user_id, count(*) FROM jobs INDEXED BY jobs_leases WHERE status = 'running' GROUP BY user_id;

-- name: claim_lookout
-- A claim's read-only first look: when the next scheduled or retrying job is due, and whether :q has work.
SELECT (SELECT min(run_at) FROM jobs INDEXED BY jobs_due WHERE status IN ({promote_from})),
       EXISTS (SELECT 1 FROM jobs INDEXED BY jobs_ready_users WHERE status = 'pending' AND queue = :q);

-- name: first_pending
-- Up to two of a queue's pending jobs, in no particular order: the claim's question "is there only one?".
SELECT job_id, user_id, priority FROM jobs INDEXED BY jobs_ready_users WHERE status = 'pending' AND queue = :q LIMIT 2;

-- name: any_pending
SELECT 1 FROM jobs INDEXED BY jobs_ready_users WHERE status = 'pending' AND queue = :q LIMIT 1;

-- name: top_priority
-- The highest priority below :below among a queue's pending jobs.
SELECT max(priority) FROM jobs INDEXED BY jobs_ready_users WHERE status = 'pending' AND queue = :q AND priority < :below;

-- name: ready_users_after
-- The users waiting at one level of one queue in turn order, after (:turn, :u): one seek, then the next :n.
SELECT turn, user_id FROM ready_users
WHERE queue = :q AND level = :level AND waiting = 1 AND (turn, user_id) > (:turn, :u)
ORDER BY turn, user_id LIMIT :n;

-- name: ready_add
-- Positional (queue, level, user_id): a job of the user became pending at the level. A new row takes the user's
-- turn from its other rows; a row already waiting is left alone (the common case writes nothing).
INSERT INTO ready_users (queue, level, user_id, turn, served_at, waiting)
SELECT ?1, ?2, ?3, coalesce(max(turn), 0), coalesce(max(served_at), 0), 1 FROM ready_users WHERE user_id = ?3
ON CONFLICT (user_id, queue, level) DO UPDATE SET waiting = 1 WHERE waiting = 0;

-- name: ready_leave
-- Positional (queue, level, user_id): a pending job of the user left the level (cancelled, aged): the user waits
-- there no longer unless it has another.
UPDATE ready_users SET waiting = 0
WHERE user_id = ?3 AND queue = ?1 AND level = ?2 AND waiting = 1
AND NOT EXISTS (SELECT 1 FROM jobs WHERE status = 'pending' AND queue = ?1 AND priority = ?2 AND user_id = ?3);

-- name: served
-- A claim served :u: its turn and when, in all its rows. Its rows stay marked waiting, even where the claim took
-- its last job (the next pick that finds it drained marks it, see claim.py): a user served one job at a time
-- writes one row per claim, as its turn did before.
UPDATE ready_users SET turn = :turn, served_at = :now WHERE user_id = :u;

-- name: next_of_user
SELECT job_id, seq FROM jobs INDEXED BY jobs_ready_users
WHERE status = 'pending' AND queue = :q AND priority = :p AND user_id = :u AND seq > :after
ORDER BY seq LIMIT :n;

-- name: agable_jobs
-- Pending jobs aged :level levels so far and owed more: a level per :interval waited since they became due (or
-- were created), at most :max_boost levels. jobs_aging holds them by (level, due time): one range, however
-- many jobs wait.
SELECT job_id, min(:max_boost, CAST((:now - coalesce(run_at, created_at)) / :interval AS INTEGER)) AS boost,
       queue, user_id, priority, aged
FROM jobs INDEXED BY jobs_aging
WHERE status = 'pending' AND aged = :level AND coalesce(run_at, created_at) <= :now - (:level + 1) * :interval
LIMIT :limit;

-- name: age_job
UPDATE jobs SET priority = priority - aged + :boost, aged = :boost, seq = :seq
WHERE job_id = :job_id AND status = 'pending' AND aged < :boost;

-- name: lease_holder
SELECT holder, expires_at FROM leases WHERE name = :name;

-- name: hold_lease
-- Taken when free or run out, renewed by its holder; no row back while another holder's lease runs.
INSERT INTO leases (name, holder, expires_at) VALUES (:name, :holder, :until)
ON CONFLICT (name) DO UPDATE SET holder = excluded.holder, expires_at = excluded.expires_at
WHERE leases.holder = excluded.holder OR leases.expires_at <= :now
RETURNING holder;

-- name: release_lease
DELETE FROM leases WHERE name = :name AND holder = :holder;
