"""jobhandle's Redis store and RQ (python-rq) measured side by side, on the same Redis server, in one run.

    .venv/bin/python bench/redis_bench.py     # everything; table on stdout, raw JSON in bench/results/redis_latest.json

The four measurements are bench/run.py's own functions (``measure_submit``, ``measure_bulk``, ``measure_e2e``,
``measure_pickup``), so what is timed, and from which timestamps, is exactly what bench/run.py does for SQLite
and Huey; this file supplies the two systems on Redis. Method and figures: bench/README.md, section "Redis:
jobhandle's Redis store vs RQ".

Every measurement of every configuration gets a fresh jobhandle key prefix (``?prefix=bench-<uuid>``) or a
fresh RQ queue name, its own worker process, and its keys deleted afterwards (SCAN for its prefix, queue name,
job ids and worker names, then DEL: only keys this run created).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
import uuid
from dataclasses import asdict, dataclass
from importlib import metadata
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # `bench._rq_app` must have the same module name here and in the RQ worker

import redis  # noqa: E402
import rq  # noqa: E402
from rq.registry import FailedJobRegistry, FinishedJobRegistry  # noqa: E402
from rq.results import Result as RQResult  # noqa: E402

from bench._rq_app import latency as rq_latency  # noqa: E402
from bench._rq_app import noop as rq_noop  # noqa: E402
from bench.run import (  # noqa: E402
    CHECK_INTERVAL,
    HIGHER_IS_BETTER,
    LABELS,
    NO_CONCURRENCY_LIMITS,
    BenchError,
    JobhandleSystem,
    Params,
    Result,
    SystemFactory,
    WorkerArgv,
    WorkerProcess,
    checked_params,
    fmt,
    jobhandle_worker_argv,
    log,
    measure_bulk,
    measure_e2e,
    measure_pickup,
    measure_submit,
    remaining,
)
from jobhandle import JobQueue  # noqa: E402

RESULTS = ROOT / "bench" / "results"
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/0"
RQ_SIMPLE_ARGS = ["-w", "rq.worker.SimpleWorker", "-q"]
"""RQ tuned: SimpleWorker runs each job in the worker process itself (the default Worker forks a work horse
per job), and -q logs warnings only (by default each worker logs three INFO lines per job)."""


@dataclass(frozen=True)
class RedisConfig:
    name: str
    description: str
    system: str  # "jobhandle" or "rq"
    rq_args: tuple[str, ...] = ()  # extra `rq worker-pool` options


CONFIGS = [
    RedisConfig("jobhandle-redis", "jobhandle worker --store redis://...?prefix=<fresh> --concurrency 2 "
                "(one process, 2 worker threads)", "jobhandle"),
    RedisConfig("rq-pool-default", "rq worker-pool -n 2 (2 forked Worker processes, each forks a work horse per "
                "job; INFO logging), RQ's defaults", "rq"),
    RedisConfig("rq-pool-simple", "rq worker-pool -n 2 -w rq.worker.SimpleWorker -q (2 forked worker processes "
                "running jobs in-process, no fork per job; warnings only), tuned", "rq", tuple(RQ_SIMPLE_ARGS)),
]


# -- Redis keys --------------------------------------------------------------------------------------------

def delete_matching(client: Any, pattern: str, wanted: Any = None) -> int:
    """DEL the keys matching ``pattern`` (SCAN) for which ``wanted(key)`` is true (all when None)."""
    deleted, batch = 0, []
    for key in client.scan_iter(match=pattern, count=1000):
        if wanted is None or wanted(key):
            batch.append(key)
        if len(batch) >= 500:
            deleted += client.delete(*batch)
            batch.clear()
    if batch:
        deleted += client.delete(*batch)
    return deleted


def delete_keys(redis_url: str, pattern: str) -> int:
    """DEL the keys matching ``pattern`` on the server at ``redis_url`` (a connection of its own)."""
    client = redis.Redis.from_url(redis_url)
    try:
        return delete_matching(client, pattern)
    finally:
        client.close()


def delete_rq_queue(client: Any, queue: Any, job_ids: Any) -> None:
    """Every key of RQ queue ``queue``, its jobs and its workers: the key's ``:``-separated parts name the queue,
    a job id or one of the queue's workers (``rq:queue:Q``, ``rq:finished:Q``, ``rq:job:ID``, ``rq:results:ID``,
    ``rq:worker:NAME``...); plus this queue's entries in RQ's shared sets."""
    name = queue.name
    workers = {key.decode().rpartition(":")[2] for key in client.scan_iter(match="rq:worker:*", count=1000)
               if client.type(key) == b"hash" and client.hget(key, "queues") == name.encode()}
    ours = {name, *job_ids, *workers}
    delete_matching(client, "rq:*", lambda key: not ours.isdisjoint(key.decode().split(":")))
    client.srem("rq:queues", queue.key)
    if workers:
        client.srem("rq:workers", *(f"rq:worker:{w}" for w in workers))


def with_prefix(url: str, prefix: str) -> str:
    """``url`` naming the jobhandle store ``prefix`` (replacing any ``prefix=`` it has)."""
    parts = urlsplit(url)
    query = [(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True) if k != "prefix"]
    return urlunsplit(parts._replace(query=urlencode([*query, ("prefix", prefix)])))


# -- the two systems behind bench/run.py's System interface ---------------------------------------------------

class JobhandleRedisSystem(JobhandleSystem):
    """A jobhandle store under a fresh key prefix; the worker is a separate ``jobhandle worker`` process.
    Submitting and reading results are bench/run.py's JobhandleSystem's; what differs is below."""

    def __init__(self, workdir: Path, params: Params, redis_url: str, worker_argv: WorkerArgv) -> None:
        self.workdir = workdir
        self.params = params
        self.redis_url = redis_url
        self.prefix = f"bench-{uuid.uuid4().hex}"
        self.url = with_prefix(redis_url, self.prefix)
        self.worker_argv = worker_argv
        self.queue = JobQueue(self.url)
        self.process: WorkerProcess | None = None

    def start_worker(self) -> None:
        argv = self.worker_argv(self.url, self.params.concurrency)
        self.process = WorkerProcess("jobhandle worker", argv, self.workdir / "worker.log")

    def wait_completed(self, n: int, deadline: float) -> None:
        """Read the store's status counters (``q.store.counts()``: 4 HGETALL/HMGET in one round trip, what
        ``q.stats()`` reports without its psutil and worker reads) 20 times a second, as RQ's registry is read.
        The store's pub/sub wake-ups are not used, so neither side has a subscriber in the measuring process."""
        while True:
            by_status = self.queue.store.counts().by_status
            if by_status.get("failed") or by_status.get("cancelled"):
                raise BenchError(f"jobs did not complete: {by_status}")
            done = by_status.get("completed", 0)
            if done >= n:
                return
            if self.process is not None:
                self.process.check_alive()
            remaining(deadline, f"{done} of {n} jobhandle jobs completed (by status: {by_status})")
            time.sleep(CHECK_INTERVAL)

    def close(self) -> None:
        try:
            super().close()
        finally:
            delete_keys(self.redis_url, f"{{{self.prefix}}}:*")


