"""What the stores keep besides jobs stays bounded: the round robin's turn records, rate-limit buckets and
per-user counters go once nothing needs them (cleanup, or on their own), on SQLite and on Redis."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from datetime import datetime, timedelta

import pytest
import redis
from helpers import later, submit, wait_until

from jobhandle import JobStatus
from jobhandle.models import Job, utcnow
from jobhandle.stores import Outcome, Store, open_store
from jobhandle.stores.base import TURN_MEMORY_SECONDS, AttemptKey, ClaimRequest

CUTOFFS_NONE = {JobStatus.COMPLETED: datetime(2000, 1, 1, tzinfo=utcnow().tzinfo)}
"""Retention cutoffs that delete no job: only the bookkeeping is at stake."""


@pytest.fixture(params=["sqlite", "redis"])
def store(request: pytest.FixtureRequest) -> Iterator[Store]:
    from store_urls import STORE_URLS

    s = open_store(STORE_URLS[request.param](request))
    try:
        yield s
    finally:
        s.close()


def turn_records(store: Store) -> set[str]:
    if store.kind == "sqlite":
        with sqlite3.connect(store.path) as conn:  # type: ignore[attr-defined]
            return {r[0] for r in conn.execute("SELECT DISTINCT user_id FROM ready_users")}
    client: redis.Redis = store._redis  # type: ignore[attr-defined]
    return set(client.hkeys(f"{store._prefix}:turns"))  # type: ignore[attr-defined]


def bucket_exists(store: Store, key: str) -> bool:
    if store.kind == "sqlite":
        with sqlite3.connect(store.path) as conn:  # type: ignore[attr-defined]
            return conn.execute("SELECT 1 FROM rate_limits WHERE key = ?", (key,)).fetchone() is not None
    return bool(store._redis.exists(f"{store._prefix}:bucket:{key}"))  # type: ignore[attr-defined]


def serve(store: Store, now: datetime, user: str) -> None:
    submit(store, now, user_id=user)
    [job] = store.claim(ClaimRequest("w1", ["default"], 1, 30), now)
    assert job.user_id == user
    assert store.finish(AttemptKey(job.job_id, "w1", job.attempts), Outcome(JobStatus.COMPLETED), now)


def test_cleanup_forgets_the_turns_of_users_served_long_ago_with_nothing_waiting(store: Store) -> None:
    now = utcnow()
    for user in ("gone", "waiting", "recent"):
        serve(store, now, user)
    serve(store, later(now, TURN_MEMORY_SECONDS), "recent")
    submit(store, now, user_id="waiting")  # still has a job waiting: keeps its turn
    assert turn_records(store) == {"gone", "waiting", "recent"}
    store.cleanup(CUTOFFS_NONE, later(now, TURN_MEMORY_SECONDS + 1))
    assert turn_records(store) == {"waiting", "recent"}
    serve(store, later(now, TURN_MEMORY_SECONDS + 2), "gone")
    assert "gone" in turn_records(store), "a returning user is remembered again once served"


def test_rate_limit_buckets_go_once_full_again(store: Store) -> None:
    now = utcnow()
    assert store.take_token("rate:once", 1000.0, 1.0, now) == 0.0  # full again 1 ms later
    assert store.take_token("rate:busy", 0.001, 1.0, now) == 0.0  # full again in 1,000 s
    if store.kind == "sqlite":
        store.cleanup(CUTOFFS_NONE, later(now, 1))
    else:  # Redis expires each bucket by itself when it is full again
        wait_until(lambda: not bucket_exists(store, "rate:once"), 5, "the full bucket to expire")
    assert not bucket_exists(store, "rate:once")
    assert bucket_exists(store, "rate:busy")
    assert store.take_token("rate:busy", 0.001, 1.0, later(now, 1)) > 0, "a bucket in use keeps its state"


def test_per_user_counters_go_with_the_users_jobs(store: Store) -> None:
    now = utcnow()
    serve(store, now, "passing")
    assert store.count_by_status("passing") == {"completed": 1}
    store.cleanup({JobStatus.COMPLETED: later(now, 1)}, later(now, 2))
    assert store.count_by_status("passing") == {}
    if store.kind == "redis":
        assert not store._redis.exists(f"{store._prefix}:ucount:passing")  # type: ignore[attr-defined]
    assert store.counts().by_status == {}


def test_turn_records_of_many_users_are_forgotten_in_batches(store: Store) -> None:
    now = utcnow()
    n = 2500  # more than a cleanup batch
    store.submit([Job(job_type="x", user_id=f"u{i:04d}") for i in range(n)], now)
    while claimed := store.claim(ClaimRequest("w1", ["default"], 500, 30), now):
        for job in claimed:
            store.finish(AttemptKey(job.job_id, "w1", job.attempts), Outcome(JobStatus.COMPLETED), now)
    assert len(turn_records(store)) == n
    store.cleanup(CUTOFFS_NONE, now + timedelta(seconds=TURN_MEMORY_SECONDS + 1))
    assert turn_records(store) == set()
