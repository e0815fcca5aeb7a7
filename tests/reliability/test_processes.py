"""Reliability across real processes: no job runs twice, none is lost when a worker is killed, paused or
stopped, and a worker that lost its lease can never overwrite the job's new owner."""

from __future__ import annotations

import signal
from collections import Counter
from pathlib import Path

import psutil
import pytest
from helpers import wait_until

from jobhandle import JobQueue, JobStatus

pytestmark = pytest.mark.slow


@pytest.mark.parametrize("work_seconds", [0.0, 0.01], ids=["batched-short-jobs", "one-at-a-time"])
def test_no_job_runs_twice_with_8_workers_in_2_processes(queue: JobQueue, spawn_worker, tmp_path: Path,
                                                         work_seconds: float) -> None:
    log = tmp_path / "runs.log"
    workers = [spawn_worker(concurrency=4), spawn_worker(concurrency=4)]
    count = 1500 if not work_seconds else 400
    jobs = queue.submit_many([{"job_type": "record", "parameters": {"log": str(log), "work_seconds": work_seconds}}
                              for _ in range(count)])
    wait_until(lambda: queue.stats()["completed_jobs"] == len(jobs), timeout=120, message="all jobs completed")

    runs = Counter(line.split()[0] for line in log.read_text().splitlines())
    assert set(runs) == {j.job_id for j in jobs}
    assert max(runs.values()) == 1, [j for j, n in runs.items() if n > 1][:5]
    if work_seconds:  # 8 busy slots: both processes must have taken part (short jobs may go to one batcher)
        pids = {line.split()[1] for line in log.read_text().splitlines()}
        assert pids == {str(w.pid) for w in workers}, "both processes took part"
    for w in workers:
        assert w.terminate_and_wait() == 0


def test_sigkilled_worker_loses_no_job(queue: JobQueue, spawn_worker, tmp_path: Path) -> None:
    victim = spawn_worker(concurrency=1)
    job = queue.submit("block", {"started": str(tmp_path / "started"), "release": str(tmp_path / "release")},
                       max_retries=2)
    wait_until(lambda: (tmp_path / "started.1").exists(), timeout=20, message="first attempt started")
    assert queue.get(job.job_id).worker_id == victim.worker_id
    victim.signal(signal.SIGKILL)
    victim.proc.wait(10)

    (tmp_path / "release").touch()
    rescuer = spawn_worker(concurrency=1)
    done = queue.wait(job.job_id, timeout=30)
    assert done.status is JobStatus.COMPLETED
    assert done.attempts == 2 and done.result == {"pid": rescuer.pid, "attempt": 2}
    assert done.error_history[-1]["error_type"] == "WorkerLostError"
    wait_until(lambda: victim.worker_id not in {w["worker_id"] for w in queue.workers()}, timeout=20,
               message="dead worker's registration removed")
    assert rescuer.terminate_and_wait() == 0


def test_sigkilled_process_mode_worker_takes_its_job_process_with_it(queue: JobQueue, spawn_worker,
                                                                   tmp_path: Path) -> None:
    """The job's own process must not outlive its worker: the job is recovered and runs again elsewhere, so a
    survivor would run it twice at once."""
    victim = spawn_worker(concurrency=1, mode="process")
    job = queue.submit("block", {"started": str(tmp_path / "started"), "release": str(tmp_path / "release")},
                       max_retries=2)
    child = int(wait_until(lambda: (tmp_path / "started.1").exists() and (tmp_path / "started.1").read_text(),
                           timeout=30, message="first attempt started"))
    assert child != victim.pid, "the job ran in a process of its own"
    victim.signal(signal.SIGKILL)
    victim.proc.wait(10)
    wait_until(lambda: not psutil.pid_exists(child), timeout=10, message="the job's process to die with its worker")

    (tmp_path / "release").touch()
    rescuer = spawn_worker(concurrency=1, mode="process")
    done = queue.wait(job.job_id, timeout=60)
    assert done.status is JobStatus.COMPLETED and done.attempts == 2
    assert done.result["pid"] not in (child, rescuer.pid), "attempt 2 ran in the rescuer's job process"
    assert rescuer.terminate_and_wait() == 0


