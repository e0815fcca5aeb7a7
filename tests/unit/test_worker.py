"""Workers end to end through ``JobQueue.worker``: handlers, ctx, progress, cancellation, retries, failures,
shutdown and supervision. Runs on every store (through the ``queue`` fixture)."""

from __future__ import annotations

import asyncio
import threading
import time
from typing import Any

import pytest
from helpers import wait_until

from jobhandle import (
    HandlerRegistry,
    JobCancelled,
    JobContext,
    JobQueue,
    JobStatus,
    PermanentError,
    Retry,
)
from jobhandle.models import PROGRESS_HISTORY_LIMIT, Job

DEADLINE = 10.0
"""How long a test waits for something that normally takes milliseconds."""


def run(queue: JobQueue, job_type: str, parameters: dict[str, Any] | None = None, **options: Any) -> Job:
    """Submit one job, run a one-slot worker until the job is terminal, return it."""
    job = queue.submit(job_type, parameters, **options)
    with queue.worker(concurrency=1):
        return queue.wait(job.job_id, timeout=DEADLINE)


def run_marker(queue: JobQueue, registry: HandlerRegistry) -> None:
    """Run one more job through the same one-slot worker: when it is done, the slot has fully finished the
    job before it (including the store call that ends that job's attempt)."""
    if "marker" not in registry:
        registry.register("marker", lambda ctx: "marker")
    marker = queue.submit("marker")
    assert queue.wait(marker.job_id, timeout=DEADLINE).status is JobStatus.COMPLETED


# -- handlers and ctx ------------------------------------------------------------------------------------

def test_sync_handler(queue: JobQueue, registry: HandlerRegistry) -> None:
    @registry.handler("add")
    def add(ctx: JobContext, a: int, b: int = 0) -> dict[str, int]:
        return {"sum": a + b}

    done = run(queue, "add", {"a": 2, "b": 3})
    assert done.status is JobStatus.COMPLETED
    assert done.result == {"sum": 5}
    assert (done.progress, done.attempts, done.error) == (1.0, 1, None)
    assert done.started_at is not None and done.completed_at is not None
    assert done.started_at <= done.completed_at
    assert done.metrics.execution_time_seconds is not None and done.metrics.execution_time_seconds >= 0
    assert done.worker_id


def test_async_handler(queue: JobQueue, registry: HandlerRegistry) -> None:
    @registry.handler("double")
    async def double(ctx: JobContext, n: int) -> int:
        await asyncio.sleep(0)
        ctx.progress(0.5, "awaited")
        return n * 2

    done = run(queue, "double", {"n": 21})
    assert (done.status, done.result) == (JobStatus.COMPLETED, 42)


def test_ctx_fields(queue: JobQueue, registry: HandlerRegistry) -> None:
    seen: dict[str, Any] = {}

    @registry.handler("inspect")
    def inspect_ctx(ctx: JobContext, path: str, pages: list[int]) -> None:
        seen.update(job_id=ctx.job_id, attempt=ctx.attempt, user_id=ctx.user_id, parameters=ctx.parameters,
                    cancelled=ctx.cancelled)

    done = run(queue, "inspect", {"path": "a.pdf", "pages": [1, 2]}, user_id="alice")
    assert done.status is JobStatus.COMPLETED
    assert seen == {"job_id": done.job_id, "attempt": 1, "user_id": "alice",
                    "parameters": {"path": "a.pdf", "pages": [1, 2]}, "cancelled": False}


def test_attempt_counts_from_one_across_retries(queue: JobQueue, registry: HandlerRegistry) -> None:
    attempts: list[int] = []

    @registry.handler("second_time_lucky")
    def second_time_lucky(ctx: JobContext) -> str:
        attempts.append(ctx.attempt)
        if ctx.attempt == 1:
            raise ConnectionError("flaky network")
        return "ok"

    done = run(queue, "second_time_lucky", max_retries=1)
    assert (done.status, done.result, done.attempts) == (JobStatus.COMPLETED, "ok", 2)
    assert attempts == [1, 2]
    assert [e["error"] for e in done.error_history] == ["ConnectionError: flaky network"]