class RQSystem:
    """An RQ queue with a fresh name; the worker is a separate ``rq worker-pool -n 2`` process."""

    def __init__(self, workdir: Path, config: RedisConfig, params: Params, redis_url: str) -> None:
        self.workdir = workdir
        self.config = config
        self.params = params
        self.redis_url = redis_url
        self.name = f"bench-{uuid.uuid4().hex}"
        self.redis = redis.Redis.from_url(redis_url)
        self.queue = rq.Queue(self.name, connection=self.redis)
        self.job_ids: list[str] = []  # every job enqueued, for clean-up
        self.noop_ids: list[str] = []  # the no-ops whose return values noop_times reads
        self.process: WorkerProcess | None = None

    def submit_noop(self) -> None:
        self.job_ids.append(self.queue.enqueue(rq_noop).id)

    def submit_bulk(self, n: int) -> bool:
        jobs = self.queue.enqueue_many([rq.Queue.prepare_data(rq_noop) for _ in range(n)])
        self.job_ids.extend(job.id for job in jobs)
        return True

    def prepare_noops(self, n: int) -> None:
        jobs = self.queue.enqueue_many([rq.Queue.prepare_data(rq_noop) for _ in range(n)])
        ids = [job.id for job in jobs]
        self.job_ids.extend(ids)
        self.noop_ids.extend(ids)

    def submit_latency(self) -> str:
        job_id = self.queue.enqueue(rq_latency, time.time()).id
        self.job_ids.append(job_id)
        return job_id

    def start_worker(self) -> None:
        rq_cli = str(Path(sys.executable).with_name("rq"))
        argv = [rq_cli, "worker-pool", "-n", str(self.params.concurrency), "-u", self.redis_url, "-P", str(ROOT),
                *self.config.rq_args, self.name]
        pythonpath = os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH")) if p)
        self.process = WorkerProcess("rq worker-pool", argv, self.workdir / "worker.log", {"PYTHONPATH": pythonpath})

    def wait_completed(self, n: int, deadline: float) -> None:
        """Read the size of the queue's FinishedJobRegistry (ZCARD, without RQ's registry clean-up) 20 times a
        second. RQ adds a job to it in the same transaction that stores its result; a job that raised goes to
        the FailedJobRegistry instead, which stops the run."""
        finished = FinishedJobRegistry(self.name, connection=self.redis)
        failed = FailedJobRegistry(self.name, connection=self.redis)
        while (done := finished.get_job_count(cleanup=False)) < n:
            if failed.get_job_count(cleanup=False):
                raise BenchError(f"{failed.get_job_count(cleanup=False)} RQ jobs failed")
            if self.process is not None:
                self.process.check_alive()
            remaining(deadline, f"{done} of {n} RQ jobs finished")
            time.sleep(CHECK_INTERVAL)

    def _results(self, ids: list[str]) -> list[Any]:
        """The return values of jobs ``ids`` (RQ keeps each job's results in a stream, latest last)."""
        with self.redis.pipeline(transaction=False) as pipe:
            for job_id in ids:
                pipe.xrevrange(RQResult.get_key(job_id), "+", "-", count=1)
            replies = pipe.execute()
        values = []
        for job_id, reply in zip(ids, replies, strict=True):
            if not reply:
                raise BenchError(f"RQ job {job_id} has no result")
            result_id, payload = reply[0]
            result = RQResult.restore(job_id, result_id.decode(), payload, connection=self.redis)
            if result.type != RQResult.Type.SUCCESSFUL:
                raise BenchError(f"RQ job {job_id} did not succeed: {result.type} {result.exc_string}")
            values.append(result.return_value)
        return values

    def noop_times(self) -> list[float]:
        return self._results(self.noop_ids)

    def latencies(self, handles: list[str]) -> list[float]:
        return self._results(handles)

    def close(self) -> None:
        try:
            if self.process is not None:
                self.process.stop()
        finally:
            delete_rq_queue(self.redis, self.queue, self.job_ids)
            self.redis.close()


