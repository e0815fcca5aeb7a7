-- Migration 1: the schema of the releases before schema versions (0.1.0), written so that it also upgrades
-- every database they created (IF NOT EXISTS throughout; objects of earlier releases dropped; the jobs column
-- `aged`, added by 0.1.0, is added by migrate.py when missing). Later migrations change it from here; the
-- schema as it stands is described in docs/architecture.md.
-- Times are POSIX seconds (REAL, UTC). JSON columns hold text.

CREATE TABLE IF NOT EXISTS jobs (
    job_id            TEXT PRIMARY KEY,
    job_type          TEXT NOT NULL,
    queue             TEXT NOT NULL,
    status            TEXT NOT NULL,
    priority          INTEGER NOT NULL,
    user_id           TEXT NOT NULL,
    parameters        TEXT NOT NULL,
    result            TEXT,
    error             TEXT,
    error_type        TEXT,
    progress          REAL NOT NULL DEFAULT 0,
    progress_message  TEXT,
    progress_history  TEXT NOT NULL DEFAULT '[]',
    error_history     TEXT NOT NULL DEFAULT '[]',
    created_at        REAL NOT NULL,
    scheduled_time    REAL,
    started_at        REAL,
    completed_at      REAL,
    attempts          INTEGER NOT NULL DEFAULT 0,
    max_retries       INTEGER NOT NULL,
    retry_delay       REAL NOT NULL,
    timeout_seconds   REAL NOT NULL,
    depends_on        TEXT NOT NULL DEFAULT '[]',
    cron_expression   TEXT,
    schedule_id       TEXT,
    idempotency_key   TEXT,
    worker_id         TEXT,
    execution_time    REAL,
    items_processed   INTEGER,
    total_items       INTEGER,
    cpu_seconds       REAL,
    peak_memory_mb    REAL,
    run_at            REAL,
    lease_expires_at  REAL,
    seq               INTEGER NOT NULL,
    aged              INTEGER NOT NULL DEFAULT 0  -- priority levels gained by waiting (in priority already)
);

-- Claim order: per queue, highest priority first; within a priority, the users waiting there are served in
-- turn (round robin, user_turns), and each user's jobs in the order they became pending.
DROP INDEX IF EXISTS jobs_ready;
CREATE INDEX IF NOT EXISTS jobs_ready_users ON jobs (queue, priority DESC, user_id, seq) WHERE status = 'pending';
-- Due scheduled/retrying jobs; running jobs by lease (also how a worker's own jobs are found).
CREATE INDEX IF NOT EXISTS jobs_due ON jobs (run_at) WHERE status IN ('scheduled', 'retrying');
CREATE INDEX IF NOT EXISTS jobs_leases ON jobs (lease_expires_at) WHERE status = 'running';
-- The change feed, listings, retention, idempotency.
CREATE UNIQUE INDEX IF NOT EXISTS jobs_seq ON jobs (seq);
CREATE INDEX IF NOT EXISTS jobs_created ON jobs (created_at);
-- Retention cleanup scans jobs_created: a job finished before a cutoff was created before it. (An index on
-- completed_at cost a quarter of every finish; the created range before a cutoff of hours or days holds
-- little but the jobs the same cleanup removes.)
DROP INDEX IF EXISTS jobs_finished;
CREATE UNIQUE INDEX IF NOT EXISTS jobs_idempotency ON jobs (idempotency_key) WHERE idempotency_key IS NOT NULL;

-- Jobs by (queue, type, status), kept exact in the same transactions as the changes: stats never scan the
-- jobs table. Each primitive that inserts jobs or changes their status counts what it did, in one statement
-- per kind of change (count_add in queries.sql; SQLiteStore._count and _insert in store.py): a trigger on
-- status changes, even one whose WHEN clause is false, cost a fifth of claiming and finishing a job. Only
-- deletions (retention cleanup) are counted by a trigger. The conformance suite recounts after every kind of
-- change (test_store_counts_cleanup.py).
CREATE TABLE IF NOT EXISTS counters (
    queue     TEXT NOT NULL,
    job_type  TEXT NOT NULL,
    status    TEXT NOT NULL,
    n         INTEGER NOT NULL,
    PRIMARY KEY (queue, job_type, status)
) WITHOUT ROWID;

DROP TRIGGER IF EXISTS counters_insert;

DROP TRIGGER IF EXISTS counters_update;  -- earlier releases counted status changes with it

CREATE TRIGGER IF NOT EXISTS counters_delete AFTER DELETE ON jobs BEGIN
    UPDATE counters SET n = n - 1 WHERE queue = OLD.queue AND job_type = OLD.job_type AND status = OLD.status;
END;

-- What waiting jobs wait for: rows of jobs in status 'waiting' (and of their finished parents until cleanup).
CREATE TABLE IF NOT EXISTS dependencies (
    parent_id  TEXT NOT NULL,
    job_id     TEXT NOT NULL,
    condition  TEXT NOT NULL,  -- success | failure | completion
    PRIMARY KEY (parent_id, job_id)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS dependencies_job ON dependencies (job_id);

-- Recurring jobs. The job of the next fire exists as a scheduled job (idempotency key per fire, cron.py).
CREATE TABLE IF NOT EXISTS schedules (
    schedule_id      TEXT PRIMARY KEY,
    name             TEXT,
    cron_expression  TEXT NOT NULL,
    timezone         TEXT NOT NULL,
    job_type         TEXT NOT NULL,
    parameters       TEXT NOT NULL,
    queue            TEXT NOT NULL,
    priority         INTEGER NOT NULL,
    user_id          TEXT NOT NULL,
    max_retries      INTEGER NOT NULL,
    retry_delay      REAL NOT NULL,
    timeout_seconds  REAL NOT NULL,
    paused           INTEGER NOT NULL DEFAULT 0,
    generation       INTEGER NOT NULL DEFAULT 0,
    created_at       REAL NOT NULL,
    next_fire_at     REAL,
    last_fire_at     REAL
);
CREATE INDEX IF NOT EXISTS schedules_due ON schedules (next_fire_at) WHERE paused = 0;

-- When each user was last given a job (a change sequence number): the round robin's memory.
CREATE TABLE IF NOT EXISTS user_turns (
    user_id  TEXT PRIMARY KEY,
    turn     INTEGER NOT NULL
) WITHOUT ROWID;

-- Token buckets shared by every worker (ctx.rate_limit).
CREATE TABLE IF NOT EXISTS rate_limits (
    key         TEXT PRIMARY KEY,
    tokens      REAL NOT NULL,
    updated_at  REAL NOT NULL
) WITHOUT ROWID;

CREATE TABLE IF NOT EXISTS workers (
    worker_id    TEXT PRIMARY KEY,
    name         TEXT NOT NULL,
    hostname     TEXT NOT NULL,
    pid          INTEGER NOT NULL,
    queues       TEXT NOT NULL,
    concurrency  INTEGER NOT NULL,
    started_at   REAL NOT NULL,
    last_seen    REAL NOT NULL,
    state        TEXT NOT NULL
);

-- Single values: the change sequence, the last cleanup.
CREATE TABLE IF NOT EXISTS meta (
    key    TEXT PRIMARY KEY,
    value           -- no type: integers stay integers, text stays text
);
INSERT OR IGNORE INTO meta (key, value) VALUES ('seq', 0);
