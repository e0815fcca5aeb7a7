"""Shared test helpers. Tests wait on conditions with deadlines, never on fixed sleeps: ``wait_until`` is the
one place that polls."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from typing import Any, TypeVar

from jobhandle.models import Job
from jobhandle.stores import JobQuery, Store
from jobhandle.stores.base import ClaimRequest

T = TypeVar("T")

POLL_SECONDS = 0.01


def wait_until(predicate: Callable[[], T], timeout: float = 5.0, message: str = "condition") -> T:
    """Return the first truthy value of ``predicate()``; fail the test when none comes within ``timeout``.

    Polling with small sleeps is acceptable here only: it is bounded by a deadline and raises on it.
    """
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for: {message}")
        time.sleep(POLL_SECONDS)


# -- building blocks for tests of the store primitives ------------------------------------------------------

def new_job(job_type: str = "echo", **fields: Any) -> Job:
    """A Job as JobQueue would build it (store tests hand these to ``store.submit`` directly)."""
    return Job(job_type=job_type, **fields)


def submit(store: Store, now: datetime, job_type: str = "echo", **fields: Any) -> Job:
    """Submit one new job at ``now`` and return it as stored."""
    [job] = store.submit([new_job(job_type, **fields)], now)
    return job


def claim_one(store: Store, now: datetime, worker_id: str = "w1", queues: Sequence[str] = ("default",),
              lease: float = 30.0) -> Job:
    """Claim exactly one job (the test fails when there is none)."""
    jobs = store.claim(ClaimRequest(worker_id, queues, 1, lease), now)
    assert len(jobs) == 1, f"expected one claimable job, got {len(jobs)}"
    return jobs[0]


def get(store: Store, job_id: str) -> Job:
    job = store.get(job_id)
    assert job is not None, f"job {job_id} vanished"
    return job


def all_jobs(store: Store) -> list[Job]:
    return store.list_jobs(JobQuery(limit=100_000))


def later(now: datetime, seconds: float) -> datetime:
    return now + timedelta(seconds=seconds)


def run_job(queue: Any, job_type: str, parameters: dict[str, object], timeout: float = 30) -> Job:
    """Submit one job to ``queue`` (a JobQueue) and run it with a one-slot worker until it ends."""
    job = queue.submit(job_type, parameters)
    with queue.worker(concurrency=1):
        return queue.wait(job.job_id, timeout=timeout)