# -- running, comparing, reporting ---------------------------------------------------------------------------

def run_config(config: RedisConfig, params: Params, redis_url: str, worker_argv: WorkerArgv) -> Result:
    if config.system == "jobhandle":
        make: SystemFactory = lambda d: JobhandleRedisSystem(d, params, redis_url, worker_argv)  # noqa: E731
    else:
        make = lambda d: RQSystem(d, config, params, redis_url)  # noqa: E731
    result = Result(config.name, config.description)
    log(f"{config.name}: submit x{params.enqueue_n}")
    result.submit_per_second = measure_submit(make, params)
    log(f"{config.name}: bulk submit x{params.bulk_n}")
    result.bulk_per_second = measure_bulk(make, params)
    log(f"{config.name}: end-to-end x{params.e2e_n}")
    for key, value in measure_e2e(make, params).items():
        setattr(result, key, value)
    log(f"{config.name}: pickup latency x{params.pickup_n}")
    for key, value in measure_pickup(make, params).items():
        setattr(result, key, value)
    log(f"{config.name}: done")
    return result


def comparisons(results: list[Result]) -> dict[str, dict[str, Any]]:
    """For jobhandle against each RQ configuration and against the best RQ configuration per metric: how many
    times better (rates: jobhandle / RQ; latencies: RQ / jobhandle; so > 1 always means jobhandle is better)."""
    rq_results = [r for r in results if r.config.startswith("rq")]
    out: dict[str, dict[str, Any]] = {}
    groups = [[r] for r in rq_results] + ([rq_results] if len(rq_results) > 1 else [])
    for jh in (r for r in results if r.config.startswith("jobhandle")):
        for against in groups:
            row: dict[str, Any] = {}
            for metric, higher in HIGHER_IS_BETTER.items():
                values = [(getattr(r, metric), r.config) for r in against if getattr(r, metric) is not None]
                mine = getattr(jh, metric)
                if not values or mine is None:
                    continue
                best, best_config = max(values) if higher else min(values)
                row[metric] = {"factor": mine / best if higher else best / mine, "rq": best, "rq_config": best_config}
            label = against[0].config if len(against) == 1 else "best RQ"
            out[f"{jh.config} vs {label}"] = row
    return out


def redis_server_info(url: str) -> dict[str, Any]:
    client = redis.Redis.from_url(url)
    try:
        info = client.info("server")
        return {"redis_server": info.get("redis_version"), "redis_url": url}
    finally:
        client.close()


def machine_info(redis_url: str) -> dict[str, Any]:
    def git(*args: str) -> str | None:
        try:
            return subprocess.run(["git", *args], capture_output=True, text=True, cwd=ROOT, timeout=10).stdout
        except (OSError, subprocess.SubprocessError):
            return None

    commit = (git("rev-parse", "--short", "HEAD") or "").strip() or None
    changed = git("status", "--porcelain", "--", "src")
    return {
        "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "cpu_count": os.cpu_count(), "cpus_usable": len(os.sched_getaffinity(0)),
        "load_average_at_start": os.getloadavg(), "platform": platform.platform(),
        "python": platform.python_version(), **redis_server_info(redis_url),
        "jobhandle": metadata.version("jobhandle"), "rq": metadata.version("rq"),
        "redis_py": metadata.version("redis"), "git_commit": commit,
        "src_uncommitted_changes": None if changed is None else sorted(line[3:] for line in changed.splitlines()),
    }


