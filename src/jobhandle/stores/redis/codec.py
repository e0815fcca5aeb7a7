"""Values of the Redis store as stored (text Python formatted, so numbers round-trip exactly) and the
arguments and answers of its scripts, <-> Jobs and Schedules."""

from __future__ import annotations

import json
from datetime import datetime
from itertools import islice
from typing import Any

from ...models import (
    TERMINAL_STATUSES,
    Dependency,
    Job,
    JobMetrics,
    JobStatus,
    Schedule,
    at_ts,
    dumps_json,
    from_ts,
)
from ..base import Outcome, ProgressUpdate, error_entry, history_entry


def num(value: float | int | None) -> str | None:
    if value is None:
        return None
    return str(value) if isinstance(value, int) else repr(float(value))


def ts(value: datetime | None) -> str | None:
    return None if value is None else repr(value.timestamp())


def _float(text: str | None) -> float | None:
    return None if text is None else float(text)


def _int(text: str | None) -> int | None:
    return None if text is None else int(text)


def time_of(text: str | None) -> datetime | None:
    return None if text is None else from_ts(float(text))


def _hash(flat: list[str]) -> dict[str, str]:
    return dict(zip(islice(flat, 0, None, 2), islice(flat, 1, None, 2), strict=True))


def payload_to_job(payload: list[Any]) -> Job:
    """A job as a script returned it (lib.lua ``payload``): its hash, progress history, error history."""
    flat, progress_history, error_history = payload
    h = _hash(flat)
    get = h.get
    result = get("result")
    return Job(
        job_id=h["job_id"], job_type=h["job_type"], queue=h["queue"], status=JobStatus(h["status"]),
        priority=int(h["priority"]), priority_boost=int(h["aged"]), user_id=h["user_id"],
        parameters=json.loads(h["parameters"]), result=None if result is None else json.loads(result),
        error=get("error"), error_type=get("error_type"), progress=float(h["progress"]),
        progress_message=get("progress_message"),
        progress_history=[json.loads(e) for e in progress_history],
        error_history=[json.loads(e) for e in error_history],
        created_at=at_ts(float(h["created_at"])), scheduled_time=time_of(get("scheduled_time")),
        started_at=time_of(get("started_at")), completed_at=time_of(get("completed_at")), attempts=int(h["attempts"]),
        max_retries=int(h["max_retries"]), retry_delay=float(h["retry_delay"]),
        timeout_seconds=float(h["timeout_seconds"]),
        depends_on=[Dependency(**d) for d in json.loads(get("depends_on", "[]"))],
        cron_expression=get("cron_expression"), schedule_id=get("schedule_id"),
        idempotency_key=get("idempotency_key"), worker_id=get("worker_id"),
        metrics=JobMetrics(execution_time_seconds=_float(get("execution_time")),
                           items_processed=_int(get("items_processed")), total_items=_int(get("total_items")),
                           cpu_seconds=_float(get("cpu_seconds")), peak_memory_mb=_float(get("peak_memory_mb"))),
        run_at=time_of(get("run_at")), lease_expires_at=time_of(get("lease_expires_at")), seq=int(h["seq"]),
    )


def job_spec(job: Job) -> dict[str, Any]:
    """A new job as insert (lib.lua) takes it: its fields as text, and what the script decides on."""
    depends_on = [{"job_id": d.job_id, "condition": d.condition} for d in job.depends_on]
    fields = {
        "job_id": job.job_id, "job_type": job.job_type, "queue": job.queue, "priority": str(int(job.priority)),
        "user_id": job.user_id, "parameters": dumps_json(job.parameters),
        "scheduled_time": ts(job.scheduled_time), "max_retries": str(job.max_retries),
        "retry_delay": num(job.retry_delay), "timeout_seconds": num(job.timeout_seconds),
        "depends_on": dumps_json(depends_on) if depends_on else None, "cron_expression": job.cron_expression,
        "schedule_id": job.schedule_id, "idempotency_key": job.idempotency_key, "run_at": ts(job.run_at),
        "error": job.error, "error_type": job.error_type, "completed_at": ts(job.completed_at),
    }
    return {"job_id": job.job_id, "fields": {k: v for k, v in fields.items() if v is not None},
            "run_at": fields["run_at"], "idempotency_key": job.idempotency_key, "depends_on": depends_on}


