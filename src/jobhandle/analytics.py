"""Analytics from rollups: what happened per time slot and job type, kept by the stores as jobs move.

Every store primitive that starts or ends an attempt adds to a ``Tally`` inside its own transaction (one SQL
transaction, one Lua script): jobs completed, failed, cancelled and retried; the wait before each attempt
started and the run time of each attempt that ended, as histograms; failures by error type. The tally goes
into three tiers of slots (a minute, 15 minutes, 2 hours), each kept as long as the window it serves, so a
window's figures are read from a few hundred rows whatever the number of jobs, and they stay after retention
removed the jobs themselves.

Times are histograms of fixed buckets, eight per doubling (each at most 12.5% wide), so percentiles of any window are
exact to within a bucket and slots add up by adding counts. ``bucket_of`` uses ``frexp``, which is exact, so
the Redis store's Lua copy of it (lua/lib.lua) puts every time in the same bucket.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from .errors import InvalidParameterError
from .models import JobStatus

COUNTED = ("completed", "failed", "cancelled", "retried")
"""The count metrics: jobs that reached completed, failed or cancelled, and failed attempts that will retry."""
WAIT, RUN, ERROR = "wait", "run", "error"
"""Histogram metrics (their key is a bucket number) and the failure count per error type (keyed by it)."""

SUB_BUCKETS = 8
MAX_BUCKET = SUB_BUCKETS * 40
"""Bucket 0 holds times under 1 ms; the last, anything from 2**39 ms (17 years) on."""


@dataclass(frozen=True, slots=True)
class Tier:
    step: int  # seconds per slot
    keep: int  # seconds a slot is kept after it ends


TIERS = (Tier(60, 3 * 3600), Tier(900, 2 * 86400), Tier(7200, 9 * 86400))


@dataclass(frozen=True, slots=True)
class Window:
    name: str
    seconds: int
    step: int  # the tier it reads


WINDOWS = {w.name: w for w in (Window("1h", 3600, 60), Window("24h", 86400, 900), Window("7d", 7 * 86400, 7200))}


def window_named(name: str) -> Window:
    try:
        return WINDOWS[name]
    except KeyError:
        raise InvalidParameterError(f"unknown window {name!r}; expected one of: {', '.join(WINDOWS)}") from None


def bucket_of(seconds: float) -> int:
    """The histogram bucket of a duration: 0 under 1 ms, then eight buckets per doubling."""
    ms = seconds * 1000.0
    if not ms >= 1.0:  # also NaN
        return 0
    if ms == math.inf:
        return MAX_BUCKET
    mantissa, exponent = math.frexp(ms)  # ms = mantissa * 2**exponent, 0.5 <= mantissa < 1
    return min(MAX_BUCKET, (exponent - 1) * SUB_BUCKETS + int((mantissa - 0.5) * 2 * SUB_BUCKETS) + 1)


def bucket_bounds(bucket: int) -> tuple[float, float]:
    """The durations (seconds) bucket ``bucket`` holds: [low, high)."""
    if bucket <= 0:
        return 0.0, 0.001
    octave, sub = divmod(bucket - 1, SUB_BUCKETS)
    low = 2.0 ** octave * (1 + sub / SUB_BUCKETS)
    return low / 1000.0, low * (1 + 1 / (SUB_BUCKETS + sub)) / 1000.0


class Tally:
    """What one store primitive adds to the rollups, before it is written with the primitive's changes."""

    __slots__ = ("counts",)

    def __init__(self) -> None:
        self.counts: dict[tuple[float, str, str, str], int] = defaultdict(int)

    def __bool__(self) -> bool:
        return bool(self.counts)

    def clear(self) -> None:
        self.counts.clear()

    def moved(self, job_type: str, old: str | None, new: str | None, n: int, now_ts: float) -> None:
        """``n`` jobs of ``job_type`` changed status: counted if they ended, or failed an attempt to retry."""
        if new in ("completed", "failed", "cancelled") and old != new:
            self.counts[now_ts, job_type, new, ""] += n
        elif old == JobStatus.RUNNING.value and new == JobStatus.RETRYING.value:
            self.counts[now_ts, job_type, "retried", ""] += n

    def started(self, job_type: str, waited: float, now_ts: float) -> None:
        self.counts[now_ts, job_type, WAIT, str(bucket_of(max(0.0, waited)))] += 1

    def ended(self, job_type: str, ran: float | None, error_type: str | None, failed: bool, now_ts: float) -> None:
        """An attempt ended: how long its handler ran (when measured) and, if it failed, its error type."""
        if ran is not None:
            self.counts[now_ts, job_type, RUN, str(bucket_of(max(0.0, ran)))] += 1
        if failed:
            self.counts[now_ts, job_type, ERROR, error_type or "Error"] += 1

    def rows(self) -> list[tuple[int, int, str, str, str, int]]:
        """(step, slot start, job_type, metric, key, n) for every tier, added up per slot."""
        out: dict[tuple[int, int, str, str, str], int] = defaultdict(int)
        for (ts, job_type, metric, key), n in self.counts.items():
            for tier in TIERS:
                out[tier.step, int(ts // tier.step) * tier.step, job_type, metric, key] += n
        return [(*k, n) for k, n in out.items() if n]


def waited(job: Any) -> float:
    """Seconds a just-started job waited since it was due: since it was created or, if later, since its
    ``run_at`` (its scheduled time, or when its retry was due)."""
    due = job.created_at if job.run_at is None or job.run_at < job.created_at else job.run_at
    return (job.started_at - due).total_seconds() if job.started_at is not None else 0.0


# -- reading ---------------------------------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class RollupRow:
    slot: int  # the slot's start, Unix seconds
    job_type: str
    metric: str
    key: str
    n: int


@dataclass(slots=True)
class Percentiles:
    count: int
    p50: float | None
    p95: float | None
    p99: float | None

    def to_dict(self) -> dict[str, Any]:
        return {"count": self.count, "p50": self.p50, "p95": self.p95, "p99": self.p99}


def percentiles(histogram: dict[int, int]) -> Percentiles:
    """p50/p95/p99 (seconds, each its bucket's middle) of a histogram of bucket -> count."""
    total = sum(histogram.values())
    if total == 0:
        return Percentiles(0, None, None, None)
    ordered = sorted(histogram.items())
    answers: list[float] = []
    for q in (0.50, 0.95, 0.99):
        rank, seen = math.ceil(q * total), 0
        for bucket, n in ordered:
            seen += n
            if seen >= rank:
                low, high = bucket_bounds(bucket)
                answers.append(round((low + high) / 2, 6))
                break
    return Percentiles(total, *answers)


@dataclass(slots=True)
class Analytics:
    """One window's figures: a series per slot, and per job type and error type over the whole window."""

    window: str
    step: int
    since: datetime
    until: datetime
    slots: list[int]
    series: dict[str, list[int]]  # metric (COUNTED) -> count per slot
    times: dict[str, dict[str, list[float | None]]] = field(default_factory=dict)  # wait/run -> p50.. per slot
    job_types: dict[str, dict[str, Any]] = field(default_factory=dict)
    errors: list[dict[str, Any]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        completed, failed = sum(self.series["completed"]), sum(self.series["failed"])
        return {
            "window": self.window, "step_seconds": self.step, "since": self.since.isoformat(),
            "until": self.until.isoformat(), "slots": self.slots, "series": self.series,
            "totals": {m: sum(v) for m, v in self.series.items()}, "times": self.times,
            "success_rate": None if completed + failed == 0 else round(completed / (completed + failed), 4),
            "job_types": self.job_types, "errors": self.errors,
        }


def summarize(rows: Iterable[RollupRow], window: Window, now: datetime) -> Analytics:
    """The window ending at ``now`` from its tier's rows (rows outside the window are ignored)."""
    last = int(now.timestamp() // window.step) * window.step
    first = last - (window.seconds // window.step - 1) * window.step
    slots = list(range(first, last + window.step, window.step))
    index = {slot: i for i, slot in enumerate(slots)}
    series = {m: [0] * len(slots) for m in COUNTED}
    types: dict[str, dict[str, Any]] = defaultdict(lambda: {**{m: 0 for m in COUNTED}, WAIT: {}, RUN: {}})
    errors: dict[tuple[str, str], dict[str, Any]] = {}
    per_slot: dict[str, list[dict[int, int]]] = {WAIT: [{} for _ in slots], RUN: [{} for _ in slots]}
    for row in rows:
        i = index.get(row.slot)
        if i is None:
            continue
        kind = types[row.job_type]
        if row.metric in series:
            series[row.metric][i] += row.n
            kind[row.metric] += row.n
        elif row.metric in (WAIT, RUN):
            bucket = int(row.key)
            kind[row.metric][bucket] = kind[row.metric].get(bucket, 0) + row.n
            histogram = per_slot[row.metric][i]
            histogram[bucket] = histogram.get(bucket, 0) + row.n
        elif row.metric == ERROR:
            seen = errors.setdefault((row.job_type, row.key), {"job_type": row.job_type, "error_type": row.key,
                                                                "count": 0, "first_slot": row.slot,
                                                                "last_slot": row.slot})
            seen["count"] += row.n
            seen["first_slot"] = min(seen["first_slot"], row.slot)
            seen["last_slot"] = max(seen["last_slot"], row.slot)
    job_types = {}
    for name in sorted(types):
        kind = types[name]
        ended = kind["completed"] + kind["failed"]
        job_types[name] = {
            **{m: kind[m] for m in COUNTED},
            "success_rate": None if ended == 0 else round(kind["completed"] / ended, 4),
            "wait": percentiles(kind[WAIT]).to_dict(), "run": percentiles(kind[RUN]).to_dict(),
        }
    times: dict[str, dict[str, list[float | None]]] = {}
    for metric, histograms in per_slot.items():
        each = [percentiles(h) for h in histograms]
        times[metric] = {"p50": [p.p50 for p in each], "p95": [p.p95 for p in each], "p99": [p.p99 for p in each]}
    ranked = sorted(errors.values(), key=lambda e: (-e["count"], e["job_type"], e["error_type"]))
    return Analytics(window.name, window.step, datetime.fromtimestamp(first, timezone.utc), now, slots, series,
                     times, job_types, ranked)
