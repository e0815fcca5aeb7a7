-- Migration 9: worker pools' registrations (`jobhandle pool`), so that `jobhandle workers`, the API and the
-- dashboard show each pool's size, range and latest scaling decisions. One JSON document per pool
-- (PoolInfo.to_doc), rewritten each round of the pool's loop; only last_seen is ever queried.
CREATE TABLE pools (
    pool_id    TEXT PRIMARY KEY,
    started_at REAL NOT NULL,
    last_seen  REAL NOT NULL,
    doc        TEXT NOT NULL
) WITHOUT ROWID;
