"""Ten million retained jobs: what a store's latencies become when it holds that many, on SQLite and on Redis.

    .venv/bin/python bench/ten_million.py --store sqlite --jobs 10000000   # bench/results/ten_million_sqlite.json
    .venv/bin/python bench/ten_million.py --store redis --jobs 10000000    # its own redis-server, port 6391
    .venv/bin/python bench/ten_million.py --store redis --jobs 100000      # a quick look

1. **Empty store**: the latencies below on a fresh store with no job, the baseline of the ratios.
2. **Fill** in bulk through the store's own primitives (``submit`` of 5,000 jobs a call, then ``claim`` and
   ``finish_many_and_claim`` 5,000 at a time, as workers would): N jobs of 10 types, 200 users, 3 queues;
   all but 20,000 end (1% failed, the rest completed) and stay retained; 10% of N (at most 1,000,000) were
   created and ended 25 hours ago, past the completed jobs' 24-hour retention. The fill's time is reported.
3. **At N**: ``JobQueue.stats()``; one ``submit``; a one-job ``claim`` (then its finish, untimed); the
   dashboard's list queries (first page of 50, a status, a user, a type, an id-prefix search, a page 5,000,000
   down by cursor): 200 timed calls each (lists 40), p50/p95/p99 in ms, and the ratio to the empty store.
4. **Cleanup under load**: the expired jobs are removed the way a worker's maintenance does it (calls of
   10,000 jobs) while another thread submits, claims and finishes one job at a time; the claims' p50/p99
   during it (the claim's own time: the submit and the finish, untimed, wait behind the cleanup too).
5. **Memory** (Redis): ``used_memory`` per retained job, against RQ's per finished job for the same small job
   (20,000 RQ jobs run by RQ's SimpleWorker on the same server).

The Redis run starts its own ``redis-server`` (no persistence, on --redis-port) so that millions of keys never
touch the shared server; the SQLite run writes its file in --dir (default: a temporary folder).
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import platform
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import redis

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.dashboard_bench import position_at  # noqa: E402
from jobhandle import InvalidParameterError, Job, JobQueue, JobStatus, Settings  # noqa: E402
from jobhandle.models import new_job_ids, utcnow  # noqa: E402
from jobhandle.scheduler import CLEANUP_STEP, retention_cutoffs  # noqa: E402
from jobhandle.stores.base import ClaimRequest, Finished, JobPosition, JobQuery, Outcome  # noqa: E402

RESULTS = ROOT / "bench" / "results"
TYPES = [f"type_{i}" for i in range(10)]
USERS = [f"user_{i:03d}" for i in range(200)]
QUEUES = ["default", "reports", "emails"]
BATCH = 5000
PENDING_LEFT = 20_000
EXPIRED_SHARE, EXPIRED_MAX = 0.10, 1_000_000
OLD = timedelta(hours=25)
TIMED, LIST_TIMED = 200, 40


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def percentiles(times: list[float]) -> dict[str, float]:
    ordered = sorted(times)

    def at(q: float) -> float:
        return round(1000 * ordered[min(len(ordered) - 1, int(q * len(ordered)))], 3)

    return {"p50_ms": round(1000 * statistics.median(ordered), 3), "p95_ms": at(0.95), "p99_ms": at(0.99)}


def timed(call: Callable[[], Any], runs: int) -> dict[str, float]:
    for _ in range(3):
        call()
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        call()
        times.append(time.perf_counter() - started)
    return percentiles(times)


def new_jobs(n: int, start: int, now: datetime) -> list[Job]:
    return [Job(job_type=TYPES[i % len(TYPES)], job_id=job_id, queue=QUEUES[i % len(QUEUES)],
                user_id=USERS[i % len(USERS)], parameters={"n": i}, created_at=now)
            for i, job_id in zip(range(start, start + n), new_job_ids(n), strict=True)]


def end_claimed(queue: JobQueue, n: int, now: datetime) -> int:
    """Claim and end up to ``n`` pending jobs at ``now`` (1 in 100 failed); return how many ended."""
    store, ended = queue.store, 0
    while ended < n:
        claimed = store.claim(ClaimRequest("bench-fill", QUEUES, min(BATCH, n - ended), 600), now)
        if not claimed:
            break
        done = [Finished(j.job_id, j.attempts,
                         Outcome(JobStatus.FAILED, error="ValueError: bad input", error_type="ValueError")
                         if i % 100 == 0 else Outcome(JobStatus.COMPLETED, result={"ok": True}),
                         now + timedelta(milliseconds=5))
                for i, j in enumerate(claimed)]
        store.finish_many_and_claim("bench-fill", done, None, now)
        ended += len(claimed)
    return ended


def fill(queue: JobQueue, n: int) -> dict[str, Any]:
    expired = min(EXPIRED_MAX, int(n * EXPIRED_SHARE))
    to_end = n - PENDING_LEFT
    started, made, ended = time.perf_counter(), 0, 0
    while made < n:
        now = utcnow() - OLD if made < expired else utcnow()
        size = min(BATCH, (expired if made < expired else n) - made)
        queue.store.submit(new_jobs(size, made, now), now)
        made += size
        ended += end_claimed(queue, min(size, to_end - ended), now)
        if made % 500_000 < BATCH:
            log(f"  {made:,} of {n:,} jobs ({time.perf_counter() - started:.0f} s)")
    seconds = time.perf_counter() - started
    return {"jobs": n, "expired": expired, "ended": ended, "fill_seconds": round(seconds, 1),
            "jobs_per_second": round(n / seconds)}


def claim_and_finish(queue: JobQueue, request: ClaimRequest) -> float:
    """Claim one job and finish it; return how long the claim alone took."""
    now = utcnow()
    started = time.perf_counter()
    claimed = queue.store.claim(request, now)
    took = time.perf_counter() - started
    queue.store.finish_many_and_claim(request.worker_id, [Finished(j.job_id, j.attempts, Outcome(
        JobStatus.COMPLETED), now) for j in claimed], None, now)
    return took


def claim_latency(queue: JobQueue, runs: int) -> dict[str, float]:
    """A one-job claim's latency (its finish is not timed)."""
    request = ClaimRequest("bench-claim", QUEUES, 1, 600)
    for _ in range(3):
        claim_and_finish(queue, request)
    return percentiles([claim_and_finish(queue, request) for _ in range(runs)])


