"""Conformance: submitting jobs (Store.submit and JobQueue.submit/submit_many), on every store."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any

import pytest
from helpers import all_jobs, get, later, new_job, submit

from jobhandle import HandlerRegistry, InvalidParameterError, JobPriority, JobQueue, JobStatus
from jobhandle.models import utcnow
from jobhandle.stores import Store


def assert_utc(value: datetime | None) -> None:
    assert value is not None
    assert value.tzinfo is not None and value.utcoffset() == timedelta(0), f"{value!r} is not UTC"


def test_submitted_job_round_trips_every_field(store: Store) -> None:
    now = utcnow()
    created = datetime(2024, 2, 29, 23, 59, 58, 123456, tzinfo=timezone.utc)
    job = new_job(
        "resize", queue="images", priority=7, user_id="alice",
        parameters={"path": "a.png", "sizes": [1, 2.5], "nested": {"none": None, "ok": True}, "text": "é✓"},
        created_at=created, scheduled_time=later(now, -5), run_at=later(now, -5), max_retries=5,
        retry_delay=2.5, timeout_seconds=30.0, cron_expression="*/5 * * * *", schedule_id="sched-1",
        idempotency_key="key-1",
    )
    [stored] = store.submit([job], now)
    fetched = get(store, job.job_id)

    assert fetched.to_dict() == stored.to_dict()
    assert fetched.status is JobStatus.PENDING
    assert (fetched.job_type, fetched.queue, fetched.priority, fetched.user_id) == ("resize", "images", 7, "alice")
    assert fetched.parameters == job.parameters
    assert fetched.created_at == now, "the store stamps created_at with the submit time it is given"
    assert fetched.scheduled_time == later(now, -5)
    assert (fetched.max_retries, fetched.retry_delay, fetched.timeout_seconds) == (5, 2.5, 30.0)
    assert (fetched.cron_expression, fetched.schedule_id, fetched.idempotency_key) == \
        ("*/5 * * * *", "sched-1", "key-1")
    assert (fetched.attempts, fetched.progress, fetched.result, fetched.error) == (0, 0.0, None, None)
    assert fetched.progress_history == [] and fetched.error_history == []
    assert fetched.started_at is None and fetched.completed_at is None and fetched.worker_id is None
    assert fetched.seq > 0
    for value in (fetched.created_at, fetched.scheduled_time):
        assert_utc(value)


def test_initial_status_is_scheduled_only_when_run_at_is_after_now(store: Store) -> None:
    now = utcnow()
    future = submit(store, now, scheduled_time=later(now, 60), run_at=later(now, 60))
    exactly_now = submit(store, now, scheduled_time=now, run_at=now)
    past = submit(store, now, scheduled_time=later(now, -60), run_at=later(now, -60))
    immediate = submit(store, now)

    assert future.status is JobStatus.SCHEDULED
    assert get(store, future.job_id).status is JobStatus.SCHEDULED
    assert get(store, future.job_id).run_at == later(now, 60)
    for job in (exactly_now, past, immediate):
        assert job.status is JobStatus.PENDING
        assert get(store, job.job_id).status is JobStatus.PENDING


def test_queue_submit_defaults(queue: JobQueue) -> None:
    job = queue.submit("echo")
    assert job.status is JobStatus.PENDING
    assert (job.queue, job.user_id, job.priority, job.parameters) == ("default", "default_user", 0, {})
    assert (job.max_retries, job.retry_delay) == (queue.settings.max_retries, queue.settings.retry_delay)
    assert queue.get(job.job_id).to_dict() == job.to_dict()
    assert_utc(job.created_at)


def test_naive_scheduled_time_is_taken_as_utc(queue: JobQueue) -> None:
    naive = datetime.now(timezone.utc).replace(tzinfo=None, microsecond=0) + timedelta(hours=1)
    job = queue.submit("echo", scheduled_time=naive)
    stored = queue.get(job.job_id)
    assert stored.status is JobStatus.SCHEDULED
    assert stored.scheduled_time == naive.replace(tzinfo=timezone.utc)
    assert_utc(stored.scheduled_time)


def test_offset_and_iso_text_scheduled_times_are_converted_to_utc(queue: JobQueue) -> None:
    when = datetime.now(timezone.utc).replace(microsecond=0) + timedelta(hours=2)
    plus_two = when.astimezone(timezone(timedelta(hours=2)))
    by_offset = queue.get(queue.submit("echo", scheduled_time=plus_two).job_id)
    by_text = queue.get(queue.submit("echo", scheduled_time=when.strftime("%Y-%m-%dT%H:%M:%SZ")).job_id)
    for job in (by_offset, by_text):
        assert job.scheduled_time == when
        assert_utc(job.scheduled_time)


def test_delay_seconds_schedules_and_past_time_is_pending(queue: JobQueue) -> None:
    before = utcnow()
    delayed = queue.submit("echo", delay_seconds=60)
    assert delayed.status is JobStatus.SCHEDULED
    assert delayed.run_at is not None
    assert before + timedelta(seconds=60) <= delayed.run_at <= utcnow() + timedelta(seconds=60)
    past = queue.submit("echo", scheduled_time=utcnow() - timedelta(seconds=1))
    assert queue.get(past.job_id).status is JobStatus.PENDING


@pytest.mark.parametrize(("given", "expected"), [
    ("high", 10), ("HIGH", 10), ("Urgent", 20), ("low", -10), (" normal ", 0), ("7", 7), (5, 5), (-3, -3),
    (JobPriority.HIGH, 10), (None, 0),
])
def test_priority_by_name_in_any_case_or_integer(queue: JobQueue, given: Any, expected: int) -> None:
    job = queue.submit("echo", priority=given)
    assert queue.get(job.job_id).priority == expected


@pytest.mark.parametrize("parameters", [
    {"when": datetime(2024, 1, 1)},
    {"thing": object()},
    {"number": float("nan")},
    {"number": float("inf")},
    {"items": {1, 2}},
    {"raw": b"bytes"},
], ids=["datetime", "object", "nan", "inf", "set", "bytes"])
def test_non_json_parameters_are_rejected_at_submit(queue: JobQueue, parameters: dict[str, Any]) -> None:
    with pytest.raises(InvalidParameterError, match="JSON"):
        queue.submit("echo", parameters)
    assert all_jobs(queue.store) == []


@pytest.mark.parametrize("parameters", [{1: "a"}, {"outer": [{"ok": 1}, {2.5: "b"}]}, {"t": {(1, 2): "c"}}],
                         ids=["top-level", "nested", "tuple"])
def test_parameters_with_non_string_keys_are_rejected_at_submit(queue: JobQueue,
                                                               parameters: dict[Any, Any]) -> None:
    """A JSON object's keys are strings: {1: 'a'} would come back as {'1': 'a'}, a different value."""
    with pytest.raises(InvalidParameterError, match="JSON"):
        queue.submit("echo", parameters)
    assert all_jobs(queue.store) == []


