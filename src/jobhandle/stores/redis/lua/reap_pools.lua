-- Store.reap_pools: A = {silent_since}. Deletes the registrations of worker pools not seen since then.
return reap_silent('pools', 'pool', A.silent_since)
