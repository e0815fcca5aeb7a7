-- Store.release, fenced: A = {job_id, worker_id, attempt}. Returns the job's payload, or nothing.
local j = state(A.job_id)
if not owns(j, A.worker_id, A.attempt) or not from_release(j.status) then return false end
move(j, 'pending', {attempts = tonumber(j.attempts) - 1, worker_id = NULL, started_at = NULL,
                    lease_expires_at = NULL})
return payload(A.job_id)