def test_parameters_not_fitting_a_registered_handler_are_rejected(queue: JobQueue,
                                                                  registry: HandlerRegistry) -> None:
    @registry.handler("add")
    def add(ctx: Any, a: int, b: int = 0) -> int:
        return a + b

    with pytest.raises(InvalidParameterError, match="add") as unexpected:
        queue.submit("add", {"a": 1, "c": 3})
    assert "c" in unexpected.value.message
    with pytest.raises(InvalidParameterError, match="'a'"):
        queue.submit("add", {"b": 2})
    assert all_jobs(queue.store) == []
    assert queue.submit("add", {"a": 1}).status is JobStatus.PENDING
    assert queue.submit("not_registered", {"anything": 1}).status is JobStatus.PENDING


def test_idempotency_key_returns_the_existing_job(queue: JobQueue) -> None:
    first = queue.submit("echo", {"n": 1}, idempotency_key="once")
    second = queue.submit("echo", {"n": 2}, idempotency_key="once")
    assert second.job_id == first.job_id
    assert second.parameters == {"n": 1}
    assert [j.job_id for j in all_jobs(queue.store)] == [first.job_id]
    assert queue.submit("echo", idempotency_key="other").job_id != first.job_id


def test_idempotency_key_returns_the_existing_job_in_any_status(queue: JobQueue) -> None:
    first = queue.submit("echo", idempotency_key="once")
    queue.cancel(first.job_id)
    again = queue.submit("echo", idempotency_key="once")
    assert again.job_id == first.job_id
    assert again.status is JobStatus.CANCELLED
    assert len(all_jobs(queue.store)) == 1


