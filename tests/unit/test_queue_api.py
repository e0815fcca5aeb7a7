"""JobQueue's input validation: every bad input is an InvalidParameterError that names the problem, and a
rejected call stores nothing."""

from __future__ import annotations

import gc
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from helpers import all_jobs

from jobhandle import (
    InvalidParameterError,
    JobNotFoundError,
    JobQueue,
    JobStatus,
    StoreUnavailableError,
    StoreURLError,
)


@pytest.fixture
def nothing_stored(queue: JobQueue) -> Iterator[None]:
    """For tests that only make rejected calls: afterwards the store must still be empty."""
    yield
    assert all_jobs(queue.store) == []
    assert queue.store.counts().by_status == {}
    assert queue.store.last_seq() == 0


@pytest.mark.usefixtures("nothing_stored")
@pytest.mark.parametrize(("kwargs", "named"), [
    ({"job_type": ""}, "job_type"),
    ({"job_type": "   "}, "job_type"),
    ({"job_type": None}, "job_type"),
    ({"job_type": 5}, "job_type"),
    ({"parameters": [1, 2]}, "parameters"),
    ({"parameters": "a=1"}, "parameters"),
    ({"parameters": {"x": object()}}, "JSON"),
    ({"parameters": {"x": float("nan")}}, "JSON"),
    ({"priority": "extreme"}, "extreme"),
    ({"priority": True}, "priority"),
    ({"priority": 1.5}, "1.5"),
    ({"user_id": ""}, "user_id"),
    ({"user_id": 42}, "user_id"),
    ({"queue": ""}, "queue"),
    ({"queue": ["a"]}, "queue"),
    ({"scheduled_time": "next tuesday"}, "next tuesday"),
    ({"scheduled_time": 1700000000}, "datetime"),
    ({"scheduled_time": "2030-01-01T00:00:00Z", "delay_seconds": 5}, "not both"),
    ({"delay_seconds": -1}, "delay_seconds"),
    ({"delay_seconds": "5"}, "delay_seconds"),
    ({"delay_seconds": True}, "delay_seconds"),
    ({"delay_seconds": float("nan")}, "delay_seconds"),
    ({"max_retries": -1}, "max_retries"),
    ({"max_retries": 1.5}, "max_retries"),
    ({"max_retries": True}, "max_retries"),
    ({"retry_delay": -0.5}, "retry_delay"),
    ({"retry_delay": "soon"}, "retry_delay"),
    ({"timeout_seconds": 0}, "timeout_seconds"),
    ({"timeout_seconds": -10}, "timeout_seconds"),
    ({"idempotency_key": ""}, "idempotency_key"),
    ({"idempotency_key": 7}, "idempotency_key"),
], ids=lambda v: v if isinstance(v, str) else None)
def test_bad_submit_input(queue: JobQueue, kwargs: dict[str, Any], named: str) -> None:
    args = {"job_type": "echo", **kwargs}
    with pytest.raises(InvalidParameterError) as error:
        queue.submit(args.pop("job_type"), **args)
    assert named in error.value.message
    assert error.value.to_dict()["error"] == "InvalidParameterError"


@pytest.mark.usefixtures("nothing_stored")
def test_bad_input_in_submit_many_names_the_item(queue: JobQueue) -> None:
    good = {"job_type": "echo"}
    cases = [([good, "echo"], "job 1"), ([good, good, {"parameters": {}}], "job 2"),
             ([{"job_type": "echo", "retries": 3}], "retries"), ([good, {"job_type": "echo", "max_retries": -1}],
                                                                 "job 1: max_retries")]
    for jobs, named in cases:
        with pytest.raises(InvalidParameterError) as error:
            queue.submit_many(jobs)
        assert named in error.value.message


@pytest.mark.usefixtures("nothing_stored")
def test_a_non_json_parameter_in_submit_many_names_the_item_and_the_value(queue: JobQueue) -> None:
    jobs = [{"job_type": "echo", "parameters": {"i": i}} for i in range(3000)]  # large: the collector is paused
    jobs[1234] = {"job_type": "echo", "parameters": {"when": {"a"}}}
    with pytest.raises(InvalidParameterError) as error:
        queue.submit_many(jobs)
    assert error.value.message == ("job 1234: parameters must be JSON-serialisable: {'a'} (of type set) has no "
                                   "JSON form")


def test_submit_many_returns_the_stored_jobs_in_order(queue: JobQueue) -> None:
    later = {"job_type": "echo", "parameters": {"n": 1}, "delay_seconds": 60, "user_id": "bob"}
    jobs = queue.submit_many([{"job_type": "echo"}, later, {"job_type": "echo", "idempotency_key": "k"}] * 700)
    assert len(jobs) == 2100 and len({j.job_id for j in jobs}) == 1401, "the idempotency key stored one job"
    assert [j.status for j in jobs[:3]] == [JobStatus.PENDING, JobStatus.SCHEDULED, JobStatus.PENDING]
    for job in jobs[:3]:
        assert queue.get(job.job_id) == job, "what submit_many returns is what the store holds"
    assert gc.isenabled()


