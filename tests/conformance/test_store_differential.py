"""Randomized differential tests: each store's answers held to the pure Python references (tests/reference.py)
for the algorithms the stores write in their own languages: the fair claim order, dependency resolution and
the token bucket. Hypothesis draws the sequences of operations; a failure shrinks to the shortest one."""

from __future__ import annotations

import math
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta

import pytest
import reference
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from store_urls import delete_redis_store

from jobhandle.models import Dependency, Job, JobStatus, utcnow
from jobhandle.stores import Outcome, Store, open_store
from jobhandle.stores.base import NO_LIMIT, AttemptKey, ClaimRequest, ConcurrencyLimits

KINDS = ["memory", "sqlite", "redis"]
EXAMPLES = settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                          HealthCheck.too_slow])
USERS = ["ann", "Bob", "bob", "cy", "dé"]  # upper/lower case and non-ASCII: names tie-break in byte order
QUEUES = ["default", "other"]


@pytest.fixture(params=KINDS)
def open_fresh(request: pytest.FixtureRequest):  # type: ignore[no-untyped-def]
    """A function that opens a fresh, empty store of this kind for each Hypothesis example."""
    kind = request.param
    server = request.getfixturevalue("redis_server") if kind == "redis" else None

    @contextmanager
    def fresh() -> Iterator[Store]:
        with tempfile.TemporaryDirectory() as folder:
            name = f"jhdiff-{uuid.uuid4().hex[:12]}"
            url = {"memory": "memory://", "sqlite": f"sqlite:///{folder}/jobs.db",
                   "redis": f"{server}?prefix={name}"}[kind]
            store = open_store(url)
            try:
                yield store
            finally:
                store.close()
                if server is not None:
                    delete_redis_store(server, name)

    return fresh


# -- the fair claim order --------------------------------------------------------------------------------

# Few users, levels and queues, small claims: so that users compete for turns at one level most of the time.
submits = st.tuples(st.just("submit"), st.sampled_from(USERS), st.sampled_from(["default", "default", "other"]),
                    st.sampled_from([0, 0, 10]), st.integers(1, 4))
claims = st.tuples(st.just("claim"), st.sampled_from([("default",), ("default",), ("other",), ("default", "other")]),
                   st.integers(1, 3), st.one_of(st.none(), st.tuples(st.integers(1, 8), st.integers(1, 3))))
finishes = st.tuples(st.just("finish"), st.integers(0, 100))
cancels = st.tuples(st.just("cancel"), st.integers(0, 100))
claim_ops = st.lists(st.one_of(submits, submits, claims, claims, finishes, cancels), min_size=1, max_size=40)


@given(ops=claim_ops)
@EXAMPLES
def test_claims_take_the_jobs_the_reference_fair_order_takes(open_fresh, ops: list[tuple]) -> None:  # type: ignore[no-untyped-def]
    now = utcnow()
    with open_fresh() as store:
        pending: dict[str, reference.Waiting] = {}
        running: dict[str, str] = {}  # job_id -> user
        attempts: dict[str, int] = {}
        turns: dict[str, int] = {}
        for op in ops:
            if op[0] == "submit":
                _, user, queue, level, n = op
                for job in store.submit([Job(job_type="x", user_id=user, queue=queue, priority=level)
                                         for _ in range(n)], now):
                    pending[job.job_id] = reference.Waiting(job.job_id, queue, level, user, job.seq)
            elif op[0] == "claim":
                _, queues, limit, limits = op
                per_user = limits[1] if limits else NO_LIMIT
                allowed = min(limit, limits[0] - len(running)) if limits else limit
                counts = {u: list(running.values()).count(u) for u in set(running.values())}
                expected = reference.fair_claim(pending.values(), queues, allowed, turns, counts, per_user)
                request = ClaimRequest("w", list(queues), limit, 30, ConcurrencyLimits(*limits) if limits else None)
                claimed = store.claim(request, now)
                assert [j.job_id for j in claimed] == expected, f"after {ops[:ops.index(op) + 1]}"
                for job in claimed:
                    del pending[job.job_id]
                    running[job.job_id] = job.user_id
                    attempts[job.job_id] = job.attempts
                    turns[job.user_id] = max(turns.get(job.user_id, 0), job.seq)
            elif op[0] == "finish" and running:
                job_id = sorted(running)[op[1] % len(running)]
                assert store.finish(AttemptKey(job_id, "w", attempts[job_id]), Outcome(JobStatus.COMPLETED), now)
                del running[job_id]
            elif op[0] == "cancel" and pending:
                job_id = sorted(pending)[op[1] % len(pending)]
                store.cancel(job_id, now)
                del pending[job_id]


