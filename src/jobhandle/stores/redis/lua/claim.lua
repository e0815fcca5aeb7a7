-- Store.claim: A = {now, claim = {worker_id, queues, limit, lease, global_max, per_user_max}}.
local out = claim(A.claim, A.now)
return out
