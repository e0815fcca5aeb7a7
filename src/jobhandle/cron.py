"""Cron expressions over croniter: validation, next fire times in a time zone, and the unique key of each
fire (which makes a fire enqueue exactly one job however many schedulers run). croniter is imported by the first
expression read, not with the stores that hold schedules."""

from __future__ import annotations

from datetime import datetime, timezone
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from .errors import InvalidParameterError
from .models import Job, Schedule

TZ_PREFIXES = ("CRON_TZ=", "TZ=")


def split_timezone(expression: str, tz: str | None = None) -> tuple[str, str]:
    """``"CRON_TZ=Europe/Paris 0 9 * * *"`` -> ("0 9 * * *", "Europe/Paris"); ``tz`` applies otherwise (UTC)."""
    if not isinstance(expression, str):
        raise InvalidParameterError(f"cron_expression must be a string, not {type(expression).__name__}")
    text = expression.strip()
    for prefix in TZ_PREFIXES:
        if text.upper().startswith(prefix):
            zone, _, text = text[len(prefix):].partition(" ")
            if tz is not None and tz != zone:
                raise InvalidParameterError(f"two time zones given: {zone!r} in the expression and {tz!r}")
            tz = zone
            break
    return text.strip(), tz or "UTC"


def validate(expression: str, tz: str) -> None:
    """Standard 5 fields (minute hour day-of-month month day-of-week) and a known IANA time zone."""
    from croniter import CroniterBadDateError, croniter

    fields = expression.split()
    if len(fields) != 5:
        raise InvalidParameterError(
            f"cron expression {expression!r} must have 5 fields (minute hour day month weekday), not {len(fields)}")
    if not croniter.is_valid(expression):
        raise InvalidParameterError(f"invalid cron expression {expression!r}")
    zone(tz)
    try:  # valid fields can still name no date at all, such as February 30th
        croniter(expression, datetime.now(timezone.utc)).get_next(datetime)
    except CroniterBadDateError:
        raise InvalidParameterError(f"cron expression {expression!r} never fires") from None


def zone(tz: str) -> ZoneInfo:
    try:
        return ZoneInfo(tz)
    except (ZoneInfoNotFoundError, ValueError, OSError):  # OSError: a folder of the zone database, e.g. "Europe"
        raise InvalidParameterError(f"unknown time zone {tz!r} (use an IANA name such as Europe/Paris)") from None


def next_fire(expression: str, tz: str, after: datetime) -> datetime:
    """The first fire time strictly after ``after``, in UTC."""
    from croniter import croniter

    local = after.astimezone(zone(tz))
    fire: datetime = croniter(expression, local).get_next(datetime)
    return fire.astimezone(timezone.utc)


def fire_key(schedule_id: str, generation: int, fire: datetime) -> str:
    """The idempotency key of one fire of one schedule (``generation`` grows on each resume)."""
    return f"schedule:{schedule_id}:{generation}:{fire.astimezone(timezone.utc).isoformat()}"


def job_for_fire(schedule: Schedule, fire: datetime) -> Job:
    """The job a schedule enqueues for one fire time: scheduled for that time, keyed by the fire."""
    return Job(
        job_type=schedule.job_type, queue=schedule.queue, priority=schedule.priority, user_id=schedule.user_id,
        parameters=dict(schedule.parameters), scheduled_time=fire, run_at=fire,
        max_retries=schedule.max_retries, retry_delay=schedule.retry_delay,
        timeout_seconds=schedule.timeout_seconds, cron_expression=schedule.cron_expression,
        schedule_id=schedule.schedule_id, idempotency_key=fire_key(schedule.schedule_id, schedule.generation, fire),
    )
