"""jobhandle on Redis side by side with Dramatiq, Huey and RQ on the same Redis, the way a user meets them.

    .venv/bin/python bench/redis_peers.py                 # 3 rounds; table on stdout, JSON in bench/results/
    .venv/bin/python bench/redis_peers.py --rounds 1 --systems jobhandle-defaults,dramatiq

Every system runs the same job, one small Redis call (``RPUSH`` of when it ran, bench/_peers_app.py), every
job is enqueued with one call of the system's own API, and every worker is started from the shell with the
system's defaults:

- ``jobhandle-defaults``: ``jobhandle worker --concurrency 2``, default settings (at most 10 jobs running in
  all and 3 of one user: every job here is one user's);
- ``jobhandle-lifted``: the same with the concurrency limits lifted (``JOBHANDLE_*_MAX_CONCURRENT_JOBS=0``);
- ``jobhandle-sqlite``: ``jobhandle-defaults`` on a SQLite file instead of Redis (its jobs still RPUSH to Redis);
- ``dramatiq``: ``dramatiq bench._peers_dramatiq`` (its defaults: a process per CPU, 8 threads each), Redis broker;
- ``huey``: ``huey_consumer bench._peers_huey.huey -w 2 -k process``, ``RedisHuey``'s defaults otherwise;
- ``rq``: ``rq worker-pool -n 2`` (forks a work horse per job), RQ's defaults.

Measured, each on a fresh namespace with its own worker: **enqueue/s** (N one-by-one enqueues, no worker
running); **end to end** (N jobs enqueued one by one first, then the worker is started: N over the time from
its start to the last job's RPUSH, start-up included; **drain** is N-1 over first to last RPUSH); **pickup**
(with the worker running and warmed up, M jobs enqueued 20 ms apart: the time from enqueue to the job's
start, p50 and p99); **first job** (one job waiting, the worker started from the shell: the time from starting
its command to that job's RPUSH, --starts times a round: how soon a worker is ready). Medians over the rounds;
ratios are jobhandle's figure over the peer's (latencies: the peer's over jobhandle's), so above 1 means
jobhandle is ahead. Only this run's keys are touched.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import statistics
import sys
import time
import uuid
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from tempfile import TemporaryDirectory
from typing import Any, Protocol

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
RUN = uuid.uuid4().hex[:12]
os.environ["JH_PEERS_RUN"] = RUN  # before the peers' apps are imported: their namespaces are named after it

import redis  # noqa: E402

from bench.redis_bench import DEFAULT_REDIS_URL, delete_keys, delete_rq_queue, machine_info, with_prefix  # noqa: E402
from bench.run import NO_CONCURRENCY_LIMITS, BenchError, WorkerProcess, compile_jobhandle, log  # noqa: E402

RESULTS = ROOT / "bench" / "results"
POLL = 0.01


class Peer(Protocol):
    def enqueue_stamp(self, key: str) -> None: ...
    def enqueue_latency(self, key: str, submitted: float) -> None: ...
    def start_worker(self) -> WorkerProcess: ...
    def close(self) -> None: ...


def python_path() -> dict[str, str]:
    return {"PYTHONPATH": os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH")) if p)}


class JobhandlePeer:
    def __init__(self, workdir: Path, redis_url: str, lifted: bool, sqlite: bool = False) -> None:
        from jobhandle import JobQueue

        self.workdir, self.redis_url, self.lifted = workdir, redis_url, lifted
        self.prefix = f"peers-{RUN}-{uuid.uuid4().hex[:8]}"
        self.url = f"sqlite:///{workdir}/jobs.db" if sqlite else with_prefix(redis_url, self.prefix)
        self.queue = JobQueue(self.url)

    def enqueue_stamp(self, key: str) -> None:
        self.queue.submit("peer_stamp", {"key": key})

    def enqueue_latency(self, key: str, submitted: float) -> None:
        self.queue.submit("peer_latency", {"key": key, "submitted": submitted})

    def start_worker(self) -> WorkerProcess:
        cli = str(Path(sys.executable).with_name("jobhandle"))
        argv = [cli, "worker", "--app", str(ROOT / "bench" / "_peers_jobhandle.py"), "--store", self.url,
                "--concurrency", "2"]
        env = {"JH_PEERS_REDIS_URL": self.redis_url, **(NO_CONCURRENCY_LIMITS if self.lifted else {})}
        return WorkerProcess("jobhandle worker", argv, self.workdir / "worker.log", env)

    def close(self) -> None:
        self.queue.close()
        delete_keys(self.redis_url, f"{{{self.prefix}}}:*")


class AppPeer:
    """A peer whose two jobs are the tasks of its module in bench/ (``module``), its worker the command
    ``worker_argv()`` starts from the shell, and its keys those matching ``pattern``."""

    module = ""
    pattern = ""

    def __init__(self, workdir: Path, redis_url: str) -> None:
        os.environ["JH_PEERS_REDIS_URL"] = redis_url  # read by bench/_peers_app.py when the module loads
        self.workdir, self.redis_url = workdir, redis_url
        self.app = importlib.import_module(f"bench.{self.module}")

    def enqueue(self, task: Any, *args: Any) -> None:
        raise NotImplementedError

    def worker_argv(self) -> list[str]:
        raise NotImplementedError

    def enqueue_stamp(self, key: str) -> None:
        self.enqueue(self.app.stamp, key)

    def enqueue_latency(self, key: str, submitted: float) -> None:
        self.enqueue(self.app.latency, key, submitted)

    def start_worker(self) -> WorkerProcess:
        argv = self.worker_argv()
        return WorkerProcess(Path(argv[0]).name, argv, self.workdir / "worker.log",
                             {**python_path(), "JH_PEERS_REDIS_URL": self.redis_url})

    def close(self) -> None:
        delete_keys(self.redis_url, self.pattern)


class DramatiqPeer(AppPeer):
    module, pattern = "_peers_dramatiq", f"dramatiq-{RUN}*"

    def enqueue(self, task: Any, *args: Any) -> None:
        task.send(*args)

    def worker_argv(self) -> list[str]:
        return [str(Path(sys.executable).with_name("dramatiq")), "bench._peers_dramatiq"]


class HueyPeer(AppPeer):
    module, pattern = "_peers_huey", f"*huey-{RUN}*"

    def enqueue(self, task: Any, *args: Any) -> None:
        task(*args)  # calling a Huey task enqueues it

    def worker_argv(self) -> list[str]:
        return [str(Path(sys.executable).with_name("huey_consumer")), "bench._peers_huey.huey", "-w", "2",
                "-k", "process"]


class RQPeer:
    def __init__(self, workdir: Path, redis_url: str) -> None:
        import rq

        from bench import _peers_rq

        self.workdir, self.redis_url, self.app = workdir, redis_url, _peers_rq
        self.name = f"peers-{RUN}-{uuid.uuid4().hex[:8]}"
        self.redis = redis.Redis.from_url(redis_url)
        self.queue = rq.Queue(self.name, connection=self.redis)
        self.job_ids: list[str] = []

    def enqueue_stamp(self, key: str) -> None:
        self.job_ids.append(self.queue.enqueue(self.app.stamp, key).id)

    def enqueue_latency(self, key: str, submitted: float) -> None:
        self.job_ids.append(self.queue.enqueue(self.app.latency, key, submitted).id)

    def start_worker(self) -> WorkerProcess:
        argv = [str(Path(sys.executable).with_name("rq")), "worker-pool", "-n", "2", "-u", self.redis_url,
                "-P", str(ROOT), self.name]
        return WorkerProcess("rq worker-pool", argv, self.workdir / "worker.log",
                             {**python_path(), "JH_PEERS_REDIS_URL": self.redis_url})

    def close(self) -> None:
        delete_rq_queue(self.redis, self.queue, self.job_ids)
        self.redis.close()


@dataclass(frozen=True)
class System:
    name: str
    description: str
    make: Callable[[Path, str], Peer]


SYSTEMS = [
    System("jobhandle-defaults", "jobhandle worker --concurrency 2, default settings (10 running, 3 per user)",
           lambda d, url: JobhandlePeer(d, url, lifted=False)),
    System("jobhandle-lifted", "jobhandle worker --concurrency 2, concurrency limits lifted",
           lambda d, url: JobhandlePeer(d, url, lifted=True)),
    System("jobhandle-sqlite", "jobhandle worker --concurrency 2, default settings, a SQLite store",
           lambda d, url: JobhandlePeer(d, url, lifted=False, sqlite=True)),
    System("dramatiq", "dramatiq (a process per CPU, 8 threads each), Redis broker", DramatiqPeer),
    System("huey", "huey_consumer -w 2 -k process, RedisHuey", HueyPeer),
    System("rq", "rq worker-pool -n 2", RQPeer),
]


@dataclass
class Figures:
    enqueue_per_second: list[float] = field(default_factory=list)
    e2e_jobs_per_second: list[float] = field(default_factory=list)
    drain_jobs_per_second: list[float] = field(default_factory=list)
    pickup_p50_ms: list[float] = field(default_factory=list)
    pickup_p99_ms: list[float] = field(default_factory=list)
    first_job_ms: list[float] = field(default_factory=list)


def wait_for(client: redis.Redis, key: str, n: int, worker: WorkerProcess, timeout: float) -> list[float]:
    deadline = time.monotonic() + timeout
    while (done := client.llen(key)) < n:
        worker.check_alive()
        if time.monotonic() > deadline:
            raise BenchError(f"{done} of {n} jobs ran within {timeout:.0f}s; the worker's log:\n{worker.log_tail()}")
        time.sleep(POLL)
    return [float(v) for v in client.lrange(key, 0, -1)]


def measure(system: System, redis_url: str, n: int, pickups: int, starts: int, timeout: float,
            into: Figures) -> None:
    client = redis.Redis.from_url(redis_url)
    keys = [f"peers-{RUN}:{system.name}:{k}" for k in ("enqueue", "e2e", "warm", "latency", "start")]
    try:
        with TemporaryDirectory() as tmp:  # enqueue rate: no worker
            peer = system.make(Path(tmp), redis_url)
            try:
                started = time.perf_counter()
                for _ in range(n):
                    peer.enqueue_stamp(keys[0])
                into.enqueue_per_second.append(n / (time.perf_counter() - started))
            finally:
                peer.close()
        with TemporaryDirectory() as tmp:  # end to end, worker start-up included
            peer = system.make(Path(tmp), redis_url)
            worker = None
            try:
                for _ in range(n):
                    peer.enqueue_stamp(keys[1])
                start = time.time()
                worker = peer.start_worker()
                stamps = sorted(wait_for(client, keys[1], n, worker, timeout))
                into.e2e_jobs_per_second.append(n / (stamps[-1] - start))
                into.drain_jobs_per_second.append((n - 1) / (stamps[-1] - stamps[0]))
            finally:
                if worker is not None:
                    worker.stop()
                peer.close()
        with TemporaryDirectory() as tmp:  # pickup, the worker warmed up
            peer = system.make(Path(tmp), redis_url)
            worker = None
            try:
                worker = peer.start_worker()
                peer.enqueue_stamp(keys[2])
                wait_for(client, keys[2], 1, worker, timeout)
                for _ in range(pickups):
                    peer.enqueue_latency(keys[3], time.time())
                    time.sleep(0.02)  # the spacing of the jobs, not a wait for work
                waits = sorted(wait_for(client, keys[3], pickups, worker, timeout))
                into.pickup_p50_ms.append(1000 * statistics.median(waits))
                into.pickup_p99_ms.append(1000 * waits[min(len(waits) - 1, int(0.99 * len(waits)))])
            finally:
                if worker is not None:
                    worker.stop()
                peer.close()
        firsts = []
        for _ in range(starts):  # first job: one job waiting, then the worker's command is started
            with TemporaryDirectory() as tmp:
                peer = system.make(Path(tmp), redis_url)
                worker = None
                try:
                    peer.enqueue_stamp(keys[4])
                    start = time.time()
                    worker = peer.start_worker()
                    [ran] = wait_for(client, keys[4], 1, worker, timeout)
                    firsts.append(1000 * (ran - start))
                finally:
                    if worker is not None:
                        worker.stop()
                    peer.close()
                    client.delete(keys[4])
        into.first_job_ms.append(statistics.median(firsts))
    finally:
        client.delete(*keys)
        client.close()


HIGHER = {"enqueue_per_second": True, "e2e_jobs_per_second": True, "drain_jobs_per_second": True,
          "pickup_p50_ms": False, "pickup_p99_ms": False, "first_job_ms": False}
LABELS = {"enqueue_per_second": "enqueue/s", "e2e_jobs_per_second": "e2e jobs/s",
          "drain_jobs_per_second": "drain jobs/s", "pickup_p50_ms": "pickup p50 ms", "pickup_p99_ms": "pickup p99 ms",
          "first_job_ms": "first job ms"}


def render(medians: dict[str, dict[str, float]]) -> str:
    lines = ["| system | " + " | ".join(LABELS.values()) + " |", "| --- |" + " ---: |" * len(LABELS)]
    for name, row in medians.items():
        cells = [f"{row[k]:,.1f}" if k.startswith("pickup") else f"{row[k]:,.0f}" for k in LABELS]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    ours = [n for n in medians if n.startswith("jobhandle")]
    peers = [n for n in medians if not n.startswith("jobhandle")]
    if ours and peers:
        lines += ["", "| jobhandle / peer | " + " | ".join(LABELS.values()) + " |", "| --- |" + " ---: |" * len(LABELS)]
        for mine in ours:
            for peer in peers:
                cells = []
                for k, higher in HIGHER.items():
                    a, b = medians[mine][k], medians[peer][k]
                    cells.append(f"{(a / b if higher else b / a):.2f}")
                lines.append(f"| {mine} / {peer} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--redis-url", default=os.environ.get("JOBHANDLE_BENCH_REDIS_URL", DEFAULT_REDIS_URL))
    p.add_argument("--systems", default=",".join(s.name for s in SYSTEMS))
    p.add_argument("--jobs", type=int, default=5000, help="jobs for the enqueue and end-to-end measurements")
    p.add_argument("--pickups", type=int, default=200)
    p.add_argument("--starts", type=int, default=5, help="worker starts a round for the first-job figure")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--timeout", type=float, default=180.0, help="seconds a measurement's jobs may take")
    p.add_argument("--output", type=Path, default=RESULTS / "redis_peers_latest.json")
    args = p.parse_args(argv)
    known = {s.name: s for s in SYSTEMS}
    chosen = [name.strip() for name in args.systems.split(",") if name.strip()]
    if unknown := [n for n in chosen if n not in known]:
        p.error(f"unknown system(s) {', '.join(unknown)}; known: {', '.join(known)}")
    if args.jobs < 2 or args.pickups < 1 or args.rounds < 1 or args.starts < 1:
        p.error("--jobs must be at least 2, --pickups, --starts and --rounds at least 1")
    compile_jobhandle()
    figures = {name: Figures() for name in chosen}
    for round_no in range(1, args.rounds + 1):
        for name in chosen if round_no % 2 else reversed(chosen):  # the order alternates between rounds
            log(f"round {round_no}: {name}")
            measure(known[name], args.redis_url, args.jobs, args.pickups, args.starts, args.timeout,
                    figures[name])
    medians = {name: {k: statistics.median(v) for k, v in asdict(f).items()} for name, f in figures.items()}
    report: dict[str, Any] = {"machine": {**machine_info(args.redis_url), "run": RUN},
                              "systems": {s.name: s.description for s in SYSTEMS if s.name in figures},
                              "params": {"jobs": args.jobs, "pickups": args.pickups, "starts": args.starts,
                                         "rounds": args.rounds},
                              "raw": {name: asdict(f) for name, f in figures.items()}, "medians": medians}
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(report, indent=2) + "\n")
    print(render(medians))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
