"""How long one claim takes while many distinct users wait at one priority level, on SQLite and on Redis.

The claim serves users in turn (the least recently served first); this checks that the cost of finding whose
turn it is does not grow with the number of users waiting. For each store and each user count, N jobs of N
distinct users are submitted in bulk, then ``--claims`` claims of one job each are timed one by one (each
claimed job is finished before the next claim, as a one-slot worker does, so the turns keep moving), with
the default concurrency limits (10 in all, 3 per user) passed as a worker passes them.

    .venv/bin/python bench/fair_claim.py                    # 1,000 / 10,000 / 100,000 users, both stores
    .venv/bin/python bench/fair_claim.py --users 100000 --stores sqlite

Prints p50/p95/max per case and writes ``bench/results/fair_claim.json``. Target: p50 under 2 ms at 100,000.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

from jobhandle.models import Job, JobStatus, utcnow
from jobhandle.stores import open_store
from jobhandle.stores.base import AttemptKey, ClaimRequest, ConcurrencyLimits, Outcome, Store

RESULTS = Path(__file__).parent / "results" / "fair_claim.json"
LIMITS = ConcurrencyLimits(global_max=10, per_user_max=3)
SUBMIT_BATCH = 5000


def fill(store: Store, users: int) -> None:
    now = utcnow()
    for start in range(0, users, SUBMIT_BATCH):
        store.submit([Job(job_type="noop", user_id=f"user-{i:06d}")
                      for i in range(start, min(users, start + SUBMIT_BATCH))], now)


def time_claims(store: Store, claims: int) -> dict[str, Any]:
    times: list[float] = []
    errors: list[str] = []
    served: list[str] = []
    for _ in range(claims):
        started = time.perf_counter()
        try:
            jobs = store.claim(ClaimRequest("bench-worker", ["default"], 1, 30.0, LIMITS), utcnow())
        except Exception as exc:  # the figure to report is "it fails", with the error
            errors.append(f"{type(exc).__name__}: {exc}"[:200])
            break
        times.append((time.perf_counter() - started) * 1000)
        for job in jobs:
            served.append(job.user_id)
            store.finish(AttemptKey(job.job_id, "bench-worker", job.attempts), Outcome(JobStatus.COMPLETED), utcnow())
    ordered = served == sorted(served) and len(set(served)) == len(served)
    out: dict[str, Any] = {"claims": len(times), "errors": errors, "served_in_turn": ordered}
    if times:
        times.sort()
        out.update(p50_ms=round(statistics.median(times), 3), p95_ms=round(times[int(len(times) * 0.95)], 3),
                   max_ms=round(times[-1], 3))
    return out


def run_case(kind: str, users: int, claims: int, redis_url: str, folder: Path) -> dict[str, Any]:
    if kind == "sqlite":
        url = f"sqlite:///{folder}/fair-{users}.db"
    else:
        url = f"{redis_url}?prefix=bench-fair-{uuid.uuid4().hex[:8]}"
    store = open_store(url)
    try:
        started = time.perf_counter()
        fill(store, users)
        filled = time.perf_counter() - started
        result = time_claims(store, claims)
        result.update(store=kind, users=users, fill_seconds=round(filled, 2))
        return result
    finally:
        if kind == "redis":
            wipe(store)
        store.close()


def wipe(store: Store) -> None:
    """Delete the Redis store's keys (the benchmark's own prefix)."""
    client = store._redis  # type: ignore[attr-defined]
    prefix = store._prefix  # type: ignore[attr-defined]
    keys = list(client.scan_iter(match=f"{prefix}:*", count=5000))
    for start in range(0, len(keys), 1000):
        client.delete(*keys[start:start + 1000])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--users", type=int, nargs="+", default=[1000, 10_000, 100_000])
    parser.add_argument("--stores", nargs="+", default=["sqlite", "redis"], choices=["sqlite", "redis"])
    parser.add_argument("--claims", type=int, default=200)
    parser.add_argument("--redis", default="redis://127.0.0.1:6379/0")
    parser.add_argument("--output", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for kind in args.stores:
            for users in args.users:
                row = run_case(kind, users, args.claims, args.redis, Path(tmp))
                rows.append(row)
                status = "FAILS: " + row["errors"][0] if row["errors"] else (
                    f"p50 {row['p50_ms']:.3f} ms  p95 {row['p95_ms']:.3f} ms  max {row['max_ms']:.3f} ms")
                print(f"{kind:7} {users:>8,} users  {status}  (in turn: {row['served_in_turn']}, "
                      f"filled in {row['fill_seconds']} s)", flush=True)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps({"when": time.strftime("%Y-%m-%d %H:%M:%S"), "limits": str(LIMITS),
                                       "rows": rows}, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
