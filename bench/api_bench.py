"""The REST API under load, over real HTTP on loopback: ``jobhandle serve`` in one process, this one driving it.

    .venv/bin/python bench/api_bench.py                  # everything; summary on stdout, JSON in bench/results/api.json
    .venv/bin/python bench/api_bench.py --sse 500 --rate 500 --seconds 10
    .venv/bin/python bench/api_bench.py --store redis      # the same on the Redis store: bench/results/api_redis.json

1. Idle SSE: open N job streams (one per pending job), measure the server's CPU and memory while they sit
   idle, then how long a change takes to reach its stream with the N open (cancel a few jobs one at a time:
   from sending the cancel to receiving its job_complete), then bulk-cancel the rest (every stream must get
   its job_complete).
2. Fixed rate: submit (POST /api/v1/jobs) and status (GET /api/v1/jobs/status/{id}) requests alternate at a
   steady rate (open loop: requests are sent on schedule whether or not earlier ones returned); latency p50/p99.
3. Throughput: C concurrent connections send submit/status pairs as fast as the server answers; requests/s
   (and, for the read path alone, GET status only).

The HTTP client of phases 2 and 3 is a minimal keep-alive HTTP/1.1 client (``Connection``), so the load
generator, on the same 2 cores, costs a small fraction of what the server does.

The server runs API-only (no workers) on a fresh store per phase (a SQLite file, or a fresh key prefix on the
Redis server with --store redis), so the numbers are the API's, not the handlers'.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
import psutil
import redis

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results" / "api.json"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for_http(url: str, what: str, seconds: float = 30.0) -> None:
    """Return once ``url`` answers 200 (a server started in a child process); RuntimeError after ``seconds``."""
    deadline = time.monotonic() + seconds
    while True:
        try:
            if httpx.get(url).status_code == 200:
                return
        except httpx.TransportError:
            pass
        if time.monotonic() > deadline:
            raise RuntimeError(f"{what} did not start")
        time.sleep(0.05)


class Server:
    """``jobhandle serve`` in a child process."""

    def __init__(self, store: str) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        env = {**os.environ, "JOB_QUEUE_CPU_THRESHOLD": "100"}
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "jobhandle", "serve", "--port", str(self.port), "--log-level", "WARNING",
             "--store", store],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
        self.ps = psutil.Process(self.proc.pid)
        wait_for_http(f"{self.url}/api/v1/jobs/health", "the server")

    def stop(self) -> None:
        self.proc.send_signal(signal.SIGTERM)
        self.proc.wait(30)


def delete_keys(url: str, pattern: str) -> None:
    """Remove a finished phase's Redis store (SCAN is fine for a benchmark's clean-up)."""
    client = redis.Redis.from_url(url)
    try:
        for key in client.scan_iter(match=pattern, count=1000):
            client.delete(key)
    finally:
        client.close()


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def idle_sse(server: Server, n: int, idle_seconds: float, probes: int = 20) -> dict[str, Any]:
    """N job streams sit idle (server CPU and memory measured), then ``probes`` jobs are cancelled one at a time
    (the delay from sending the cancel to its stream's job_complete), then the rest at once (bulk cancel)."""
    async with httpx.AsyncClient(base_url=server.url, timeout=60) as client:
        submitted = await client.post("/api/v1/jobs/batch", json={"jobs": [{"job_type": "idle"}] * n})
        ids = [job["job_id"] for job in submitted.json()["jobs"]]
        rss_before = server.ps.memory_info().rss
        opened = asyncio.Event()
        open_count = 0
        completed_at: dict[str, float] = {}

        async def stream(job_id: str) -> None:
            """Read the SSE stream from a raw socket: 500 httpx streams would cost the client more than the server."""
            nonlocal open_count
            reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
            writer.write(f"GET /api/v1/jobs/status/{job_id}/stream HTTP/1.1\r\nHost: bench\r\n\r\n".encode())
            seen_data = False
            while line := await reader.readline():
                if line.startswith(b"data:") and not seen_data:
                    seen_data = True
                    open_count += 1
                    if open_count == n:
                        opened.set()
                elif line.startswith(b"event: job_complete"):
                    completed_at[job_id] = time.perf_counter()
                    break
            writer.close()

        tasks = [asyncio.create_task(stream(job_id)) for job_id in ids]
        await asyncio.wait_for(opened.wait(), 120)
        health = (await client.get("/api/v1/jobs/health")).json()
        cpu_before = server.ps.cpu_times()
        await asyncio.sleep(idle_seconds)  # the measurement window: the streams sit idle
        cpu_after = server.ps.cpu_times()
        rss_idle = server.ps.memory_info().rss
        single: list[float] = []
        for job_id in ids[:probes]:
            sent = time.perf_counter()
            await client.post(f"/api/v1/jobs/cancel/{job_id}")
            while job_id not in completed_at:
                await asyncio.sleep(0.0005)
            single.append(completed_at[job_id] - sent)
        started = time.perf_counter()
        await client.post("/api/v1/jobs/cancel", json={"filter": {"job_type": "idle"}})
        await asyncio.wait_for(asyncio.gather(*tasks), 120)
        bulk = [completed_at[job_id] - started for job_id in ids[probes:]]
    idle_cpu = (cpu_after.user + cpu_after.system) - (cpu_before.user + cpu_before.system)
    return {
        "streams": n, "subscribers_seen_by_server": health["events"]["subscribers"],
        "server_cpu_percent_while_idle": round(100 * idle_cpu / idle_seconds, 2),
        "server_rss_mb_before": round(rss_before / 2**20, 1), "server_rss_mb_with_streams": round(rss_idle / 2**20, 1),
        "rss_kb_per_stream": round((rss_idle - rss_before) / n / 1024, 1),
        "all_completed": len(completed_at) == n,
        "cancel_to_job_complete_ms": {"p50": round(1000 * statistics.median(single), 2),
                                      "max": round(1000 * max(single), 2), "n": len(single)},
        "bulk_cancel_of_the_rest_to_last_job_complete_ms": round(1000 * max(bulk), 1),
    }


class Connection:
    """A minimal keep-alive HTTP/1.1 client connection: the load generator must cost far less than the server
    it measures (httpx's async client spends ~2 ms of CPU per request here, more than the server)."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer

    @classmethod
    async def open(cls, port: int) -> Connection:
        return cls(*await asyncio.open_connection("127.0.0.1", port))

    async def request(self, method: str, path: str, body: Any = None) -> tuple[int, bytes]:
        data = b"" if body is None else json.dumps(body).encode()
        self.writer.write(f"{method} {path} HTTP/1.1\r\nHost: bench\r\nContent-Type: application/json\r\n"
                          f"Content-Length: {len(data)}\r\n\r\n".encode() + data)
        head = await self.reader.readuntil(b"\r\n\r\n")
        length = 0
        for line in head.split(b"\r\n"):
            if line.lower().startswith(b"content-length:"):
                length = int(line.split(b":", 1)[1])
        return int(head[9:12]), await self.reader.readexactly(length)

    def close(self) -> None:
        self.writer.close()


async def submit_and_status(conn: Connection, kind: str, job_id: str) -> int:
    if kind == "submit":
        status, _ = await conn.request("POST", "/api/v1/jobs", {"job_type": "bench", "parameters": {"n": 1}})
    else:
        status, _ = await conn.request("GET", f"/api/v1/jobs/status/{job_id}")
    return status


async def fixed_rate(server: Server, rate: float, seconds: float, pool_size: int = 64) -> dict[str, Any]:
    """Open loop: request i is due at start + i/rate; its latency counts from when it was due (so a slow server
    cannot hide its backlog by delaying the sending, i.e. no coordinated omission)."""
    pool: asyncio.Queue[Connection] = asyncio.Queue()
    for _ in range(pool_size):
        pool.put_nowait(await Connection.open(server.port))
    first = await pool.get()
    _, body = await first.request("POST", "/api/v1/jobs", {"job_type": "bench"})
    pool.put_nowait(first)
    job_id = json.loads(body)["job_id"]
    latencies: dict[str, list[float]] = {"submit": [], "status": []}
    errors = 0

    async def one(kind: str, due: float) -> None:
        nonlocal errors
        conn = await pool.get()
        try:
            if await submit_and_status(conn, kind, job_id) >= 400:
                errors += 1
        finally:
            pool.put_nowait(conn)
        latencies[kind].append(time.perf_counter() - due)

    tasks = []
    start = time.perf_counter()
    total = int(rate * seconds)
    for i in range(total):
        due = start + i / rate
        if (delay := due - time.perf_counter()) > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(one("submit" if i % 2 == 0 else "status", due)))
    await asyncio.gather(*tasks)
    took = time.perf_counter() - start
    while not pool.empty():
        pool.get_nowait().close()
    out: dict[str, Any] = {"target_rate": rate, "achieved_rate": round(total / took, 1), "errors": errors}
    for kind, values in latencies.items():
        out[kind] = {"p50_ms": round(1000 * percentile(values, 0.5), 2),
                     "p99_ms": round(1000 * percentile(values, 0.99), 2), "n": len(values)}
    return out


async def fixed_rate_repeated(server: Server, rate: float, seconds: float, repeats: int) -> dict[str, Any]:
    """``fixed_rate`` ``repeats`` times on the same server: on a shared 2-core VM one stall of the machine
    decides a run's p99, so the medians of the runs' p99s are the figures to read."""
    runs = [await fixed_rate(server, rate, seconds) for _ in range(repeats)]
    return {"runs": runs,
            "submit_p99_ms_median": statistics.median(r["submit"]["p99_ms"] for r in runs),
            "status_p99_ms_median": statistics.median(r["status"]["p99_ms"] for r in runs)}


async def throughput(server: Server, concurrency: int, seconds: float) -> dict[str, Any]:
    """Closed loop: ``concurrency`` connections, each sending submit/status pairs back to back."""
    conns = [await Connection.open(server.port) for _ in range(concurrency)]
    _, body = await conns[0].request("POST", "/api/v1/jobs", {"job_type": "bench"})
    job_id = json.loads(body)["job_id"]
    counts = {"submit": 0, "status": 0}
    deadline = time.perf_counter() + seconds

    async def loop(conn: Connection) -> None:
        while time.perf_counter() < deadline:
            for kind in counts:
                await submit_and_status(conn, kind, job_id)
                counts[kind] += 1

    cpu_before = server.ps.cpu_times()
    start = time.perf_counter()
    await asyncio.gather(*(loop(conn) for conn in conns))
    took = time.perf_counter() - start
    cpu_after = server.ps.cpu_times()
    for conn in conns:
        conn.close()
    done = sum(counts.values())
    cpu = (cpu_after.user + cpu_after.system) - (cpu_before.user + cpu_before.system)
    return {"concurrency": concurrency, "requests_per_second": round(done / took, 1),
            "server_cpu_ms_per_request": round(1000 * cpu / done, 3)}


async def status_only(server: Server, concurrency: int, seconds: float) -> dict[str, Any]:
    """Closed loop of GET status alone (the read path: no thread-pool hop, no write)."""
    conns = [await Connection.open(server.port) for _ in range(concurrency)]
    _, body = await conns[0].request("POST", "/api/v1/jobs", {"job_type": "bench"})
    job_id = json.loads(body)["job_id"]
    done = 0
    deadline = time.perf_counter() + seconds

    async def loop(conn: Connection) -> None:
        nonlocal done
        while time.perf_counter() < deadline:
            await submit_and_status(conn, "status", job_id)
            done += 1

    start = time.perf_counter()
    await asyncio.gather(*(loop(conn) for conn in conns))
    took = time.perf_counter() - start
    for conn in conns:
        conn.close()
    return {"concurrency": concurrency, "requests_per_second": round(done / took, 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sse", type=int, default=500, help="idle SSE streams")
    parser.add_argument("--idle", type=float, default=5.0, help="seconds the streams sit idle while measured")
    parser.add_argument("--rate", type=float, default=500.0, help="requests/s of the fixed-rate phase")
    parser.add_argument("--seconds", type=float, default=10.0, help="length of the fixed-rate and throughput phases")
    parser.add_argument("--concurrency", type=int, default=16, help="connections of the throughput phases")
    parser.add_argument("--repeats", type=int, default=3, help="runs of the fixed-rate phase")
    parser.add_argument("--store", choices=("sqlite", "redis"), default="sqlite",
                        help="the server's store: a SQLite file, or Redis (--redis-url, a fresh key prefix per phase)")
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/0")
    parser.add_argument("--output", type=Path, default=None, help="default: bench/results/api.json (api_redis.json)")
    args = parser.parse_args()
    output = args.output or RESULTS.with_name("api.json" if args.store == "sqlite" else "api_redis.json")
    results: dict[str, Any] = {
        "machine": {"python": platform.python_version(), "cpus": os.cpu_count(), "platform": platform.platform()},
        "store": args.store,
    }
    with tempfile.TemporaryDirectory() as tmp:
        for name, phase in (("idle_sse", lambda s: idle_sse(s, args.sse, args.idle)),
                            ("fixed_rate", lambda s: fixed_rate_repeated(s, args.rate, args.seconds, args.repeats)),
                            ("throughput", lambda s: throughput(s, args.concurrency, args.seconds)),
                            ("status_only", lambda s: status_only(s, args.concurrency, args.seconds))):
            directory = Path(tmp) / name
            directory.mkdir()
            prefix = f"apibench-{uuid.uuid4().hex[:8]}"
            store = (f"sqlite:///{directory}/jobs.db" if args.store == "sqlite"
                     else f"{args.redis_url}?prefix={prefix}")
            server = Server(store)  # a fresh server and store per phase
            try:
                results[name] = asyncio.run(phase(server))
            finally:
                server.stop()
                if args.store == "redis":
                    delete_keys(args.redis_url, f"{{{prefix}}}:*")
            print(name, json.dumps(results[name]), flush=True)
    output.parent.mkdir(exist_ok=True)
    output.write_text(json.dumps(results, indent=2) + "\n")
    print(f"written to {output}")


if __name__ == "__main__":
    main()
