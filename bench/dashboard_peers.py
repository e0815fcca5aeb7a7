"""jobhandle's dashboard and rq-dashboard side by side, on the same Redis server and the same number of jobs.

    .venv/bin/python bench/dashboard_peers.py --jobs 200000     # table on stdout, JSON in bench/results/

rq-dashboard (the dashboard RQ users run) in its default configuration (``rq-dashboard -u <url>``), over RQ
queues filled with N jobs (``Queue.enqueue_many`` in pipelines of 1,000, in Redis database 13, emptied before
and after); jobhandle's ``jobhandle serve`` over its Redis store filled with N jobs (bulk submits of 1,000),
the same server. Each request over HTTP on loopback, 5 warm-up then 30 timed: what a browser asks for to show a
queue's first page of 50 jobs, a page half-way down (3 timed runs on rq-dashboard: each takes seconds), the
overview (queue counts), and a search by job id (rq-dashboard has none).
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
from pathlib import Path
from typing import Any

import httpx
import redis

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))
import rq  # noqa: E402
from api_bench import Server, delete_keys, free_port, wait_for_http  # noqa: E402
from dashboard_bench import deep_cursor, time_get  # noqa: E402

from bench import _rq_app  # noqa: E402
from jobhandle import JobQueue, Settings  # noqa: E402

RQ_DB = 13
PER_PAGE = 50


def fill_rq(url: str, n: int) -> float:
    connection = redis.Redis.from_url(url)
    connection.flushdb()
    queue = rq.Queue("default", connection=connection)
    started = time.perf_counter()
    for start in range(0, n, 1000):
        with connection.pipeline() as pipe:
            queue.enqueue_many([rq.Queue.prepare_data(_rq_app.latency, args=(float(i),))
                                for i in range(start, min(n, start + 1000))], pipeline=pipe)
            pipe.execute()
    took = time.perf_counter() - started
    connection.close()
    return took


def rq_dashboard(url: str, n: int) -> dict[str, Any]:
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "rq_dashboard", "-u", url, "-p", str(port), "-b", "127.0.0.1"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_for_http(f"http://127.0.0.1:{port}/0/data/queues.json", "rq-dashboard")
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=300) as client:
            middle = n // PER_PAGE // 2
            return {
                "queue first page (50 jobs)": time_get(client, f"/0/data/jobs/default/queued/{PER_PAGE}/asc/1.json",
                                                       runs=30),
                # Few runs: rq-dashboard 0.9 passes the page's end as a length to Queue.get_job_ids, so this page
                # fetches every job from its start to the end of the queue, one HGETALL each.
                f"queue page {middle:,} ({middle * PER_PAGE:,} jobs down)": time_get(
                    client, f"/0/data/jobs/default/queued/{PER_PAGE}/asc/{middle}.json", runs=3, warm=1),
                "overview (queue counts)": time_get(client, "/0/data/queues.json", runs=30),
                "search by job id or error": "not offered",
            }
    finally:
        proc.terminate()
        proc.wait(10)


def ours(url: str, n: int) -> dict[str, Any]:
    prefix = f"peers-{uuid.uuid4().hex[:8]}"
    store = f"{url}?prefix={prefix}"
    queue = JobQueue(store, settings=Settings(store=store))
    started = time.perf_counter()
    first = ""
    for start in range(0, n, 1000):
        jobs = queue.submit_many([{"job_type": "bench", "parameters": {"n": i}}
                                  for i in range(start, min(n, start + 1000))])
        first = first or jobs[0].job_id
    filled = time.perf_counter() - started
    queue.close()
    server = Server(store)
    try:
        deep = deep_cursor(store, n // 2)
        with httpx.Client(base_url=server.url, timeout=300) as client:
            client.get("/")  # the session cookie
            return {
                "fill_seconds": round(filled, 1),
                "queue first page (50 jobs)": time_get(client, f"/jobs?queue=default&limit={PER_PAGE}", runs=30),
                f"queue page {n // PER_PAGE // 2:,} ({n // 2:,} jobs down)": time_get(
                    client, f"/jobs?limit={PER_PAGE}&cursor={deep}", runs=30),
                "overview (queue counts)": time_get(client, "/ui/overview", runs=30),
                "search by job id or error": time_get(client, f"/jobs?q={first[:8]}", runs=30),
            }
    finally:
        server.stop()
        delete_keys(url, f"{{{prefix}}}:*")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--jobs", type=int, default=200_000)
    parser.add_argument("--redis", default="redis://127.0.0.1:6379")
    parser.add_argument("--output", type=Path, default=ROOT / "bench" / "results" / "dashboard_peers.json")
    args = parser.parse_args()
    rq_url = f"{args.redis}/{RQ_DB}"
    results: dict[str, Any] = {"machine": {"python": platform.python_version(), "cpus": os.cpu_count(),
                                           "platform": platform.platform()},
                               "jobs": args.jobs, "rq": rq.__version__}
    try:
        results["rq_fill_seconds"] = round(fill_rq(rq_url, args.jobs), 1)
        print(f"RQ filled in {results['rq_fill_seconds']} s", flush=True)
        results["rq-dashboard"] = rq_dashboard(rq_url, args.jobs)
        print("rq-dashboard", json.dumps(results["rq-dashboard"]), flush=True)
    finally:
        redis.Redis.from_url(rq_url).flushdb()
    results["jobhandle"] = ours(f"{args.redis}/0", args.jobs)
    print("jobhandle", json.dumps(results["jobhandle"]), flush=True)
    args.output.write_text(json.dumps(results, indent=2) + "\n")
    print(f"{args.jobs:,} jobs on one Redis; p50 / p95 ms (client side, loopback)")
    print("| request | rq-dashboard | jobhandle | ratio (p95) |\n| --- | ---: | ---: | ---: |")
    for name, theirs in results["rq-dashboard"].items():
        mine = next(v for k, v in results["jobhandle"].items() if k.split(" (")[0] == name.split(" (")[0]
                    or k.split(" ")[:2] == name.split(" ")[:2])
        if isinstance(theirs, str):
            print(f"| {name} | {theirs} | {mine['p50_ms']} / {mine['p95_ms']} | - |")
        else:
            print(f"| {name} | {theirs['p50_ms']} / {theirs['p95_ms']} | {mine['p50_ms']} / {mine['p95_ms']} | "
                  f"{theirs['p95_ms'] / mine['p95_ms']:.1f}x |")
    print(f"written to {args.output}")


if __name__ == "__main__":
    main()