def progress_set(update: ProgressUpdate | None) -> dict[str, str]:
    """The progress fields a report writes (fields it leaves out keep their value), the handler's start time
    included."""
    if update is None:
        return {}
    values = {"progress": num(update.fraction), "progress_message": update.message,
              "items_processed": num(update.items_processed), "total_items": num(update.total_items),
              "started_at": ts(update.started_at)}
    return {k: v for k, v in values.items() if v is not None}


def finish_item(job_id: str, worker_id: str, attempt: int, outcome: Outcome, now_ts: float) -> dict[str, Any]:
    """One fenced end of an attempt, as finish_all (lib.lua) takes it: the fields to write (None clears)."""
    status = outcome.status
    result = None
    if status is JobStatus.COMPLETED:
        result = "null" if outcome.result is None else dumps_json(outcome.result)
    fields: dict[str, Any] = {
        **progress_set(outcome.progress),
        "result": result, "error": outcome.error, "error_type": outcome.error_type,
        "completed_at": repr(now_ts) if status in TERMINAL_STATUSES else None, "run_at": ts(outcome.run_at),
        "lease_expires_at": None, "execution_time": num(outcome.execution_time_seconds),
    }
    if outcome.started_at is not None:
        fields["started_at"] = ts(outcome.started_at)
    if status is JobStatus.COMPLETED:
        fields["progress"] = "1.0"
    for name, value in (("cpu_seconds", outcome.cpu_seconds), ("peak_memory_mb", outcome.peak_memory_mb)):
        if value is not None:
            fields[name] = num(value)
    return {"job_id": job_id, "worker_id": worker_id, "attempt": attempt, "status": status.value, "set": fields,
            "error_entry": error_entry(attempt, worker_id, outcome, from_ts(now_ts)),
            "progress_entry": history_entry(outcome.progress)}


def schedule_fields(s: Schedule) -> dict[str, str | None]:
    return {
        "schedule_id": s.schedule_id, "name": s.name, "cron_expression": s.cron_expression, "timezone": s.timezone,
        "job_type": s.job_type, "parameters": dumps_json(s.parameters), "queue": s.queue,
        "priority": str(int(s.priority)), "user_id": s.user_id, "max_retries": str(s.max_retries),
        "retry_delay": num(s.retry_delay), "timeout_seconds": num(s.timeout_seconds),
        "paused": "1" if s.paused else "0", "generation": str(s.generation), "created_at": ts(s.created_at),
        "next_fire_at": ts(s.next_fire_at), "last_fire_at": ts(s.last_fire_at),
    }


def schedule_from(h: dict[str, str]) -> Schedule:
    return Schedule(
        schedule_id=h["schedule_id"], name=h.get("name"), cron_expression=h["cron_expression"],
        timezone=h["timezone"], job_type=h["job_type"], parameters=json.loads(h["parameters"]), queue=h["queue"],
        priority=int(h["priority"]), user_id=h["user_id"], max_retries=int(h["max_retries"]),
        retry_delay=float(h["retry_delay"]), timeout_seconds=float(h["timeout_seconds"]),
        paused=h["paused"] == "1", generation=int(h["generation"]), created_at=at_ts(float(h["created_at"])),
        next_fire_at=time_of(h.get("next_fire_at")), last_fire_at=time_of(h.get("last_fire_at")),
    )


def expect(s: Schedule) -> dict[str, str]:
    """What schedule.lua compares before it applies a change computed from ``s``."""
    return {"paused": "1" if s.paused else "0", "generation": str(s.generation),
            "next_fire_at": ts(s.next_fire_at) or ""}
