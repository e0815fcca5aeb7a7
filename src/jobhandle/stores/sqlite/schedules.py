"""Recurring jobs in the SQLite store: the job of a schedule's next fire always exists, as a scheduled job
whose idempotency key names the fire (cron.py), so each fire makes exactly one job however many callers
advance the schedules."""

from __future__ import annotations

import sqlite3
from datetime import datetime

from ... import cron
from ...errors import ScheduleNotFoundError
from ...models import Job, JobStatus, Schedule
from .codec import row_to_schedule, schedule_params
from .commit import Tx
from .sql import Q
from .submit import insert


def create(tx: Tx, schedule: Schedule, now: datetime) -> tuple[Schedule, Job]:
    first_fire = schedule.next_fire_at
    assert first_fire is not None, "a new schedule knows its first fire time"
    tx.conn.execute(Q["insert_schedule"], schedule_params(schedule))
    [job] = insert(tx, [cron.job_for_fire(schedule, first_fire)], now)
    return schedule, job


def get(conn: sqlite3.Connection, schedule_id: str) -> Schedule | None:
    row = conn.execute(Q["get_schedule"], {"schedule_id": schedule_id}).fetchone()
    return None if row is None else row_to_schedule(row)


def any_due(conn: sqlite3.Connection, now_ts: float) -> bool:
    return conn.execute(Q["due_schedules"], {"now": now_ts}).fetchone() is not None


def advance(tx: Tx, now: datetime) -> list[Job]:
    created = []
    for row in tx.conn.execute(Q["due_schedules"], {"now": now.timestamp()}).fetchall():
        schedule = row_to_schedule(row)
        fired = schedule.next_fire_at
        assert fired is not None
        following = cron.next_fire(schedule.cron_expression, schedule.timezone, max(now, fired))
        created += insert(tx, [cron.job_for_fire(schedule, following)], now)
        schedule.last_fire_at, schedule.next_fire_at = fired, following
        tx.conn.execute(Q["set_schedule_fire"], schedule_params(schedule))
    return created


def pause(tx: Tx, schedule_id: str, now: datetime) -> Schedule:
    schedule = _existing(tx, schedule_id)
    if not schedule.paused:
        _cancel_upcoming(tx, schedule, now.timestamp(), "its schedule was paused")
        schedule.paused = True
        tx.conn.execute(Q["set_schedule_fire"], schedule_params(schedule))
    return schedule


def resume(tx: Tx, schedule_id: str, now: datetime) -> Schedule:
    schedule = _existing(tx, schedule_id)
    if schedule.paused:
        schedule.paused, schedule.generation = False, schedule.generation + 1
        schedule.next_fire_at = cron.next_fire(schedule.cron_expression, schedule.timezone, now)
        insert(tx, [cron.job_for_fire(schedule, schedule.next_fire_at)], now)
        tx.conn.execute(Q["set_schedule_fire"], schedule_params(schedule))
    return schedule


def delete(tx: Tx, schedule_id: str, now: datetime) -> Schedule:
    schedule = _existing(tx, schedule_id)
    _cancel_upcoming(tx, schedule, now.timestamp(), "its schedule was deleted")
    tx.conn.execute(Q["delete_schedule"], {"schedule_id": schedule_id})
    return schedule


def _existing(tx: Tx, schedule_id: str) -> Schedule:
    schedule = get(tx.conn, schedule_id)
    if schedule is None:
        raise ScheduleNotFoundError(schedule_id)
    return schedule


def _cancel_upcoming(tx: Tx, schedule: Schedule, now_ts: float, reason: str) -> None:
    if schedule.next_fire_at is not None:
        key = cron.fire_key(schedule.schedule_id, schedule.generation, schedule.next_fire_at)
        moved = tx.conn.execute(Q["cancel_upcoming"], {"user_id": schedule.user_id, "key": key, "now": now_ts,
                                                       "reason": reason, "seq": tx.seq()}).fetchall()
        tx.count(((queue, job_type, JobStatus.SCHEDULED.value, new, 1) for queue, job_type, new in moved), now_ts)
