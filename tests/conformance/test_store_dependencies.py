"""Dependencies: a job waits for its parents; each parent's end releases it or, when its condition can no
longer be met, cancels it (and its own dependants, down the chain). Decided inside the store's transactions."""

from __future__ import annotations

from datetime import datetime

import pytest
from helpers import all_jobs, claim_one, get, later, new_job, submit

from jobhandle import InvalidParameterError, JobQueue
from jobhandle.models import Dependency, Job, JobStatus, utcnow
from jobhandle.retry import lost_worker_policy
from jobhandle.stores import Outcome, Store
from jobhandle.stores.base import AttemptKey, ClaimRequest, Finished


def end(store: Store, now: datetime, job: Job, status: JobStatus) -> None:
    """Run ``job`` (from its own queue) to ``status``: completed, failed or cancelled."""
    if status is JobStatus.CANCELLED:
        store.cancel(job.job_id, now)
        return
    claimed = claim_one(store, now, queues=[job.queue])
    assert claimed.job_id == job.job_id
    outcome = Outcome(status, result=1) if status is JobStatus.COMPLETED else Outcome(status, error="E: x",
                                                                                        error_type="E")
    assert store.finish(AttemptKey(job.job_id, "w1", claimed.attempts), outcome, now)


def parent(store: Store, now: datetime, name: str = "parents") -> Job:
    return submit(store, now, queue=name)


def child(store: Store, now: datetime, *deps: Dependency, **fields: object) -> Job:
    return submit(store, now, depends_on=list(deps), **fields)


@pytest.mark.parametrize(("condition", "ended", "expected"), [
    ("success", JobStatus.COMPLETED, JobStatus.PENDING),
    ("success", JobStatus.FAILED, JobStatus.CANCELLED),
    ("success", JobStatus.CANCELLED, JobStatus.CANCELLED),
    ("failure", JobStatus.FAILED, JobStatus.PENDING),
    ("failure", JobStatus.COMPLETED, JobStatus.CANCELLED),
    ("failure", JobStatus.CANCELLED, JobStatus.CANCELLED),
    ("completion", JobStatus.COMPLETED, JobStatus.PENDING),
    ("completion", JobStatus.FAILED, JobStatus.PENDING),
    ("completion", JobStatus.CANCELLED, JobStatus.PENDING),
])
def test_a_parents_end_releases_or_cancels_the_waiting_job(store: Store, condition: str, ended: JobStatus,
                                                           expected: JobStatus) -> None:
    now = utcnow()
    p = parent(store, now)
    c = child(store, now, Dependency(p.job_id, condition))
    assert c.status is JobStatus.WAITING
    end(store, later(now, 1), p, ended)
    after = get(store, c.job_id)
    assert after.status is expected
    assert after.seq > c.seq
    if expected is JobStatus.CANCELLED:
        assert after.error_type == "DependencyFailedError"
        assert p.job_id in (after.error or "") and ended.value in (after.error or "")
        assert after.completed_at == later(now, 1)
    else:
        assert after.error is None


def test_the_job_waits_for_every_parent(store: Store) -> None:
    now = utcnow()
    a, b = parent(store, now, "a"), parent(store, now, "b")
    c = child(store, now, Dependency(a.job_id), Dependency(b.job_id, "completion"))
    end(store, now, a, JobStatus.COMPLETED)
    assert get(store, c.job_id).status is JobStatus.WAITING
    end(store, now, b, JobStatus.FAILED)
    assert get(store, c.job_id).status is JobStatus.PENDING


def test_one_impossible_parent_cancels_without_waiting_for_the_others(store: Store) -> None:
    now = utcnow()
    a, b = parent(store, now, "a"), parent(store, now, "b")
    c = child(store, now, Dependency(a.job_id), Dependency(b.job_id))
    end(store, now, b, JobStatus.FAILED)
    assert get(store, c.job_id).status is JobStatus.CANCELLED
    assert get(store, a.job_id).status is JobStatus.PENDING, "the other parent is untouched"


