"""Conformance: the analytics rollups each primitive keeps as attempts start and end and jobs end, on every
store, read back per tier, summarised the same way, and kept after retention removed the jobs."""

from __future__ import annotations

import time
from datetime import datetime, timedelta, timezone

from helpers import claim_one, later, submit

from jobhandle import JobStatus
from jobhandle.analytics import TIERS, WINDOWS, RollupRow, bucket_bounds, bucket_of, summarize
from jobhandle.models import Dependency
from jobhandle.retry import lost_worker_policy
from jobhandle.stores import Outcome, Store
from jobhandle.stores.base import AttemptKey, ClaimRequest

T0 = datetime.fromtimestamp(int(time.time()) // 7200 * 7200 + 30, timezone.utc)
"""30 s into the current 2-hour slot, so inside one slot of every tier. Not a fixed date: Redis expires
rollup slots by its own clock."""


def rows(store: Store, step: int, since: datetime = T0 - timedelta(days=1),
         until: datetime = T0 + timedelta(days=1)) -> dict[tuple[str, str, str], int]:
    """(job_type, metric, key) -> n over the slots of tier ``step``."""
    out: dict[tuple[str, str, str], int] = {}
    for row in store.rollups(step, since, until):
        out[row.job_type, row.metric, row.key] = out.get((row.job_type, row.metric, row.key), 0) + row.n
    return out


def run(store: Store, job_type: str, waited: float, ran: float, outcome: Outcome, worker: str = "w1") -> None:
    """A job submitted at T0, started ``waited`` s later, ended ``ran`` s after that with ``outcome``."""
    job = submit(store, T0, job_type)
    claimed = store.claim(ClaimRequest(worker, ("default",), 1, 30.0), later(T0, waited))
    assert [j.job_id for j in claimed] == [job.job_id]
    outcome.execution_time_seconds = ran
    assert store.finish(AttemptKey(job.job_id, worker, 1), outcome, later(T0, waited + ran))


def test_attempts_are_tallied_into_every_tier(store: Store) -> None:
    run(store, "resize", 0.0123, 0.25, Outcome(JobStatus.COMPLETED))
    run(store, "resize", 0.0123, 0.75, Outcome(JobStatus.COMPLETED))
    run(store, "resize", 0.5, 2.5, Outcome(JobStatus.FAILED, error="boom", error_type="ValueError"))
    run(store, "mail", 0.003, 0.04, Outcome(JobStatus.RETRYING, error="later", error_type="Timeout",
                                           run_at=later(T0, 3600)))
    expected = {
        ("resize", "completed", ""): 2, ("resize", "failed", ""): 1, ("mail", "retried", ""): 1,
        ("resize", "wait", str(bucket_of(0.0123))): 2, ("resize", "wait", str(bucket_of(0.5))): 1,
        ("mail", "wait", str(bucket_of(0.003))): 1,
        ("resize", "run", str(bucket_of(0.25))): 1, ("resize", "run", str(bucket_of(0.75))): 1,
        ("resize", "run", str(bucket_of(2.5))): 1, ("mail", "run", str(bucket_of(0.04))): 1,
        ("resize", "error", "ValueError"): 1, ("mail", "error", "Timeout"): 1,
    }
    for tier in TIERS:
        assert rows(store, tier.step) == expected, f"tier of {tier.step} s"


def test_slots_are_the_tiers_steps(store: Store) -> None:
    run(store, "x", 0.0, 0.1, Outcome(JobStatus.COMPLETED))
    for tier in TIERS:
        slots = {row.slot for row in store.rollups(tier.step, T0 - timedelta(days=1), T0 + timedelta(days=1))}
        assert slots == {int(T0.timestamp()) // tier.step * tier.step}


def test_the_read_is_bounded_by_since_and_until(store: Store) -> None:
    run(store, "x", 0.0, 0.1, Outcome(JobStatus.COMPLETED))
    minute = int(T0.timestamp()) // 60 * 60
    start = datetime.fromtimestamp(minute, timezone.utc)
    assert rows(store, 60, since=start, until=start) != {}  # a slot starting exactly at ``since``/``until``
    assert rows(store, 60, since=start + timedelta(seconds=1), until=T0 + timedelta(days=1)) == {}
    assert rows(store, 60, since=T0 - timedelta(days=1), until=start - timedelta(seconds=1)) == {}


def test_cancelled_jobs_and_lost_workers_are_counted(store: Store) -> None:
    pending = submit(store, T0, "report")
    store.cancel(pending.job_id, later(T0, 1))
    running = submit(store, T0, "report", max_retries=0)
    claim_one(store, later(T0, 2), worker_id="gone", lease=5.0)
    recovered = store.recover_expired(later(T0, 60), lost_worker_policy(0))
    assert [j.job_id for j in recovered] == [running.job_id]
    assert recovered[0].status is JobStatus.FAILED
    tally = rows(store, 60)
    assert tally[("report", "cancelled", "")] == 1
    assert tally[("report", "failed", "")] == 1
    assert sum(n for (t, metric, _), n in tally.items() if metric == "error") == 1
    assert not any(metric == "run" for (_, metric, _) in tally)  # no handler ran to its end: no run time


def test_a_dependant_cancelled_with_its_parent_is_counted(store: Store) -> None:
    parent = submit(store, T0, "parent")
    submit(store, T0, "child", depends_on=[Dependency(parent.job_id)])
    store.cancel(parent.job_id, later(T0, 1))
    tally = rows(store, 60)
    assert tally[("parent", "cancelled", "")] == 1 and tally[("child", "cancelled", "")] == 1


def test_a_release_or_a_lost_finish_adds_nothing(store: Store) -> None:
    job = submit(store, T0, "x")
    claim_one(store, later(T0, 1))
    before = rows(store, 60)
    assert store.release(AttemptKey(job.job_id, "w1", 1), later(T0, 2)) is not None
    assert store.finish(AttemptKey(job.job_id, "w1", 1), Outcome(JobStatus.COMPLETED), later(T0, 3)) is False
    assert rows(store, 60) == before


def test_rollups_outlive_the_jobs(store: Store) -> None:
    run(store, "x", 0.0, 0.1, Outcome(JobStatus.COMPLETED))
    assert store.cleanup({JobStatus.COMPLETED: later(T0, 10)}, later(T0, 10)) == 1
    assert rows(store, 60)[("x", "completed", "")] == 1  # the job is gone, its tally is not
    summary = summarize(store.rollups(60, T0 - timedelta(hours=1), T0 + timedelta(minutes=1)), WINDOWS["1h"],
                        T0 + timedelta(minutes=1))
    assert summary.to_dict()["totals"]["completed"] == 1


def test_each_tier_keeps_its_slots_as_long_as_it_says(store: Store) -> None:
    run(store, "x", 0.0, 0.1, Outcome(JobStatus.COMPLETED))
    minute, quarter = TIERS[0], TIERS[1]
    after_minutes_kept = later(T0, minute.keep + minute.step + 60)
    if store.kind == "redis":  # Redis drops a slot by itself when it expires, by the server's clock
        for tier in TIERS:
            slot = int(T0.timestamp()) // tier.step * tier.step
            ttl = store._redis.ttl(store._key("roll", str(tier.step), str(slot)))  # noqa: SLF001
            assert abs(ttl - (slot + tier.step + tier.keep - time.time())) < 60, (tier, ttl)
        return
    store.cleanup({}, after_minutes_kept)
    assert rows(store, minute.step, until=after_minutes_kept) == {}
    assert rows(store, quarter.step, until=after_minutes_kept)[("x", "completed", "")] == 1


def test_percentiles_come_from_the_merged_histograms(store: Store) -> None:
    for ran in (0.1,) * 50 + (1.0,) * 45 + (10.0,) * 5:
        run(store, "t", 0.0, ran, Outcome(JobStatus.COMPLETED))
    window = WINDOWS["24h"]
    summary = summarize(store.rollups(window.step, T0 - timedelta(days=1), T0 + timedelta(hours=1)), window,
                        T0 + timedelta(hours=1)).to_dict()
    run_times = summary["job_types"]["t"]["run"]
    for name, value in (("p50", 0.1), ("p95", 1.0), ("p99", 10.0)):
        low, high = bucket_bounds(bucket_of(value))
        assert low <= run_times[name] < high, (name, run_times)
    assert run_times["count"] == 100 and summary["success_rate"] == 1.0


def test_rows_are_rollup_rows(store: Store) -> None:
    run(store, "x", 0.0, 0.1, Outcome(JobStatus.COMPLETED))
    assert all(isinstance(r, RollupRow) and isinstance(r.n, int) for r in store.rollups(60, T0 - timedelta(1),
                                                                                          T0 + timedelta(1)))
