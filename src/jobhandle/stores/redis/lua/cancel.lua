-- Store.cancel: A = {job_id, now, reason}. Returns {'ok', payload} or {'refused', status} or {'missing'}.
local j = state(A.job_id)
if not j then return {'missing'} end
if not from_cancel(j.status) then return {'refused', j.status} end
local set = {completed_at = later_of(A.now, later_of(j.started_at, j.created_at)), lease_expires_at = NULL}
if A.reason ~= NULL then set.error = A.reason end
move(j, 'cancelled', set)
resolve({A.job_id}, A.now)
return {'ok', payload(A.job_id)}
