"""`jobhandle pool` with real worker processes on a shared store: it grows with a backlog and shrinks when idle
with every job run exactly once, replaces a killed worker alone, drains on SIGTERM, and exits 1 when its workers
die in a loop."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest
from helpers import wait_until

from jobhandle import JobQueue, JobStatus, Settings
from jobhandle.pool import Pool, PoolConfig, ScalingPolicy

APP = '''
import os, time
from pathlib import Path
from jobhandle import handler

@handler("work")
def work(ctx, seconds: float, ledger: str):
    with open(ledger, "a") as f:
        f.write(f"{ctx.job_id} {os.getpid()}\\n")
    time.sleep(seconds)
    return os.getpid()
'''
FAST = {"JOBHANDLE_HEARTBEAT_INTERVAL": "0.2", "JOBHANDLE_WORKER_TIMEOUT": "1.5", "JOB_RETRY_DELAY": "0",
        "JOBHANDLE_GLOBAL_MAX_CONCURRENT_JOBS": "0", "JOBHANDLE_PER_USER_MAX_CONCURRENT_JOBS": "0"}
DEADLINE = 60


class PoolProcess:
    def __init__(self, args: list[str], log: Path, env: dict[str, str] = FAST) -> None:
        self.log = log
        with log.open("w") as stderr:
            self.proc = subprocess.Popen([sys.executable, "-m", "jobhandle", "pool", *args], stdout=subprocess.DEVNULL,
                                         stderr=stderr, env={**os.environ, **env})

    def workers(self) -> list[psutil.Process]:
        """Its worker processes that are alive."""
        try:
            return [c for c in psutil.Process(self.proc.pid).children() if c.is_running()
                    and c.status() != psutil.STATUS_ZOMBIE]
        except psutil.NoSuchProcess:
            return []

    def stop(self, timeout: float = DEADLINE) -> int:
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            raise AssertionError(f"the pool did not stop; its log:\n{self.log.read_text()}") from None


@pytest.fixture
def setup(tmp_path: Path) -> Iterator[tuple[str, Path, JobQueue]]:
    (tmp_path / "pool_app.py").write_text(APP)
    url = f"sqlite:///{tmp_path}/jobs.db"
    queue = JobQueue(url, settings=Settings(heartbeat_interval=0.2, worker_timeout=1.5))
    yield url, tmp_path, queue
    queue.close()


def start_pool(url: str, folder: Path, *args: str) -> PoolProcess:
    return PoolProcess(["--app", str(folder / "pool_app.py"), "--store", url, "--concurrency", "2",
                        "--interval", "0.2", *args], folder / "pool.log")


def registered(queue: JobQueue) -> int:
    return sum(1 for w in queue.workers() if w["healthy"])


def test_a_backlog_grows_the_pool_idle_shrinks_it_and_every_job_runs_once(setup: tuple[str, Path, JobQueue]) -> None:
    url, folder, queue = setup
    pool = start_pool(url, folder, "--min", "1", "--max", "3", "--up-wait", "0.3", "--up-cooldown", "0.5",
                      "--down-idle", "1", "--down-cooldown", "0.5", "--grace", "10")
    try:
        wait_until(lambda: registered(queue) == 1, DEADLINE, "the pool's first worker")
        ledger = folder / "ledger"
        jobs = queue.submit_many([{"job_type": "work", "parameters": {"seconds": 0.3, "ledger": str(ledger)}}] * 60)
        wait_until(lambda: len(pool.workers()) == 3, DEADLINE, "the pool to grow to its maximum")
        grown = wait_until(lambda: next((p for p in queue.pools() if p["workers"] == 3), None), DEADLINE,
                           "the pool's registration to show its three workers")
        assert grown["healthy"] and (grown["min_workers"], grown["max_workers"]) == (1, 3)
        assert set(grown["worker_pids"]) >= {w.pid for w in pool.workers()}
        [*_, why] = [e for e in grown["events"] if e["kind"] == "scale"]
        assert why["detail"].startswith("1 -> 3: ") and "the oldest waiting" in why["detail"], grown["events"]
        wait_until(lambda: queue.store.counts().by_status.get("completed", 0) == len(jobs), DEADLINE,
                   "every job to complete")
        wait_until(lambda: len(pool.workers()) == 1, DEADLINE, "the idle pool to shrink to its minimum")
        runs = Counter(line.split()[0] for line in ledger.read_text().splitlines())
        assert set(runs) == {j.job_id for j in jobs} and set(runs.values()) == {1}, "each job ran once"
        assert all(queue.get(j.job_id).status is JobStatus.COMPLETED for j in jobs)
        log = pool.log.read_text()
        assert "scale: 1 -> 3" in log and "scale: 3 -> 1" in log, log
        remaining = pool.workers()
    finally:
        code = pool.stop()
    assert code == 0
    assert queue.pools() == [], "a pool that stopped is no longer registered"
    psutil.wait_procs(remaining, timeout=10)
    assert not [p for p in remaining if p.is_running() and p.status() != psutil.STATUS_ZOMBIE]


def test_one_users_backlog_under_the_per_user_limit_does_not_grow_the_pool(tmp_path: Path) -> None:
    """The default limits (3 jobs of one user at once): a worker of 4 slots runs 3 of one user's 40 jobs and the
    rest wait for the limit, not for a worker; the pool stays at one worker and says nothing of growing."""
    (tmp_path / "pool_app.py").write_text(APP)
    url = f"sqlite:///{tmp_path}/jobs.db"
    limited = {k: v for k, v in FAST.items() if "CONCURRENT" not in k}
    with JobQueue(url, settings=Settings(heartbeat_interval=0.2, worker_timeout=1.5)) as queue:
        pool = PoolProcess(["--app", str(tmp_path / "pool_app.py"), "--store", url, "--concurrency", "4",
                            "--interval", "0.2", "--min", "1", "--max", "3", "--up-wait", "0.3",
                            "--up-cooldown", "0.5"], tmp_path / "pool.log", env=limited)
        try:
            wait_until(lambda: registered(queue) == 1, DEADLINE, "the pool's first worker")
            ledger = tmp_path / "ledger"
            jobs = queue.submit_many([{"job_type": "work", "parameters": {"seconds": 0.3, "ledger": str(ledger)}}]
                                     * 40)
            wait_until(lambda: queue.store.counts().by_status.get("completed", 0) == len(jobs), DEADLINE,
                       "every job to complete")
            [registration] = queue.pools()
        finally:
            code = pool.stop()
    assert code == 0
    assert [e["detail"] for e in registration["events"]] == ["0 -> 1: starting"], registration["events"]
    assert "scale: 1 -> " not in pool.log.read_text()


def test_a_killed_worker_is_replaced_alone(setup: tuple[str, Path, JobQueue]) -> None:
    url, folder, queue = setup
    pool = start_pool(url, folder, "--min", "2", "--max", "2")
    try:
        first = wait_until(lambda: w if len(w := pool.workers()) == 2 else None, DEADLINE, "two workers")
        victim, survivor = first
        victim.kill()
        wait_until(lambda: len(pool.workers()) == 2 and victim.pid not in {p.pid for p in pool.workers()},
                   DEADLINE, "a replacement for the killed worker")
        assert survivor.pid in {p.pid for p in pool.workers()}, "the other worker was left alone"
        wait_until(lambda: "replace: started pool-3 for a worker that died" in pool.log.read_text(), DEADLINE,
                   "the pool to log the replacement (just after starting it)")
    finally:
        assert pool.stop() == 0


def test_sigterm_lets_running_jobs_finish(setup: tuple[str, Path, JobQueue]) -> None:
    url, folder, queue = setup
    pool = start_pool(url, folder, "--min", "1", "--max", "1", "--grace", "20")
    try:
        wait_until(lambda: registered(queue) == 1, DEADLINE, "the pool's worker")
        job = queue.submit("work", {"seconds": 1.5, "ledger": str(folder / "ledger")})
        wait_until(lambda: queue.get(job.job_id).status is JobStatus.RUNNING, DEADLINE, "the job to start")
    finally:
        code = pool.stop()
    assert code == 0
    done = queue.get(job.job_id)
    assert done.status is JobStatus.COMPLETED and done.attempts == 1


def test_workers_that_keep_dying_make_the_pool_exit_1(tmp_path: Path) -> None:
    """Every worker exits at once (its app cannot be imported): after five deaths within a minute the pool
    stops replacing them and, below its minimum, exits 1 instead of looping, or of exiting 0 as Dramatiq's does."""
    url = f"sqlite:///{tmp_path}/jobs.db"
    config = PoolConfig(store=url, apps=["no_such_module_anywhere"], concurrency=1, interval=0.05,
                        policy=ScalingPolicy(min_workers=2, max_workers=2), first_restart_pause=0.05,
                        log_dir=tmp_path)
    with JobQueue(url) as queue:
        pool = Pool(config, queue=queue)
        result: list[int] = []
        runner = threading.Thread(target=lambda: result.append(pool.run()))
        runner.start()
        runner.join(DEADLINE)
        if runner.is_alive():
            pool.stop()
            runner.join(10)
            raise AssertionError("the pool kept replacing workers that die at once")
    assert result == [1]
    assert [e.kind for e in pool.events if e.kind != "replace"] == ["scale", "crash_loop", "stop"]
    assert "cannot import 'no_such_module_anywhere'" in (tmp_path / "pool-1.log").read_text()


