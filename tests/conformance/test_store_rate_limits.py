"""Token buckets in the store (ctx.rate_limit): shared by every worker, refilled with time."""

from __future__ import annotations

import threading
import time
from datetime import datetime, timezone
from pathlib import Path

import pytest
from helpers import later

from jobhandle import HandlerRegistry, JobContext, JobQueue, JobStatus, Settings
from jobhandle.models import take_token
from jobhandle.stores import Store

T0 = datetime(2026, 1, 5, 9, 0, tzinfo=timezone.utc)


def test_take_token_refills_with_time_up_to_the_burst() -> None:
    assert take_token(2.0, 0.0, 0.0, 1.0, 2.0) == (1.0, 0.0)
    tokens, wait = take_token(0.25, 0.0, 0.0, 2.0, 2.0)
    assert tokens == 0.25 and wait == pytest.approx(0.375)
    assert take_token(0.0, 0.0, 100.0, 1.0, 3.0) == (2.0, 0.0), "refill stops at the burst"


def test_a_new_bucket_allows_its_burst_then_paces_calls(store: Store) -> None:
    per_second, burst = 2.0, 3.0
    assert [store.take_token("api", per_second, burst, T0) for _ in range(3)] == [0.0, 0.0, 0.0]
    wait = store.take_token("api", per_second, burst, T0)
    assert wait == pytest.approx(0.5)
    assert store.take_token("api", per_second, burst, later(T0, 0.25)) == pytest.approx(0.25)
    assert store.take_token("api", per_second, burst, later(T0, 0.5)) == 0.0
    assert store.take_token("other", per_second, burst, later(T0, 0.5)) == 0.0, "keys are independent"


def test_workers_on_separate_stores_share_one_limit(tmp_path: Path) -> None:
    calls: list[float] = []
    lock = threading.Lock()
    registry = HandlerRegistry()

    @registry.handler("call_api")
    def call_api(ctx: JobContext, n: int) -> None:
        for _ in range(n):
            ctx.rate_limit("partner-api", per_minute=600)  # 10 a second, no burst
            with lock:
                calls.append(time.monotonic())

    url = f"sqlite:///{tmp_path}/jobs.db"
    settings = Settings(heartbeat_interval=0.2, worker_timeout=5)
    queues = [JobQueue(url, registry=registry, settings=settings) for _ in range(2)]
    try:
        jobs = [queues[0].submit("call_api", {"n": 6}) for _ in range(4)]
        with queues[0].worker(2), queues[1].worker(2):
            for job in jobs:
                assert queues[0].wait(job.job_id, timeout=30).status is JobStatus.COMPLETED
    finally:
        for q in queues:
            q.close()
    calls.sort()
    assert len(calls) == 24
    # 10 a second: any 11 consecutive calls span at least about a second (a little slack for clocks).
    assert min(calls[i + 10] - calls[i] for i in range(len(calls) - 10)) >= 0.95


def test_a_bad_limit_is_refused(queue: JobQueue, registry: HandlerRegistry) -> None:
    @registry.handler("bad_limit")
    def bad_limit(ctx: JobContext) -> None:
        ctx.rate_limit("x", per_minute=0)

    job = queue.submit("bad_limit", max_retries=0)
    with queue.worker(1):
        done = queue.wait(job.job_id, timeout=10)
    assert done.status is JobStatus.FAILED and done.error_type == "InvalidParameterError"
    assert "per_minute must be a positive number" in (done.error or "")
