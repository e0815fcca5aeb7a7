"""Databases written by earlier releases open with this one: the schema migrations bring them up to date
(missing columns added, the first release's counter trigger dropped: both it and the primitives would count
every change twice), nothing stored is lost; a database of a newer release is refused."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
from helpers import new_job

from jobhandle import JobStatus
from jobhandle.errors import StoreSchemaError
from jobhandle.models import utcnow
from jobhandle.stores import JobQuery, Outcome, open_store
from jobhandle.stores.base import AttemptKey, ClaimRequest
from jobhandle.stores.sqlite.migrate import LATEST

RELEASED = Path(__file__).parent / "data" / "released_0_1_0.sql"

FIRST_RELEASE_TRIGGER = """
CREATE TRIGGER counters_update AFTER UPDATE OF status ON jobs
WHEN OLD.status <> NEW.status BEGIN
    UPDATE counters SET n = n - 1 WHERE queue = OLD.queue AND job_type = OLD.job_type AND status = OLD.status;
    INSERT INTO counters (queue, job_type, status, n) VALUES (NEW.queue, NEW.job_type, NEW.status, 1)
        ON CONFLICT (queue, job_type, status) DO UPDATE SET n = n + 1;
END;
"""


def make_first_release_database(path: Path) -> None:
    """0.1.0's database (tests/unit/data) as the first release wrote it: no ``aged`` column, counted by trigger."""
    with sqlite3.connect(path) as conn:
        conn.executescript(RELEASED.read_text())
        conn.executescript("ALTER TABLE jobs DROP COLUMN aged;" + FIRST_RELEASE_TRIGGER)


def test_a_first_release_database_is_upgraded_in_place(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    make_first_release_database(path)
    store = open_store(f"sqlite:///{path}")
    try:
        now = utcnow()
        claimed = store.claim(ClaimRequest("w1", ["default"], 2, 30), now)
        store.finish(AttemptKey(claimed[0].job_id, "w1", 1), Outcome(JobStatus.COMPLETED, result=1), now)
        counted = {status: n for status, n in store.counts().by_status.items() if n}
        assert counted == {"pending": 3, "running": 2, "completed": 2}, "each change counted once"
        assert store.age_pending(now, 1e-9, 5) == 3, "the added column works"
    finally:
        store.close()
    with sqlite3.connect(path) as conn:
        triggers = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'trigger'")}
    assert triggers == {"counters_delete", "jobs_deleted_by_jobhandle_only"}


def test_a_database_of_the_last_release_before_schema_versions_is_migrated(tmp_path: Path) -> None:
    """0.1.0's schema (dumped in tests/unit/data) goes through every migration: the waiting users' index is
    filled from the pending jobs with their turns, turns and buckets can be bounded, keys become per user."""
    path = tmp_path / "released.db"
    with sqlite3.connect(path) as conn:
        conn.executescript(RELEASED.read_text())
    store = open_store(f"sqlite:///{path}")
    try:
        now = utcnow()
        order = [job.user_id for job in store.claim(ClaimRequest("w1", ["default"], 5, 30), now)]
        # bob and dave were served at level 10 (turns 8 and 9); never served users come first, by name.
        assert order == ["alice", "carol", "erin", "bob", "alice"]
        [erin] = [j for j in store.list_jobs(JobQuery(user_id="erin"))]
        again = store.submit([new_job("echo", user_id="erin", idempotency_key="order-1")], now)
        assert again[0].job_id == erin.job_id, "a stored key still finds its job"
        other = store.submit([new_job("echo", user_id="frank", idempotency_key="order-1")], now)
        assert other[0].job_id != erin.job_id and other[0].user_id == "frank"
        assert store.take_token("rate:api", 1.0, 5.0, now) == 0.0, "the stored bucket still works"
        counted = {status: n for status, n in store.counts().by_status.items() if n}
        assert counted == {"running": 6, "completed": 1, "pending": 1}
    finally:
        store.close()
    with sqlite3.connect(path) as conn:
        assert conn.execute("PRAGMA user_version").fetchone()[0] == LATEST


def test_a_database_of_a_newer_release_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "newer.db"
    open_store(f"sqlite:///{path}").close()
    with sqlite3.connect(path) as conn:
        conn.execute(f"PRAGMA user_version = {LATEST + 1}")
    with pytest.raises(StoreSchemaError, match="newer jobhandle"):
        open_store(f"sqlite:///{path}")


def test_two_processes_opening_an_old_database_at_once_migrate_it_once(tmp_path: Path) -> None:
    path = tmp_path / "released.db"
    with sqlite3.connect(path) as conn:
        conn.executescript(RELEASED.read_text())
    script = ("import sys; from jobhandle.stores import open_store; "
              "open_store(sys.argv[1]).close(); print('ok')")
    procs = [subprocess.Popen([sys.executable, "-c", script, f"sqlite:///{path}"], stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for _ in range(3)]
    outputs = [p.communicate(timeout=60) for p in procs]
    assert all(p.returncode == 0 for p in procs), outputs
    with sqlite3.connect(path) as conn:
        assert conn.execute("PRAGMA user_version").fetchone()[0] == LATEST
        ready = conn.execute("SELECT user_id, level, turn FROM ready_users ORDER BY user_id").fetchall()
    assert ready == [("alice", 0, 0), ("bob", 0, 8), ("carol", 0, 0), ("erin", 0, 0)], "backfilled once, with turns"
