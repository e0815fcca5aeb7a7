"""Recurring jobs in the Redis store. Cron arithmetic stays in Python: each change is computed from a read of
the schedule and applied by lua/schedule.lua only if the schedule is still as read (compare-and-set). A change
that keeps losing to other changes of the same schedule gives up after CAS_ATTEMPTS reads, with an error that
says so, rather than looping forever."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import replace
from datetime import datetime
from typing import Any

from ... import cron
from ...errors import InvalidParameterError, ScheduleNotFoundError, StoreConflictError
from ...models import Job, Schedule
from .client import reachable
from .codec import expect, job_spec, schedule_fields, schedule_from

CAS_ATTEMPTS = 20
"""Reads of a schedule one change makes at most while other callers keep changing it first."""


def _busy(schedule_id: str, action: str) -> StoreConflictError:
    return StoreConflictError(f"could not {action} schedule {schedule_id}: it changed {CAS_ATTEMPTS} times while "
                              "this change was being made; try again", schedule_id=schedule_id)


class RedisSchedules:
    """The schedule primitives of RedisStore (a mixin: it calls the store's scripts and connection)."""

    _redis: Any
    _key: Callable[..., str]
    _call: Callable[[str, dict[str, Any]], Any]
    _insert_answers: Callable[[Sequence[Job], list[list[Any]], datetime], list[Job]]

    # -- schedules -----------------------------------------------------------------------------------------

    def _change_schedule(self, schedule_id: str, now: datetime, expect: dict[str, Any], *,
                         new: Schedule | None = None, job: Job | None = None,
                         cancel: tuple[str, str] | None = None,
                         reason: str = "", delete: bool = False) -> list[Any] | None:
        """Apply one schedule change (schedule.lua); None when the schedule changed since it was read."""
        answer = self._call("schedule", {
            "schedule_id": schedule_id, "now": repr(now.timestamp()), "expect": expect,
            "set": None if new is None else schedule_fields(new), "delete": delete,
            "cancel": None if cancel is None else {"user_id": cancel[0], "key": cancel[1], "reason": reason},
            "job": None if job is None else job_spec(job),
        })
        if answer[0] == "missing":
            raise ScheduleNotFoundError(schedule_id)
        if answer[0] == "exists":
            raise InvalidParameterError(f"a schedule with id {schedule_id} exists already")
        if answer[0] == "changed":
            return None
        return list(answer[1]) if answer[1] else []

    def create_schedule(self, schedule: Schedule, now: datetime) -> tuple[Schedule, Job]:
        first_fire = schedule.next_fire_at
        assert first_fire is not None, "a new schedule knows its first fire time"
        job = cron.job_for_fire(schedule, first_fire)
        answer = self._change_schedule(schedule.schedule_id, now, {"absent": True}, new=schedule, job=job)
        assert answer is not None
        return schedule, self._insert_answers([job], [answer], now)[0]

    @reachable
    def get_schedule(self, schedule_id: str) -> Schedule | None:
        h = self._redis.hgetall(self._key("schedule", schedule_id))
        return schedule_from(h) if h else None

    @reachable
    def list_schedules(self) -> list[Schedule]:
        ids = self._redis.zrange(self._key("schedules"), 0, -1)
        with self._redis.pipeline() as pipe:
            for schedule_id in ids:
                pipe.hgetall(self._key("schedule", schedule_id))
            found = [schedule_from(h) for h in pipe.execute() if h]
        return sorted(found, key=lambda s: (s.created_at, s.schedule_id))

    @reachable
    def advance_schedules(self, now: datetime) -> list[Job]:
        created: list[Job] = []
        for schedule_id in self._redis.zrangebyscore(self._key("schedules_due"), "-inf", repr(now.timestamp())):
            schedule = self.get_schedule(schedule_id)
            fired = schedule.next_fire_at if schedule is not None else None
            if schedule is None or schedule.paused or fired is None or fired > now:
                continue
            following = cron.next_fire(schedule.cron_expression, schedule.timezone, max(now, fired))
            job = cron.job_for_fire(schedule, following)
            moved = replace(schedule, last_fire_at=fired, next_fire_at=following)
            try:
                answer = self._change_schedule(schedule_id, now, expect(schedule), new=moved, job=job)
            except ScheduleNotFoundError:
                continue  # deleted meanwhile
            if answer is not None:  # None: another caller fired it first
                created += self._insert_answers([job], [answer], now)
        return created

    def pause_schedule(self, schedule_id: str, now: datetime) -> Schedule:
        for _ in range(CAS_ATTEMPTS):
            schedule = self._read_schedule(schedule_id)
            if schedule.paused:
                return schedule
            paused = replace(schedule, paused=True)
            if self._change_schedule(schedule_id, now, expect(schedule), new=paused,
                                     cancel=self._upcoming_key(schedule),
                                     reason="its schedule was paused") is not None:
                return paused
        raise _busy(schedule_id, "pause")

    def resume_schedule(self, schedule_id: str, now: datetime) -> Schedule:
        for _ in range(CAS_ATTEMPTS):
            schedule = self._read_schedule(schedule_id)
            if not schedule.paused:
                return schedule
            following = cron.next_fire(schedule.cron_expression, schedule.timezone, now)
            resumed = replace(schedule, paused=False, generation=schedule.generation + 1, next_fire_at=following)
            if self._change_schedule(schedule_id, now, expect(schedule), new=resumed,
                                     job=cron.job_for_fire(resumed, following)) is not None:
                return resumed
        raise _busy(schedule_id, "resume")

    def delete_schedule(self, schedule_id: str, now: datetime) -> Schedule:
        for _ in range(CAS_ATTEMPTS):
            schedule = self._read_schedule(schedule_id)
            if self._change_schedule(schedule_id, now, expect(schedule), cancel=self._upcoming_key(schedule),
                                     reason="its schedule was deleted", delete=True) is not None:
                return schedule
        raise _busy(schedule_id, "delete")

    def _read_schedule(self, schedule_id: str) -> Schedule:
        schedule = self.get_schedule(schedule_id)
        if schedule is None:
            raise ScheduleNotFoundError(schedule_id)
        return schedule

    @staticmethod
    def _upcoming_key(schedule: Schedule) -> tuple[str, str] | None:
        """(user, idempotency key) of the job of the schedule's next fire, which a pause or delete cancels."""
        if schedule.next_fire_at is None:
            return None
        return schedule.user_id, cron.fire_key(schedule.schedule_id, schedule.generation, schedule.next_fire_at)

