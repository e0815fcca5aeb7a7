"""The overview: statistics, queue depths and alerts, computed at most once a second however many watch.

Every open dashboard refreshes its overview when the change feed says something changed; they all read the
same snapshot (one per user scope), which is recomputed from the store's counters only when it is older than
``SNAPSHOT_SECONDS``. So fifty open tabs cost the store what one does.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from ..api.auth import Principal
from ..api.routes.jobs import user_stats
from ..config import Settings
from ..errors import InvalidParameterError
from ..models import JobStatus, utcnow
from ..queue import JobQueue

SNAPSHOT_SECONDS = 1.0
"""Longest a snapshot is reused before it is read again."""
ALERT_FAILED_RATIO = 0.10
"""Failures above this share of finished jobs raise an alert."""
QUEUE_LIMIT = 50
"""Queues whose oldest ready job the overview looks up (the busiest first)."""


@dataclass(slots=True)
class _Cached:
    at: float
    value: dict[str, Any]


class Overview:
    """Shared, briefly cached overview snapshots (thread-safe: computed in the thread pool)."""

    def __init__(self, queue: JobQueue, settings: Settings) -> None:
        self.queue = queue
        self.settings = settings
        self._cache: dict[str | None, _Cached] = {}
        self._lock = threading.Lock()
        self.reads = 0
        """Snapshots computed from the store (tests and benchmarks count them)."""

    def forget(self) -> None:
        """Drop the cached snapshots: the next read computes afresh (after a change no event reports, such as
        a cleanup, which removes jobs)."""
        with self._lock:
            self._cache.clear()

    def snapshot(self, principal: Principal) -> dict[str, Any]:
        scope = None if principal.admin else principal.user_id
        with self._lock:  # one computation at a time; the others then find it fresh
            cached = self._cache.get(scope)
            if cached is not None and time.monotonic() - cached.at < SNAPSHOT_SECONDS:
                return cached.value
            value = self._compute(scope)
            self.reads += 1
            self._cache[scope] = _Cached(time.monotonic(), value)
            return value

    def _compute(self, user_id: str | None) -> dict[str, Any]:
        stats = self.queue.stats() if user_id is None else user_stats(self.queue, user_id)
        now = utcnow()
        queues = []
        by_queue: dict[str, dict[str, int]] = stats.get("by_queue") or {}
        busiest = sorted(by_queue.items(), key=lambda item: -sum(item[1].values()))[:QUEUE_LIMIT]
        for name, counts in busiest:
            wait = self._oldest_wait(name, user_id, now) if counts.get("pending") else None
            queues.append({"name": name, "pending": counts.get("pending", 0), "running": counts.get("running", 0),
                           "scheduled": counts.get("scheduled", 0) + counts.get("retrying", 0),
                           "waiting": counts.get("waiting", 0), "failed": counts.get("failed", 0),
                           "oldest_wait_seconds": None if wait is None else max(0.0, wait)})
        workers = self.queue.workers() if user_id is None else []
        return {"stats": stats, "queues": queues, "workers": workers,
                "alerts": self._alerts(stats, queues, user_id is None), "as_of": now.isoformat()}

    def _oldest_wait(self, queue: str, user_id: str | None, now: datetime) -> float | None:
        """Seconds the queue's oldest pending job has waited; None when the store will not look that far (a
        Redis store with many more pending jobs in other queues refuses the walk rather than stall)."""
        try:
            oldest = self.queue.list([JobStatus.PENDING.value], queue=queue, user_id=user_id, sort="created_at",
                                     limit=1)
        except InvalidParameterError:
            return None
        return (now - oldest[0].created_at).total_seconds() if oldest else None

    def _alerts(self, stats: dict[str, Any], queues: list[dict[str, Any]], sees_workers: bool) -> list[dict[str, str]]:
        alerts: list[dict[str, str]] = []
        s = self.settings
        if sees_workers:
            if stats["active_workers"] == 0:
                alerts.append({"level": "error", "text": "no live worker: nothing is being run"})
            if stats["cpu_usage_percent"] >= s.cpu_threshold:
                alerts.append({"level": "warning", "text": f"CPU at {stats['cpu_usage_percent']:.0f}% "
                                                           f"(threshold {s.cpu_threshold:g}%)"})
            if stats["memory_usage_percent"] >= s.memory_threshold:
                alerts.append({"level": "warning", "text": f"memory at {stats['memory_usage_percent']:.0f}% "
                                                           f"(threshold {s.memory_threshold:g}%)"})
            alerts += [{"level": "warning", "text": text} for text in stats.get("resource_alerts", [])]
            alerts += [{"level": "warning", "text": f"worker {w['worker_id']} is {w['state']}"}
                       for w in stats.get("degraded_workers", [])]
        finished = stats["completed_jobs"] + stats["failed_jobs"]
        if stats["failed_jobs"] and stats["failed_jobs"] >= ALERT_FAILED_RATIO * finished:
            alerts.append({"level": "error", "text": f"{stats['failed_jobs']} failed jobs "
                                                     f"({stats['failed_jobs'] / finished:.0%} of finished ones)"})
        for q in queues:
            wait = q["oldest_wait_seconds"]
            if wait is not None and wait > s.alert_wait_seconds:
                alerts.append({"level": "warning", "text": f"queue {q['name']}: the oldest ready job has waited "
                                                           f"{wait:.0f} s (alert above {s.alert_wait_seconds:g} s)"})
        return alerts

