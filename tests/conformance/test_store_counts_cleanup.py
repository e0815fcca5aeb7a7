"""Conformance: transition-maintained counters stay exact; retention cleanup removes only what it should."""

from __future__ import annotations

from collections import Counter
from datetime import datetime

import pytest
from helpers import all_jobs, claim_one, later, new_job, submit

from jobhandle import InvalidParameterError, JobQueue, JobStatus
from jobhandle.cron import next_fire
from jobhandle.models import Dependency, Schedule, utcnow
from jobhandle.retry import lost_worker_policy
from jobhandle.stores import JobQuery, Outcome, Store
from jobhandle.stores.base import AttemptKey, ClaimRequest, Finished, StepSizer


def recount(store: Store) -> tuple[dict[str, int], dict[str, dict[str, int]], dict[str, dict[str, int]]]:
    """Counts by status, by queue and by type, computed by listing every job."""
    jobs = all_jobs(store)
    by_status = dict(Counter(j.status.value for j in jobs))
    by_queue: dict[str, Counter[str]] = {}
    by_type: dict[str, Counter[str]] = {}
    for job in jobs:
        by_queue.setdefault(job.queue, Counter())[job.status.value] += 1
        by_type.setdefault(job.job_type, Counter())[job.status.value] += 1
    return by_status, {k: dict(v) for k, v in by_queue.items()}, {k: dict(v) for k, v in by_type.items()}


def nonzero(counts: dict[str, int]) -> dict[str, int]:
    return {k: v for k, v in counts.items() if v}


def assert_counts_exact(store: Store) -> None:
    counts = store.counts()
    by_status, by_queue, by_type = recount(store)
    assert nonzero(counts.by_status) == by_status
    assert {q: nonzero(c) for q, c in counts.by_queue.items() if nonzero(c)} == by_queue
    assert {t: nonzero(c) for t, c in counts.by_type.items() if nonzero(c)} == by_type


def finish(store: Store, job_id: str, worker_id: str, attempt: int, status: JobStatus, when: datetime,
           run_at: datetime | None = None) -> None:
    error = None if status is JobStatus.COMPLETED else "E: x"
    outcome = Outcome(status, error=error, run_at=run_at)
    assert store.finish(AttemptKey(job_id, worker_id, attempt), outcome, when) is True


def test_counters_equal_a_recount_after_mixed_operations(store: Store) -> None:
    now = utcnow()
    for _ in range(4):
        submit(store, now, "x", queue="a", max_retries=1)
    for _ in range(3):
        submit(store, now, "y", queue="b")
    submit(store, now, "y", queue="a", scheduled_time=later(now, 5), run_at=later(now, 5))
    submit(store, now, "x", queue="b", scheduled_time=later(now, 500), run_at=later(now, 500))
    assert_counts_exact(store)

    first, second, third, fourth = store.claim(ClaimRequest("w1", ["a"], 4, 10), now)
    finish(store, first.job_id, "w1", 1, JobStatus.COMPLETED, later(now, 1))
    finish(store, second.job_id, "w1", 1, JobStatus.RETRYING, later(now, 1), run_at=later(now, 2))
    finish(store, third.job_id, "w1", 1, JobStatus.FAILED, later(now, 1))
    assert store.release(AttemptKey(fourth.job_id, "w1", 1), later(now, 1)) is not None
    assert_counts_exact(store)

    pending_b = store.claim(ClaimRequest("w2", ["b"], 1, 1), now)[0]
    [waiting_b] = store.list_jobs(JobQuery(statuses=[JobStatus.PENDING], queue="b", limit=1))
    store.cancel(waiting_b.job_id, later(now, 1))
    store.restart(third.job_id, later(now, 2))
    store.recover_expired(later(now, 3), lost_worker_policy(cap=0))  # pending_b's worker is lost
    assert store.get(pending_b.job_id).status is JobStatus.RETRYING  # type: ignore[union-attr]
    assert_counts_exact(store)

    store.claim(ClaimRequest("w3", ["a", "b"], 100, 30), later(now, 10))  # promotes the due scheduled/retrying jobs
    store.cleanup({JobStatus.COMPLETED: later(now, 5)}, later(now, 10))
    assert_counts_exact(store)
    assert recount(store)[0] == {"running": 6, "cancelled": 1, "scheduled": 1}


def test_queue_stats_come_from_the_counters(queue: JobQueue) -> None:
    for _ in range(3):
        queue.submit("x")
    queue.submit("y", queue="other", delay_seconds=60)
    queue.cancel(queue.submit("x").job_id)
    stats = queue.stats()
    assert (stats["pending_jobs"], stats["scheduled_jobs"], stats["cancelled_jobs"]) == (3, 1, 1)
    assert (stats["running_jobs"], stats["completed_jobs"], stats["failed_jobs"]) == (0, 0, 0)
    assert stats["total_jobs"] == 5
    assert stats["queue_type"] == queue.store.kind
    assert stats["by_type"]["x"] == {"pending": 3, "cancelled": 1}
    assert stats["by_queue"]["other"] == {"scheduled": 1}


