"""Conformance: priority aging. A pending job gains a level per interval waited, up to a cap, and so cannot be
starved by a stream of higher-priority jobs; the boost is dropped when it starts or is restarted."""

from __future__ import annotations

import threading

from helpers import claim_one, get, later, submit, wait_until

from jobhandle import HandlerRegistry, JobContext, JobQueue, JobStatus, Settings
from jobhandle.models import utcnow
from jobhandle.stores import Store
from jobhandle.stores.base import ClaimRequest

INTERVAL = 60.0


def test_a_waiting_job_gains_a_level_per_interval_up_to_the_cap(store: Store) -> None:
    now = utcnow()
    low = submit(store, now, priority=-10)
    assert store.age_pending(later(now, INTERVAL - 1), INTERVAL, 10) == 0
    assert get(store, low.job_id).priority_boost == 0
    assert store.age_pending(later(now, 3.5 * INTERVAL), INTERVAL, 10) == 1
    aged = get(store, low.job_id)
    assert (aged.priority, aged.priority_boost) == (-10, 3), "priority reads as submitted; the boost apart"
    assert aged.seq > low.seq, "aging is a change others can see"
    assert store.age_pending(later(now, 3.9 * INTERVAL), INTERVAL, 10) == 0, "nothing new is owed"
    assert store.age_pending(later(now, 50 * INTERVAL), INTERVAL, 10) == 1
    assert get(store, low.job_id).priority_boost == 10, "capped"
    assert store.age_pending(later(now, 60 * INTERVAL), INTERVAL, 10) == 0


def test_an_aged_job_overtakes_newer_higher_priority_jobs(store: Store) -> None:
    now = utcnow()
    low = submit(store, now, priority=-10)
    older_normal = submit(store, now, priority=0)
    store.age_pending(later(now, 10 * INTERVAL), INTERVAL, 10)  # now level 0, behind the jobs already there
    newer_normal = submit(store, later(now, 10 * INTERVAL), priority=0)
    order = [j.job_id for j in store.claim(ClaimRequest("w1", ["default"], 3, 30), later(now, 10 * INTERVAL))]
    assert order == [older_normal.job_id, low.job_id, newer_normal.job_id]


def test_without_aging_the_low_job_waits_behind_every_normal_one(store: Store) -> None:
    now = utcnow()
    low = submit(store, now, priority=-10)
    normal = submit(store, later(now, 10 * INTERVAL), priority=0)
    order = [j.job_id for j in store.claim(ClaimRequest("w1", ["default"], 2, 30), later(now, 10 * INTERVAL))]
    assert order == [normal.job_id, low.job_id]


def test_starting_and_restarting_drop_the_boost(store: Store) -> None:
    now = utcnow()
    job = submit(store, now, priority=-10, max_retries=0)
    store.age_pending(later(now, 5 * INTERVAL), INTERVAL, 10)
    claimed = claim_one(store, later(now, 5 * INTERVAL))
    assert (claimed.priority, claimed.priority_boost) == (-10, 0)
    store.cancel(job.job_id, later(now, 6 * INTERVAL))
    restarted = store.restart(job.job_id, later(now, 7 * INTERVAL))
    assert (restarted.status, restarted.priority, restarted.priority_boost) == (JobStatus.PENDING, -10, 0)
    assert store.age_pending(later(now, 7.5 * INTERVAL), INTERVAL, 10) == 0, "age counts from the restart"
    assert store.age_pending(later(now, 9.1 * INTERVAL), INTERVAL, 10) == 1
    assert get(store, job.job_id).priority_boost == 2


def test_delayed_jobs_age_from_when_they_became_due(store: Store) -> None:
    now = utcnow()
    job = submit(store, now, priority=-10, scheduled_time=later(now, 10 * INTERVAL), run_at=later(now, 10 * INTERVAL),
                 status=JobStatus.SCHEDULED)
    store.claim(ClaimRequest("w1", ["other-queue"], 1, 30), later(now, 10 * INTERVAL))  # promotes the due job
    assert get(store, job.job_id).status is JobStatus.PENDING
    assert store.age_pending(later(now, 10.5 * INTERVAL), INTERVAL, 10) == 0
    assert store.age_pending(later(now, 12 * INTERVAL), INTERVAL, 10) == 1
    assert get(store, job.job_id).priority_boost == 2


def test_a_worker_ages_jobs_so_a_low_one_runs_before_newer_normal_ones(queue: JobQueue, registry: HandlerRegistry,
                                                                       settings: Settings) -> None:
    """End to end: the worker's own maintenance ages the low job while its only slot is busy."""
    release, ran = threading.Event(), []

    @registry.handler("step")
    def step(ctx: JobContext, name: str) -> None:
        ran.append(name)
        if name == "blocker":
            release.wait(10)

    aging = settings.replace(priority_aging_seconds=0.05, priority_aging_max=10)
    aging_queue = JobQueue(queue.store, registry=registry, settings=aging)
    blocker = aging_queue.submit("step", {"name": "blocker"}, priority="urgent")
    with aging_queue.worker(1):
        wait_until(lambda: ran == ["blocker"], 10, "the slot to be busy")
        low = aging_queue.submit("step", {"name": "low"}, priority="low")
        wait_until(lambda: aging_queue.get(low.job_id).priority_boost == 10, 10, "the low job to age to normal")
        normal = aging_queue.submit("step", {"name": "normal"}, priority="normal")
        release.set()
        for job in (blocker, low, normal):
            aging_queue.wait(job.job_id, 10)
    assert ran == ["blocker", "low", "normal"]
    assert aging_queue.get(low.job_id).priority == -10