def latencies(queue: JobQueue, deep: JobPosition | None) -> dict[str, dict[str, float]]:
    queue.store.submit(new_jobs(TIMED + 10, 0, utcnow()), utcnow())  # something to claim on an empty store
    search = (queue.list(limit=1) or [None])[0]
    lists: dict[str, JobQuery] = {
        "list_first_page": JobQuery(limit=50),
        "list_status_failed": JobQuery(statuses=[JobStatus.FAILED], limit=50),
        "list_user": JobQuery(user_id=USERS[7], limit=50),
        "list_type": JobQuery(job_type=TYPES[3], limit=50),
        "list_search_id_prefix": JobQuery(search=search.job_id[:6] if search else "abcdef", limit=50),
    }
    if deep is not None:
        lists["list_deep_page"] = JobQuery(after=deep, limit=50)
    figures = {"stats": timed(queue.stats, TIMED),
               "submit": timed(lambda: queue.submit(TYPES[0], {"n": 0}, user_id=USERS[0]), TIMED),
               "claim": claim_latency(queue, TIMED)}
    for name, query in lists.items():
        try:
            figures[name] = timed(functools.partial(queue.store.list_jobs, query), LIST_TIMED)
        except InvalidParameterError as exc:  # a list the store refuses at this size: reported, not timed
            figures[name] = {"refused": exc.message}  # type: ignore[dict-item]
    return figures


def cleanup_under_load(queue: JobQueue) -> dict[str, Any]:
    now = utcnow()
    cutoffs = retention_cutoffs(queue.settings, now)
    done = threading.Event()
    removed = [0]

    def clean() -> None:
        while True:
            step = queue.store.cleanup(cutoffs, now, limit=CLEANUP_STEP, removed_before=removed[0])
            removed[0] += step
            if step < CLEANUP_STEP:
                break
        done.set()

    request = ClaimRequest("bench-claim", QUEUES, 1, 600)
    times: list[float] = []
    started = time.perf_counter()
    cleaner = threading.Thread(target=clean, name="cleanup")
    cleaner.start()
    while not done.is_set():  # a job to claim each time: a claim that finds none takes no write
        queue.store.submit(new_jobs(1, 0, utcnow()), utcnow())
        times.append(claim_and_finish(queue, request))
    cleaner.join()
    seconds = time.perf_counter() - started
    return {"removed": removed[0], "seconds": round(seconds, 1), "jobs_per_second": round(removed[0] / seconds),
            "claims_during": len(times), "claim": percentiles(times)}