# -- cleanup ---------------------------------------------------------------------------------------------

def make_finished(store: Store, now: datetime, status: JobStatus, hours_ago: float) -> str:
    """A job that reached ``status`` ``hours_ago`` (in its own queue, so other pending jobs stay unclaimed)."""
    job = submit(store, later(now, -hours_ago * 3600 - 1), queue="finished")
    when = later(now, -hours_ago * 3600)
    if status is JobStatus.CANCELLED:
        store.cancel(job.job_id, when)
    else:
        assert claim_one(store, when, worker_id="w1", queues=["finished"]).job_id == job.job_id
        finish(store, job.job_id, "w1", 1, status, when)
    return job.job_id


def test_cleanup_uses_each_status_cutoff_and_records_the_run(store: Store) -> None:
    now = utcnow()
    old_completed = make_finished(store, now, JobStatus.COMPLETED, 10)
    new_completed = make_finished(store, now, JobStatus.COMPLETED, 1)
    old_failed = make_finished(store, now, JobStatus.FAILED, 10)
    old_cancelled = make_finished(store, now, JobStatus.CANCELLED, 10)

    removed = store.cleanup({JobStatus.COMPLETED: later(now, -5 * 3600), JobStatus.FAILED: later(now, -20 * 3600)},
                            now)
    assert removed == 1
    assert store.get(old_completed) is None
    assert {j.job_id for j in all_jobs(store)} == {new_completed, old_failed, old_cancelled}
    counts = store.counts()
    assert counts.last_cleanup == now
    assert counts.last_cleanup_removed == 1
    assert_counts_exact(store)


def test_cleanup_never_removes_jobs_that_are_not_terminal(store: Store) -> None:
    now = utcnow()
    old = later(now, -30 * 24 * 3600)
    running = submit(store, old).job_id
    assert claim_one(store, old).job_id == running
    retrying = submit(store, old, max_retries=5).job_id
    assert claim_one(store, old).job_id == retrying
    finish(store, retrying, "w1", 1, JobStatus.RETRYING, old, run_at=later(now, 60))
    pending = submit(store, old).job_id
    scheduled = submit(store, old, scheduled_time=later(now, 60), run_at=later(now, 60)).job_id
    terminal = [make_finished(store, now, s, 1) for s in (JobStatus.COMPLETED, JobStatus.FAILED,
                                                          JobStatus.CANCELLED)]
    restarted = make_finished(store, now, JobStatus.FAILED, 24 * 30)
    store.restart(restarted, old)

    everything = {status: later(now, 3600) for status in JobStatus}
    assert store.cleanup(everything, now) == len(terminal)
    assert {j.job_id for j in all_jobs(store)} == {pending, scheduled, running, retrying, restarted}
    assert store.counts().last_cleanup_removed == 3
    assert_counts_exact(store)


def test_queue_cleanup_old_jobs(queue: JobQueue) -> None:
    kept = queue.submit("echo")
    done = queue.cancel(queue.submit("echo").job_id)
    assert queue.cleanup_old_jobs(days_old=7) == 0
    assert queue.cleanup() == 0  # settings retention is hours long
    assert queue.cleanup_old_jobs(days_old=0) == 1
    assert [j.job_id for j in queue.list()] == [kept.job_id]
    assert done.job_id not in {j.job_id for j in queue.list()}
    stats = queue.stats()
    assert stats["last_cleanup_removed"] == 1 and stats["last_cleanup"] is not None
    with pytest.raises(InvalidParameterError, match="days_old"):
        queue.cleanup_old_jobs(days_old=-1)


def test_counters_stay_exact_through_batched_finishes_and_claims(store: Store) -> None:
    """The hot transitions (claim; finish of many at once, some refused) are counted by their primitives."""
    now = utcnow()
    parent = submit(store, now, "x", queue="a")
    store.submit([new_job("y", queue="b", depends_on=[Dependency(parent.job_id)])], now)
    for i in range(6):
        submit(store, now, "xy"[i % 2], queue="ab"[i % 2], max_retries=1)
    claimed = store.claim(ClaimRequest("w1", ["a", "b"], 5, 30), now)
    assert_counts_exact(store)
    cancelled = claimed[1]
    store.cancel(cancelled.job_id, later(now, 1))  # its finish below is refused: counted once, as cancelled
    outcomes = [Outcome(JobStatus.COMPLETED, result=1), Outcome(JobStatus.COMPLETED),
                Outcome(JobStatus.RETRYING, error="E: x", error_type="E", run_at=later(now, 2)),
                Outcome(JobStatus.FAILED, error="E: x", error_type="E"), Outcome(JobStatus.COMPLETED)]
    owned, more = store.finish_many_and_claim(
        "w1", [Finished(j.job_id, j.attempts, o, later(now, 1)) for j, o in zip(claimed, outcomes, strict=True)],
        ClaimRequest("w1", ["a", "b"], 10, 30), later(now, 1))
    assert owned == [True, False, True, True, True]
    assert more, "the released dependant and the rest were claimed in the same step"
    assert_counts_exact(store)


