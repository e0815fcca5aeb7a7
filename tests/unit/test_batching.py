"""Claimed batches never hold jobs back: a long job does not delay the jobs claimed with it while another
slot is free, and jobs a busy worker cannot start soon go back to the store for other workers."""

from __future__ import annotations

import threading

from jobhandle import HandlerRegistry, JobContext, JobQueue, JobStatus


def handlers(registry: HandlerRegistry) -> threading.Event:
    gate = threading.Event()

    @registry.handler("quick")
    def quick(ctx: JobContext) -> str:
        return "quick"

    @registry.handler("long")
    def long(ctx: JobContext) -> str:
        gate.wait(20)
        return "long"

    return gate


def test_jobs_claimed_with_a_long_job_run_on_another_free_slot(queue: JobQueue, registry: HandlerRegistry) -> None:
    gate = handlers(registry)
    jobs = queue.submit_many([{"job_type": "quick"}] * 3 + [{"job_type": "long"}] + [{"job_type": "quick"}] * 6)
    long_job, after = jobs[3], jobs[4:]
    try:
        with queue.worker(2):
            for job in after:  # while the long job still blocks one slot
                assert queue.wait(job.job_id, timeout=5).status is JobStatus.COMPLETED
            assert queue.get(long_job.job_id).status is JobStatus.RUNNING
            gate.set()
            assert queue.wait(long_job.job_id, timeout=10).status is JobStatus.COMPLETED
    finally:
        gate.set()


def test_a_busy_worker_gives_back_jobs_it_cannot_start(queue: JobQueue, registry: HandlerRegistry) -> None:
    gate = handlers(registry)
    jobs = queue.submit_many([{"job_type": "quick"}] * 2 + [{"job_type": "long"}] + [{"job_type": "quick"}] * 4)
    long_job, after = jobs[2], jobs[3:]
    try:
        with queue.worker(1, name="busy"):
            while queue.get(long_job.job_id).status is not JobStatus.RUNNING:
                queue.store.wait_for_change(queue.store.change_version, 0.1)
            with queue.worker(1, name="helper"):  # the busy worker's only slot is taken by the long job
                done = [queue.wait(job.job_id, timeout=10) for job in after]
            assert all(d.status is JobStatus.COMPLETED for d in done)
            assert all(d.attempts == 1 for d in done), "given back without counting an attempt"
            assert all(d.worker_id.startswith("helper-") for d in done if d.worker_id), \
                "the other worker ran them"
            gate.set()
    finally:
        gate.set()
