"""The SQLite store's own machinery, below the Store protocol: group commit and the change sequence, the
two insert statements, wake-ups only for rounds that changed something."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from helpers import get, new_job, submit

from jobhandle import JobStatus
from jobhandle.models import Dependency, utcnow
from jobhandle.stores import SQLiteStore
from jobhandle.stores.base import ClaimRequest
from jobhandle.stores.sqlite.commit import Call, Tx


@pytest.fixture
def store(tmp_path: Path) -> Iterator[SQLiteStore]:
    s = SQLiteStore(tmp_path / "jobs.db")
    try:
        yield s
    finally:
        s.close()


def test_a_failed_primitive_of_a_group_commit_never_makes_a_sequence_number_come_twice(store: SQLiteStore) -> None:
    """The first allocation of a round reserves its numbers in the stored sequence, inside the savepoint of its
    primitive; when that primitive fails, the numbers handed out after it must still end up stored."""
    before = store.last_seq()

    def reserve_then_fail(tx: Tx) -> None:
        tx.seqs(3)
        raise RuntimeError("this primitive fails")

    def allocate(tx: Tx) -> int:
        return tx.seq()

    failing, succeeding = Call(reserve_then_fail), Call(allocate)
    store._writer._transact([failing, succeeding])  # one round, two primitives, each in its savepoint
    assert isinstance(failing.error, RuntimeError) and succeeding.error is None
    assert succeeding.result == before + 4
    assert store.last_seq() == before + 4
    assert submit(store, utcnow()).seq == before + 5


def test_a_round_that_changes_nothing_wakes_no_one(store: SQLiteStore) -> None:
    seen = store.change_version
    store._transact(lambda tx: None)
    assert store.claim(ClaimRequest("w1", ["default"], 5, 30), utcnow()) == []
    assert store.change_version == seen
    submit(store, utcnow())
    assert store.change_version != seen


def test_one_batch_stores_jobs_with_and_without_optional_columns(store: SQLiteStore) -> None:
    """Jobs with nothing optional go through a shorter INSERT than the others; both keep every field."""
    now = utcnow()
    parent = submit(store, now)
    assert store.cancel(parent.job_id, now).status is JobStatus.CANCELLED
    plain = new_job(parameters={"a": [1, {"b": None}]}, priority=5, user_id="bob", queue="q2", max_retries=0,
                    retry_delay=1.5, timeout_seconds=9.0)
    later = now + timedelta(hours=1)
    scheduled = new_job(scheduled_time=later, run_at=later, idempotency_key="once")
    doomed = new_job(depends_on=[Dependency(parent.job_id, "success")])
    stored = store.submit([plain, scheduled, doomed, new_job()], now)
    for job in stored:
        assert get(store, job.job_id) == job
    assert [j.status for j in stored] == [JobStatus.PENDING, JobStatus.SCHEDULED, JobStatus.CANCELLED,
                                          JobStatus.PENDING]
    assert get(store, doomed.job_id).error_type == "DependencyFailedError"
    assert get(store, scheduled.job_id).scheduled_time == later
    assert store.counts().by_status == {"pending": 2, "scheduled": 1, "cancelled": 2}


def test_a_wake_up_that_fails_after_a_commit_does_not_fail_the_primitive(store: SQLiteStore,
                                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    """The commit cannot be undone: a claim whose wake-up raised must still hand its jobs to its caller, or
    they would run under nobody (their worker would never hear of them)."""
    job = submit(store, utcnow())

    def broken(own: object) -> None:
        raise OSError("the wake-up socket folder went away")

    assert store._notifier is not None
    monkeypatch.setattr(store._notifier, "notify", broken)
    claimed = store.claim(ClaimRequest("w1", ["default"], 1, 30), utcnow())
    assert [j.job_id for j in claimed] == [job.job_id]
    assert get(store, job.job_id).status is JobStatus.RUNNING


def test_seed_004s_cleanup_sql_fails_loudly_and_deletes_nothing(store: SQLiteStore, tmp_path: Path) -> None:
    """Seed 004 reads the table with the sqlite3 shell (fine) and deletes old jobs with its own SQL, whose
    datetime() comparison can never match POSIX-second times: that DELETE now fails, naming the way."""
    import sqlite3

    from jobhandle import JobQueue

    old = utcnow() - timedelta(days=30)
    [job] = store.submit([new_job("echo")], old)
    store.cancel(job.job_id, old)
    conn = sqlite3.connect(tmp_path / "jobs.db")
    try:
        rows = conn.execute("SELECT job_id, job_type, status, progress FROM jobs ORDER BY created_at DESC "
                            "LIMIT 10;").fetchall()
        assert rows == [(job.job_id, "echo", "cancelled", 0.0)]
        with pytest.raises(sqlite3.OperationalError, match="no such function: use_jobhandle_cleanup"):
            conn.execute("""
                DELETE FROM jobs
                WHERE status IN ('completed', 'failed', 'cancelled')
                AND datetime(completed_at) < datetime('now', '-7 days')
            """)
        with pytest.raises(sqlite3.OperationalError, match="use_jobhandle_cleanup"):
            conn.execute("DELETE FROM jobs")
        assert conn.execute("SELECT count(*) FROM jobs").fetchone() == (1,)
    finally:
        conn.close()
    assert JobQueue(store).cleanup_old_jobs(days_old=7) == 1, "jobhandle's own cleanup still deletes"