def test_counters_stay_exact_through_cascades_and_schedules(store: Store) -> None:
    now = utcnow()
    parent = submit(store, now, "x", queue="c", max_retries=0)
    kid = store.submit([new_job("y", depends_on=[Dependency(parent.job_id)])], now)[0]
    grandkid = store.submit([new_job("z", depends_on=[Dependency(kid.job_id)])], now)[0]
    claimed = claim_one(store, now, queues=["c"])
    finish(store, claimed.job_id, "w1", 1, JobStatus.FAILED, later(now, 1))  # cancels kid, then grandkid
    assert store.get(grandkid.job_id).status is JobStatus.CANCELLED  # type: ignore[union-attr]
    assert_counts_exact(store)

    schedule = Schedule(job_type="tick", cron_expression="* * * * *", created_at=now,
                        next_fire_at=next_fire("* * * * *", "UTC", now))
    store.create_schedule(schedule, now)
    assert_counts_exact(store)
    store.pause_schedule(schedule.schedule_id, later(now, 1))  # cancels the upcoming scheduled job
    assert_counts_exact(store)
    store.resume_schedule(schedule.schedule_id, later(now, 2))
    store.delete_schedule(schedule.schedule_id, later(now, 3))
    assert_counts_exact(store)


def test_cleanup_candidates_are_counted_from_the_status_indexes(store: Store) -> None:
    now = utcnow()
    old = [submit(store, later(now, -100 + n)) for n in range(3)]
    for job in old[:2]:
        store.cancel(job.job_id, later(now, -50))
    store.cancel(submit(store, later(now, -10)).job_id, later(now, -5))  # created after the cutoff
    terminal = [JobStatus.COMPLETED, JobStatus.FAILED, JobStatus.CANCELLED]
    assert store.count_created_before(terminal, later(now, -20)) == 2
    assert store.count_created_before([JobStatus.PENDING], later(now, -20)) == 1
    assert store.count_created_before(terminal, later(now, -100)) == 0  # strictly before
    assert store.cleanup({s: later(now, -20) for s in terminal}, now) == 2
    assert store.count_created_before(terminal, later(now, -20)) == 0


def test_a_cleanup_larger_than_its_steps_removes_every_expired_job_and_keeps_the_rest(store: Store) -> None:
    """Cleanup goes in steps sized to hold the store a few milliseconds each (StepSizer): far more expired jobs
    than one step holds, mixed with jobs that stay (finished after the cutoff, or not finished), all counted."""
    now = utcnow()
    old = later(now, -10 * 3600)
    jobs = store.submit([new_job(created_at=old) for _ in range(700)], old)
    claimed = store.claim(ClaimRequest("w1", ["default"], 700, 600), old)
    expiring, staying = [j for i, j in enumerate(claimed[:650]) if i % 7], [j for i, j in enumerate(claimed[:650])
                                                                             if not i % 7]
    for ended, at in ((expiring, later(old, 1)), (staying, later(now, -3600))):  # before, after the cutoff
        store.finish_many_and_claim("w1", [Finished(j.job_id, j.attempts, Outcome(JobStatus.COMPLETED), at)
                                           for j in ended], None, at)
    stays = {j.job_id for j in staying + claimed[650:]}
    removed = store.cleanup({JobStatus.COMPLETED: later(now, -2 * 3600)}, now)
    assert removed == len(expiring) and len(jobs) == 700
    assert {j.job_id for j in all_jobs(store)} == stays
    assert_counts_exact(store)


def test_step_sizes_follow_what_a_step_took() -> None:
    sizer = StepSizer(target=0.004, first=100, low=10, high=2000)
    sizer.took(100, 0.040)  # 0.4 ms a job: 10 fit in 4 ms
    assert sizer.size == 10
    sizer.took(10, 0.0001)  # 10 us a job: 400, within the bounds
    assert sizer.size == 400
    sizer.took(400, 0.00001)
    assert sizer.size == 2000
    sizer.took(0, 0.0)  # nothing done: nothing learnt
    assert sizer.size == 2000