def test_a_failure_cascades_down_a_chain_naming_each_parent(store: Store) -> None:
    now = utcnow()
    a = parent(store, now)
    b = child(store, now, Dependency(a.job_id), queue="b")
    c = child(store, now, Dependency(b.job_id), queue="c")
    end(store, now, a, JobStatus.FAILED)
    b_after, c_after = get(store, b.job_id), get(store, c.job_id)
    assert (b_after.status, c_after.status) == (JobStatus.CANCELLED, JobStatus.CANCELLED)
    assert a.job_id in (b_after.error or "") and b.job_id in (c_after.error or "")


def test_a_released_job_scheduled_for_later_becomes_scheduled(store: Store) -> None:
    now = utcnow()
    p = parent(store, now)
    c = child(store, now, Dependency(p.job_id), scheduled_time=later(now, 60), run_at=later(now, 60))
    assert c.status is JobStatus.WAITING
    end(store, now, p, JobStatus.COMPLETED)
    assert get(store, c.job_id).status is JobStatus.SCHEDULED


def test_parents_already_finished_decide_at_submit(store: Store) -> None:
    now = utcnow()
    done, failed = parent(store, now, "a"), parent(store, now, "b")
    end(store, now, done, JobStatus.COMPLETED)
    end(store, now, failed, JobStatus.FAILED)
    assert child(store, now, Dependency(done.job_id)).status is JobStatus.PENDING
    refused = child(store, now, Dependency(failed.job_id))
    assert refused.status is JobStatus.CANCELLED and refused.error_type == "DependencyFailedError"
    assert get(store, refused.job_id).status is JobStatus.CANCELLED


def test_an_unknown_parent_refuses_the_whole_submit(store: Store) -> None:
    now = utcnow()
    known = parent(store, now)
    missing = "00000000-0000-4000-8000-000000000000"
    batch = [new_job(), new_job(depends_on=[Dependency(known.job_id)]), new_job(depends_on=[Dependency(missing)])]
    with pytest.raises(InvalidParameterError, match=missing):
        store.submit(batch, now)
    assert [j.job_id for j in all_jobs(store)] == [known.job_id], "nothing of the batch was stored"


def test_parents_earlier_in_the_same_batch_count(store: Store) -> None:
    now = utcnow()
    a = new_job(queue="a")
    b = new_job(depends_on=[Dependency(a.job_id)])
    stored = store.submit([a, b], now)
    assert [j.status for j in stored] == [JobStatus.PENDING, JobStatus.WAITING]
    end(store, now, get(store, a.job_id), JobStatus.COMPLETED)
    assert get(store, b.job_id).status is JobStatus.PENDING


def test_counts_follow_waiting_jobs(store: Store) -> None:
    now = utcnow()
    p = parent(store, now)
    child(store, now, Dependency(p.job_id))
    assert store.counts().by_status.get("waiting") == 1
    end(store, now, p, JobStatus.COMPLETED)
    counts = store.counts().by_status
    assert counts.get("waiting", 0) == 0 and counts.get("pending") == 1


def test_cleanup_forgets_dependencies_of_removed_jobs(store: Store) -> None:
    now = utcnow()
    p = parent(store, now)
    c = child(store, now, Dependency(p.job_id), queue="c")
    end(store, now, p, JobStatus.COMPLETED)
    end(store, now, get(store, c.job_id), JobStatus.COMPLETED)
    cutoff = later(now, 10)
    assert store.cleanup({JobStatus.COMPLETED: cutoff}, cutoff) == 2
    assert all_jobs(store) == []


def test_a_chain_runs_in_order_through_a_worker(queue: JobQueue, registry) -> None:
    order: list[str] = []

    @registry.handler("step")
    def step(ctx, name: str) -> str:
        order.append(name)
        return name

    first = queue.submit("step", {"name": "first"})
    second = queue.submit("step", {"name": "second"}, depends_on=[first.job_id])
    third = queue.submit("step", {"name": "third"}, depends_on=[{"job_id": second.job_id, "condition": "success"}])
    with queue.worker(4):
        queue.wait(third.job_id, timeout=10)
    assert order == ["first", "second", "third"]


