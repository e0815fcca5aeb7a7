-- Store.report_progress, fenced: A = {job_id, worker_id, attempt, set, entry, limit}. Returns 1 or 0.
local j = state(A.job_id)
if not owns(j, A.worker_id, A.attempt) then return 0 end
clamp_times(j, A.set)
write(j, A.set)
append_capped(P .. ':ph:' .. A.job_id, A.entry, A.limit)
touch(A.job_id)
return 1
