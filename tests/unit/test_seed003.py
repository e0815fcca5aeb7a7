"""Seed 003's Python examples, each run as written in a fresh interpreter, with only the import path changed
(``src.compileo.features.jobhandle`` -> ``jobhandle``). Two blocks use names they never import (``datetime``,
``timedelta``; ``ScalingConfig``): those imports are added, and marked so."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import psutil
import pytest
from helpers import wait_until

from jobhandle import JobQueue, JobStatus

BASIC_SUBMISSION = '''
from datetime import datetime, timedelta  # added: the seed's block uses them without importing them
from jobhandle import (
    submit_extraction_job,
    JobPriority,
    JobSchedule
)

# Simple extraction job
job_id = submit_extraction_job(
    parameters={"document_id": 123, "taxonomy_id": 456},
    priority=JobPriority.HIGH
)

# Scheduled job with dependencies
schedule = JobSchedule(
    scheduled_time=datetime.utcnow() + timedelta(hours=2),
    max_retries=3
)

job_id = submit_extraction_job(
    parameters={"batch_size": 100},
    schedule=schedule,
    priority=JobPriority.NORMAL
)
'''

PROGRAMMATIC_CONFIGURATION = '''
from jobhandle.models import ResourceLimits, JobSchedule

# Custom resource limits
limits = ResourceLimits(
    max_cpu_percent=70.0,
    max_memory_mb=2048,
    max_api_calls_per_minute=100
)

# Job scheduling
schedule = JobSchedule(
    cron_expression="0 */2 * * *",  # Every 2 hours
    max_retries=5,
    timeout_seconds=7200
)
'''

HEALTH_CHECKS = '''
from jobhandle import perform_health_check

health = perform_health_check()
print(f"Status: {health['status']}")
print(f"Issues: {health['issues']}")
'''

MAINTENANCE = '''
from jobhandle import cleanup_old_jobs

# Clean jobs older than 30 days
cleaned = cleanup_old_jobs(days_old=30)
print(f"Cleaned {cleaned} old jobs")
'''

PROFILING = '''
from jobhandle import enhanced_job_queue_manager

stats = enhanced_job_queue_manager.get_queue_stats()
print(f"Active jobs: {stats['running_jobs']}")
print(f"CPU usage: {stats['cpu_usage_percent']}%")
print(f"Cache size: {stats['cache_size']}")
'''

UNIT_TEST = '''
import pytest
from jobhandle.models import EnhancedExtractionJob, JobStatus

def test_job_creation():
    job = EnhancedExtractionJob(
        job_id="test_123",
        job_type="extraction",
        parameters={"test": True}
    )
    assert job.status == JobStatus.PENDING
    assert job.progress == 0.0

test_job_creation()
'''

INTEGRATION_TEST = '''
from jobhandle import submit_extraction_job, enhanced_job_queue_manager, JobStatus  # the seed's block omits it

def test_job_queue_integration():
    # Submit job
    job_id = submit_extraction_job({"test": True})

    # Check status
    job = enhanced_job_queue_manager.get_job(job_id)
    assert job is not None
    assert job.status in [JobStatus.PENDING, JobStatus.RUNNING]

test_job_queue_integration()
'''

WORKER_MANAGEMENT = '''
from jobhandle import (
    create_worker_manager,
    WorkerPool
)
from jobhandle import ScalingConfig  # added: the seed's block uses it without importing it

# Create worker manager
worker_mgr = create_worker_manager(
    worker_name_prefix="extraction_worker",
    scaling_config=ScalingConfig(min_workers=2, max_workers=10)
)

# Start auto-scaling
worker_mgr.start_auto_scaling()

# Or use worker pool for multiple queues
pool = WorkerPool()
pool.add_manager("extraction_queue", worker_mgr)
pool.start_all()
print("started", flush=True)
'''

AUTO_SCALING_MANAGER = '''
from jobhandle import create_worker_manager
mgr = create_worker_manager()
mgr.start_auto_scaling()
'''

APP = '''
from jobhandle import handler

@handler("extraction")
def extraction(ctx, **parameters):
    return {"extracted": parameters}
'''


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    (tmp_path / "seed_app.py").write_text(APP)
    return {**os.environ, "JOBHANDLE_STORE": f"sqlite:///{tmp_path}/jobs.db", "REDIS_URL": "",
            "JOBHANDLE_WORKER_APPS": str(tmp_path / "seed_app.py"), "JOBHANDLE_HEARTBEAT_INTERVAL": "0.2",
            "JOBHANDLE_WORKER_TIMEOUT": "1.5", "JOB_QUEUE_WORKERS_MIN": "1", "JOB_QUEUE_WORKERS_MAX": "2"}


def run(code: str, env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    result = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], env=env, cwd=cwd, capture_output=True,
                            text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    return result


def test_basic_submission(env: dict[str, str], tmp_path: Path) -> None:
    run(BASIC_SUBMISSION, env, tmp_path)
    with JobQueue(env["JOBHANDLE_STORE"]) as q:
        first, second = sorted(q.list(), key=lambda j: j.created_at)
    assert (first.job_type, first.parameters, first.priority, first.status) == (
        "extraction", {"document_id": 123, "taxonomy_id": 456}, 10, JobStatus.PENDING)
    assert (second.status, second.max_retries, second.priority) == (JobStatus.SCHEDULED, 3, 0)
    assert second.scheduled_time is not None


def test_programmatic_configuration(env: dict[str, str], tmp_path: Path) -> None:
    run(PROGRAMMATIC_CONFIGURATION + textwrap.dedent('''
        settings = limits.settings()
        assert (settings.max_cpu_percent, settings.max_memory_mb, settings.max_api_calls_per_minute) == (70, 2048, 100)
        assert schedule.submit_options() == {"cron_expression": "0 */2 * * *", "max_retries": 5,
                                             "timeout_seconds": 7200}
        '''), env, tmp_path)


def test_health_maintenance_and_profiling(env: dict[str, str], tmp_path: Path) -> None:
    assert run(HEALTH_CHECKS, env, tmp_path).stdout.splitlines() == [
        "Status: degraded", "Issues: ['no workers registered: jobs wait until one starts']"]
    assert run(MAINTENANCE, env, tmp_path).stdout == "Cleaned 0 old jobs\n"
    lines = run(PROFILING, env, tmp_path).stdout.splitlines()
    assert lines[0] == "Active jobs: 0" and lines[1].startswith("CPU usage: ") and lines[2] == "Cache size: 0"


def test_the_seeds_own_tests(env: dict[str, str], tmp_path: Path) -> None:
    run(UNIT_TEST, env, tmp_path)
    run(INTEGRATION_TEST, env, tmp_path)


def test_worker_management_starts_an_autoscaled_pool_that_runs_the_jobs(env: dict[str, str], tmp_path: Path) -> None:
    """The block ends with the pool running (its thread keeps the interpreter alive); SIGTERM drains it."""
    proc = subprocess.Popen([sys.executable, "-c", WORKER_MANAGEMENT], env=env, cwd=tmp_path,
                            stdout=subprocess.PIPE, stderr=(tmp_path / "manager.log").open("w"), text=True)
    try:
        assert proc.stdout is not None and proc.stdout.readline() == "started\n", (tmp_path / "manager.log").read_text()
        with JobQueue(env["JOBHANDLE_STORE"]) as q:
            # add_manager moved the started manager to extraction_queue: its first workers drained, two others
            wait_until(lambda: sorted((w["name"], w["queues"]) for w in q.workers()) == [
                ("extraction_worker-1", ["extraction_queue"]), ("extraction_worker-2", ["extraction_queue"])],
                60, "the manager's two workers on extraction_queue (min_workers=2), and no others")
            job = q.submit("extraction", {"document_id": 1}, queue="extraction_queue")
            assert q.wait(job.job_id, 30).result == {"extracted": {"document_id": 1}}
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(60) == 0, (tmp_path / "manager.log").read_text()


def test_the_auto_scaling_manager_of_the_production_snippet(env: dict[str, str], tmp_path: Path) -> None:
    """``python -c "...mgr.start_auto_scaling()"`` keeps supervising after the script's last line."""
    proc = subprocess.Popen([sys.executable, "-c", AUTO_SCALING_MANAGER], env=env, cwd=tmp_path,
                            stderr=(tmp_path / "manager.log").open("w"))
    try:
        with JobQueue(env["JOBHANDLE_STORE"]) as q:
            wait_until(lambda: len([w for w in q.workers() if w["healthy"]]) == 1, 60,
                       "the pool's minimum of one worker (JOB_QUEUE_WORKERS_MIN=1)")
        assert proc.poll() is None, "the script ended but the manager keeps running"
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(60) == 0, (tmp_path / "manager.log").read_text()


