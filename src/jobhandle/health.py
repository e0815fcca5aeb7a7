"""Health: what a probe, an operator and seed 003's ``perform_health_check()`` ask of a store and its workers.

Three depths, each as cheap as its question allows:

- **live** (``loops_report``): are this process's background loops running? No store call: a store outage
  must not make an orchestrator restart every process that uses it.
- **ready** (``ready_report``): can this process serve? The store answers one cheap read.
- **full** (``store_report``): ``status`` (``healthy``, ``degraded`` or ``unhealthy``) and ``issues`` in words:
  the store unreachable, no or stale or paused workers, the oldest pending job waiting past
  ``Settings.health_max_wait_seconds``, the last hour's failure rate over ``Settings.health_max_failure_rate``,
  a background loop failing. Read from counters, the workers table, one index seek and the analytics rollups:
  the same cost with ten million jobs as with ten.

A worker writes its own heartbeat file when ``Settings.heartbeat_file`` is set (``write_heartbeat_file``), so
a container probe can check it without reaching the store (``heartbeat_file_report``).
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .models import JobStatus, iso, utcnow
from .stores.base import JobQuery
from .supervise import LoopHealth

if TYPE_CHECKING:
    from .queue import JobQueue

FAILURE_RATE_MIN_JOBS = 20
"""The failure rate is judged only over an hour with at least this many finished jobs."""


@dataclass(slots=True)
class Report:
    """A health answer: ``status``, the ``issues`` behind it, and details for people and dashboards."""

    status: str
    issues: list[str] = field(default_factory=list)
    details: dict[str, Any] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.status in ("healthy", "alive", "ready")

    def to_dict(self) -> dict[str, Any]:
        return {"status": self.status, "issues": list(self.issues), **self.details}


def loop_dict(health: LoopHealth) -> dict[str, Any]:
    return {"name": health.name, "alive": health.alive, "failures": health.failures, "error": health.last_error}


def loops_report(loops: Iterable[LoopHealth]) -> Report:
    """Liveness: ``alive`` unless a background loop has stopped (a loop that fails and retries is alive)."""
    loops = list(loops)
    dead = [h.describe() for h in loops if not h.alive]
    return Report("dead" if dead else "alive", dead, {"loops": [loop_dict(h) for h in loops]})


def ready_report(queue: JobQueue) -> Report:
    """Readiness: the store answers a read of its counters."""
    try:
        queue.store.counts()
    except Exception as exc:  # noqa: BLE001 - whatever the store raises, the answer is "not ready"
        return Report("not_ready", [f"store unreachable: {exc!r}"], {"store": queue.store.kind})
    return Report("ready", [], {"store": queue.store.kind})


def store_report(queue: JobQueue, loops: Iterable[LoopHealth] = (), *, now: datetime | None = None) -> Report:
    """The full report: see the module docstring. ``loops`` are background loops to judge as well."""
    loops = list(loops)
    now = now or utcnow()
    try:
        stats = queue.stats()
        oldest = oldest_pending_wait(queue, now)
        hour = queue.analytics("1h", now=now)
    except Exception as exc:  # noqa: BLE001 - whatever the store raises, the answer is "unhealthy"
        return Report("unhealthy", [f"store unreachable: {exc!r}"], {
            "store": {"reachable": False, "kind": queue.store.kind, "error": repr(exc)},
            "workers": {}, "resource_alerts": [], "last_cleanup": None,
            "background": [loop_dict(h) for h in loops]})
    settings = queue.settings
    issues = list(stats["resource_alerts"])
    if stats["worker_health_status"] == "no_workers":
        issues.append("no workers registered: jobs wait until one starts")
    elif stats["worker_health_status"] != "healthy":
        issues.append(f"workers {stats['worker_health_status']}")
    issues += [f"worker {w['worker_id']} {w['state']}" for w in stats["degraded_workers"]]
    if oldest is not None and settings.health_max_wait_seconds and oldest > settings.health_max_wait_seconds:
        issues.append(f"the oldest pending job has waited {_duration(oldest)} "
                      f"(more than {_duration(settings.health_max_wait_seconds)})")
    failed = sum(hour.series["failed"])
    finished = sum(hour.series["completed"]) + failed
    rate = failed / finished if finished else None
    if rate is not None and finished >= FAILURE_RATE_MIN_JOBS and rate > settings.health_max_failure_rate:
        issues.append(f"{rate:.0%} of the last hour's {finished} finished jobs failed "
                      f"(more than {settings.health_max_failure_rate:.0%})")
    issues += [f"background thread {h.describe()}" for h in loops if not h.healthy]
    return Report("degraded" if issues else "healthy", issues, {
        "store": {"reachable": True, "kind": stats["queue_type"], "error": None},
        "workers": {"active": stats["active_workers"], "paused": stats["paused_workers"],
                    "health": stats["worker_health_status"]},
        "pending_jobs": stats["pending_jobs"],
        "oldest_pending_wait_seconds": None if oldest is None else round(oldest, 3),
        "failure_rate_1h": None if rate is None else round(rate, 4),
        "resource_alerts": stats["resource_alerts"], "last_cleanup": stats["last_cleanup"],
        "background": [loop_dict(h) for h in loops]})


def worker_report(queue: JobQueue, name_or_id: str) -> Report:
    """One worker: ``alive`` when a worker of that id or name is registered with a heartbeat within
    ``Settings.worker_timeout``; ``dead`` otherwise."""
    try:
        workers = [w for w in queue.workers() if name_or_id in (w["worker_id"], w["name"])]
    except Exception as exc:  # noqa: BLE001 - whatever the store raises, the worker cannot be vouched for
        return Report("unhealthy", [f"store unreachable: {exc!r}"])
    if not workers:
        return Report("dead", [f"no worker {name_or_id!r} is registered"])
    fresh = [w for w in workers if w["healthy"]]
    if not fresh:
        ages = ", ".join("never" if w["heartbeat_age_seconds"] is None else f"{w['heartbeat_age_seconds']:.0f}s ago"
                         for w in workers)
        return Report("dead", [f"worker {name_or_id!r}: last heartbeat {ages} (more than "
                               f"{queue.settings.worker_timeout:g}s)"], {"workers": workers})
    return Report("alive", [], {"workers": fresh})


def oldest_pending_wait(queue: JobQueue, now: datetime, queue_name: str | None = None) -> float | None:
    """Seconds the pending job created first (in ``queue_name``, or in any queue) has waited since it was due:
    one seek in a creation-ordered index. A later-created job due earlier may have waited longer; this does not
    look for it."""
    first = queue.store.list_jobs(JobQuery(statuses=[JobStatus.PENDING], queue=queue_name, sort="created_at",
                                           limit=1))
    if not first:
        return None
    job = first[0]
    due = job.run_at if job.run_at is not None and job.run_at > job.created_at else job.created_at
    return max(0.0, (now - due).total_seconds())


def _duration(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.0f}s"
    if seconds < 7200:
        return f"{seconds / 60:.0f}m"
    return f"{seconds / 3600:.1f}h"


# -- a worker's heartbeat file ----------------------------------------------------------------------------

def write_heartbeat_file(path: Path, worker_id: str, state: str, store_error: str | None) -> None:
    """Write the worker's heartbeat file in one step (a probe never reads half a file): after each heartbeat,
    whether the store took it or not (``store_error``)."""
    body = {"worker_id": worker_id, "pid": os.getpid(), "state": state, "at": iso(utcnow()),
            "store": "ok" if store_error is None else store_error}
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    temporary.write_text(json.dumps(body) + "\n")
    os.replace(temporary, path)


def heartbeat_file_report(path: Path, max_age: float, *, need_store: bool = False) -> Report:
    """A worker's liveness from its heartbeat file: written within ``max_age`` seconds (and, with
    ``need_store``, its last heartbeat reached the store). No store call."""
    try:
        age = time.time() - path.stat().st_mtime
        body = json.loads(path.read_text())
    except FileNotFoundError:
        return Report("dead", [f"no heartbeat file at {path}: the worker has not started, or writes none"])
    except (OSError, ValueError) as exc:
        return Report("dead", [f"cannot read the heartbeat file {path}: {exc}"])
    issues = []
    if age > max_age:
        issues.append(f"worker {body.get('worker_id')}: last heartbeat {age:.0f}s ago (more than {max_age:g}s)")
    if need_store and body.get("store") != "ok":
        issues.append(f"worker {body.get('worker_id')}: its last heartbeat did not reach the store: "
                      f"{body.get('store')}")
    return Report("dead" if issues else "alive", issues, {"age_seconds": round(age, 3), **body})
