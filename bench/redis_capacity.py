"""How far one Redis goes: the Redis server's own CPU time per job, with 1, 2, 4... `jobhandle worker`
processes on one store, and what idle workers cost it.

    .venv/bin/python bench/redis_capacity.py                       # table on stdout, JSON in bench/results/
    .venv/bin/python bench/redis_capacity.py --workers 1,2,4 --jobs 20000 --idle 0,16,64

Redis runs commands on one thread, so the CPU time the server spends per job (read from its own `INFO cpu`
before and after, `used_cpu_user + used_cpu_sys`) says how many jobs per second one Redis core can serve,
whatever the number of worker hosts: capacity = 1 / (CPU seconds per job). On a machine where the workers and
Redis share two cores the wall-clock rate is the workers' limit, not Redis's; the CPU per job is not.

Busy phase, for each worker count W: W `jobhandle worker --concurrency 2` processes (concurrency limits lifted,
as bench/run.py does) are started on a fresh key prefix and registered; then N no-op jobs are submitted with
`submit_many` in batches of 500 and run. Measured from the first submit to the last completion: jobs/s, Redis CPU
per job (submit + claim + finish + heartbeats, everything the server did meanwhile), the share of one core
Redis used, and the commands the server ran per job (`INFO commandstats`: script calls and the commands they
ran inside).

Idle phase, for each count K: K registered workers with nothing to do, for `--idle-seconds`: the share of a core
the Redis server uses to keep them (heartbeats, claims that find nothing, wake-up listeners).

Only this run's keys are touched (fresh prefixes, deleted afterwards). Other clients of the same Redis would
add their CPU to the figures: run it on a Redis nobody else uses.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from tempfile import TemporaryDirectory
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import redis  # noqa: E402

from bench.redis_bench import DEFAULT_REDIS_URL, delete_keys, machine_info, with_prefix  # noqa: E402
from bench.run import NO_CONCURRENCY_LIMITS, BenchError, WorkerProcess, jobhandle_worker_argv, log  # noqa: E402
from jobhandle import JobQueue  # noqa: E402

RESULTS = ROOT / "bench" / "results"
BATCH = 500
CONCURRENCY = 2


@dataclass
class Busy:
    workers: int
    jobs: int
    wall_seconds: float
    jobs_per_second: float
    redis_cpu_us_per_job: float
    redis_core_share: float
    one_core_capacity_jobs_per_second: float
    script_calls_per_job: float
    commands_per_job: float


@dataclass
class Idle:
    workers: int
    seconds: float
    redis_core_share: float
    commands_per_second: float


def server_cpu(client: redis.Redis) -> float:
    info = client.info("cpu")
    return float(info["used_cpu_user"]) + float(info["used_cpu_sys"])


def command_calls(client: redis.Redis) -> dict[str, int]:
    return {name: int(stats["calls"]) for name, stats in client.info("commandstats").items()}


def calls_between(before: dict[str, int], after: dict[str, int]) -> dict[str, int]:
    return {k: n - before.get(k, 0) for k, n in after.items() if n - before.get(k, 0)}


@contextmanager
def store_with_workers(redis_url: str, count: int, workdir: Path, queue_name: str = "default",
                       deadline_seconds: float = 300) -> Iterator[JobQueue]:
    """A fresh store with ``count`` registered `jobhandle worker` processes on ``queue_name``; deleted after."""
    prefix = f"capacity-{os.getpid()}-{time.monotonic_ns()}"
    url = with_prefix(redis_url, prefix)
    argv, _ = jobhandle_worker_argv("auto")
    queue = JobQueue(url)
    workers: list[WorkerProcess] = []
    try:
        for i in range(count):
            workers.append(WorkerProcess(f"worker {i}", [*argv(url, CONCURRENCY), "--queue", queue_name],
                                         workdir / f"worker-{i}.log", env=NO_CONCURRENCY_LIMITS))
        deadline = time.monotonic() + deadline_seconds
        while len(queue.store.list_workers()) < count:
            for w in workers:
                w.check_alive()
            if time.monotonic() > deadline:
                raise BenchError(f"only {len(queue.store.list_workers())} of {count} workers registered")
            time.sleep(0.1)
        yield queue
    finally:
        for w in workers:
            w.stop()
        queue.close()
        delete_keys(redis_url, f"{{{prefix}}}:*")


def measure_busy(redis_url: str, workers: int, jobs: int, timeout: float) -> Busy:
    client = redis.Redis.from_url(redis_url)
    with TemporaryDirectory() as tmp, store_with_workers(redis_url, workers, Path(tmp)) as queue:
        cpu0, calls0 = server_cpu(client), command_calls(client)
        started = time.perf_counter()
        for start in range(0, jobs, BATCH):
            queue.submit_many([{"job_type": "noop"}] * min(BATCH, jobs - start))
        deadline = time.monotonic() + timeout
        while (done := queue.store.counts().by_status.get("completed", 0)) < jobs:
            if time.monotonic() > deadline:
                raise BenchError(f"{done} of {jobs} jobs completed after {timeout:.0f}s")
            time.sleep(0.02)
        wall = time.perf_counter() - started
        cpu, calls = server_cpu(client) - cpu0, calls_between(calls0, command_calls(client))
    client.close()
    scripts = sum(n for name, n in calls.items() if name in ("cmdstat_evalsha", "cmdstat_eval", "cmdstat_fcall"))
    per_job = cpu / jobs
    return Busy(workers=workers, jobs=jobs, wall_seconds=wall, jobs_per_second=jobs / wall,
                redis_cpu_us_per_job=per_job * 1e6, redis_core_share=cpu / wall,
                one_core_capacity_jobs_per_second=1 / per_job if per_job else float("inf"),
                script_calls_per_job=scripts / jobs, commands_per_job=sum(calls.values()) / jobs)


def measure_idle(redis_url: str, workers: int, seconds: float) -> Idle:
    client = redis.Redis.from_url(redis_url)
    with TemporaryDirectory() as tmp, store_with_workers(redis_url, workers, Path(tmp)):
        time.sleep(2.0)  # past their start-up (first heartbeats, first claims)
        cpu0, calls0 = server_cpu(client), command_calls(client)
        started = time.perf_counter()
        time.sleep(seconds)  # the measurement is of an idle spell: nothing to wait for
        wall = time.perf_counter() - started
        cpu, calls = server_cpu(client) - cpu0, calls_between(calls0, command_calls(client))
    client.close()
    return Idle(workers=workers, seconds=wall, redis_core_share=cpu / wall,
                commands_per_second=sum(calls.values()) / wall)


def render(report: dict[str, Any]) -> str:
    lines = ["| worker processes | jobs/s | Redis CPU a job | Redis core busy | one Redis core's capacity | "
             "script calls a job | commands a job |", "| ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for b in report["busy"]:
        lines.append(f"| {b['workers']} | {b['jobs_per_second']:,.0f} | {b['redis_cpu_us_per_job']:.1f} us | "
                     f"{b['redis_core_share']:.0%} | {b['one_core_capacity_jobs_per_second']:,.0f} jobs/s | "
                     f"{b['script_calls_per_job']:.2f} | {b['commands_per_job']:.1f} |")
    if report["idle"]:
        lines += ["", "| idle worker processes | Redis core busy | commands/s |", "| ---: | ---: | ---: |"]
        for i in report["idle"]:
            lines.append(f"| {i['workers']} | {i['redis_core_share']:.2%} | {i['commands_per_second']:,.0f} |")
    return "\n".join(lines)


def counts(text: str, option: str) -> list[int]:
    try:
        values = [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise SystemExit(f"{option}: a comma-separated list of whole numbers, not {text!r}") from None
    if any(v < 0 for v in values):
        raise SystemExit(f"{option}: counts cannot be negative")
    return values


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--redis-url", default=os.environ.get("JOBHANDLE_BENCH_REDIS_URL", DEFAULT_REDIS_URL))
    p.add_argument("--workers", default="1,2,4", help="worker process counts for the busy phase")
    p.add_argument("--jobs", type=int, default=20000, help="no-op jobs per busy measurement")
    p.add_argument("--idle", default="0,16,64", help="idle worker process counts for the idle phase")
    p.add_argument("--idle-seconds", type=float, default=10.0)
    p.add_argument("--timeout", type=float, default=300.0, help="seconds per busy measurement")
    p.add_argument("--output", type=Path, default=RESULTS / "redis_capacity_latest.json")
    args = p.parse_args(argv)
    if args.jobs < 1:
        p.error("--jobs must be at least 1")
    busy_counts, idle_counts = counts(args.workers, "--workers"), counts(args.idle, "--idle")
    report: dict[str, Any] = {"machine": machine_info(args.redis_url), "busy": [], "idle": []}
    for w in busy_counts:
        log(f"busy: {w} worker processes, {args.jobs} jobs")
        report["busy"].append(asdict(measure_busy(args.redis_url, w, args.jobs, args.timeout)))
    for k in idle_counts:
        log(f"idle: {k} worker processes for {args.idle_seconds:g}s")
        report["idle"].append(asdict(measure_idle(args.redis_url, k, args.idle_seconds)))
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(report, indent=2) + "\n")
    print(render(report))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
