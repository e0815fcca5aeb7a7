-- Store.reap_workers: A = {silent_since}. Deletes the registrations of workers not seen since then.
return reap_silent('workers', 'worker', A.silent_since)