def test_idempotency_key_repeated_within_one_batch_stores_one_job(queue: JobQueue) -> None:
    jobs = queue.submit_many([{"job_type": "echo", "idempotency_key": "k"},
                              {"job_type": "echo", "idempotency_key": "k"}])
    assert len(jobs) == 2
    assert jobs[0].job_id == jobs[1].job_id
    assert len(all_jobs(queue.store)) == 1


def test_submit_many_stores_all_in_order(queue: JobQueue) -> None:
    jobs = queue.submit_many([{"job_type": "a", "parameters": {"i": i}, "priority": "high"} for i in range(5)])
    assert [j.parameters["i"] for j in jobs] == list(range(5))
    assert len({j.job_id for j in jobs}) == 5
    assert all(j.status is JobStatus.PENDING and j.priority == 10 for j in jobs)
    assert {j.job_id for j in all_jobs(queue.store)} == {j.job_id for j in jobs}
    assert queue.submit_many([]) == []


@pytest.mark.parametrize("bad", [
    {"job_type": "echo", "parameters": {"x": object()}},
    {"job_type": "echo", "priority": "extreme"},
    {"job_type": "echo", "surprise": 1},
    {"parameters": {}},
    "echo",
], ids=["non-json", "bad-priority", "unknown-option", "no-job-type", "not-a-mapping"])
def test_submit_many_is_all_or_nothing_on_bad_input(queue: JobQueue, bad: Any) -> None:
    good = {"job_type": "echo", "parameters": {"ok": True}}
    with pytest.raises(InvalidParameterError, match="job 2"):
        queue.submit_many([good, good, bad])
    assert all_jobs(queue.store) == []
    assert queue.store.counts().by_status == {}


def test_store_submit_is_atomic(store: Store) -> None:
    """A batch that cannot be stored as a whole (here: a duplicate job id) stores none of its jobs."""
    now = utcnow()
    existing = submit(store, now)
    fresh, clash = new_job(), new_job(job_id=existing.job_id)
    with pytest.raises(Exception):  # noqa: B017 - the contract is "none stored", not the error's type
        store.submit([fresh, clash], now)
    assert store.get(fresh.job_id) is None
    assert [j.job_id for j in all_jobs(store)] == [existing.job_id]


def test_idempotency_keys_are_per_user(queue: JobQueue) -> None:
    """One user's key neither blocks another user's submit nor tells that user the key exists."""
    alice = queue.submit("echo", {"n": 1}, user_id="alice", idempotency_key="order-1")
    bob = queue.submit("echo", {"n": 2}, user_id="bob", idempotency_key="order-1")
    assert bob.job_id != alice.job_id and bob.user_id == "bob" and bob.parameters == {"n": 2}
    assert queue.submit("echo", user_id="alice", idempotency_key="order-1").job_id == alice.job_id
    assert queue.submit("echo", user_id="bob", idempotency_key="order-1").job_id == bob.job_id
    batch = queue.submit_many([{"job_type": "echo", "user_id": "carol", "idempotency_key": "order-1"},
                               {"job_type": "echo", "user_id": "alice", "idempotency_key": "order-1"}])
    assert batch[0].user_id == "carol" and batch[0].job_id not in (alice.job_id, bob.job_id)
    assert batch[1].job_id == alice.job_id
    assert len(all_jobs(queue.store)) == 3
