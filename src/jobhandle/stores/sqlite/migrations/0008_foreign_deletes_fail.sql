-- Migration 8: deleting jobs from outside jobhandle fails, naming what to use instead. Seed 004's cleanup
-- snippet compares datetime(completed_at) with datetime('now', '-7 days'), but times are POSIX seconds (which
-- datetime() reads as Julian days), so its DELETE matched nothing and said nothing; and a DELETE that did match
-- would leave the waiting users' index and the dependency edges behind (counters_delete keeps only the
-- counters in step). jobhandle's own connections define use_jobhandle_cleanup() (store.py); the sqlite3 shell
-- and other programs do not, so their DELETE stops with "no such function: use_jobhandle_cleanup" before it
-- touches a row. Reading stays open.
CREATE TRIGGER jobs_deleted_by_jobhandle_only BEFORE DELETE ON jobs
BEGIN
    SELECT use_jobhandle_cleanup();
END;
