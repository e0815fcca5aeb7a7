"""Conformance: the state machine (models.MACHINE) as every store applies it. For every named transition and
every status, a job in that status is put through the transition's primitive: from one of its sources the job
ends in one of its targets; from any other status the store refuses and the job stays as it was."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

import pytest
from helpers import get, later
from test_store_cancel_restart import MAKERS

from jobhandle import InvalidParameterError, InvalidTransitionError, JobStatus
from jobhandle.models import ALL_STATUSES, MACHINE, Job, Transition, utcnow
from jobhandle.stores import Outcome, Store
from jobhandle.stores.base import AttemptKey, ClaimRequest

DUE = 3600
"""Seconds after which every maker's scheduled or retrying job is due (they wait 60 s)."""


def promote(store: Store, job: Job, now: datetime) -> None:
    store.claim(ClaimRequest("w9", [job.queue], 0, 30), later(now, DUE))  # due jobs become pending in a claim


def resolve(store: Store, job: Job, now: datetime) -> None:
    """End every parent (the waiting maker's parent waits in its own queue): its dependants are decided."""
    for parent in store.claim(ClaimRequest("w8", ["parents"], 100, 30), now):
        assert store.finish(AttemptKey(parent.job_id, "w8", parent.attempts), Outcome(JobStatus.COMPLETED), now)


def claim(store: Store, job: Job, now: datetime) -> None:
    store.claim(ClaimRequest("w9", [job.queue], 100, 30), now)


def finishing(status: JobStatus) -> Callable[[Store, Job, datetime], None]:
    def finish(store: Store, job: Job, now: datetime) -> None:
        error = None if status is JobStatus.COMPLETED else "E: it failed"
        key = AttemptKey(job.job_id, job.worker_id or "w1", job.attempts)
        owned = store.finish(key, Outcome(status, error=error, run_at=later(now, 60)), now)
        assert owned is (job.status is JobStatus.RUNNING), "fenced: only a running job's owner may end it"
    return finish


def release(store: Store, job: Job, now: datetime) -> None:
    released = store.release(AttemptKey(job.job_id, job.worker_id or "w1", job.attempts), now)
    assert (released is not None) is (job.status is JobStatus.RUNNING)


def cancel(store: Store, job: Job, now: datetime) -> None:
    store.cancel(job.job_id, now)


def restart(store: Store, job: Job, now: datetime) -> None:
    store.restart(job.job_id, now)


APPLY: dict[str, Callable[[Store, Job, datetime], None]] = {
    "promote": promote, "resolve": resolve, "claim": claim, "complete": finishing(JobStatus.COMPLETED),
    "retry": finishing(JobStatus.RETRYING), "fail": finishing(JobStatus.FAILED), "release": release,
    "cancel": cancel, "restart": restart,
}


def test_every_transition_has_a_primitive_here() -> None:
    assert set(APPLY) == {t.name for t in MACHINE}


@pytest.mark.parametrize("status", ALL_STATUSES, ids=lambda s: s.value)
@pytest.mark.parametrize("transition", MACHINE, ids=lambda t: t.name)
def test_each_transition_from_each_status(store: Store, transition: Transition, status: JobStatus) -> None:
    now = utcnow()
    job = MAKERS[status](store, now)
    assert job.status is status
    try:
        APPLY[transition.name](store, job, now)
    except InvalidTransitionError:  # refused (JobAlreadyCompletedError is one)
        assert status not in transition.sources, f"{transition.name} refused a job in {status.value}"
    after = get(store, job.job_id)
    if status in transition.sources:
        assert after.status in transition.targets, \
            f"{transition.name} from {status.value} ended in {after.status.value}"
    else:
        assert after.status is status, f"{transition.name} moved a job in {status.value} to {after.status.value}"


@pytest.mark.parametrize("status", [JobStatus.PENDING, JobStatus.RUNNING, JobStatus.CANCELLED, JobStatus.WAITING])
def test_an_attempt_cannot_end_in_a_status_the_machine_does_not_end_attempts_in(store: Store,
                                                                               status: JobStatus) -> None:
    now = utcnow()
    job = MAKERS[JobStatus.RUNNING](store, now)
    with pytest.raises(InvalidParameterError, match=f"an attempt ends retrying, completed, failed, not {status.value}"):
        store.finish(AttemptKey(job.job_id, "w1", job.attempts), Outcome(status), now)
    assert get(store, job.job_id).status is JobStatus.RUNNING, "nothing was written"