def test_revived_worker_cannot_finish_a_job_it_lost(queue: JobQueue, spawn_worker, db_url: str,
                                                    tmp_path: Path) -> None:
    """SIGSTOP a worker past its lease; another worker completes the job; the revived one's result is refused."""
    sleeper = spawn_worker(concurrency=1)
    job = queue.submit("block", {"started": str(tmp_path / "started"), "release": str(tmp_path / "release")})
    wait_until(lambda: (tmp_path / "started.1").exists(), timeout=20, message="first attempt started")
    sleeper.freeze(db_url)
    try:
        rescuer = spawn_worker(concurrency=1)  # its maintenance recovers the job once the lease expires
        wait_until(lambda: (tmp_path / "started.2").exists(), timeout=20,
                   message="lease of the stopped worker expired and the rescuer started attempt 2")
        assert queue.get(job.job_id).worker_id == rescuer.worker_id
        (tmp_path / "release").touch()
        done = queue.wait(job.job_id, timeout=30)
        assert done.result == {"pid": rescuer.pid, "attempt": 2}
    finally:
        sleeper.signal(signal.SIGCONT)
    # The revived worker's handler sees the release file too and returns; its finish must be fenced out.
    assert sleeper.terminate_and_wait() == 0
    after = queue.get(job.job_id)
    assert after.status is JobStatus.COMPLETED and after.result == {"pid": rescuer.pid, "attempt": 2}
    assert after.seq == done.seq, "nothing changed the job after its new owner completed it"
    assert rescuer.terminate_and_wait() == 0


def test_sigterm_lets_running_job_finish_within_grace(queue: JobQueue, spawn_worker, tmp_path: Path) -> None:
    worker = spawn_worker(concurrency=1, grace=20)
    job = queue.submit("block", {"started": str(tmp_path / "started"), "release": str(tmp_path / "release")})
    wait_until(lambda: (tmp_path / "started.1").exists(), timeout=20, message="job started")
    worker.signal(signal.SIGTERM)
    (tmp_path / "release").touch()
    assert worker.proc.wait(30) == 0
    done = queue.get(job.job_id)
    assert done.status is JobStatus.COMPLETED and done.attempts == 1


def test_sigterm_hands_back_a_job_that_outlives_the_grace(queue: JobQueue, spawn_worker, tmp_path: Path) -> None:
    worker = spawn_worker(concurrency=1, grace=0.3)
    job = queue.submit("block", {"started": str(tmp_path / "started"), "release": str(tmp_path / "release")})
    wait_until(lambda: (tmp_path / "started.1").exists(), timeout=20, message="job started")
    assert worker.terminate_and_wait() == 0
    handed_back = queue.get(job.job_id)
    assert handed_back.status is JobStatus.PENDING
    assert handed_back.attempts == 0 and handed_back.worker_id is None
    assert worker.worker_id not in {w["worker_id"] for w in queue.workers()}

    (tmp_path / "release").touch()
    spawn_worker(concurrency=1)
    done = queue.wait(job.job_id, timeout=30)
    assert done.status is JobStatus.COMPLETED and done.attempts == 1


def test_other_process_submission_is_picked_up_without_polling_delay(queue: JobQueue, spawn_worker,
                                                                     tmp_path: Path) -> None:
    """A worker in another process wakes on SQLite's data_version change, not on a coarse poll."""
    spawn_worker(concurrency=1)
    job = queue.submit("record", {"log": str(tmp_path / "runs.log")})
    done = queue.wait(job.job_id, timeout=10)
    assert done.status is JobStatus.COMPLETED
    pickup = (done.started_at - done.created_at).total_seconds()
    assert pickup < 0.5, f"pickup took {pickup:.3f}s"


def test_a_delayed_job_starts_on_time_in_another_process(queue: JobQueue, spawn_worker, tmp_path: Path) -> None:
    spawn_worker(concurrency=1)
    job = queue.submit("record", {"log": str(tmp_path / "runs.log")}, delay_seconds=0.5)
    done = queue.wait(job.job_id, timeout=10)
    late = (done.started_at - done.scheduled_time).total_seconds()
    assert 0 <= late < 0.1, late
