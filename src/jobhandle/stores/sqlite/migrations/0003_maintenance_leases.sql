-- Migration 3: leases for maintenance tasks, so that one process per store runs each at a time.
CREATE TABLE leases (
    name        TEXT PRIMARY KEY,
    holder      TEXT NOT NULL,
    expires_at  REAL NOT NULL
) WITHOUT ROWID;
