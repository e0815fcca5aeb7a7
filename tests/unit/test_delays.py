"""Delayed jobs start within 100 ms of being due when a worker is free: workers sleep until the next due
time (or a change), never on a coarse poll."""

from __future__ import annotations

from jobhandle import HandlerRegistry, JobContext, JobQueue, JobStatus


def test_delayed_jobs_start_within_100ms_of_their_time(queue: JobQueue, registry: HandlerRegistry) -> None:
    @registry.handler("on_time")
    def on_time(ctx: JobContext) -> None:
        return None

    with queue.worker(2):
        jobs = [queue.submit("on_time", delay_seconds=0.3 + 0.1 * i) for i in range(5)]
        assert all(j.status is JobStatus.SCHEDULED for j in jobs)
        done = [queue.wait(j.job_id, timeout=10) for j in jobs]
    lateness = [(d.started_at - d.scheduled_time).total_seconds() for d in done]
    assert all(0 <= late < 0.1 for late in lateness), lateness
