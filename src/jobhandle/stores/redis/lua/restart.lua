-- Store.restart: A = {job_id, now}. Returns {'ok', payload} or {'refused', status} or {'missing'}.
local j = state(A.job_id)
if not j then return {'missing'} end
if not from_restart(j.status) then return {'refused', j.status} end
move(j, 'pending', {attempts = '0', result = NULL, error = NULL, error_type = NULL, progress = '0',
                    progress_message = NULL, started_at = NULL, completed_at = NULL, worker_id = NULL,
                    run_at = A.now, lease_expires_at = NULL, execution_time = NULL, items_processed = NULL,
                    total_items = NULL, cpu_seconds = NULL, peak_memory_mb = NULL, aged = '0'})
return {'ok', payload(A.job_id)}