# -- dependency resolution -------------------------------------------------------------------------------

CONDITIONS = ["success", "failure", "completion"]
ENDINGS = [JobStatus.COMPLETED, JobStatus.FAILED, JobStatus.CANCELLED]
dependency_ops = st.lists(st.one_of(
    st.tuples(st.just("add"), st.lists(st.tuples(st.integers(0, 100), st.sampled_from(CONDITIONS)), max_size=3)),
    st.tuples(st.just("end"), st.integers(0, 100), st.sampled_from(ENDINGS)),
), min_size=1, max_size=30)


@given(ops=dependency_ops)
@EXAMPLES
def test_dependants_are_released_and_cancelled_as_the_reference_says(open_fresh, ops: list[tuple]) -> None:  # type: ignore[no-untyped-def]
    now = utcnow()
    model = reference.DependencyModel()
    with open_fresh() as store:
        ids: list[str] = []
        for op in ops:
            if op[0] == "add":
                chosen = {ids[i % len(ids)]: c for i, c in op[1]} if ids else {}  # one condition per parent
                parents = list(chosen.items())
                [job] = store.submit([Job(job_type="x", depends_on=[Dependency(p, c) for p, c in parents])], now)
                assert job.status is model.add(job.job_id, parents)
                ids.append(job.job_id)
            elif ids:
                job_id = ids[op[1] % len(ids)]
                if model.status[job_id] is not JobStatus.PENDING:
                    continue  # only a job that can run ends by running (or by a cancel)
                if op[2] is JobStatus.CANCELLED:
                    store.cancel(job_id, now)
                else:
                    _run(store, now, job_id, Outcome(op[2], error=None if op[2] is JobStatus.COMPLETED else "no"))
                model.end(job_id, op[2])
            stored = {job_id: store.get(job_id).status for job_id in ids}  # type: ignore[union-attr]
            assert stored == {job_id: model.status[job_id] for job_id in ids}, f"after {ops[:ops.index(op) + 1]}"


def _run(store: Store, now: datetime, job_id: str, outcome: Outcome) -> None:
    """Claim every pending job, end ``job_id`` with ``outcome``, hand the others back (pending again)."""
    claimed = store.claim(ClaimRequest("w", ["default"], 1000, 30), now)
    assert job_id in [j.job_id for j in claimed]
    for job in claimed:
        if job.job_id == job_id:
            assert store.finish(AttemptKey(job_id, "w", job.attempts), outcome, now)
        else:
            assert store.release(AttemptKey(job.job_id, "w", job.attempts), now) is not None


# -- the token bucket ------------------------------------------------------------------------------------

bucket_calls = st.lists(st.tuples(st.floats(0, 5, allow_nan=False), st.sampled_from(["a", "b"])),
                        min_size=1, max_size=25)


@given(calls=bucket_calls, per_second=st.sampled_from([0.5, 2.0, 10.0]), burst=st.sampled_from([1.0, 2.5, 4.0]))
@EXAMPLES
def test_token_buckets_answer_as_the_reference_bucket(open_fresh, calls: list[tuple[float, str]],  # type: ignore[no-untyped-def]
                                                      per_second: float, burst: float) -> None:
    start = utcnow()
    buckets: dict[str, tuple[float, float]] = {}
    when = start
    with open_fresh() as store:
        for step, key in calls:
            when += timedelta(seconds=step)  # a datetime: the store sees times to the microsecond
            clock = when.timestamp()
            tokens, updated = buckets.get(key, (burst, clock))
            tokens, expected = reference.take_token(tokens, updated, clock, per_second, burst)
            buckets[key] = (tokens, max(clock, updated))
            wait = store.take_token(key, per_second, burst, when)
            assert math.isclose(wait, expected, rel_tol=1e-9, abs_tol=1e-6), (step, key, wait, expected)
