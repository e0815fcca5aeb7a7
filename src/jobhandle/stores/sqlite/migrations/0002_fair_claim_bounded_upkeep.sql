-- Migration 2: an index of the users waiting at each claim level, ordered by turn, so that finding whose turn
-- it is costs one seek however many users wait (it replaces user_turns); turns and token buckets that cleanup
-- can bound; idempotency keys scoped to their user.

-- The round robin's memory, and an index of the users waiting at each claim level. A row per (user, queue,
-- level) the user had a pending job at: `waiting` while it has one there now (jobs.priority is the level,
-- aging included). `turn` is the user's turn (the seq of the last job claimed for it, 0 if never) and
-- `served_at` when that was, the same in all of a user's rows: the claim sets both in all of them at once, and
-- takes a new row's from the user's others. ready_users_turn orders the waiting users by turn (least recently
-- served first, then by name), so a claim finds whose turn it is with one seek. Kept by the store primitives
-- (Tx.pend and settle in commit.py, claim.py) in the same transactions as the jobs' changes; a row of a user
-- with nothing waiting stays as the memory of its turn until cleanup forgets it (TURN_MEMORY_SECONDS).
CREATE TABLE ready_users (
    queue      TEXT NOT NULL,
    level      INTEGER NOT NULL,
    user_id    TEXT NOT NULL,
    turn       INTEGER NOT NULL,
    served_at  REAL NOT NULL,
    waiting    INTEGER NOT NULL,
    PRIMARY KEY (user_id, queue, level)
) WITHOUT ROWID;
CREATE INDEX ready_users_turn ON ready_users (queue, level, turn, user_id) WHERE waiting = 1;

INSERT INTO ready_users (queue, level, user_id, turn, served_at, waiting)
SELECT j.queue, j.priority, j.user_id, coalesce(max(t.turn), 0), 0, 1
FROM jobs j LEFT JOIN user_turns t ON t.user_id = j.user_id
WHERE j.status = 'pending'
GROUP BY j.queue, j.priority, j.user_id;

-- The turns of users with nothing waiting are not carried over: served before this release, they would be
-- forgotten at the first cleanup anyway.
DROP TABLE user_turns;

-- When a bucket is full again (no trace of its use left): cleanup removes the buckets past that time.
ALTER TABLE rate_limits ADD COLUMN full_at REAL NOT NULL DEFAULT 0;

-- One user's idempotency key neither blocks nor reveals another user's.
DROP INDEX IF EXISTS jobs_idempotency;
CREATE UNIQUE INDEX jobs_idempotency ON jobs (user_id, idempotency_key) WHERE idempotency_key IS NOT NULL;
