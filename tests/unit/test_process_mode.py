"""Process mode: each worker slot runs its jobs in a child process, which is killed for real on cancel,
timeout and hand-back, and held to JOB_MAX_MEMORY_MB; CPU seconds and peak memory land in the metrics."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import process_handlers as ph
import psutil
import pytest
from helpers import wait_until

from jobhandle import HandlerRegistry, JobContext, JobQueue, JobStatus, Settings
from jobhandle.errors import InvalidParameterError
from jobhandle.models import utcnow
from jobhandle.stores.base import ClaimRequest
from jobhandle.worker.process import JobProcess

MEMORY_LIMIT_MB = 200


@pytest.fixture
def settings(settings: Settings) -> Settings:
    return settings.replace(max_memory_mb=MEMORY_LIMIT_MB)


@pytest.fixture(autouse=True)
def handlers(registry: HandlerRegistry) -> Iterator[None]:
    for name in ("echo_pid", "async_echo", "report_then_wait", "spin", "linger", "crash", "permanent", "retry_once",
                 "not_json", "rate_limited", "burn"):
        registry.register(name, getattr(ph, name))
    yield


def pid_from(path: Path) -> int:
    return int(wait_until(lambda: path.exists() and path.read_text(), 20, f"{path.name} to be written"))


def gone(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def test_jobs_run_in_a_child_process_with_cpu_and_memory_metrics(queue: JobQueue) -> None:
    sync_job = queue.submit("echo_pid", {"value": [1, "two"]}, user_id="alice")
    async_job = queue.submit("async_echo", {"value": 3})
    with queue.worker(1, mode="process"):
        done = queue.wait(sync_job.job_id, 30)
        done_async = queue.wait(async_job.job_id, 30)
    assert done.status is JobStatus.COMPLETED and done_async.status is JobStatus.COMPLETED
    assert done.result["value"] == [1, "two"] and done.result["user_id"] == "alice" and done.result["attempt"] == 1
    assert done.result["pid"] != os.getpid(), "the handler ran in another process"
    assert done_async.result == {"pid": done.result["pid"], "value": 3}, "the slot's process is reused"
    assert done.metrics.cpu_seconds is not None and done.metrics.cpu_seconds >= 0
    assert done.metrics.peak_memory_mb is not None and 1 < done.metrics.peak_memory_mb < MEMORY_LIMIT_MB
    assert done.metrics.execution_time_seconds is not None


def test_progress_reported_in_the_child_reaches_the_store(queue: JobQueue, tmp_path: Path) -> None:
    release = tmp_path / "release"
    job = queue.submit("report_then_wait", {"release_file": str(release)})
    with queue.worker(1, mode="process"):
        running = wait_until(lambda: (j := queue.get(job.job_id)).progress_message == "half way" and j, 20,
                             "the child's progress report")
        assert running.status is JobStatus.RUNNING and running.progress == 0.5
        assert running.metrics.items_processed == 1 and running.metrics.total_items == 2
        release.touch()
        done = queue.wait(job.job_id, 20)
    assert done.status is JobStatus.COMPLETED and done.result == "released"
    assert done.progress == 1.0 and done.progress_message == "done", "the last report always lands"


def test_cancel_terminates_the_job_process_and_the_slot_goes_on(queue: JobQueue, tmp_path: Path) -> None:
    pid_file, marker = tmp_path / "pid", tmp_path / "cleaned"
    job = queue.submit("spin", {"pid_file": str(pid_file), "marker_file": str(marker)})
    with queue.worker(1, mode="process"):
        pid = pid_from(pid_file)
        assert queue.cancel(job.job_id).status is JobStatus.CANCELLED
        wait_until(lambda: gone(pid), 10, "the cancelled job's process to end")
        assert marker.read_text() == "cleaned up", "SIGTERM let the handler's finally block run"
        after = queue.wait(queue.submit("echo_pid").job_id, 30)
    assert after.status is JobStatus.COMPLETED and after.result["pid"] not in (pid, os.getpid())
    assert queue.get(job.job_id).status is JobStatus.CANCELLED


def test_a_job_past_its_timeout_is_killed(queue: JobQueue, tmp_path: Path) -> None:
    pid_file = tmp_path / "pid"
    job = queue.submit("spin", {"pid_file": str(pid_file)}, timeout_seconds=1.0, max_retries=0)
    with queue.worker(1, mode="process"):
        pid = pid_from(pid_file)
        done = queue.wait(job.job_id, 20)
        wait_until(lambda: gone(pid), 10, "the timed-out job's process to end")
    assert done.status is JobStatus.FAILED and done.error_type == "TimeLimitExceeded"


def test_a_job_over_the_memory_limit_is_killed_and_fails_naming_the_limit(queue: JobQueue,
                                                                         tmp_path: Path) -> None:
    pid_file = tmp_path / "pid"
    job = queue.submit("spin", {"pid_file": str(pid_file), "hog_mb": 2 * MEMORY_LIMIT_MB}, max_retries=3)
    with queue.worker(1, mode="process"):
        done = queue.wait(job.job_id, 30)
        pid = pid_from(pid_file)
        wait_until(lambda: gone(pid), 10, "the job's process to end")
    assert done.status is JobStatus.FAILED and done.attempts == 1, "a memory overrun is not retried"
    assert done.error_type == "ResourceLimitExceeded"
    assert f"limit of {MEMORY_LIMIT_MB} MB (JOB_MAX_MEMORY_MB)" in (done.error or "")
    assert done.metrics.peak_memory_mb is not None and done.metrics.peak_memory_mb > MEMORY_LIMIT_MB


def test_a_job_over_its_cpu_share_is_paused_down_to_it_not_failed(queue: JobQueue) -> None:
    """JOB_MAX_CPU_PERCENT is a share of the machine: here a third of one core. A job that would keep a core busy
    for 3 s is paused (SIGSTOP/SIGCONT) so that its average stays near its share, and completes."""
    cores = psutil.cpu_count() or 1
    queue.settings.max_cpu_percent = 100 / cores / 3
    job = queue.submit("burn", {"seconds": 3.0})
    with queue.worker(1, mode="process"):
        done = queue.wait(job.job_id, 30)
    assert done.status is JobStatus.COMPLETED and done.result > 0
    share = done.metrics.cpu_seconds / done.metrics.execution_time_seconds
    assert 0.05 < share < 1 / 3 * 1.5, f"it used {share:.0%} of a core"


def test_failures_in_the_child_follow_the_retry_policy(queue: JobQueue, registry: HandlerRegistry) -> None:
    def closure(ctx: JobContext) -> None:
        return None

    registry.register("closure", closure)
    crashed = queue.submit("crash", max_retries=1, retry_delay=0)
    permanent = queue.submit("permanent", max_retries=3)
    retried = queue.submit("retry_once", max_retries=1)
    unfit = queue.submit("not_json")
    nested = queue.submit("closure")
    with queue.worker(1, mode="process"):
        done = {name: queue.wait(job.job_id, 60) for name, job in
                [("crashed", crashed), ("permanent", permanent), ("retried", retried), ("unfit", unfit),
                 ("nested", nested)]}
    assert done["crashed"].status is JobStatus.FAILED and done["crashed"].attempts == 2
    assert done["crashed"].error_type == "JobProcessDied" and "exited with code 3" in (done["crashed"].error or "")
    assert done["permanent"].status is JobStatus.FAILED and done["permanent"].attempts == 1
    assert done["permanent"].error_type == "PermanentError"
    [record] = done["permanent"].error_history  # the child's traceback crossed the process boundary
    assert record["traceback"].startswith("Traceback") and "PermanentError" in record["traceback"]
    assert done["retried"].status is JobStatus.COMPLETED and done["retried"].result == 2
    assert [e["error_type"] for e in done["retried"].error_history] == ["Retry"]
    assert done["unfit"].status is JobStatus.FAILED and done["unfit"].error_type == "InvalidParameterError"
    assert done["nested"].status is JobStatus.FAILED and "top level of a module" in (done["nested"].error or "")


def test_rate_limit_from_the_child_uses_the_shared_bucket(queue: JobQueue) -> None:
    job = queue.submit("rate_limited", {"calls": 3})
    with queue.worker(1, mode="process"):
        done = queue.wait(job.job_id, 30)
    assert done.status is JobStatus.COMPLETED and done.result == 3
    assert done.started_at and done.completed_at
    assert (done.completed_at - done.started_at).total_seconds() >= 0.15, "3 calls at 10/s take 0.2 s"


def test_stopping_hands_the_job_back_and_kills_its_process(queue: JobQueue, tmp_path: Path) -> None:
    pid_file = tmp_path / "pid"
    job = queue.submit("spin", {"pid_file": str(pid_file)})
    worker = queue.worker(1, mode="process").start()
    pid = pid_from(pid_file)
    worker.stop(grace=0.2)
    assert gone(pid), "the job's process is gone once stop() returns"
    back = queue.get(job.job_id)
    assert back.status is JobStatus.PENDING and back.worker_id is None


def test_a_second_close_waits_until_the_job_process_is_gone(queue: JobQueue, registry: HandlerRegistry,
                                                            tmp_path: Path) -> None:
    """The slot and a stopping worker both close a job's process; whichever comes second must not return
    while the first is still waiting for the process to end (here: a handler whose clean-up takes 1 s)."""
    pid_file, stopping = tmp_path / "pid", tmp_path / "stopping"
    queue.submit("linger", {"pid_file": str(pid_file), "stopping_file": str(stopping), "cleanup_seconds": 1.0})
    [job] = queue.store.claim(ClaimRequest("w", ["default"], 1, 60), utcnow())
    handler = registry.get("linger")
    assert handler is not None
    ctx = JobContext(job, queue.store, "w", 0.1, logging.getLogger("test"))
    process = JobProcess(1024, 60)
    runner = threading.Thread(target=process.run, args=(job, handler, ctx))
    runner.start()
    pid = pid_from(pid_file)
    first = threading.Thread(target=process.close)
    first.start()
    wait_until(stopping.exists, 10, "the first close() to have told the job to stop")
    process.close()
    alive = not gone(pid)
    first.join()
    ctx.mark_cancelled()
    runner.join(10)
    assert not alive, "the second close() returned while the job's process was still cleaning up"


def test_a_job_connection_closed_under_its_run_ends_the_run_not_the_thread(queue: JobQueue,
                                                                          registry: HandlerRegistry,
                                                                          tmp_path: Path) -> None:
    """A stopping worker's close() closes the job's connection while the slot's run() is between two reads of
    it (here: while it hands on the job's progress): run() ends as after its process died (process gone, an
    outcome or nothing), it does not raise out of the slot's thread."""
    queue.submit("report_then_wait", {"release_file": str(tmp_path / "never")})
    [job] = queue.store.claim(ClaimRequest("w", ["default"], 1, 60), utcnow())
    handler = registry.get("report_then_wait")
    assert handler is not None
    process = JobProcess(1024, 60)

    class ClosedWhileReporting(JobContext):
        def progress(self, *args: Any, **kwargs: Any) -> None:
            super().progress(*args, **kwargs)
            if process._conn is not None:
                process._conn.close()  # what close() does, from the stopping worker's thread

    ctx = ClosedWhileReporting(job, queue.store, "w", 0.1, logging.getLogger("test"))
    ended: list[object] = []
    errors: list[BaseException] = []

    def run() -> None:
        try:
            ended.append(process.run(job, handler, ctx))
        except BaseException as exc:  # noqa: BLE001 - what the slot's thread would die of
            errors.append(exc)

    runner = threading.Thread(target=run)
    runner.start()
    runner.join(30)

    assert not errors, f"run() raised {errors[0]!r}"
    assert ended and process.pid is None, "run() returned, and the job's process is gone"