def test_workers_do_not_outlive_a_pool_killed_with_sigkill(setup: tuple[str, Path, JobQueue]) -> None:
    url, folder, queue = setup
    pool = start_pool(url, folder, "--min", "1", "--max", "1")
    [worker] = wait_until(lambda: w if len(w := pool.workers()) == 1 else None, DEADLINE, "the pool's worker")
    pool.proc.kill()
    pool.proc.wait(10)
    gone, alive = psutil.wait_procs([worker], timeout=20)
    assert not alive, "the worker kept running without its pool"
    assert queue.workers() == [], "it got SIGTERM and stopped cleanly (a killed worker stays registered)"


def test_the_pool_writes_its_heartbeat_file_for_probes(setup: tuple[str, Path, JobQueue]) -> None:
    url, folder, queue = setup
    beat = folder / "pool.json"
    pool = start_pool(url, folder, "--min", "1", "--max", "1", "--name", "probe", "--heartbeat-file", str(beat))
    try:
        wait_until(lambda: beat.exists() and json.loads(beat.read_text())["state"] == "1 workers, 0 draining",
                   DEADLINE, "the pool's heartbeat file with its worker")
        body = json.loads(beat.read_text())
        assert (body["worker_id"], body["pid"], body["store"]) == ("probe", pool.proc.pid, "ok")
        probe = subprocess.run([sys.executable, "-m", "jobhandle", "health", "--heartbeat-file", str(beat),
                                "--need-store"], capture_output=True, text=True, timeout=60)
        assert (probe.returncode, probe.stdout) == (0, "alive\n"), probe.stderr
    finally:
        assert pool.stop() == 0


def test_the_pool_serves_its_metrics(setup: tuple[str, Path, JobQueue]) -> None:
    import socket
    import urllib.request

    from prometheus_client.parser import text_string_to_metric_families

    url, folder, queue = setup
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    pool = start_pool(url, folder, "--min", "2", "--max", "3", "--metrics-port", str(port))
    try:
        def served() -> dict[str, float]:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
                    text = response.read().decode()
            except OSError:
                return {}
            got = {s.name: s.value for f in text_string_to_metric_families(text) for s in f.samples}
            return got if got.get("jobhandle_pool_workers") == 2 else {}

        got = wait_until(served, DEADLINE, "the pool's metrics with its two workers")
        assert got["jobhandle_pool_max_workers"] == 3 and got["jobhandle_pool_draining"] == 0
    finally:
        assert pool.stop() == 0
