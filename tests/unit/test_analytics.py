"""Analytics arithmetic: the histogram buckets (the same in Python and in the Redis store's Lua), percentiles
of merged histograms, and a window's summary of rollup rows."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from importlib import resources

import pytest
import redis
from hypothesis import given, settings
from hypothesis import strategies as st

from jobhandle import InvalidParameterError
from jobhandle.analytics import (
    MAX_BUCKET,
    TIERS,
    WINDOWS,
    RollupRow,
    Tally,
    bucket_bounds,
    bucket_of,
    percentiles,
    summarize,
    window_named,
)
from jobhandle.stores.redis.scripts import _machine_lua

durations = st.floats(min_value=0, max_value=1e9, allow_nan=False)


@given(durations)
def test_a_duration_lies_in_its_buckets_bounds(seconds: float) -> None:
    bucket = bucket_of(seconds)
    low, high = bucket_bounds(bucket)
    if bucket == MAX_BUCKET:
        assert seconds >= low
    else:
        assert low <= seconds < high or (bucket == 0 and seconds < 0.001)


@given(durations, durations)
def test_buckets_keep_the_order_of_durations(a: float, b: float) -> None:
    if a <= b:
        assert bucket_of(a) <= bucket_of(b)


def test_buckets_are_at_most_an_eighth_wide() -> None:
    for bucket in range(1, MAX_BUCKET):
        low, high = bucket_bounds(bucket)
        assert 1 + 1 / 16 - 1e-12 <= high / low <= 1.125 + 1e-12
        assert bucket_bounds(bucket + 1)[0] == pytest.approx(high)


def test_odd_durations_go_to_bucket_zero() -> None:
    assert bucket_of(-1.0) == bucket_of(float("nan")) == bucket_of(0.0) == bucket_of(0.0009) == 0
    assert bucket_of(0.001) == 1 and bucket_of(float("inf")) == MAX_BUCKET


@pytest.fixture(scope="module")
def lua_bucket_of(redis_server: str) -> object:
    """The Redis store's bucket_of (lib.lua), run by the real server."""
    lib = resources.files("jobhandle.stores.redis").joinpath("lua/lib.lua").read_text()
    source = (lib.replace("{machine}", _machine_lua())
              + "\nbegin(KEYS, ARGV)\nreturn cjson.encode(bucket_of(tonumber(A.seconds)))")
    client = redis.Redis.from_url(redis_server)
    script = client.register_script(source)
    yield lambda seconds: json.loads(script(keys=["{bucket-test}"], args=[json.dumps({"seconds": repr(seconds)})]))
    client.close()


@settings(max_examples=300, deadline=None)
@given(st.one_of(durations, st.sampled_from([0.001 * 2 ** k * (1 + s / 8) for k in range(30) for s in range(8)])))
def test_lua_puts_every_duration_in_the_same_bucket(lua_bucket_of: object, seconds: float) -> None:
    assert lua_bucket_of(seconds) == bucket_of(seconds)  # type: ignore[operator]


def test_percentiles_of_a_histogram() -> None:
    histogram = {bucket_of(0.01): 90, bucket_of(1.0): 9, bucket_of(30.0): 1}
    p = percentiles(histogram)
    assert p.count == 100
    assert bucket_of(p.p50) == bucket_of(0.01)  # type: ignore[arg-type]
    assert bucket_of(p.p95) == bucket_of(1.0)  # type: ignore[arg-type]
    assert bucket_of(p.p99) == bucket_of(1.0)  # type: ignore[arg-type]
    assert percentiles({}).p50 is None


def test_a_tally_goes_into_every_tier_slot() -> None:
    tally = Tally()
    now = 1_700_000_123.5
    tally.moved("x", "running", "completed", 2, now)
    tally.moved("x", "running", "retrying", 1, now)
    tally.moved("x", "pending", "running", 1, now)  # not counted: nothing ended
    tally.started("x", 0.5, now)
    tally.ended("x", 2.0, "ValueError", True, now)
    rows = tally.rows()
    for tier in TIERS:
        slot = int(now // tier.step) * tier.step
        mine = {(r[3], r[4]): r[5] for r in rows if r[0] == tier.step}
        assert all(r[1] == slot for r in rows if r[0] == tier.step)
        assert mine == {("completed", ""): 2, ("retried", ""): 1, ("wait", str(bucket_of(0.5))): 1,
                        ("run", str(bucket_of(2.0))): 1, ("error", "ValueError"): 1}


def test_a_summary_has_a_value_for_every_slot_of_the_window() -> None:
    now = datetime(2026, 12, 1, 12, 0, 30, tzinfo=timezone.utc)
    window = WINDOWS["1h"]
    minute = int(now.timestamp()) // 60 * 60
    rows = [RollupRow(minute, "a", "completed", "", 3), RollupRow(minute, "a", "failed", "", 1),
            RollupRow(minute - 60, "b", "completed", "", 2), RollupRow(minute - 7200, "a", "completed", "", 50),
            RollupRow(minute, "a", "error", "KeyError", 1), RollupRow(minute, "a", "run", str(bucket_of(0.2)), 4)]
    d = summarize(rows, window, now).to_dict()
    assert len(d["slots"]) == 60 and d["slots"][-1] == minute
    assert d["series"]["completed"][-1] == 3 and d["series"]["completed"][-2] == 2
    assert d["totals"]["completed"] == 5  # the row two hours back is outside the window
    assert d["success_rate"] == pytest.approx(5 / 6, abs=1e-4)
    assert d["job_types"]["a"]["success_rate"] == 0.75
    assert d["errors"] == [{"job_type": "a", "error_type": "KeyError", "count": 1, "first_slot": minute,
                            "last_slot": minute}]
    assert d["times"]["run"]["p50"][-1] == d["job_types"]["a"]["run"]["p50"]
    assert d["times"]["run"]["p50"][0] is None
    assert datetime.fromisoformat(d["since"]) == datetime.fromtimestamp(minute, timezone.utc) - timedelta(minutes=59)


def test_unknown_windows_are_refused_by_name() -> None:
    with pytest.raises(InvalidParameterError, match="1h, 24h, 7d"):
        window_named("30d")