def test_an_unknown_mode_is_refused(queue: JobQueue) -> None:
    with pytest.raises(InvalidParameterError, match="worker mode must be one of thread, process"):
        queue.worker(1, mode="fork")


UNGUARDED_SCRIPT = '''
import time
import jobhandle.worker.process
from jobhandle import HandlerRegistry, JobQueue

jobhandle.worker.process.START_TIMEOUT_SECONDS = 5
queue = JobQueue("memory://", registry=HandlerRegistry())
worker = queue.worker(1, mode="process").start()  # no `if __name__ == "__main__":`: runs again in the child
deadline = time.monotonic() + 30  # then the application goes on running (serving requests, say)
while time.monotonic() < deadline and (worker.failure is None or __name__ == "__mp_main__"):
    time.sleep(0.1)
print("failure:", worker.failure, flush=True)
'''

ENDS_WITHOUT_STOP = '''
import sys
sys.path.insert(0, %r)
import process_handlers
from jobhandle import HandlerRegistry, JobQueue

if __name__ == "__main__":
    registry = HandlerRegistry()
    registry.register("echo_pid", process_handlers.echo_pid)
    queue = JobQueue("memory://", registry=registry)
    queue.worker(1, mode="process").start()
    print("child", queue.wait(queue.submit("echo_pid").job_id, 30).result["pid"], flush=True)
    # ends here: no worker.stop(), no queue.close()
'''


def test_a_script_without_the_main_guard_gets_a_clear_error_not_a_hang(tmp_path: Path) -> None:
    script = tmp_path / "unguarded.py"
    script.write_text(UNGUARDED_SCRIPT)
    done = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=60)
    assert "did not start" in done.stdout and 'if __name__ == "__main__":' in done.stdout, done.stdout + done.stderr


def test_a_program_that_ends_without_stopping_its_worker_exits_and_takes_its_job_processes_along(
        tmp_path: Path) -> None:
    script = tmp_path / "ends.py"
    script.write_text(ENDS_WITHOUT_STOP % str(Path(__file__).parent))
    done = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0 and done.stdout.startswith("child "), done.stdout + done.stderr
    child = int(done.stdout.split()[1])
    wait_until(lambda: gone(child), 10, "the job process to be gone")
