"""Health on every store: the full report's issues, readiness, one worker, a worker's heartbeat file."""

from __future__ import annotations

import json
import os
import shutil
import time
from datetime import timedelta
from pathlib import Path

import pytest
from helpers import claim_one, submit, wait_until
from store_urls import private_redis_server

from jobhandle import JobQueue, JobStatus, Settings
from jobhandle.health import heartbeat_file_report, loops_report, ready_report, store_report, worker_report
from jobhandle.models import utcnow
from jobhandle.stores.base import AttemptKey, ClaimRequest, Outcome
from jobhandle.supervise import LoopHealth


def test_an_idle_store_without_workers_is_degraded_and_says_why(queue: JobQueue) -> None:
    report = store_report(queue)
    assert report.status == "degraded" and not report.ok
    assert report.issues == ["no workers registered: jobs wait until one starts"]
    assert report.details["store"]["reachable"] is True and report.details["oldest_pending_wait_seconds"] is None


def test_with_a_worker_it_is_healthy(queue: JobQueue) -> None:
    with queue.worker(concurrency=1):
        report = wait_until(lambda: (r := store_report(queue)).ok and r, 5, "a healthy report")
    assert report.status == "healthy" and report.issues == []


def test_the_oldest_pending_job_waiting_too_long_is_an_issue(queue: JobQueue) -> None:
    now = utcnow()
    submit(queue.store, now - timedelta(minutes=20))
    submit(queue.store, now - timedelta(minutes=1))
    report = store_report(queue, now=now)
    assert report.details["oldest_pending_wait_seconds"] == pytest.approx(1200, abs=1)
    assert "the oldest pending job has waited 20m (more than 10m)" in report.issues
    queue.settings.health_max_wait_seconds = 0  # off
    assert not [i for i in store_report(queue, now=now).issues if "oldest" in i]


def test_a_scheduled_job_waits_from_when_it_was_due(queue: JobQueue) -> None:
    now = utcnow()
    submit(queue.store, now - timedelta(minutes=30), run_at=now - timedelta(minutes=2))
    assert queue.store.claim(ClaimRequest("w1", ("elsewhere",), 1, 30.0), now) == []  # it promotes the due job
    [job] = queue.list("pending")
    assert job.status is JobStatus.PENDING
    assert store_report(queue, now=now).details["oldest_pending_wait_seconds"] == pytest.approx(120, abs=1)


def test_a_high_failure_rate_over_the_last_hour_is_an_issue(queue: JobQueue) -> None:
    now = utcnow()
    for n in range(24):
        job = submit(queue.store, now)
        claimed = claim_one(queue.store, now)
        assert claimed is not None and claimed.job_id == job.job_id
        outcome = Outcome(JobStatus.FAILED, error="boom", error_type="RuntimeError") if n % 4 else \
            Outcome(JobStatus.COMPLETED, result=n)
        assert queue.store.finish(AttemptKey(job.job_id, "w1", 1), outcome, now)
    report = store_report(queue, now=now)
    assert report.details["failure_rate_1h"] == pytest.approx(18 / 24)
    assert "75% of the last hour's 24 finished jobs failed (more than 50%)" in report.issues


def test_a_few_failures_are_not_judged(queue: JobQueue) -> None:
    now = utcnow()
    job = submit(queue.store, now)
    claim_one(queue.store, now)
    queue.store.finish(AttemptKey(job.job_id, "w1", 1), Outcome(JobStatus.FAILED, error="x", error_type="E"), now)
    report = store_report(queue, now=now)
    assert report.details["failure_rate_1h"] == 1.0
    assert not [i for i in report.issues if "failed" in i]


def test_an_unreachable_store_is_unhealthy_and_not_ready(queue: JobQueue, tmp_path: Path) -> None:
    """SQLite and memory: the store closed; Redis: its server (a private one) stopped under the queue."""
    if queue.store.kind != "redis":
        queue.store.close()
        assert_unreachable(queue)
        return
    binary = shutil.which("redis-server")
    if binary is None:
        pytest.skip("redis-server is not installed")
    with private_redis_server(binary, tmp_path) as (url, _, server):
        on_it = JobQueue(url, settings=queue.settings)
        assert ready_report(on_it).ok
        server.terminate()
        server.wait(10)
        assert_unreachable(on_it)
        on_it.close()


def assert_unreachable(queue: JobQueue) -> None:
    report = store_report(queue)
    assert report.status == "unhealthy" and report.issues[0].startswith("store unreachable")
    assert report.details["store"]["reachable"] is False
    ready = ready_report(queue)
    assert ready.status == "not_ready" and ready.issues[0].startswith("store unreachable")


def test_ready_when_the_store_answers(queue: JobQueue) -> None:
    assert ready_report(queue).to_dict() == {"status": "ready", "issues": [], "store": queue.store.kind}


def test_liveness_judges_loops_only() -> None:
    failing = LoopHealth("listener", True, 3, "ConnectionError", time.time())
    assert loops_report([failing]).status == "alive"  # failing and retrying: restarting would not help
    dead = loops_report([failing, LoopHealth("checkpointer", False, 0, None, None)])
    assert dead.status == "dead" and dead.issues == ["checkpointer: not running"]


def test_one_worker_by_name_or_id(queue: JobQueue) -> None:
    assert worker_report(queue, "w-health").issues == ["no worker 'w-health' is registered"]
    with queue.worker(concurrency=1, name="w-health") as worker:
        assert worker_report(queue, "w-health").status == "alive"
        assert worker_report(queue, worker.worker_id).status == "alive"
    stale = worker_report(queue, worker.worker_id)
    assert stale.status == "dead"


def test_a_worker_writes_its_heartbeat_file(queue: JobQueue, tmp_path: Path) -> None:
    path = tmp_path / "worker.json"
    queue.settings.heartbeat_file = path
    assert heartbeat_file_report(path, 5).issues == [
        f"no heartbeat file at {path}: the worker has not started, or writes none"]
    with queue.worker(concurrency=1) as worker:
        wait_until(path.exists, 5, "the heartbeat file")
        first = json.loads(path.read_text())
        assert first["worker_id"] == worker.worker_id and first["pid"] == os.getpid() and first["store"] == "ok"
        wait_until(lambda: json.loads(path.read_text())["at"] != first["at"], 5, "a second heartbeat")
        report = heartbeat_file_report(path, 5, need_store=True)
        assert report.status == "alive" and report.details["worker_id"] == worker.worker_id
    old = time.time() - 60
    os.utime(path, (old, old))
    stale = heartbeat_file_report(path, 30)
    assert stale.status == "dead" and "last heartbeat 60s ago (more than 30s)" in stale.issues[0]


def test_a_heartbeat_the_store_refused_is_in_the_file(tmp_path: Path) -> None:
    from jobhandle.health import write_heartbeat_file

    path = tmp_path / "hb.json"
    write_heartbeat_file(path, "w1", "running", "StoreUnavailableError: connection refused")
    assert heartbeat_file_report(path, 30).status == "alive"  # the process and its loops still run
    refused = heartbeat_file_report(path, 30, need_store=True)
    assert refused.status == "dead" and "did not reach the store" in refused.issues[0]
    assert not list(tmp_path.glob(".*.tmp")), "written through a temporary file, then renamed"


def test_settings_reject_a_failure_rate_above_one() -> None:
    with pytest.raises(ValueError, match="health_max_failure_rate"):
        Settings(health_max_failure_rate=1.5)
