"""Conformance: cancel and restart, through the store and through JobQueue, on every store."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

import pytest
from helpers import claim_one, get, later, submit

from jobhandle import (
    InvalidParameterError,
    InvalidTransitionError,
    JobAlreadyCompletedError,
    JobNotFoundError,
    JobQueue,
    JobStatus,
)
from jobhandle.models import Dependency, Job, utcnow
from jobhandle.stores import Outcome, ProgressUpdate, Store
from jobhandle.stores.base import AttemptKey, ClaimRequest

MISSING = "00000000-0000-4000-8000-000000000000"


def make_scheduled(store: Store, now: datetime) -> Job:
    return submit(store, now, scheduled_time=later(now, 60), run_at=later(now, 60))


def make_pending(store: Store, now: datetime) -> Job:
    return submit(store, now)


def make_running(store: Store, now: datetime) -> Job:
    submit(store, now)
    return claim_one(store, now)


def make_retrying(store: Store, now: datetime) -> Job:
    job = make_running(store, now)
    store.finish(AttemptKey(job.job_id, "w1", 1), Outcome(JobStatus.RETRYING, error="E: x", error_type="E",
                                              run_at=later(now, 60)), now)
    return get(store, job.job_id)


def make_completed(store: Store, now: datetime) -> Job:
    job = make_running(store, now)
    store.finish(AttemptKey(job.job_id, "w1", 1), Outcome(JobStatus.COMPLETED, result=1), now)
    return get(store, job.job_id)


def make_failed(store: Store, now: datetime) -> Job:
    job = make_running(store, now)
    store.report_progress(AttemptKey(job.job_id, "w1", 1), ProgressUpdate(0.4, "half way", 2, 5, now))
    store.finish(AttemptKey(job.job_id, "w1", 1), Outcome(JobStatus.FAILED, error="E: broken", error_type="E"), now)
    return get(store, job.job_id)


def make_cancelled(store: Store, now: datetime) -> Job:
    job = make_pending(store, now)
    return store.cancel(job.job_id, now)


def make_waiting(store: Store, now: datetime) -> Job:
    parent = submit(store, now, queue="parents")  # its own queue: other makers' claims never take it
    return submit(store, now, depends_on=[Dependency(parent.job_id)])


MAKERS: dict[JobStatus, Callable[[Store, datetime], Job]] = {
    JobStatus.WAITING: make_waiting, JobStatus.SCHEDULED: make_scheduled, JobStatus.PENDING: make_pending,
    JobStatus.RUNNING: make_running, JobStatus.RETRYING: make_retrying, JobStatus.COMPLETED: make_completed,
    JobStatus.FAILED: make_failed, JobStatus.CANCELLED: make_cancelled,
}
"""A job in each status."""

CANCELLABLE_HERE = [JobStatus.WAITING, JobStatus.SCHEDULED, JobStatus.PENDING, JobStatus.RUNNING, JobStatus.RETRYING]
TERMINAL = [JobStatus.COMPLETED, JobStatus.FAILED, JobStatus.CANCELLED]


def test_makers_produce_their_status(store: Store) -> None:
    now = utcnow()
    for status, make in MAKERS.items():
        assert make(store, now).status is status


# -- cancel ----------------------------------------------------------------------------------------------

@pytest.mark.parametrize("status", CANCELLABLE_HERE, ids=lambda s: s.value)
def test_cancel_each_cancellable_status(store: Store, status: JobStatus) -> None:
    now = utcnow()
    job = MAKERS[status](store, now)
    cancelled = store.cancel(job.job_id, later(now, 1), reason="no longer needed")
    stored = get(store, job.job_id)
    assert cancelled.to_dict() == stored.to_dict()
    assert stored.status is JobStatus.CANCELLED
    assert stored.completed_at == later(now, 1)
    assert stored.lease_expires_at is None
    assert stored.seq > job.seq
    assert store.claim(ClaimRequest("w9", ["default"], 10, 30), later(now, 3600)) == []
    assert store.next_due_at() is None


@pytest.mark.parametrize("status", TERMINAL, ids=lambda s: s.value)
def test_cancel_of_a_terminal_job_is_refused_with_its_status(store: Store, status: JobStatus) -> None:
    now = utcnow()
    job = MAKERS[status](store, now)
    before = get(store, job.job_id).to_dict()
    with pytest.raises(JobAlreadyCompletedError) as refused:
        store.cancel(job.job_id, later(now, 1))
    assert refused.value.context["current_status"] == status.value
    assert status.value in refused.value.message
    assert refused.value.to_dict()["error"] == "JobAlreadyCompletedError"
    assert get(store, job.job_id).to_dict() == before


def test_cancel_of_an_unknown_job_is_not_found(store: Store) -> None:
    with pytest.raises(JobNotFoundError) as missing:
        store.cancel(MISSING, utcnow())
    assert missing.value.context["job_id"] == MISSING


def test_queue_cancel(queue: JobQueue) -> None:
    job = queue.submit("echo")
    assert queue.cancel(job.job_id).status is JobStatus.CANCELLED
    assert queue.get(job.job_id).status is JobStatus.CANCELLED
    with pytest.raises(JobAlreadyCompletedError):
        queue.cancel(job.job_id)
    with pytest.raises(JobNotFoundError):
        queue.cancel(MISSING)
    with pytest.raises(InvalidParameterError, match="UUID"):
        queue.cancel("not-a-job-id")


# -- restart ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("status", [JobStatus.FAILED, JobStatus.CANCELLED], ids=lambda s: s.value)
def test_restart_makes_the_job_pending_again(store: Store, status: JobStatus) -> None:
    now = utcnow()
    job = MAKERS[status](store, now)
    restarted = store.restart(job.job_id, later(now, 1))
    stored = get(store, job.job_id)
    assert restarted.to_dict() == stored.to_dict()
    assert stored.job_id == job.job_id
    assert stored.status is JobStatus.PENDING
    assert stored.attempts == 0
    assert stored.completed_at is None and stored.worker_id is None and stored.result is None
    assert stored.error_history == job.error_history
    assert stored.progress_history == job.progress_history
    claimed = claim_one(store, later(now, 2))
    assert (claimed.job_id, claimed.attempts) == (job.job_id, 1)


def test_restart_keeps_the_failed_attempts_history(store: Store) -> None:
    job = make_failed(store, utcnow())
    assert job.error_history and job.progress_history
    restarted = store.restart(job.job_id, utcnow())
    assert [e["error"] for e in restarted.error_history] == ["E: broken"]
    assert len(restarted.progress_history) == 1


@pytest.mark.parametrize("status", [JobStatus.PENDING, JobStatus.RUNNING, JobStatus.COMPLETED,
                                    JobStatus.SCHEDULED, JobStatus.RETRYING], ids=lambda s: s.value)
def test_restart_of_a_job_that_is_not_failed_or_cancelled_is_refused(store: Store, status: JobStatus) -> None:
    now = utcnow()
    job = MAKERS[status](store, now)
    before = get(store, job.job_id).to_dict()
    with pytest.raises(InvalidTransitionError) as refused:
        store.restart(job.job_id, later(now, 1))
    assert refused.value.context["current_status"] == status.value
    assert status.value in refused.value.message
    assert get(store, job.job_id).to_dict() == before


def test_restart_of_an_unknown_job_is_not_found(store: Store) -> None:
    with pytest.raises(JobNotFoundError):
        store.restart(MISSING, utcnow())


def test_queue_restart(queue: JobQueue) -> None:
    job = queue.submit("echo")
    with pytest.raises(InvalidTransitionError):
        queue.restart(job.job_id)
    queue.cancel(job.job_id)
    restarted = queue.restart(job.job_id)
    assert (restarted.job_id, restarted.status) == (job.job_id, JobStatus.PENDING)
    with pytest.raises(JobNotFoundError):
        queue.restart(MISSING)
    with pytest.raises(InvalidParameterError, match="UUID"):
        queue.restart("nope")