def test_slots_run_jobs_concurrently(queue: JobQueue, registry: HandlerRegistry) -> None:
    both_in = threading.Barrier(2, timeout=DEADLINE)

    @registry.handler("meet")
    def meet(ctx: JobContext) -> str:
        both_in.wait()  # only returns when two handlers run at the same time
        return "met"

    jobs = [queue.submit("meet", max_retries=0) for _ in range(2)]
    with queue.worker(concurrency=2):
        done = [queue.wait(j.job_id, timeout=DEADLINE) for j in jobs]
    assert [(j.status, j.result) for j in done] == [(JobStatus.COMPLETED, "met")] * 2


def record_claims(queue: JobQueue, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """From now on, the name of the thread of each call to the store's ``claim``, in order."""
    claims: list[str] = []
    claim = queue.store.claim

    def recording_claim(*args: Any, **kwargs: Any) -> list[Job]:
        claims.append(threading.current_thread().name)
        return claim(*args, **kwargs)

    monkeypatch.setattr(queue.store, "claim", recording_claim)
    return claims


def test_one_idle_slot_claims_for_the_worker_at_a_time(queue: JobQueue, registry: HandlerRegistry,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    """A change wakes the worker's idle watcher only, not every idle slot; the watch then passes to one other
    idle slot, which looks for more work at once."""
    registry.register("ping", lambda ctx: "pong")
    claims = record_claims(queue, monkeypatch)
    with queue.worker(concurrency=4):
        wait_until(lambda: claims, DEADLINE, "the first idle claim")  # some slot watches the store
        jobs = [queue.submit("ping") for _ in range(3)]  # several slots busy at once, then idle again
        done = [queue.wait(job.job_id, timeout=DEADLINE) for job in jobs]
        assert [j.result for j in done] == ["pong"] * 3
        claims.clear()
        job = queue.submit("ping")
        assert queue.wait(job.job_id, timeout=DEADLINE).result == "pong"
        assert len(set(claims)) <= 2, f"one change, claims by {sorted(set(claims))}"


def test_an_idle_worker_with_many_slots_stops_at_once(queue: JobQueue) -> None:
    worker = queue.worker(concurrency=4).start()
    wait_until(lambda: queue.workers(), DEADLINE, "the worker to register")
    started = time.monotonic()
    worker.stop()
    assert time.monotonic() - started < 1.0, "the idle slots, waiting for the watch or the store, saw the stop"


def test_worker_takes_higher_priority_first(queue: JobQueue, registry: HandlerRegistry) -> None:
    order: list[str] = []

    @registry.handler("record")
    def record(ctx: JobContext, name: str) -> None:
        order.append(name)

    jobs = [queue.submit("record", {"name": n}, priority=n) for n in ("low", "normal", "urgent", "high")]
    with queue.worker(concurrency=1):
        for job in jobs:
            queue.wait(job.job_id, timeout=DEADLINE)
    assert order == ["urgent", "high", "normal", "low"]


def test_idle_worker_runs_a_delayed_job_when_it_is_due(queue: JobQueue, registry: HandlerRegistry) -> None:
    registry.register("echo", lambda ctx: "on time")
    with queue.worker(concurrency=1):
        job = queue.submit("echo", delay_seconds=0.3)
        assert job.status is JobStatus.SCHEDULED
        # Well under the worker's idle safety-net recheck: the worker must wake at the due time.
        done = queue.wait(job.job_id, timeout=3)
    assert done.status is JobStatus.COMPLETED
    assert done.started_at is not None and done.scheduled_time is not None
    assert done.started_at >= done.scheduled_time


def test_running_worker_is_listed_with_its_job(queue: JobQueue, registry: HandlerRegistry) -> None:
    started, release = threading.Event(), threading.Event()

    @registry.handler("hold")
    def hold(ctx: JobContext) -> None:
        started.set()
        release.wait(DEADLINE)

    job = queue.submit("hold")
    with queue.worker(concurrency=2, name="tester") as worker:
        assert started.wait(DEADLINE)
        [listed] = queue.workers()
        assert (listed["worker_id"], listed["name"], listed["concurrency"]) == (worker.worker_id, "tester", 2)
        assert listed["current_jobs"] == [job.job_id]
        assert listed["healthy"] is True
        assert worker.running_jobs() == [job.job_id]
        release.set()
        queue.wait(job.job_id, timeout=DEADLINE)
    assert queue.workers() == []


# -- progress --------------------------------------------------------------------------------------------

def test_progress_is_throttled_and_the_last_report_lands(queue: JobQueue, registry: HandlerRegistry) -> None:
    timing: dict[str, float] = {}

    @registry.handler("busy")
    def busy(ctx: JobContext) -> None:
        started = time.monotonic()
        for i in range(1, 1001):
            ctx.progress(i / 1000 * 0.99, f"item {i}", items_processed=i, total_items=1000)
        timing["elapsed"] = time.monotonic() - started

    done = run(queue, "busy")
    writes = len(done.progress_history)
    allowed = 3 + timing["elapsed"] / queue.settings.progress_interval  # one per interval, plus edges
    assert 1 <= writes <= allowed, f"{writes} progress writes in {timing['elapsed']:.3f}s"
    assert writes < PROGRESS_HISTORY_LIMIT  # so the count above is not hidden by the history bound
    assert (done.metrics.items_processed, done.metrics.total_items) == (1000, 1000)
    assert done.progress_message == "item 1000"
    assert done.progress == 1.0


def test_a_held_back_report_is_written_while_the_handler_runs(queue: JobQueue,
                                                              registry: HandlerRegistry) -> None:
    reported, release = threading.Event(), threading.Event()

    @registry.handler("report_then_wait")
    def report_then_wait(ctx: JobContext) -> str:
        ctx.progress(0.1, "first", items_processed=1, total_items=3)
        ctx.progress(0.6, "second", items_processed=2, total_items=3)  # within the interval: held back
        reported.set()
        release.wait(DEADLINE)
        return "done"

    job = queue.submit("report_then_wait")
    with queue.worker(concurrency=1):
        assert reported.wait(DEADLINE)
        current = wait_until(lambda: (j := queue.get(job.job_id)).progress_message == "second" and j,
                             timeout=DEADLINE, message="the held-back progress report to be written")
        assert (current.status, current.progress, current.metrics.items_processed) == (JobStatus.RUNNING, 0.6, 2)
        release.set()
        assert queue.wait(job.job_id, timeout=DEADLINE).status is JobStatus.COMPLETED


# -- cancellation ----------------------------------------------------------------------------------------

def test_cancelling_a_running_job_stops_the_handler_and_discards_its_result(
        queue: JobQueue, registry: HandlerRegistry) -> None:
    started, saw_cancel = threading.Event(), threading.Event()

    @registry.handler("loop")
    def loop(ctx: JobContext) -> dict[str, bool]:
        started.set()
        deadline = time.monotonic() + DEADLINE
        while not ctx.cancelled and time.monotonic() < deadline:
            time.sleep(0.005)  # the handler's own work
        if ctx.cancelled:
            saw_cancel.set()
        return {"late": True}

    job = queue.submit("loop")
    with queue.worker(concurrency=1):
        assert started.wait(DEADLINE)
        queue.cancel(job.job_id)
        assert saw_cancel.wait(DEADLINE), "the handler never saw ctx.cancelled"
        run_marker(queue, registry)
    final = queue.get(job.job_id)
    assert final.status is JobStatus.CANCELLED
    assert final.result is None
    assert final.error_history == []


def test_check_cancelled_raises_inside_the_handler(queue: JobQueue, registry: HandlerRegistry) -> None:
    started, raised = threading.Event(), threading.Event()

    @registry.handler("checking")
    def checking(ctx: JobContext) -> str:
        started.set()
        deadline = time.monotonic() + DEADLINE
        try:
            while time.monotonic() < deadline:
                ctx.check_cancelled()
                time.sleep(0.005)  # the handler's own work
        except JobCancelled:
            raised.set()
            raise
        return "not cancelled"

    job = queue.submit("checking")
    with queue.worker(concurrency=1):
        assert started.wait(DEADLINE)
        queue.cancel(job.job_id, reason="user asked")
        assert raised.wait(DEADLINE), "ctx.check_cancelled() never raised"
        run_marker(queue, registry)
    final = queue.get(job.job_id)
    assert final.status is JobStatus.CANCELLED
    assert final.error_type is None and final.error_history == []


# -- failures and retries --------------------------------------------------------------------------------

def test_errors_retry_then_fail_keeping_every_attempts_error(queue: JobQueue, registry: HandlerRegistry) -> None:
    @registry.handler("always_fails")
    def always_fails(ctx: JobContext) -> None:
        raise ValueError(f"boom {ctx.attempt}")

    done = run(queue, "always_fails", max_retries=2)
    assert (done.status, done.attempts) == (JobStatus.FAILED, 3)
    assert (done.error, done.error_type) == ("ValueError: boom 3", "ValueError")
    assert [(e["attempt"], e["error"], e["error_type"]) for e in done.error_history] == [
        (1, "ValueError: boom 1", "ValueError"), (2, "ValueError: boom 2", "ValueError"),
        (3, "ValueError: boom 3", "ValueError")]
    assert done.result is None and done.completed_at is not None
    workers = {e["worker_id"] for e in done.error_history}
    assert len(workers) == 1 and all(workers), "each attempt names the worker that ran it (one here)"
    for entry in done.error_history:  # where it was raised, for the failure page
        assert entry["traceback"].startswith("Traceback (most recent call last):")
        assert "in always_fails" in entry["traceback"] and entry["traceback"].endswith(entry["error"])


def test_permanent_error_fails_without_retrying(queue: JobQueue, registry: HandlerRegistry) -> None:
    @registry.handler("corrupt")
    def corrupt(ctx: JobContext) -> None:
        raise PermanentError("file is corrupt")

    done = run(queue, "corrupt", max_retries=5)
    assert (done.status, done.attempts) == (JobStatus.FAILED, 1)
    assert (done.error, done.error_type) == ("PermanentError: file is corrupt", "PermanentError")


def test_retry_delay_asked_by_the_handler_is_honoured(queue: JobQueue, registry: HandlerRegistry) -> None:
    runs: list[float] = []

    @registry.handler("rate_limited")
    def rate_limited(ctx: JobContext) -> str:
        runs.append(time.monotonic())
        if ctx.attempt == 1:
            raise Retry(delay=0.3, message="slow down")
        return "second time"

    done = run(queue, "rate_limited", max_retries=1, retry_delay=1000)  # the backoff would wait ~1000s
    assert (done.status, done.result, done.attempts) == (JobStatus.COMPLETED, "second time", 2)
    assert done.error_history[0]["error_type"] == "Retry"
    assert runs[1] - runs[0] >= 0.25


def test_a_non_json_result_fails_with_a_clear_error(queue: JobQueue, registry: HandlerRegistry) -> None:
    @registry.handler("returns_object")
    def returns_object(ctx: JobContext) -> object:
        return object()

    done = run(queue, "returns_object", max_retries=0)
    assert done.status is JobStatus.FAILED
    assert done.result is None
    assert done.error is not None and "result" in done.error and "JSON" in done.error


def test_an_unknown_job_type_fails_with_unknown_handler_error(queue: JobQueue) -> None:
    done = run(queue, "nobody_handles_this", max_retries=0)
    assert done.status is JobStatus.FAILED
    assert done.error_type == "UnknownHandlerError"
    assert done.error is not None and "nobody_handles_this" in done.error


def test_parameters_that_no_longer_fit_the_handler_fail_the_job(queue: JobQueue,
                                                                registry: HandlerRegistry) -> None:
    job = queue.submit("late_registered", {"x": 1}, max_retries=0)  # no handler yet: not checked at submit

    @registry.handler("late_registered")
    def late_registered(ctx: JobContext, y: int) -> int:
        return y

    with queue.worker(concurrency=1):
        done = queue.wait(job.job_id, timeout=DEADLINE)
    assert done.status is JobStatus.FAILED
    assert done.error is not None and "late_registered" in done.error


# -- shutdown and supervision ----------------------------------------------------------------------------

def test_stop_hands_back_a_job_still_running_after_the_grace(queue: JobQueue, registry: HandlerRegistry) -> None:
    started, saw_cancel = threading.Event(), threading.Event()
    calls: list[int] = []

    @registry.handler("slow")
    def slow(ctx: JobContext) -> str:
        calls.append(ctx.attempt)
        if len(calls) > 1:
            return "finished by the next worker"
        started.set()
        deadline = time.monotonic() + DEADLINE
        while not ctx.cancelled and time.monotonic() < deadline:
            time.sleep(0.005)  # the handler's own work
        if ctx.cancelled:
            saw_cancel.set()
        return "too late"

    job = queue.submit("slow")
    worker = queue.worker(concurrency=1).start()
    assert started.wait(DEADLINE)
    began = time.monotonic()
    worker.stop(grace=0.2)
    assert time.monotonic() - began < DEADLINE / 2
    handed_back = queue.get(job.job_id)
    assert handed_back.status is JobStatus.PENDING
    assert handed_back.attempts == 0
    assert handed_back.worker_id is None
    assert saw_cancel.wait(DEADLINE), "the handler was not told to stop"
    assert queue.workers() == []

    with queue.worker(concurrency=1):
        done = queue.wait(job.job_id, timeout=DEADLINE)
    assert (done.status, done.result, done.attempts) == (JobStatus.COMPLETED, "finished by the next worker", 1)
    assert calls == [1, 1]


def test_stop_lets_a_job_finish_within_the_grace(queue: JobQueue, registry: HandlerRegistry) -> None:
    started = threading.Event()

    @registry.handler("short")
    def short(ctx: JobContext) -> str:
        started.set()
        time.sleep(0.2)  # the handler's own work, shorter than the grace
        return "finished"

    job = queue.submit("short")
    worker = queue.worker(concurrency=1).start()
    assert started.wait(DEADLINE)
    worker.stop(grace=DEADLINE)
    done = queue.get(job.job_id)
    assert (done.status, done.result) == (JobStatus.COMPLETED, "finished")


def test_a_worker_that_was_never_started_stops_quietly(queue: JobQueue) -> None:
    worker = queue.worker(concurrency=1)
    worker.stop()
    assert worker.wait_stopped(0)
    assert queue.workers() == []
    queue.stop()  # as JobQueue.close does for every worker it made


@pytest.mark.parametrize("primitive,loop", [("claim", "slot-0"), ("heartbeat", "monitor"),
                                            ("recover_expired", "maintenance")])
def test_a_failing_store_primitive_is_retried_and_shown_never_fatal(
        queue: JobQueue, registry: HandlerRegistry, caplog: pytest.LogCaptureFixture, primitive: str,
        loop: str) -> None:
    """A store primitive that raises what it does not document (a driver or script error) fails the loop that
    called it: logged with the primitive's name, started again after a pause, the worker degraded meanwhile,
    and once the store works again everything goes on. The worker never stops for it."""
    registry.register("echo", lambda ctx: "ran")
    failing = threading.Event()
    real = getattr(type(queue.store), primitive)

    def flaky(self: object, *args: object, **kwargs: object) -> object:
        if failing.is_set():
            raise RuntimeError(f"{primitive} exploded")
        return real(self, *args, **kwargs)

    store = queue.store
    store.__class__ = type("Flaky", (type(store),), {primitive: flaky})
    worker = queue.worker(concurrency=1)
    with worker:
        failing.set()
        health = wait_until(lambda: next((h for h in worker.health() if h.name == loop and h.failures >= 2), None),
                            DEADLINE, f"{loop} to fail twice")
        assert health.alive and f"store.{primitive} failed: RuntimeError: {primitive} exploded" in health.last_error
        assert worker.state().startswith("degraded (") and loop in worker.state()
        assert not worker.stopping and worker.failure is None
        assert any(f"store.{primitive} failed" in r.getMessage() and loop in r.getMessage() for r in caplog.records)
        failing.clear()
        job = queue.submit("echo")
        assert queue.wait(job.job_id, DEADLINE).status is JobStatus.COMPLETED
        wait_until(lambda: all(h.healthy for h in worker.health()), DEADLINE, "every loop to be healthy again")
        wait_until(lambda: queue.workers()[0]["state"] == "running", DEADLINE, "the registration to say running")


def test_an_idle_worker_does_not_poll_the_store(queue: JobQueue, monkeypatch: pytest.MonkeyPatch) -> None:
    """With nothing to do, a worker waits for changes: its slots look at the store once, then again only when
    something changed (here: the test's fast heartbeats) or the 5 s safety net runs out. A claim that found
    nothing must not wake the slot that made it (on Redis it once did: a busy loop at 60% of a core)."""
    claims = record_claims(queue, monkeypatch)
    with queue.worker(concurrency=2):
        wait_until(lambda: claims, DEADLINE, "the first idle claim")
        before = len(claims)
        threading.Event().wait(0.5)  # a quiet period to count in, not a wait for work
        assert len(claims) - before <= 10, f"{len(claims) - before} claims in 0.5 s of idling"