@pytest.mark.parametrize("depends_on", ["not-a-list", [{"job_id": "x"}], [{"condition": "success"}],
                                        [{"job_id": "00000000-0000-4000-8000-000000000000", "condition": "soon"}]])
def test_bad_depends_on_is_refused_with_a_clear_error(queue: JobQueue, depends_on: object) -> None:
    with pytest.raises(InvalidParameterError):
        queue.submit("step", depends_on=depends_on)  # type: ignore[arg-type]
    assert queue.list() == []


def test_the_same_parent_twice_is_refused(queue: JobQueue) -> None:
    p = queue.submit("step")
    with pytest.raises(InvalidParameterError, match="twice"):
        queue.submit("step", depends_on=[p.job_id, {"job_id": p.job_id, "condition": "failure"}])


def test_a_parent_failed_by_its_lost_worker_cancels_its_dependant(store: Store) -> None:
    now = utcnow()
    p = submit(store, now, queue="parents", max_retries=0)
    c = child(store, now, Dependency(p.job_id))
    claim_one(store, now, queues=["parents"], lease=1)
    [recovered] = store.recover_expired(later(now, 5), lost_worker_policy(60))
    assert recovered.status is JobStatus.FAILED and recovered.error_type == "WorkerLostError"
    cancelled = get(store, c.job_id)
    assert cancelled.status is JobStatus.CANCELLED and p.job_id in (cancelled.error or "")


def test_one_batch_of_finishes_releases_the_dependants_of_each(store: Store) -> None:
    now = utcnow()
    parents = [parent(store, now) for _ in range(3)]
    kids = [child(store, now, Dependency(p.job_id)) for p in parents]
    both = child(store, now, Dependency(parents[0].job_id), Dependency(parents[1].job_id))
    claimed = store.claim(ClaimRequest("w1", ["parents"], 3, 30), now)
    outcomes = [Finished(j.job_id, j.attempts, Outcome(JobStatus.COMPLETED, result=1), now) for j in claimed[:2]]
    outcomes.append(Finished(claimed[2].job_id, claimed[2].attempts, Outcome(JobStatus.FAILED, error="E: x",
                                                                             error_type="E"), now))
    owned, _ = store.finish_many_and_claim("w1", outcomes, None, now)
    assert owned == [True, True, True]
    by_parent = {p.job_id: get(store, k.job_id).status for p, k in zip(parents, kids, strict=True)}
    assert by_parent == {claimed[0].job_id: JobStatus.PENDING, claimed[1].job_id: JobStatus.PENDING,
                         claimed[2].job_id: JobStatus.CANCELLED}
    assert get(store, both.job_id).status is JobStatus.PENDING


def test_dependants_are_listed_both_ways_whatever_their_status(store: Store) -> None:
    now = utcnow()
    parent = submit(store, now)
    done = submit(store, now)
    claim_one(store, now)  # the older of the two: parent
    store.finish(AttemptKey(parent.job_id, "w1", 1), Outcome(JobStatus.COMPLETED), now)
    waiting = store.submit([new_job("echo", depends_on=[Dependency(done.job_id)])], now)[0]
    ready = store.submit([new_job("echo", depends_on=[Dependency(parent.job_id)])], now)[0]  # parent done: pending
    both = store.submit([new_job("echo", depends_on=[Dependency(parent.job_id), Dependency(done.job_id)])], now)[0]
    assert ready.status is JobStatus.PENDING and waiting.status is JobStatus.WAITING
    ids, total = store.dependants(parent.job_id)
    assert ids == sorted([ready.job_id, both.job_id]) and total == 2
    ids, total = store.dependants(done.job_id, limit=1)
    assert ids == sorted([waiting.job_id, both.job_id])[:1] and total == 2
    assert store.dependants(ready.job_id) == ([], 0)
    store.cancel(ready.job_id, now)
    store.cleanup({JobStatus.CANCELLED: later(now, 1)}, later(now, 1))
    assert store.dependants(parent.job_id) == ([both.job_id], 1)  # a removed dependant is gone from the list
