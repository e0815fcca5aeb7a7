-- Store.changes_since: A = {seq, limit}. The payloads of the jobs changed after `seq`, oldest change first.
local out = {}
for _, id in ipairs(redis.call('ZRANGEBYSCORE', P .. ':changes', '(' .. A.seq, '+inf', 'LIMIT', 0, A.limit)) do
    out[#out + 1] = payload(id)
end
return out