@pytest.mark.usefixtures("nothing_stored")
@pytest.mark.parametrize("job_id", ["", "abc", "12345678", "not-a-uuid-at-all", "0000-0000"])
def test_non_uuid_job_ids_are_rejected(queue: JobQueue, job_id: str) -> None:
    for call in (queue.get, queue.cancel, queue.restart):
        with pytest.raises(InvalidParameterError, match="UUID"):
            call(job_id)
    with pytest.raises(InvalidParameterError, match="UUID"):
        queue.wait(job_id, timeout=0)


def test_unknown_job_ids_are_not_found(queue: JobQueue) -> None:
    missing = "00000000-0000-4000-8000-000000000000"
    for call in (queue.get, queue.cancel, queue.restart):
        with pytest.raises(JobNotFoundError) as error:
            call(missing)
        assert error.value.context["job_id"] == missing
        assert missing in error.value.message


def test_job_ids_are_accepted_in_any_uuid_spelling(queue: JobQueue) -> None:
    job = queue.submit("echo")
    assert queue.get(job.job_id.upper()).job_id == job.job_id
    assert queue.get(job.job_id.replace("-", "")).job_id == job.job_id


@pytest.mark.usefixtures("nothing_stored")
@pytest.mark.parametrize(("kwargs", "named"), [
    ({"status": "finished"}, "finished"),
    ({"status": ["pending", "nope"]}, "nope"),
    ({"sort": "name"}, "name"),
    ({"sort": "--created_at"}, "created_at"),
    ({"limit": 0}, "limit"),
    ({"limit": 10001}, "limit"),
    ({"limit": True}, "limit"),
    ({"limit": "10"}, "limit"),
    ({"offset": -1}, "offset"),
    ({"offset": 1.5}, "offset"),
    ({"created_after": "yesterday"}, "yesterday"),
    ({"created_before": "2024-02-30"}, "2024-02-30"),
], ids=lambda v: v if isinstance(v, str) else None)
def test_bad_list_input(queue: JobQueue, kwargs: dict[str, Any], named: str) -> None:
    with pytest.raises(InvalidParameterError) as error:
        queue.list(**kwargs)
    assert named in error.value.message


@pytest.mark.usefixtures("nothing_stored")
@pytest.mark.parametrize("days", [-1, "7", None, float("nan")])
def test_bad_cleanup_age(queue: JobQueue, days: Any) -> None:
    with pytest.raises(InvalidParameterError, match="days_old"):
        queue.cleanup_old_jobs(days_old=days)


@pytest.mark.usefixtures("nothing_stored")
@pytest.mark.parametrize(("kwargs", "named"), [
    ({"concurrency": 0}, "concurrency"), ({"concurrency": -2}, "concurrency"), ({"queues": []}, "queue"),
])
def test_bad_worker_options(queue: JobQueue, kwargs: dict[str, Any], named: str) -> None:
    with pytest.raises(InvalidParameterError, match=named):
        queue.worker(**kwargs)


@pytest.mark.parametrize("url", ["bogus://x", "postgres://db/jobs", "sqlite://", "sqlite:///", "redis://",
                                 "redis://127.0.0.1:6379/0?prefix=a{b}", "redis://127.0.0.1:6379/0?prefix=",
                                 "jobs.db"])
def test_bad_store_urls(url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    with pytest.raises(StoreURLError) as error:
        JobQueue(url)
    assert url in error.value.message or "sqlite:///" in error.value.message


def test_an_unreachable_redis_is_a_clear_error() -> None:
    with pytest.raises(StoreUnavailableError) as error:
        JobQueue("redis://127.0.0.1:1/0")
    assert "the Redis server at redis://127.0.0.1:1/0 does not answer" in error.value.message


def test_a_valid_submit_is_stored_as_given(queue: JobQueue) -> None:
    job = queue.submit("echo", {"a": 1}, priority="urgent", user_id="ann", queue="q1", max_retries=0,
                       retry_delay=1.5, timeout_seconds=9, idempotency_key="k")
    stored = queue.get(job.job_id)
    assert (stored.status, stored.priority, stored.user_id, stored.queue) == (JobStatus.PENDING, 20, "ann", "q1")
    assert (stored.max_retries, stored.retry_delay, stored.timeout_seconds) == (0, 1.5, 9.0)
    assert (stored.parameters, stored.idempotency_key) == ({"a": 1}, "k")
