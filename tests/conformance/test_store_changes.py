"""Conformance: the change feed (seq, changes_since, last_seq), next_due_at, and waking waiters."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import pytest
from helpers import claim_one, get, later, submit

from jobhandle import JobNotFoundError, JobQueue, JobStatus, JobTimeoutError
from jobhandle.models import utcnow
from jobhandle.retry import lost_worker_policy
from jobhandle.stores import Outcome, ProgressUpdate, Store, open_store
from jobhandle.stores.base import AttemptKey, ClaimRequest

WAKE_DEADLINE = 5.0
"""A woken waiter must return well before this; a waiter that is not woken would block WAIT_TIMEOUT."""
WAIT_TIMEOUT = 30.0


@contextmanager
def soon(action: Callable[[], object], delay: float = 0.1) -> Iterator[None]:
    """Run ``action`` on another thread shortly after the block starts waiting; join it afterwards."""
    timer = threading.Timer(delay, action)
    timer.start()
    try:
        yield
    finally:
        timer.join(WAIT_TIMEOUT)


# -- the change feed -------------------------------------------------------------------------------------

def test_a_fresh_store_has_no_changes(store: Store) -> None:
    assert store.last_seq() == 0
    assert store.changes_since(0) == []


def test_changes_since_lists_each_changed_job_once_in_its_latest_state(store: Store) -> None:
    now = utcnow()
    start = store.last_seq()
    a, b, c = (submit(store, now).job_id for _ in range(3))
    claim_one(store, now)
    store.finish(AttemptKey(a, "w1", 1), Outcome(JobStatus.COMPLETED, result="done"), now)
    store.cancel(b, now)

    changes = store.changes_since(start)
    assert [j.job_id for j in changes] == [c, a, b]
    seqs = [j.seq for j in changes]
    assert seqs == sorted(set(seqs))
    assert [j.status for j in changes] == [JobStatus.PENDING, JobStatus.COMPLETED, JobStatus.CANCELLED]
    assert all(j.to_dict() == get(store, j.job_id).to_dict() for j in changes)
    assert store.last_seq() == seqs[-1]

    assert [j.job_id for j in store.changes_since(seqs[0])] == [a, b]
    assert store.changes_since(store.last_seq()) == []
    assert [j.job_id for j in store.changes_since(start, limit=2)] == [c, a]


def test_every_change_moves_the_job_to_a_new_highest_seq(store: Store) -> None:
    now = utcnow()
    seen: list[int] = []

    def changed(job_id: str) -> None:
        job = get(store, job_id)
        assert job.seq == store.last_seq(), "the job's last change must carry the newest seq"
        assert not seen or job.seq > seen[-1]
        seen.append(job.seq)

    job = submit(store, now, max_retries=3, scheduled_time=later(now, 1), run_at=later(now, 1)).job_id
    changed(job)
    claim_one(store, later(now, 2))  # promoted from scheduled and claimed
    changed(job)
    store.report_progress(AttemptKey(job, "w1", 1), ProgressUpdate(0.5, at=now))
    changed(job)
    store.release(AttemptKey(job, "w1", 1), now)
    changed(job)
    claim_one(store, later(now, 3), lease=1)
    store.recover_expired(later(now, 10), lost_worker_policy(cap=0))
    changed(job)
    claim_one(store, later(now, 11))
    store.finish(AttemptKey(job, "w1", 2), Outcome(JobStatus.FAILED, error="E: x"), later(now, 12))
    changed(job)
    store.restart(job, later(now, 13))
    changed(job)
    store.cancel(job, later(now, 14))
    changed(job)


# -- next_due_at -----------------------------------------------------------------------------------------

def test_next_due_at_is_the_earliest_scheduled_or_retrying_run_at(store: Store) -> None:
    now = utcnow()
    assert store.next_due_at() is None
    submit(store, now)
    assert store.next_due_at() is None
    late = submit(store, now, scheduled_time=later(now, 60), run_at=later(now, 60))
    submit(store, now, scheduled_time=later(now, 30), run_at=later(now, 30))
    assert store.next_due_at() == later(now, 30)
    running = claim_one(store, now)
    retry = Outcome(JobStatus.RETRYING, error="E", run_at=later(now, 10))
    store.finish(AttemptKey(running.job_id, "w1", 1), retry, now)
    assert store.next_due_at() == later(now, 10)
    store.claim(ClaimRequest("w1", ["default"], 10, 30), later(now, 45))
    assert store.next_due_at() == later(now, 60)
    store.cancel(late.job_id, now)
    assert store.next_due_at() is None


# -- waking waiters --------------------------------------------------------------------------------------

def timed_wait(store: Store, seen: int) -> tuple[int, float]:
    started = time.monotonic()
    version = store.wait_for_change(seen, WAIT_TIMEOUT)
    return version, time.monotonic() - started


def test_wait_for_change_wakes_on_a_change_made_by_another_thread(store: Store) -> None:
    seen = store.change_version
    with soon(lambda: submit(store, utcnow())):
        version, elapsed = timed_wait(store, seen)
    assert version != seen
    assert elapsed < WAKE_DEADLINE


def test_wait_for_change_returns_at_once_when_a_change_was_missed(store: Store) -> None:
    seen = store.change_version
    submit(store, utcnow())
    version, elapsed = timed_wait(store, seen)
    assert version != seen
    assert elapsed < WAKE_DEADLINE


def test_wait_for_change_times_out_without_a_change(store: Store) -> None:
    seen = store.change_version
    assert store.wait_for_change(seen, 0.05) == seen


def test_wake_waiters_releases_a_waiter(store: Store) -> None:
    seen = store.change_version
    with soon(store.wake_waiters):
        _, elapsed = timed_wait(store, seen)
    assert elapsed < WAKE_DEADLINE


def test_wait_for_change_sees_commits_of_another_store_instance(store_url: str, store: Store) -> None:
    if store_url.startswith("memory:"):
        pytest.skip("memory:// stores are private to one instance: there is no other writer to see")
    other = open_store(store_url)
    try:
        seen = store.change_version
        with soon(lambda: submit(other, utcnow())):
            version, elapsed = timed_wait(store, seen)
        assert version != seen
        assert elapsed < WAKE_DEADLINE
    finally:
        other.close()


def test_a_change_by_another_instance_between_reading_the_version_and_waiting_is_heard(store_url: str,
                                                                                      store: Store) -> None:
    """The waiter's pattern: read change_version, look at the store, then wait. A commit landing between the
    read and the wait must still wake it (on Redis, the subscription must exist before the first read)."""
    if store_url.startswith("memory:"):
        pytest.skip("memory:// stores are private to one instance: there is no other writer to see")
    other = open_store(store_url)
    try:
        seen = store.change_version
        submit(other, utcnow())
        version, elapsed = timed_wait(store, seen)
        assert version != seen
        assert elapsed < WAKE_DEADLINE
    finally:
        other.close()


# -- JobQueue.wait ---------------------------------------------------------------------------------------

def test_queue_wait_returns_when_another_thread_finishes_the_job(queue: JobQueue) -> None:
    job = queue.submit("echo")

    def run_it() -> None:
        claimed = claim_one(queue.store, utcnow())
        queue.store.finish(AttemptKey(claimed.job_id, "w1", 1), Outcome(JobStatus.COMPLETED, result=42), utcnow())

    started = time.monotonic()
    with soon(run_it):
        done = queue.wait(job.job_id, timeout=WAIT_TIMEOUT)
    assert (done.status, done.result) == (JobStatus.COMPLETED, 42)
    assert time.monotonic() - started < WAKE_DEADLINE


def test_queue_wait_on_a_finished_job_returns_it(queue: JobQueue) -> None:
    job = queue.submit("echo")
    queue.cancel(job.job_id)
    assert queue.wait(job.job_id, timeout=0).status is JobStatus.CANCELLED


def test_queue_wait_times_out_with_the_current_status(queue: JobQueue) -> None:
    job = queue.submit("echo")
    started = time.monotonic()
    with pytest.raises(JobTimeoutError) as timed_out:
        queue.wait(job.job_id, timeout=0.2)
    assert 0.2 <= time.monotonic() - started < WAKE_DEADLINE
    assert timed_out.value.context["current_status"] == "pending"
    assert job.job_id in timed_out.value.message


def test_queue_wait_for_an_unknown_job(queue: JobQueue) -> None:
    with pytest.raises(JobNotFoundError):
        queue.wait("00000000-0000-4000-8000-000000000000", timeout=1)
