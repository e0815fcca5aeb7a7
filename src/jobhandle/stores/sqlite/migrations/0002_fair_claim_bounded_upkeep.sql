-- Migration 2: an index of the users waiting at each claim level, ordered by turn, so that finding whose turn
-- it is costs one seek however many users wait; turn records and token buckets that cleanup can bound;
-- idempotency keys scoped to their user.

-- Who has pending jobs at each level (jobs.priority, aging included) of each queue, and how many: a row per
-- (user, queue, level) while its count is above zero. `turn` is the user's (user_turns.turn, 0 if never
-- served), copied here and kept in step, so the claim reads the users in turn order (least recently served
-- first, then by name) straight off ready_users_turn. Kept by the store primitives (Tx.pend in commit.py),
-- in the same transactions as the jobs' changes.
CREATE TABLE ready_users (
    queue    TEXT NOT NULL,
    level    INTEGER NOT NULL,
    user_id  TEXT NOT NULL,
    pending  INTEGER NOT NULL,
    turn     INTEGER NOT NULL,
    PRIMARY KEY (user_id, queue, level)
) WITHOUT ROWID;
CREATE INDEX ready_users_turn ON ready_users (queue, level, turn, user_id);

INSERT INTO ready_users (queue, level, user_id, pending, turn)
SELECT j.queue, j.priority, j.user_id, count(*), coalesce(t.turn, 0)
FROM jobs j LEFT JOIN user_turns t ON t.user_id = j.user_id
WHERE j.status = 'pending'
GROUP BY j.queue, j.priority, j.user_id;

-- When each user was last served: cleanup forgets the turns of users with nothing waiting, served long ago.
ALTER TABLE user_turns ADD COLUMN served_at REAL NOT NULL DEFAULT 0;

-- When a bucket is full again (no trace of its use left): cleanup removes the buckets past that time.
ALTER TABLE rate_limits ADD COLUMN full_at REAL NOT NULL DEFAULT 0;

-- One user's idempotency key neither blocks nor reveals another user's.
DROP INDEX IF EXISTS jobs_idempotency;
CREATE UNIQUE INDEX jobs_idempotency ON jobs (user_id, idempotency_key) WHERE idempotency_key IS NOT NULL;
