"""Schedules: the job of the next fire always exists as a scheduled job; advancing creates the one after it,
exactly once per fire, coalescing missed fires; pause, resume and delete."""

from __future__ import annotations

import threading
from datetime import datetime, timezone

import pytest
from helpers import all_jobs, claim_one, get, later, wait_until

from jobhandle import JobQueue, ScheduleNotFoundError
from jobhandle.cron import next_fire
from jobhandle.models import JobStatus, Schedule
from jobhandle.stores import Store

T0 = datetime(2026, 1, 5, 8, 59, 30, tzinfo=timezone.utc)  # a Monday, 30 s before 09:00 UTC


def every_minute(store: Store, now: datetime = T0, **fields: object) -> Schedule:
    schedule = Schedule(job_type="tick", cron_expression="* * * * *", created_at=now,
                        next_fire_at=next_fire("* * * * *", "UTC", now), **fields)  # type: ignore[arg-type]
    return store.create_schedule(schedule, now)[0]


def jobs_of(store: Store, schedule: Schedule) -> list:
    return sorted((j for j in all_jobs(store) if j.schedule_id == schedule.schedule_id), key=lambda j: j.scheduled_time)


def test_a_new_schedule_has_the_job_of_its_first_fire(store: Store) -> None:
    schedule = every_minute(store, parameters={"n": 1}, priority=5, queue="cron", name="ticker")
    assert schedule.next_fire_at == datetime(2026, 1, 5, 9, 0, tzinfo=timezone.utc)
    [job] = jobs_of(store, schedule)
    assert job.status is JobStatus.SCHEDULED and job.run_at == schedule.next_fire_at
    assert (job.job_type, job.parameters, job.priority, job.queue) == ("tick", {"n": 1}, 5, "cron")
    assert job.cron_expression == "* * * * *"
    assert store.get_schedule(schedule.schedule_id) == schedule
    assert [s.schedule_id for s in store.list_schedules()] == [schedule.schedule_id]


def test_advancing_before_the_fire_does_nothing(store: Store) -> None:
    schedule = every_minute(store)
    assert store.advance_schedules(later(T0, 29)) == []
    assert len(jobs_of(store, schedule)) == 1


def test_when_a_fire_comes_its_job_runs_and_the_next_one_is_created(store: Store) -> None:
    schedule = every_minute(store)
    at_fire = later(T0, 31)
    [following] = store.advance_schedules(at_fire)
    assert following.run_at == datetime(2026, 1, 5, 9, 1, tzinfo=timezone.utc)
    assert following.status is JobStatus.SCHEDULED
    moved = store.get_schedule(schedule.schedule_id)
    assert moved is not None
    assert moved.last_fire_at == schedule.next_fire_at and moved.next_fire_at == following.run_at
    first = claim_one(store, at_fire, queues=["default"])
    assert first.run_at == schedule.next_fire_at, "the fire's own job is the one that runs"


