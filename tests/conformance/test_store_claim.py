"""Conformance: claiming jobs, on every store. Order, filters, leases, and no job to two callers."""

from __future__ import annotations

from datetime import timedelta

from helpers import claim_one, get, later, submit, wait_until

from jobhandle import JobQueue, JobStatus
from jobhandle.models import utcnow
from jobhandle.stores import Store
from jobhandle.stores.base import ClaimRequest


def test_claim_starts_the_job_under_the_worker_with_a_lease(store: Store) -> None:
    now = utcnow()
    job = submit(store, now)
    claimed = claim_one(store, later(now, 1), worker_id="w1", lease=30)
    assert claimed.job_id == job.job_id
    assert claimed.status is JobStatus.RUNNING
    assert claimed.attempts == 1
    assert claimed.worker_id == "w1"
    assert claimed.started_at == later(now, 1)
    assert claimed.lease_expires_at == later(now, 31)
    assert claimed.seq > job.seq
    assert get(store, job.job_id).to_dict() == claimed.to_dict()


def test_claim_takes_higher_priority_first_then_fifo(store: Store) -> None:
    now = utcnow()
    order = [("n1", 0), ("l1", -10), ("h1", 10), ("n2", 0), ("u1", 20), ("h2", 10), ("l2", -10), ("n3", 0)]
    ids = {name: submit(store, now, parameters={"name": name}, priority=p).job_id for name, p in order}
    claimed = store.claim(ClaimRequest("w1", ["default"], 100, 30), now)
    names = [j.parameters["name"] for j in claimed]
    assert names == ["u1", "h1", "h2", "n1", "n2", "n3", "l1", "l2"]
    assert {j.job_id for j in claimed} == set(ids.values())


def test_fifo_one_at_a_time(store: Store) -> None:
    now = utcnow()
    ids = [submit(store, now).job_id for _ in range(6)]
    assert [claim_one(store, now).job_id for _ in ids] == ids
    assert store.claim(ClaimRequest("w1", ["default"], 1, 30), now) == []


def test_claim_filters_by_queue(store: Store) -> None:
    now = utcnow()
    by_queue = {q: submit(store, now, queue=q).job_id for q in ("a", "b", "c")}
    claimed = store.claim(ClaimRequest("w1", ["a", "c"], 10, 30), now)
    assert {j.job_id for j in claimed} == {by_queue["a"], by_queue["c"]}
    assert store.claim(ClaimRequest("w1", ["a", "c"], 10, 30), now) == []
    assert get(store, by_queue["b"]).status is JobStatus.PENDING
    assert [j.job_id for j in store.claim(ClaimRequest("w1", ["b"], 10, 30), now)] == [by_queue["b"]]


def test_a_lone_job_is_claimed_from_any_of_the_queues(store: Store) -> None:
    now = utcnow()
    job = submit(store, now, queue="second")
    assert [j.job_id for j in store.claim(ClaimRequest("w1", ["first", "second"], 10, 30), now)] == [job.job_id]


def test_claim_respects_limit(store: Store) -> None:
    now = utcnow()
    for _ in range(10):
        submit(store, now)
    assert len(store.claim(ClaimRequest("w1", ["default"], 3, 30), now)) == 3
    assert len(store.claim(ClaimRequest("w1", ["default"], 100, 30), now)) == 7
    assert store.claim(ClaimRequest("w1", ["default"], 100, 30), now) == []


def test_claim_of_an_empty_store_returns_nothing(store: Store) -> None:
    assert store.claim(ClaimRequest("w1", ["default"], 5, 30), utcnow()) == []


def test_due_scheduled_job_becomes_claimable_when_its_time_comes(store: Store) -> None:
    now = utcnow()
    job = submit(store, now, scheduled_time=later(now, 10), run_at=later(now, 10))
    assert store.claim(ClaimRequest("w1", ["default"], 1, 30), later(now, 9)) == []
    assert get(store, job.job_id).status is JobStatus.SCHEDULED
    claimed = claim_one(store, later(now, 10.5))
    assert claimed.job_id == job.job_id
    assert claimed.attempts == 1


def test_a_job_that_became_pending_later_is_claimed_later(store: Store) -> None:
    """FIFO is the order of becoming pending: a scheduled job submitted first queues behind one pending then."""
    now = utcnow()
    scheduled = submit(store, now, scheduled_time=later(now, 5), run_at=later(now, 5))
    pending = submit(store, later(now, 1))
    claimed = store.claim(ClaimRequest("w1", ["default"], 2, 30), later(now, 6))
    assert [j.job_id for j in claimed] == [pending.job_id, scheduled.job_id]


def test_scheduled_job_in_real_time_becomes_claimable(queue: JobQueue) -> None:
    job = queue.submit("echo", delay_seconds=0.2)
    assert job.status is JobStatus.SCHEDULED
    claimed = wait_until(lambda: queue.store.claim(ClaimRequest("w1", ["default"], 1, 30), utcnow()), timeout=5,
                         message="the delayed job to become claimable")
    assert claimed[0].job_id == job.job_id
    assert claimed[0].started_at is not None and job.run_at is not None
    assert claimed[0].started_at >= job.run_at


def test_scheduled_job_in_the_past_is_claimable_at_once(queue: JobQueue) -> None:
    job = queue.submit("echo", scheduled_time=utcnow() - timedelta(seconds=1))
    assert [j.job_id for j in queue.store.claim(ClaimRequest("w1", ["default"], 1, 30), utcnow())] == [job.job_id]


def test_queue_and_user_names_with_separators_are_kept_apart(store: Store) -> None:
    """Names are free text: a store that builds keys or indexes from them must not let two pairs of names
    meet (queue "a:1" with user "x" against queue "a" with user "1:x", braces, spaces, unicode)."""
    now = utcnow()
    pairs = [("a:1", "x"), ("a", "1:x"), ("a:1:x", "default_user"), ("{a}", "x:"), ("a b", "ü:}")]
    jobs = {pair: submit(store, now, queue=pair[0], user_id=pair[1]) for pair in pairs}
    for queue, user in pairs:
        claimed = claim_one(store, later(now, 1), queues=[queue])
        assert (claimed.queue, claimed.user_id) == (queue, user)
        assert claimed.job_id == jobs[queue, user].job_id
        assert store.claim(ClaimRequest("w1", [queue], 5, 30), later(now, 1)) == []
    assert store.count_by_status("x") == {"running": 1}
    assert store.counts().by_queue["a:1"] == {"running": 1}
