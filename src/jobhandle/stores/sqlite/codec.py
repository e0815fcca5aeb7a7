"""Rows of the SQLite store <-> Jobs and Schedules."""

from __future__ import annotations

import json
import sqlite3
from typing import Any

from ...models import Dependency, Job, JobMetrics, JobStatus, Schedule, at_ts, dumps_json, from_ts, to_ts
from ..base import ProgressUpdate

JOB_COLUMNS = (
    "job_id", "job_type", "queue", "status", "priority", "user_id", "parameters", "result", "error", "error_type",
    "progress", "progress_message", "progress_history", "error_history", "created_at", "scheduled_time",
    "started_at", "completed_at", "attempts", "max_retries", "retry_delay", "timeout_seconds", "depends_on",
    "cron_expression", "schedule_id", "idempotency_key", "worker_id", "execution_time", "items_processed",
    "total_items", "cpu_seconds", "peak_memory_mb", "run_at", "lease_expires_at", "seq", "aged")
"""The jobs table's columns in table order (checked at open): row_to_job unpacks rows by position, because
reading 36 columns by name costs more than building the Job."""

STATUSES = {status.value: status for status in JobStatus}
"""A stored status -> JobStatus: a dict lookup where calling the Enum runs its Python-level lookup."""


def _loads(text: str | None) -> Any:
    return None if text is None else json.loads(text)


def _loads_list(text: str) -> list[Any]:
    """A JSON list column; most are empty, and decoding ``[]`` is the common case worth skipping."""
    return [] if text == "[]" else json.loads(text)


def row_to_job(r: sqlite3.Row) -> Job:
    (job_id, job_type, queue, status, priority, user_id, parameters, result, error, error_type, progress,
     progress_message, progress_history, error_history, created_at, scheduled_time, started_at, completed_at,
     attempts, max_retries, retry_delay, timeout_seconds, depends_on, cron_expression, schedule_id,
     idempotency_key, worker_id, execution_time, items_processed, total_items, cpu_seconds, peak_memory_mb,
     run_at, lease_expires_at, seq, aged) = r
    return Job(
        job_id=job_id, job_type=job_type, queue=queue, status=STATUSES[status], priority=priority - aged,
        priority_boost=aged, user_id=user_id, parameters=json.loads(parameters), result=_loads(result),
        error=error, error_type=error_type, progress=progress, progress_message=progress_message,
        progress_history=_loads_list(progress_history), error_history=_loads_list(error_history),
        created_at=at_ts(created_at), scheduled_time=from_ts(scheduled_time), started_at=from_ts(started_at),
        completed_at=from_ts(completed_at), attempts=attempts, max_retries=max_retries, retry_delay=retry_delay,
        timeout_seconds=timeout_seconds, depends_on=[Dependency(**d) for d in _loads_list(depends_on)],
        cron_expression=cron_expression, schedule_id=schedule_id, idempotency_key=idempotency_key,
        worker_id=worker_id,
        metrics=JobMetrics(execution_time_seconds=execution_time, items_processed=items_processed,
                           total_items=total_items, cpu_seconds=cpu_seconds, peak_memory_mb=peak_memory_mb),
        run_at=from_ts(run_at), lease_expires_at=from_ts(lease_expires_at), seq=seq,
    )


def row_to_schedule(r: sqlite3.Row) -> Schedule:
    return Schedule(
        schedule_id=r["schedule_id"], name=r["name"], cron_expression=r["cron_expression"], timezone=r["timezone"],
        job_type=r["job_type"], parameters=json.loads(r["parameters"]), queue=r["queue"], priority=r["priority"],
        user_id=r["user_id"], max_retries=r["max_retries"], retry_delay=r["retry_delay"],
        timeout_seconds=r["timeout_seconds"], paused=bool(r["paused"]), generation=r["generation"],
        created_at=at_ts(r["created_at"]), next_fire_at=from_ts(r["next_fire_at"]),
        last_fire_at=from_ts(r["last_fire_at"]),
    )


def schedule_params(s: Schedule) -> dict[str, Any]:
    return {
        "schedule_id": s.schedule_id, "name": s.name, "cron_expression": s.cron_expression, "timezone": s.timezone,
        "job_type": s.job_type, "parameters": dumps_json(s.parameters), "queue": s.queue, "priority": s.priority,
        "user_id": s.user_id, "max_retries": s.max_retries, "retry_delay": s.retry_delay,
        "timeout_seconds": s.timeout_seconds, "paused": int(s.paused), "generation": s.generation,
        "created_at": to_ts(s.created_at), "next_fire_at": to_ts(s.next_fire_at),
        "last_fire_at": to_ts(s.last_fire_at),
    }


def progress_params(update: ProgressUpdate | None) -> dict[str, Any]:
    """A progress report's columns (None leaves a column as it is), the handler's start time included."""
    if update is None:
        return {"fraction": None, "message": None, "items_processed": None, "total_items": None, "started_at": None}
    return {"fraction": update.fraction, "message": update.message, "items_processed": update.items_processed,
            "total_items": update.total_items, "started_at": to_ts(update.started_at)}
