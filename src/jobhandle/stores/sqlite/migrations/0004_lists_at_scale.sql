-- Migration 4: job lists, and priority aging, that cost the same with ten million jobs as with ten. Sorted by creation time, a page
-- starts after a position (created_at, seq): one seek, at any depth (keyset paging). A status or a user
-- narrows the walk through an index of its own, in the same order; retention cleanup keeps scanning
-- jobs_created by created_at.
DROP INDEX jobs_created;
CREATE INDEX jobs_created ON jobs (created_at, seq);
CREATE INDEX jobs_status_created ON jobs (status, created_at, seq);
CREATE INDEX jobs_user_created ON jobs (user_id, created_at, seq);
-- Priority aging reads the pending jobs of one aging level that are owed a level: by (level, due time).
CREATE INDEX jobs_aging ON jobs (aged, coalesce(run_at, created_at)) WHERE status = 'pending';
