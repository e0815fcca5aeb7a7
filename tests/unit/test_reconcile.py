"""A worker reconciles with the store: a job the store has running under a live worker that the worker neither
runs, buffers nor holds an outcome for (a claim applied whose answer was lost) goes back to pending, instead of
having its lease renewed by every heartbeat forever. Faults are injected for real: calls applied whose answers
are lost, and a proxy cutting Redis connections in the middle of replies."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from faults import CuttingProxy, lose_answers
from helpers import wait_until
from store_urls import private_redis_server

from jobhandle import HandlerRegistry, JobQueue, JobStatus, Settings
from jobhandle.models import utcnow
from jobhandle.stores import JobQuery
from jobhandle.stores.base import ClaimRequest

DEADLINE = 60.0


def test_a_job_claimed_for_a_worker_that_never_heard_of_it_is_handed_back_and_runs(
        queue: JobQueue, registry: HandlerRegistry) -> None:
    registry.register("echo", lambda ctx: "ran")
    job = queue.submit("echo")
    worker = queue.worker(concurrency=1)
    request = ClaimRequest(worker.worker_id, ["default"], 1, queue.settings.worker_timeout)
    [claimed] = queue.store.claim(request, utcnow())
    assert claimed.job_id == job.job_id  # applied; the answer is thrown away, as a lost reply is
    with worker:
        done = queue.wait(job.job_id, DEADLINE)
    assert done.status is JobStatus.COMPLETED and done.result == "ran"
    assert done.attempts == 1, "the hand-back does not count an attempt: it never ran"


def test_claims_and_writes_whose_answers_are_lost_leave_no_job_running(queue: JobQueue,
                                                                       registry: HandlerRegistry) -> None:
    registry.register("echo", lambda ctx, n: n)
    lost = lose_answers(queue.store, ["claim", "finish_many_and_claim"], every=4)
    jobs = queue.submit_many([{"job_type": "echo", "parameters": {"n": i}} for i in range(20)])
    with queue.worker(concurrency=2):
        for job in jobs:
            assert queue.wait(job.job_id, DEADLINE).status is JobStatus.COMPLETED
    assert lost() >= 2, "answers were lost"
    assert queue.store.counts().by_status.get("running", 0) == 0


def test_a_worker_behind_a_proxy_that_cuts_redis_replies_loses_and_strands_no_job(
        tmp_path: Path, registry: HandlerRegistry, settings: Settings) -> None:
    """One in 30 reply chunks from Redis never arrives (the connection is cut after the server applied the
    command). Before reconciliation, a run like this left jobs running for good."""
    binary = shutil.which("redis-server")
    if binary is None:
        pytest.skip("redis-server is not installed")
    registry.register("echo", lambda ctx, n: n)
    with private_redis_server(binary, tmp_path) as (url, port, _):
        proxy = CuttingProxy(port, every=30)
        submitter = JobQueue(url, registry=registry, settings=settings)
        behind = JobQueue(f"redis://127.0.0.1:{proxy.port}/0", registry=registry, settings=settings)
        try:
            jobs = submitter.submit_many([{"job_type": "echo", "parameters": {"n": i}} for i in range(300)])
            with behind.worker(concurrency=2):
                wait_until(lambda: submitter.store.counts().by_status.get("completed", 0) == len(jobs), DEADLINE,
                           "every job to complete through the cutting proxy")
            assert proxy.cuts > 0
            stranded = submitter.store.list_jobs(JobQuery(statuses=[JobStatus.RUNNING]))
            assert stranded == []
        finally:
            behind.close()
            submitter.close()
            proxy.close()