def render(report: dict[str, Any]) -> str:
    lines = ["| configuration | submit/s | bulk submit/s | e2e jobs/s | e2e wall s | drain jobs/s | pickup p50 ms"
             " | pickup p99 ms |", "|---|---:|---:|---:|---:|---:|---:|---:|"]
    for r in report["results"]:
        lines.append(f"| {r['config']} | {fmt(r['submit_per_second'])} | {fmt(r['bulk_per_second'])} | "
                     f"{fmt(r['e2e_jobs_per_second'])} | {fmt(r['e2e_wall_seconds'], 2)} | "
                     f"{fmt(r['drain_jobs_per_second'])} | {fmt(r['pickup_p50_ms'], 2)} | "
                     f"{fmt(r['pickup_p99_ms'], 2)} |")
    lines.append("")
    lines.append("x times better (rates jobhandle/RQ, latencies RQ/jobhandle; < 1: RQ is better):")
    lines.append("")
    metrics = list(HIGHER_IS_BETTER)
    lines.append("| jobhandle vs RQ | " + " | ".join(LABELS[m] for m in metrics) + " |")
    lines.append("|---|" + "---:|" * len(metrics))
    for name, row in report["comparison"].items():
        cells = [f"{row[m]['factor']:.2f}x" if m in row else "-" for m in metrics]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def parse_args(argv: list[str] | None) -> tuple[argparse.Namespace, Params]:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--enqueue-n", type=int, default=3000, help="jobs for the one-by-one rate")
    p.add_argument("--bulk-n", type=int, default=10000, help="jobs in the one bulk call")
    p.add_argument("--e2e-n", type=int, default=5000, help="no-op jobs for end-to-end throughput")
    p.add_argument("--pickup-n", type=int, default=200, help="jobs for pickup latency")
    p.add_argument("--pickup-interval-ms", type=float, default=20.0)
    p.add_argument("--timeout", type=float, default=60.0,
                   help="seconds each measurement may take (end-to-end: twice this) before the run fails")
    p.add_argument("--configs", default=",".join(c.name for c in CONFIGS),
                   help="comma-separated subset of: " + ", ".join(c.name for c in CONFIGS))
    p.add_argument("--redis-url", default=DEFAULT_REDIS_URL, help="the Redis server both systems use")
    p.add_argument("--jobhandle-worker", choices=("auto", "cli", "script"), default="auto",
                   help="separate jobhandle worker: the `jobhandle worker` CLI, bench/_jobhandle_worker.py, "
                        "or the CLI when it works (default)")
    p.add_argument("--output", type=Path, default=RESULTS / "redis_latest.json")
    args = p.parse_args(argv)
    return args, checked_params(p, args, {c.name for c in CONFIGS})


def main(argv: list[str] | None = None) -> int:
    args, params = parse_args(argv)
    for name, value in NO_CONCURRENCY_LIMITS.items():  # RQ has no concurrency caps either
        os.environ.setdefault(name, value)
    selected = [c for c in CONFIGS if c.name in args.configs.split(",")]
    worker_argv, worker_mode = jobhandle_worker_argv(args.jobhandle_worker)
    info = {**machine_info(args.redis_url), "jobhandle_worker": worker_mode}
    if info["load_average_at_start"][0] > 0.5 * (os.cpu_count() or 1):
        log(f"warning: load average {info['load_average_at_start'][0]:.2f} on {os.cpu_count()} CPUs: "
            "the machine is busy, figures will be noisy")
    log(f"Redis {info['redis_server']} at {args.redis_url}; separate jobhandle worker: {worker_mode}")
    started = time.monotonic()
    results = [run_config(config, params, args.redis_url, worker_argv) for config in selected]
    info["load_average_at_end"] = os.getloadavg()
    info["run_seconds"] = round(time.monotonic() - started, 1)
    report = {"machine": info, "params": asdict(params), "configs": [asdict(c) for c in selected],
              "results": [asdict(r) for r in results], "comparison": comparisons(results)}
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(report, indent=2) + "\n")
    dirty = " + uncommitted changes in src/" if info["src_uncommitted_changes"] else ""
    print(f"jobhandle {info['jobhandle']} ({info['git_commit']}{dirty}) vs rq {info['rq']}; "
          f"Redis {info['redis_server']}; {info['date']}; {info['cpu_count']} CPUs; Python {info['python']}; "
          f"load {info['load_average_at_start'][0]:.2f} -> {info['load_average_at_end'][0]:.2f}; "
          f"{info['run_seconds']}s\n")
    print(render(report))
    print(f"\nraw results: {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
