"""The dashboard at scale, over real HTTP: ``jobhandle serve`` in one process, this one (and a browser) driving it.

    .venv/bin/python bench/dashboard_bench.py --store sqlite --jobs 1000000   # bench/results/dashboard_sqlite.json
    .venv/bin/python bench/dashboard_bench.py --store redis --jobs 1000000    # bench/results/dashboard_redis.json

1. Fill a fresh store with N jobs (bulk submits of 1,000: 10 job types, 200 users, 3 queues), then fail 1% and
   complete 1% of them through the worker primitives (claim, finish), as workers would have.
2. Page latency, measured by the client on loopback (so it includes HTTP, the store reads and the rendering):
   the jobs page (first page, a deep page N/2 jobs down as "next page" links reach it, filtered by status,
   by type and user, a search by id prefix), the overview page and its JSON snapshot. 5 warm-up requests,
   then 40 timed ones each; p50/p95. The snapshot is shared and read from the store at most once a second, so
   it is also timed 10 times 1.1 s apart: each of those reads the store.
3. Idle dashboards: 50 open event streams (``/ui/events``, what each open tab holds); the server's CPU over
   15 s while nothing changes, as a share of one core.
4. Progress to the page: a ``jobhandle worker`` process runs a job that reports progress every 0.25 s with the
   report's wall-clock time as its message; headless Chromium shows the job's page, and a MutationObserver
   records when each message appears. Delay from ``ctx.progress`` to the DOM: p50/p95/max.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import httpx
import psutil
import redis

sys.path.insert(0, str(Path(__file__).resolve().parent))
from api_bench import Server, delete_keys, percentile  # noqa: E402

from jobhandle import JobQueue, JobStatus, Settings  # noqa: E402
from jobhandle.api import pagination  # noqa: E402
from jobhandle.models import utcnow  # noqa: E402
from jobhandle.stores.base import ClaimRequest, Finished, JobPosition, Outcome  # noqa: E402
from jobhandle.stores.redis.keys import parse_redis_url  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
APP = ROOT / "bench" / "_dashboard_app.py"
TYPES = [f"type{n}" for n in range(10)]
USERS = [f"user{n}" for n in range(200)]
QUEUES = ["default", "reports", "media"]
BATCH = 1000


def fill(store_url: str, n: int) -> dict[str, Any]:
    """N jobs in the store; 1% failed, 1% completed. Returns how long it took and an id to search for."""
    queue = JobQueue(store_url, settings=Settings(store=store_url))
    started = time.perf_counter()
    first_id = ""
    for start in range(0, n, BATCH):
        jobs = queue.submit_many([{"job_type": TYPES[i % len(TYPES)], "user_id": USERS[i % len(USERS)],
                                   "queue": QUEUES[i % len(QUEUES)], "parameters": {"n": i}}
                                  for i in range(start, min(n, start + BATCH))])
        first_id = first_id or jobs[0].job_id
    filled = time.perf_counter() - started
    done = 0
    for status in (JobStatus.FAILED, JobStatus.COMPLETED):
        while done < (n // 100) * (2 if status is JobStatus.COMPLETED else 1):
            now = utcnow()
            claimed = queue.store.claim(ClaimRequest("bench", QUEUES, 500, 600), now)
            if not claimed:
                break
            ended = [Finished(j.job_id, j.attempts, Outcome(status, error=f"ValueError: bad input {j.job_id[:4]}"
                                                            if status is JobStatus.FAILED else None,
                                                            error_type="ValueError" if status is JobStatus.FAILED
                                                            else None), now + timedelta(milliseconds=5))
                     for j in claimed]
            queue.store.finish_many_and_claim("bench", ended, None, now)
            done += len(claimed)
    queue.close()
    return {"fill_seconds": round(filled, 1), "jobs_per_second": round(n / filled), "search_id": first_id}


def position_search_id(store_url: str) -> str:
    queue = JobQueue(store_url, settings=Settings(store=store_url))
    job_id = queue.list(limit=1)[0].job_id
    queue.close()
    return job_id


def time_get(client: httpx.Client, path: str, runs: int = 40, warm: int = 5, gap: float = 0.0) -> dict[str, float]:
    times = []
    for i in range(warm + runs):
        time.sleep(gap)
        t0 = time.perf_counter()
        response = client.get(path)
        elapsed = (time.perf_counter() - t0) * 1000
        assert response.status_code == 200, (path, response.status_code, response.text[:300])
        if i >= warm:
            times.append(elapsed)
    return {"p50_ms": round(statistics.median(times), 1), "p95_ms": round(percentile(times, 0.95), 1),
            "max_ms": round(max(times), 1)}


def position_at(store_url: str, depth: int) -> JobPosition:
    """The job ``depth`` places down the default list (newest first), read without walking the list there."""
    if store_url.startswith("redis"):
        location = parse_redis_url(store_url)
        client = redis.Redis.from_url(location.url, decode_responses=True)
        [(job_id, _)] = client.zrevrange(f"{location.prefix}:created", depth - 1, depth - 1, withscores=True)
        created = client.hget(f"{location.prefix}:job:{job_id}", "created_at")
        client.close()
        return JobPosition(datetime.fromtimestamp(float(created), timezone.utc), job_id)
    queue = JobQueue(store_url, settings=Settings(store=store_url))
    [last] = queue.list(offset=depth - 1, limit=1)  # SQLite: an index-only walk
    queue.close()
    return JobPosition(last.created_at, last.job_id)


def deep_cursor(store_url: str, depth: int) -> str:
    """The cursor of the jobs page that starts ``depth`` jobs down the default list (newest first), as a
    reader following "next page" links would hold it."""
    filters = {"status": None, "job_type": None, "user_id": None, "queue": None, "q": None,
               "created_after": None, "created_before": None, "sort": "-created_at"}
    cursor = pagination.Cursor(0, utcnow() + timedelta(days=1), position_at(store_url, depth))
    return pagination.encode(cursor, filters)


def pages(server: Server, store_url: str, n: int, search_id: str) -> dict[str, Any]:
    deep = deep_cursor(store_url, n // 2)
    with httpx.Client(base_url=server.url, timeout=120) as client:
        client.get("/")  # the session cookie
        return {
            "jobs first page": time_get(client, "/jobs"),
            f"jobs deep page ({n // 2:,} jobs down)": time_get(client, f"/jobs?cursor={deep}"),
            "jobs status=failed": time_get(client, "/jobs?status=failed"),
            "jobs job_type+user": time_get(client, "/jobs?job_type=type3&user_id=user13"),
            "jobs search id prefix": time_get(client, f"/jobs?q={search_id[:8]}"),
            "overview page": time_get(client, "/"),
            "overview snapshot (JSON)": time_get(client, "/ui/overview"),
            "overview snapshot, recomputed (1.1 s apart)": time_get(client, "/ui/overview", runs=10, warm=1, gap=1.1),
        }


def open_stream(url: str, cookie: str) -> socket.socket:
    host, port = url.removeprefix("http://").split(":")
    sock = socket.create_connection((host, int(port)))
    sock.sendall(f"GET /ui/events HTTP/1.1\r\nHost: {host}\r\nAccept: text/event-stream\r\n"
                 f"Cookie: jh_session={cookie}\r\n\r\n".encode())
    head = sock.recv(4096)
    assert b"200 OK" in head, head[:200]
    return sock


def idle_dashboards(server: Server, tabs: int = 50, seconds: float = 15.0) -> dict[str, Any]:
    cookie = httpx.get(f"{server.url}/").cookies["jh_session"]
    socks = [open_stream(server.url, cookie) for _ in range(tabs)]
    time.sleep(2)  # let the streams settle
    cpu = server.ps.cpu_times()
    t0 = time.monotonic()
    time.sleep(seconds)
    used = sum(server.ps.cpu_times()[:2]) - sum(cpu[:2])
    share = used / (time.monotonic() - t0)
    for sock in socks:
        sock.close()
    return {"tabs": tabs, "seconds": seconds, "cpu_percent_of_one_core": round(share * 100, 2)}


OBSERVER = """() => {
  window.__delays = [];
  const target = document.querySelector('.job-head [data-f="progress_message"]');
  let last = target.textContent;
  new MutationObserver(() => {
    if (target.textContent === last) return;  // a change of another field; this message was timed already
    last = target.textContent;
    const sent = parseFloat(last);
    if (!Number.isNaN(sent)) window.__delays.push((performance.timeOrigin + performance.now()) / 1000 - sent);
  }).observe(target, {childList: true, characterData: true, subtree: true});
}"""


def progress_to_page(server: Server, store_url: str, steps: int = 40) -> dict[str, Any]:
    from playwright.sync_api import sync_playwright

    env = {**os.environ, "JOB_QUEUE_CPU_THRESHOLD": "100", "JOBHANDLE_PROGRESS_INTERVAL": "0.1"}
    worker = subprocess.Popen([sys.executable, "-m", "jobhandle", "worker", "--app", str(APP), "--store", store_url,
                               "--queue", "live", "--concurrency", "1"], stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL, env=env)
    try:
        job = httpx.post(f"{server.url}/api/v1/jobs", json={"job_type": "ticker", "queue": "live", "priority": 100,
                                                             "parameters": {"steps": steps}}).json()
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=os.environ.get("JOBHANDLE_CHROMIUM", "/usr/bin/chromium"),
                                        args=["--no-sandbox", "--disable-background-networking"])
            page = browser.new_page()
            page.goto(f"{server.url}/jobs/{job['job_id']}")
            page.wait_for_selector('#live[data-state="open"]')
            page.evaluate(OBSERVER)
            page.locator('.job-head [data-f="status"]', has_text="completed").wait_for(timeout=steps * 1000 + 60_000)
            delays = [d * 1000 for d in page.evaluate("window.__delays")]
            browser.close()
    finally:
        worker.terminate()
        worker.wait(30)
    return {"reports_seen": len(delays), "p50_ms": round(statistics.median(delays), 1),
            "p95_ms": round(percentile(delays, 0.95), 1), "max_ms": round(max(delays), 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--store", choices=["sqlite", "redis"], default="sqlite")
    parser.add_argument("--jobs", type=int, default=1_000_000)
    parser.add_argument("--redis", default="redis://127.0.0.1:6379/0")
    parser.add_argument("--reuse-prefix", help="Redis: measure a store an earlier run filled (and keep it)")
    args = parser.parse_args()
    folder = tempfile.TemporaryDirectory()
    prefix = args.reuse_prefix or f"jhbench-{uuid.uuid4().hex[:8]}"
    store_url = f"sqlite:///{folder.name}/jobs.db" if args.store == "sqlite" else f"{args.redis}?prefix={prefix}"
    result: dict[str, Any] = {"store": args.store, "jobs": args.jobs, "python": platform.python_version(),
                              "cpus": psutil.cpu_count(), "when": utcnow().isoformat(timespec="seconds")}
    try:
        if args.reuse_prefix:
            result["fill"] = {"reused": args.reuse_prefix, "search_id": position_search_id(store_url)}
        else:
            print(f"filling {args.jobs:,} jobs ({args.store})...", flush=True)
            result["fill"] = fill(store_url, args.jobs)
        server = Server(store_url)
        try:
            result["pages"] = pages(server, store_url, args.jobs, result["fill"].pop("search_id"))
            result["idle_dashboards"] = idle_dashboards(server)
            result["progress_to_page"] = progress_to_page(server, store_url)
        finally:
            server.stop()
    finally:
        if args.store == "redis" and not args.reuse_prefix:
            delete_keys(args.redis, f"{{{prefix}}}:*")
        folder.cleanup()
    out = ROOT / "bench" / "results" / f"dashboard_{args.store}.json"
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
