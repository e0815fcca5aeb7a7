-- Migration 6: lists break ties of creation time by job id, which never changes, instead of by the change
-- sequence number, which every change (a claim, each progress report) moves: the three list indexes were
-- rewritten on every change, and a job that changed between two pages could move from one to the other.
DROP INDEX jobs_created;
DROP INDEX jobs_status_created;
DROP INDEX jobs_user_created;
CREATE INDEX jobs_created ON jobs (created_at, job_id);
CREATE INDEX jobs_status_created ON jobs (status, created_at, job_id);
CREATE INDEX jobs_user_created ON jobs (user_id, created_at, job_id);
