"""The in-process store for tests and scripts: SQLite's engine on a private in-memory database.

It reuses the SQLite store's statements (so both keep one set of transition rules) with a single
connection behind one lock: every primitive holds the lock for its whole transaction. Nothing is shared
with other processes and nothing survives the process.
"""

from __future__ import annotations

from .sqlite.store import SQLiteStore


class MemoryStore(SQLiteStore):
    kind = "memory"

    def __init__(self) -> None:
        super().__init__(":memory:")
