"""A database written by the first release opens with this one: missing columns are added, the old counter
trigger is dropped (this release counts status changes in its primitives: both would count every change
twice), nothing stored is lost."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from helpers import new_job

from jobhandle import JobStatus
from jobhandle.models import utcnow
from jobhandle.stores import Outcome, open_store

FIRST_RELEASE_TRIGGER = """
CREATE TRIGGER counters_update AFTER UPDATE OF status ON jobs
WHEN OLD.status <> NEW.status BEGIN
    UPDATE counters SET n = n - 1 WHERE queue = OLD.queue AND job_type = OLD.job_type AND status = OLD.status;
    INSERT INTO counters (queue, job_type, status, n) VALUES (NEW.queue, NEW.job_type, NEW.status, 1)
        ON CONFLICT (queue, job_type, status) DO UPDATE SET n = n + 1;
END;
"""


def make_first_release_database(path: Path) -> list[str]:
    store = open_store(f"sqlite:///{path}")
    ids = [job.job_id for job in store.submit([new_job("x", priority=-10) for _ in range(3)], utcnow())]
    store.close()
    with sqlite3.connect(path) as conn:
        conn.executescript("ALTER TABLE jobs DROP COLUMN aged;" + FIRST_RELEASE_TRIGGER)
    return ids


def test_a_first_release_database_is_upgraded_in_place(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    ids = make_first_release_database(path)
    store = open_store(f"sqlite:///{path}")
    try:
        assert [store.get(i).priority for i in ids] == [-10, -10, -10]  # type: ignore[union-attr]
        now = utcnow()
        claimed = store.claim("w1", ["default"], 2, 30, now)
        store.finish(claimed[0].job_id, "w1", 1, Outcome(JobStatus.COMPLETED, result=1), now)
        counted = {status: n for status, n in store.counts().by_status.items() if n}
        assert counted == {"pending": 1, "running": 1, "completed": 1}, "each change counted once"
        assert store.age_pending(now, 1e-9, 5) == 1, "the added column works"
    finally:
        store.close()
    with sqlite3.connect(path) as conn:
        triggers = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'trigger'")}
    assert triggers == {"counters_delete"}
