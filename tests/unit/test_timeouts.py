"""timeout_seconds in thread mode: the attempt ends at the deadline, the handler is told to stop."""

from __future__ import annotations

import asyncio
import threading
import time

from helpers import wait_until

from jobhandle import HandlerRegistry, JobContext, JobQueue, JobStatus


def test_a_job_past_its_timeout_fails_and_its_handler_is_told_to_stop(queue: JobQueue,
                                                                    registry: HandlerRegistry) -> None:
    saw_cancel = threading.Event()

    @registry.handler("forever")
    def forever(ctx: JobContext) -> str:
        while not ctx.cancelled:
            time.sleep(0.01)
        saw_cancel.set()
        return "late result"

    job = queue.submit("forever", timeout_seconds=0.3, max_retries=0)
    with queue.worker(1):
        done = queue.wait(job.job_id, timeout=10)
        assert saw_cancel.wait(5), "the handler was told to stop"
        wait_until(lambda: not queue.workers()[0]["current_jobs"], 5, "the slot to be free again")
    assert done.status is JobStatus.FAILED
    assert done.error_type == "TimeLimitExceeded" and "timeout of 0.3s" in (done.error or "")
    elapsed = (done.completed_at - done.started_at).total_seconds()
    assert 0.3 <= elapsed < 3, elapsed
    assert queue.get(job.job_id).result is None, "the late result was discarded"


def test_a_timed_out_attempt_is_retried_by_the_retry_policy(queue: JobQueue, registry: HandlerRegistry) -> None:
    @registry.handler("slow_then_fast")
    def slow_then_fast(ctx: JobContext) -> int:
        while ctx.attempt == 1 and not ctx.cancelled:
            time.sleep(0.01)
        return ctx.attempt

    job = queue.submit("slow_then_fast", timeout_seconds=0.3, max_retries=1, retry_delay=0)
    with queue.worker(2):
        done = queue.wait(job.job_id, timeout=10)
    assert done.status is JobStatus.COMPLETED and done.result == 2
    assert [e["error_type"] for e in done.error_history] == ["TimeLimitExceeded"]


def test_an_async_handler_past_its_timeout_is_stopped_too(queue: JobQueue, registry: HandlerRegistry) -> None:
    @registry.handler("async_forever")
    async def async_forever(ctx: JobContext) -> None:
        while True:
            ctx.check_cancelled()
            await asyncio.sleep(0.01)

    job = queue.submit("async_forever", timeout_seconds=0.3, max_retries=0)
    with queue.worker(1):
        done = queue.wait(job.job_id, timeout=10)
    assert done.status is JobStatus.FAILED and done.error_type == "TimeLimitExceeded"


def test_a_job_within_its_timeout_is_untouched(queue: JobQueue, registry: HandlerRegistry) -> None:
    @registry.handler("quick")
    def quick(ctx: JobContext) -> str:
        return "ok"

    job = queue.submit("quick", timeout_seconds=5)
    with queue.worker(1):
        done = queue.wait(job.job_id, timeout=10)
    assert done.status is JobStatus.COMPLETED and done.result == "ok" and done.error_history == []