def rq_memory(client: redis.Redis, jobs: int) -> dict[str, Any]:
    """RQ's memory per finished job for the same small job (a no-op returning a float), its defaults."""
    import rq

    from bench import _rq_app

    before = client.info("memory")["used_memory"]
    q = rq.Queue("tenmillion-rq", connection=client)
    for start in range(0, jobs, 1000):
        q.enqueue_many([rq.Queue.prepare_data(_rq_app.noop) for _ in range(min(1000, jobs - start))])
    rq.SimpleWorker([q], connection=client).work(burst=True, logging_level="WARNING")
    after = client.info("memory")["used_memory"]
    finished = q.finished_job_registry.count
    return {"jobs": jobs, "finished": finished, "bytes_per_job": round((after - before) / max(1, finished))}


def free_port(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) != 0


def start_redis(port: int, workdir: Path) -> subprocess.Popen[bytes]:
    server = shutil.which("redis-server")
    if server is None:
        raise SystemExit("redis-server is not installed (apt-get install redis-server)")
    if not free_port(port):
        raise SystemExit(f"port {port} is taken: pass another --redis-port")
    proc = subprocess.Popen([server, "--port", str(port), "--save", "", "--appendonly", "no", "--dir", str(workdir)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 20
    while free_port(port):
        if time.monotonic() > deadline or proc.poll() is not None:
            raise SystemExit("redis-server did not start")
        time.sleep(0.05)
    return proc


def ratios(empty: dict[str, dict[str, float]], full: dict[str, dict[str, float]]) -> dict[str, float]:
    return {name: round(full[name]["p50_ms"] / empty[name]["p50_ms"], 2) for name in ("submit", "claim", "stats")}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--store", choices=["sqlite", "redis"], required=True)
    p.add_argument("--jobs", type=int, default=10_000_000)
    p.add_argument("--dir", type=Path, default=None, help="where the SQLite file (or Redis's folder) goes")
    p.add_argument("--redis-port", type=int, default=6391)
    p.add_argument("--rq-jobs", type=int, default=20_000)
    p.add_argument("--output", type=Path, default=None)
    args = p.parse_args(argv)
    if args.jobs < 2 * PENDING_LEFT:
        p.error(f"--jobs must be at least {2 * PENDING_LEFT}")
    workdir = args.dir or Path(tempfile.mkdtemp(prefix="ten-million-"))
    workdir.mkdir(parents=True, exist_ok=True)
    server = start_redis(args.redis_port, workdir) if args.store == "redis" else None
    url = f"redis://127.0.0.1:{args.redis_port}/0" if server else f"sqlite:///{workdir}/jobs.db"
    report: dict[str, Any] = {"store": args.store, "machine": {"cpus": os.cpu_count(), "python":
                                                                platform.python_version(),
                                                                "platform": platform.platform()},
                              "started": utcnow().isoformat()}
    try:
        settings = Settings(store=url, global_max_concurrent_jobs=0, per_user_max_concurrent_jobs=0)
        with JobQueue(url, settings=settings) as empty:
            log("empty store")
            report["empty"] = latencies(empty, None)
        client = redis.Redis(port=args.redis_port) if server else None
        if client is not None:
            client.flushall()
            memory_before = client.info("memory")["used_memory"]
        with JobQueue(url, settings=settings) as queue:
            log(f"filling {args.jobs:,} jobs")
            report["fill"] = fill(queue, args.jobs)
            log(f"filled: {report['fill']}")
            if client is not None:
                used = client.info("memory")["used_memory"] - memory_before
                report["memory"] = {"used_bytes": used, "bytes_per_job": round(used / args.jobs)}
            else:
                report["disk"] = {"bytes": sum(f.stat().st_size for f in workdir.glob("jobs.db*")),
                                  "bytes_per_job": round(sum(f.stat().st_size for f in workdir.glob("jobs.db*"))
                                                         / args.jobs)}
            log("latencies at N")
            report["full"] = latencies(queue, position_at(url, min(5_000_000, args.jobs // 2)))
            report["ratios_to_empty"] = ratios(report["empty"], report["full"])
            log("cleanup under load")
            report["cleanup"] = cleanup_under_load(queue)
        if client is not None:
            log("RQ's memory")
            report["rq_memory"] = rq_memory(client, args.rq_jobs)
            client.close()
    finally:
        if server is not None:
            server.terminate()
            server.wait(30)
        if args.dir is None:
            shutil.rmtree(workdir, ignore_errors=True)
    output = args.output or RESULTS / f"ten_million_{args.store}.json"
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
