-- Migration 5: analytics rollups (see jobhandle/analytics.py). Per slot of each tier (step seconds), job type,
-- metric and key (a histogram bucket or an error type): a count, added to by the primitives that start and
-- end attempts, in their own transaction. Kept after retention cleanup removes the jobs; cleanup drops the
-- slots of each tier older than the tier keeps them.
CREATE TABLE rollups (
    step INTEGER NOT NULL,
    slot INTEGER NOT NULL,
    job_type TEXT NOT NULL,
    metric TEXT NOT NULL,
    key TEXT NOT NULL,
    n INTEGER NOT NULL,
    PRIMARY KEY (step, slot, job_type, metric, key)
) WITHOUT ROWID;
