-- Migration 7: the list indexes break ties of creation time by rowid, which every index entry ends with and
-- which never changes, instead of by job id. The jobs of one bulk submit share their creation time; ordered by
-- their random job ids, each of them went into the middle of three indexes (a bulk submit paid a third more
-- for it), where in rowid order each one is appended. A page's position still names its last job by id: the
-- store reads that job's rowid when the next page starts.
DROP INDEX jobs_created;
DROP INDEX jobs_status_created;
DROP INDEX jobs_user_created;
CREATE INDEX jobs_created ON jobs (created_at);
CREATE INDEX jobs_status_created ON jobs (status, created_at);
CREATE INDEX jobs_user_created ON jobs (user_id, created_at);
