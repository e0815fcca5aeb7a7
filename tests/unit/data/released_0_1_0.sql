-- A database written by jobhandle 0.1.0 (commit 59f404b, the last release before schema versions),
-- dumped with sqlite3 .dump: six jobs of four users at two priorities, two claimed (one finished),
-- one with an idempotency key, a token bucket. tests/unit/test_sqlite_upgrade.py opens it with this release.
PRAGMA foreign_keys=OFF;
BEGIN TRANSACTION;
CREATE TABLE jobs (
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
INSERT INTO jobs VALUES('e28cc3b8-1b7d-4b18-bb5d-d9a0c79ab32e','echo','default','pending',0,'alice','{"n":0}',NULL,NULL,NULL,0.0,NULL,'[]','[]',1796107344.2246699333,NULL,NULL,NULL,0,3,60.0,259200.0,'[]',NULL,NULL,NULL,NULL,NULL,NULL,NULL,NULL,NULL,NULL,NULL,1,0);
INSERT INTO jobs VALUES('cbd2cc0e-b360-48c2-b385-3b632a99fc1f','echo','default','pending',0,'alice','{"n":1}',NULL,NULL,NULL,0.0,NULL,'[]','[]',1796107344.2246699333,NULL,NULL,NULL,0,3,60.0,259200.0,'[]',NULL,NULL,NULL,NULL,NULL,NULL,NULL,NULL,NULL,NULL,NULL,2,0);
INSERT INTO jobs VALUES('ecf837ab-7cbc-4650-b29e-9bd715a6c2de','echo','default','pending',0,'bob','{"n":2}',NULL,NULL,NULL,0.0,NULL,'[]','[]',1796107344.2246699333,NULL,NULL,NULL,0,3,60.0,259200.0,'[]',NULL,NULL,NULL,NULL,NULL,NULL,NULL,NULL,NULL,NULL,NULL,3,0);
INSERT INTO jobs VALUES('1a91d47a-a7e7-43d7-ace8-0d15b6a21571','echo','default','pending',0,'carol','{"n":3}',NULL,NULL,NULL,0.0,NULL,'[]','[]',1796107344.2246699333,NULL,NULL,NULL,0,3,60.0,259200.0,'[]',NULL,NULL,NULL,NULL,NULL,NULL,NULL,NULL,NULL,NULL,NULL,4,0);
INSERT INTO jobs VALUES('46e74208-4cc0-47ec-bbff-428100868396','echo','default','completed',10,'bob','{"n":4}','{"ok":true}',NULL,NULL,1.0,NULL,'[]','[]',1796107344.2246699333,NULL,1796107344.2246699333,1796107344.2246699333,1,3,60.0,259200.0,'[]',NULL,NULL,NULL,'w1',NULL,NULL,NULL,NULL,NULL,NULL,NULL,10,0);
INSERT INTO jobs VALUES('17aa83d6-007f-4d5f-a5a9-9354b3ff0ebe','echo','default','running',10,'dave','{"n":5}',NULL,NULL,NULL,0.0,NULL,'[]','[]',1796107344.2246699333,NULL,1796107344.2246699333,NULL,1,3,60.0,259200.0,'[]',NULL,NULL,NULL,'w1',NULL,NULL,NULL,NULL,NULL,NULL,1796107374.2246699332,9,0);
INSERT INTO jobs VALUES('fcefc9c7-52b7-479f-9647-951369eb466c','echo','default','pending',0,'erin','{}',NULL,NULL,NULL,0.0,NULL,'[]','[]',1796107344.2246699333,NULL,NULL,NULL,0,3,60.0,259200.0,'[]',NULL,NULL,'order-1',NULL,NULL,NULL,NULL,NULL,NULL,NULL,NULL,7,0);
CREATE TABLE counters (
    queue     TEXT NOT NULL,
    job_type  TEXT NOT NULL,
    status    TEXT NOT NULL,
    n         INTEGER NOT NULL,
    PRIMARY KEY (queue, job_type, status)
) WITHOUT ROWID;
INSERT INTO counters VALUES('default','echo','completed',1);
INSERT INTO counters VALUES('default','echo','pending',5);
INSERT INTO counters VALUES('default','echo','running',1);
CREATE TABLE dependencies (
    parent_id  TEXT NOT NULL,
    job_id     TEXT NOT NULL,
    condition  TEXT NOT NULL,  -- success | failure | completion
    PRIMARY KEY (parent_id, job_id)
) WITHOUT ROWID;
CREATE TABLE schedules (
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
CREATE TABLE user_turns (
    user_id  TEXT PRIMARY KEY,
    turn     INTEGER NOT NULL
) WITHOUT ROWID;
INSERT INTO user_turns VALUES('bob',8);
INSERT INTO user_turns VALUES('dave',9);
CREATE TABLE rate_limits (
    key         TEXT PRIMARY KEY,
    tokens      REAL NOT NULL,
    updated_at  REAL NOT NULL
) WITHOUT ROWID;
INSERT INTO rate_limits VALUES('rate:api',4.0,1796107344.2246699333);
CREATE TABLE workers (
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
CREATE TABLE meta (
    key    TEXT PRIMARY KEY,
    value           -- no type: integers stay integers, text stays text
);
INSERT INTO meta VALUES('seq',10);
CREATE INDEX jobs_ready_users ON jobs (queue, priority DESC, user_id, seq) WHERE status = 'pending';
CREATE INDEX jobs_due ON jobs (run_at) WHERE status IN ('scheduled', 'retrying');
CREATE INDEX jobs_leases ON jobs (lease_expires_at) WHERE status = 'running';
CREATE UNIQUE INDEX jobs_seq ON jobs (seq);
CREATE INDEX jobs_created ON jobs (created_at);
CREATE UNIQUE INDEX jobs_idempotency ON jobs (idempotency_key) WHERE idempotency_key IS NOT NULL;
CREATE TRIGGER counters_delete AFTER DELETE ON jobs BEGIN
    UPDATE counters SET n = n - 1 WHERE queue = OLD.queue AND job_type = OLD.job_type AND status = OLD.status;
END;
CREATE INDEX dependencies_job ON dependencies (job_id);
CREATE INDEX schedules_due ON schedules (next_fire_at) WHERE paused = 0;
COMMIT;