def test_start_worker_with_the_seeds_options(redis_server: str, env: dict[str, str], tmp_path: Path) -> None:
    """``python -m jobhandle.worker_manager start-worker --name ... --queue ... --redis redis://...``."""
    url = f"{redis_server}?prefix=seed003-{os.getpid()}"
    proc = subprocess.Popen([sys.executable, "-m", "jobhandle.worker_manager", "start-worker", "--name",
                             "prod_worker_1", "--queue", "extraction_jobs", "--redis", url, "--app",
                             str(tmp_path / "seed_app.py")], env=env, cwd=tmp_path, stdout=subprocess.PIPE,
                            stderr=subprocess.DEVNULL, text=True)
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert line.startswith("worker prod_worker_1-") and "queues extraction_jobs" in line, line
        with JobQueue(url) as q:
            job = q.submit("extraction", {"n": 1}, queue="extraction_jobs")
            assert q.wait(job.job_id, 30).status is JobStatus.COMPLETED
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == 0
        psutil.wait_procs([], timeout=0)


def test_redis_and_store_together_must_agree(env: dict[str, str], tmp_path: Path) -> None:
    result = subprocess.run([sys.executable, "-m", "jobhandle", "worker", "--redis", "redis://a:6379/0",
                             "--store", "redis://b:6379/0"], env=env, capture_output=True, text=True, timeout=30)
    assert result.returncode == 2 and "--redis is another name for --store" in result.stderr


def test_start_worker_without_its_command_says_how_to_use_it(env: dict[str, str]) -> None:
    result = subprocess.run([sys.executable, "-m", "jobhandle.worker_manager"], env=env, capture_output=True,
                            text=True, timeout=30)
    assert result.returncode == 2 and "usage: python -m jobhandle.worker_manager start-worker" in result.stderr
