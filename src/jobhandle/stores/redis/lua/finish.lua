-- Store.finish_many_and_claim (and finish, recover_expired): A = {now, error_limit, progress_limit,
-- items = {...}, claim = {...} or null}. Returns {owned flags, claimed job payloads}.
local owned = finish_all(A.items, A.now, A.error_limit, A.progress_limit)
local claimed = {}
if A.claim ~= NULL then claimed = claim(A.claim, A.now) end
return {owned, claimed}
