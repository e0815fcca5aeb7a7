"""A burst of one-second jobs against jobhandle's autoscaled pool and Celery's ``--autoscale``, side by side.

    .venv/bin/python bench/pool_burst.py                 # both; table on stdout, JSON in bench/results/pool_burst.json
    .venv/bin/python bench/pool_burst.py --jobs 500      # a shorter run

Each system starts at its minimum (jobhandle: ``jobhandle pool --min 1 --max 8 --concurrency 4``, 4 to 32 slots;
Celery: ``celery worker --autoscale=32,4``, 4 to 32 prefork processes), both with their default scaling
settings, on the same Redis server. The burst is ``--jobs`` jobs submitted one by one as fast as the client can
(``q.submit`` / ``task.delay``). Measured from the first submit: when the system reached its maximum (worker
processes counted every 0.2 s with psutil), the jobs per second while it held its maximum, when the last job
ended, and how long after that it was back at its minimum (or that it was not, within ``--idle-wait``);
``scale events`` counts every change of the process count, ``flaps`` the times it grew again after shrinking.
Completions are counted from a Redis list each job pushes its end time to, the same for both.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import psutil
import redis

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
RESULTS = ROOT / "bench" / "results"


@dataclass
class Run:
    system: str
    command: str
    jobs: int
    min_slots: int
    max_slots: int
    submit_seconds: float = 0.0
    to_max_seconds: float | None = None
    at_max_jobs_per_second: float | None = None
    drained_seconds: float | None = None
    back_to_min_seconds: float | None = None
    scale_events: int = 0
    flaps: int = 0
    samples: list[tuple[float, int]] = field(default_factory=list)


def wait_for(condition: Callable[[], object], seconds: float, what: str) -> None:
    """Poll ``condition`` until it holds (a start-up wait, bounded), else fail naming ``what``."""
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            raise RuntimeError(f"{what} within {seconds:.0f}s")
        time.sleep(0.1)


def processes(proc: psutil.Process) -> int:
    """jobhandle: the pool's worker processes (its children); Celery: the pool processes of the main one."""
    try:
        children = [c for c in proc.children() if c.status() != psutil.STATUS_ZOMBIE]
    except psutil.NoSuchProcess:
        return 0
    return len(children)


def watch(run: Run, proc: psutil.Process, client: redis.Redis, done_key: str, start: float, per_process: int,
          idle_wait: float, timeout: float) -> None:
    at_max_since = at_max_done = None
    last_count = None
    direction = 0
    drained_at = None
    while True:
        now = time.monotonic()
        count = processes(proc)
        slots = count * per_process
        run.samples.append((round(now - start, 2), slots))
        if last_count is not None and count != last_count:
            run.scale_events += 1
            new_direction = 1 if count > last_count else -1
            if direction == -1 and new_direction == 1:
                run.flaps += 1
            direction = new_direction
        last_count = count
        done = client.llen(done_key)
        if slots >= run.max_slots and run.to_max_seconds is None:
            run.to_max_seconds = now - start
            at_max_since, at_max_done = now, done
        if at_max_since is not None and run.at_max_jobs_per_second is None and (slots < run.max_slots
                                                                                  or done >= run.jobs):
            if now > at_max_since and done > at_max_done:
                run.at_max_jobs_per_second = (done - at_max_done) / (now - at_max_since)
        if done >= run.jobs and drained_at is None:
            ends = [float(t) for t in client.lrange(done_key, 0, -1)]
            drained_at = now
            run.drained_seconds = max(ends) - (time.time() - (now - start))
        if drained_at is not None and slots <= run.min_slots:
            run.back_to_min_seconds = now - drained_at
            return
        if drained_at is not None and now - drained_at > idle_wait:
            return
        if now - start > timeout:
            raise RuntimeError(f"{run.system}: {done} of {run.jobs} jobs done after {timeout}s")
        time.sleep(0.2)


