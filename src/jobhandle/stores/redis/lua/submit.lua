-- Store.submit: A = {now, jobs = {spec...}} (see insert in lib.lua).
local decided, err = insert(A.jobs, A.now)
if err then return {{'error', err[1], err[2]}} end
return decided