def test_each_fire_enqueues_exactly_one_job_whoever_advances(store: Store) -> None:
    schedule = every_minute(store)
    at_fire = later(T0, 31)
    barrier = threading.Barrier(8)
    created: list[int] = []

    def advance() -> None:
        barrier.wait()
        created.append(len(store.advance_schedules(at_fire)))

    threads = [threading.Thread(target=advance) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    assert sorted(created) == [0] * 7 + [1]
    assert store.advance_schedules(at_fire) == []
    assert len(jobs_of(store, schedule)) == 2


def test_fires_missed_while_nothing_ran_are_coalesced(store: Store) -> None:
    schedule = every_minute(store)
    after_downtime = later(T0, 30 + 10 * 60 + 15)  # 10 minutes of fires missed
    [following] = store.advance_schedules(after_downtime)
    assert following.run_at == datetime(2026, 1, 5, 9, 11, tzinfo=timezone.utc), "the next fire after now"
    overdue, upcoming = jobs_of(store, schedule)
    assert overdue.run_at == schedule.next_fire_at, "one late run for the missed fires"
    assert upcoming.job_id == following.job_id


def test_pause_cancels_the_upcoming_job_and_resume_starts_from_now(store: Store) -> None:
    schedule = every_minute(store)
    paused = store.pause_schedule(schedule.schedule_id, T0)
    assert paused.paused
    [cancelled] = jobs_of(store, schedule)
    assert cancelled.status is JobStatus.CANCELLED and "paused" in (cancelled.error or "")
    assert store.advance_schedules(later(T0, 600)) == []
    assert store.pause_schedule(schedule.schedule_id, T0).paused, "pausing twice is harmless"

    resumed_at = later(T0, 20)  # before the fire that was cancelled: it must still get a job
    resumed = store.resume_schedule(schedule.schedule_id, resumed_at)
    assert not resumed.paused and resumed.next_fire_at == schedule.next_fire_at
    statuses = sorted(j.status.value for j in jobs_of(store, schedule))
    assert statuses == ["cancelled", "scheduled"]


def test_delete_cancels_the_upcoming_job_and_keeps_the_rest(store: Store) -> None:
    schedule = every_minute(store)
    store.advance_schedules(later(T0, 31))
    store.delete_schedule(schedule.schedule_id, later(T0, 32))
    assert store.get_schedule(schedule.schedule_id) is None
    first, upcoming = jobs_of(store, schedule)
    assert first.status is JobStatus.SCHEDULED, "due, it becomes pending when a worker looks: not cancelled"
    assert upcoming.status is JobStatus.CANCELLED
    for action in (store.pause_schedule, store.resume_schedule, store.delete_schedule):
        with pytest.raises(ScheduleNotFoundError):
            action(schedule.schedule_id, T0)


def test_time_zones_decide_fire_times() -> None:
    winter = datetime(2026, 1, 5, 6, 0, tzinfo=timezone.utc)
    summer = datetime(2026, 7, 6, 6, 0, tzinfo=timezone.utc)
    assert next_fire("0 9 * * *", "Europe/Paris", winter) == datetime(2026, 1, 5, 8, 0, tzinfo=timezone.utc)
    assert next_fire("0 9 * * *", "Europe/Paris", summer) == datetime(2026, 7, 6, 7, 0, tzinfo=timezone.utc)


@pytest.mark.parametrize("expression", ["* * * *", "* * * * * *", "61 * * * *", "not cron", "TZ=Nowhere/X * * * * *"])
def test_bad_cron_expressions_are_refused(queue: JobQueue, expression: str) -> None:
    from jobhandle import InvalidParameterError
    with pytest.raises(InvalidParameterError):
        queue.schedule("tick", expression)
    assert queue.schedules() == [] and queue.list() == []


def test_a_schedule_runs_through_a_worker_and_queues_its_next_fire(queue: JobQueue, registry) -> None:
    runs: list[str] = []

    @registry.handler("tick")
    def tick(ctx) -> None:
        runs.append(ctx.job_id)

    now = datetime.now(timezone.utc)
    # A first fire just ahead (as if its time were coming); a yearly expression, so that no other fire time
    # can pass meanwhile and be coalesced into it.
    schedule = Schedule(job_type="tick", cron_expression="0 0 1 1 *", created_at=now, next_fire_at=later(now, 0.3))
    queue.store.create_schedule(schedule, now)
    with queue.worker(1):
        wait_until(lambda: len(runs) == 1, 10, "the first fire's job to run")
        wait_until(lambda: len(jobs_of(queue.store, schedule)) == 2, 10, "the next fire's job to exist")
    first, upcoming = jobs_of(queue.store, schedule)
    assert get(queue.store, first.job_id).status is JobStatus.COMPLETED
    assert upcoming.status is JobStatus.SCHEDULED
    assert upcoming.run_at == next_fire("0 0 1 1 *", "UTC", first.scheduled_time)


def test_submit_with_a_cron_expression_returns_the_first_fires_job(queue: JobQueue) -> None:
    job = queue.submit("tick", {"n": 2}, cron_expression="CRON_TZ=Europe/Paris 0 9 * * *", priority="high")
    schedule = queue.get_schedule(job.schedule_id or "")
    assert (schedule.cron_expression, schedule.timezone, schedule.parameters) == ("0 9 * * *", "Europe/Paris", {"n": 2})
    assert job.status is JobStatus.SCHEDULED and job.run_at == schedule.next_fire_at and job.priority == 10