def run_jobhandle(jobs: int, redis_url: str, idle_wait: float, timeout: float) -> Run:
    from jobhandle import JobQueue

    store = f"{redis_url}?prefix=bench-pool-{uuid.uuid4().hex[:8]}"
    done_key = f"bench:pool:done:{uuid.uuid4().hex[:8]}"
    env = {**os.environ, "BENCH_POOL_REDIS": redis_url, "BENCH_POOL_DONE": done_key,
           "JOBHANDLE_GLOBAL_MAX_CONCURRENT_JOBS": "0", "JOBHANDLE_PER_USER_MAX_CONCURRENT_JOBS": "0",
           "PYTHONPATH": str(ROOT)}
    argv = [sys.executable, "-m", "jobhandle", "pool", "--app", "bench._pool_app", "--store", store,
            "--min", "1", "--max", "8", "--concurrency", "4", "--log-level", "WARNING"]
    run = Run("jobhandle pool", " ".join(argv[2:]).replace(store, "redis://..."), jobs, 4, 32)
    client = redis.Redis.from_url(redis_url)
    pool = subprocess.Popen(argv, env=env, cwd=ROOT, stderr=subprocess.DEVNULL)
    try:
        proc = psutil.Process(pool.pid)
        with JobQueue(store) as q:
            wait_for(lambda: processes(proc) >= 1 and q.workers(), 60, "the pool's first worker did not register")
            start = time.monotonic()
            for _ in range(jobs):
                q.submit("burst_sleep", {"seconds": 1.0})
            run.submit_seconds = time.monotonic() - start
            watch(run, proc, client, done_key, start, 4, idle_wait, timeout)
    finally:
        pool.terminate()
        pool.wait(60)
        client.delete(done_key)
        keys = list(client.scan_iter(match=f"{{{store.split('prefix=')[1]}}}:*", count=1000))
        if keys:
            client.delete(*keys)
    return run


def run_celery(jobs: int, redis_url: str, idle_wait: float, timeout: float) -> Run:
    base = redis_url.rsplit("/", 1)[0]
    broker = f"{base}/15"
    done_key = f"bench:pool:done:{uuid.uuid4().hex[:8]}"
    env = {**os.environ, "BENCH_POOL_REDIS": redis_url, "BENCH_POOL_DONE": done_key,
           "BENCH_CELERY_BROKER": broker, "PYTHONPATH": str(ROOT)}
    argv = [str(Path(sys.executable).with_name("celery")), "-A", "bench._pool_app:celery_app", "worker",
            "--autoscale=32,4", "--loglevel=WARNING", "-n", f"bench-{uuid.uuid4().hex[:6]}@%h"]
    run = Run("celery --autoscale", " ".join(argv[1:5]), jobs, 4, 32)
    client = redis.Redis.from_url(redis_url)
    redis.Redis.from_url(broker).flushdb()
    worker = subprocess.Popen(argv, env=env, cwd=ROOT, stderr=subprocess.DEVNULL, stdout=subprocess.DEVNULL)
    os.environ["BENCH_CELERY_BROKER"] = broker
    from bench._pool_app import celery_app
    from bench._pool_app import sleep as celery_sleep

    try:
        proc = psutil.Process(worker.pid)
        wait_for(lambda: processes(proc) >= 4 and celery_app.control.ping(timeout=0.5), 60,
                 "the Celery worker did not answer a ping")
        start = time.monotonic()
        for _ in range(jobs):
            celery_sleep.delay(1.0)
        run.submit_seconds = time.monotonic() - start
        watch(run, proc, client, done_key, start, 1, idle_wait, timeout)
    finally:
        worker.terminate()
        worker.wait(60)
        client.delete(done_key)
        redis.Redis.from_url(broker).flushdb()
    return run


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--jobs", type=int, default=2000)
    p.add_argument("--redis-url", default="redis://127.0.0.1:6379/14")
    p.add_argument("--idle-wait", type=float, default=180.0, help="how long to wait for the return to minimum")
    p.add_argument("--timeout", type=float, default=600.0)
    p.add_argument("--systems", default="jobhandle,celery")
    p.add_argument("--output", type=Path, default=RESULTS / "pool_burst.json")
    args = p.parse_args()
    runs = []
    for system in args.systems.split(","):
        print(f"[{time.strftime('%H:%M:%S')}] {system}: {args.jobs} one-second jobs", flush=True)
        runs.append((run_jobhandle if system == "jobhandle" else run_celery)(args.jobs, args.redis_url,
                                                                            args.idle_wait, args.timeout))
    print("\n| system | slots | submit s | to max s | jobs/s at max | last job s | back to min s | scale events "
          "| flaps |\n|---|---|---:|---:|---:|---:|---:|---:|---:|")
    for r in runs:
        def f(v: float | None) -> str:
            return "-" if v is None else f"{v:.1f}"
        print(f"| {r.system} | {r.min_slots}-{r.max_slots} | {r.submit_seconds:.1f} | {f(r.to_max_seconds)} | "
              f"{f(r.at_max_jobs_per_second)} | {f(r.drained_seconds)} | {f(r.back_to_min_seconds)} | "
              f"{r.scale_events} | {r.flaps} |")
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps([asdict(r) for r in runs], indent=1))
    print(f"\nraw results: {args.output}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
