"""Maintenance that any number of processes may run at once (every primitive it calls is idempotent):
recovering jobs whose worker's lease expired, forgetting dead workers, advancing cron schedules, priority
aging and retention cleanup."""

from __future__ import annotations

import logging
import time
from datetime import datetime, timedelta

from .config import Settings
from .models import Job, JobStatus, utcnow
from .retry import lost_worker_policy
from .stores.base import Store

log = logging.getLogger("jobhandle.maintenance")

AGING_TICK_SECONDS = 5.0
"""Priority aging runs this often at most (and at least twice per aging interval)."""
SCHEDULE_TICK_SECONDS = 1.0
"""How often schedules are advanced. Precision does not depend on it: each fire's job exists ahead of its time
(it is created when the previous fire passes) and starts when due like any scheduled job."""


def retention_cutoffs(settings: Settings, now: datetime) -> dict[JobStatus, datetime]:
    """Terminal jobs finished before these times are removed by cleanup."""
    return {
        JobStatus.COMPLETED: now - timedelta(hours=settings.retention_completed_hours),
        JobStatus.FAILED: now - timedelta(hours=settings.retention_failed_hours),
        JobStatus.CANCELLED: now - timedelta(hours=settings.retention_cancelled_hours),
    }


class Maintenance:
    """Runs each maintenance task when it is due; call ``run_due`` from any loop, as often as you like."""

    def __init__(self, store: Store, settings: Settings) -> None:
        self.store = store
        self.settings = settings
        self._next_recover = 0.0
        self._next_cleanup = 0.0  # cleanup runs at start, then every cleanup_interval
        self._next_schedules = 0.0
        self._next_aging = 0.0

    def run_due(self) -> None:
        clock = time.monotonic()
        if clock >= self._next_schedules:
            self._next_schedules = clock + SCHEDULE_TICK_SECONDS
            self.advance_schedules()
        if clock >= self._next_recover:
            self._next_recover = clock + self.settings.heartbeat_interval
            self.recover()
        aging = self.settings.priority_aging_seconds
        if aging and self.settings.priority_aging_max and clock >= self._next_aging:
            self._next_aging = clock + min(AGING_TICK_SECONDS, aging / 2)
            self.age()
        if clock >= self._next_cleanup:
            self._next_cleanup = clock + self.settings.cleanup_interval
            self.cleanup()

    def recover(self, now: datetime | None = None) -> list[Job]:
        now = now or utcnow()
        jobs = self.store.recover_expired(now, lost_worker_policy(self.settings.retry_backoff_cap))
        for job in jobs:
            log.warning("recovered job %s from lost worker: now %s", job.job_id, job.status.value)
        dead = self.store.reap_workers(now - timedelta(seconds=self.settings.worker_timeout))
        for worker_id in dead:
            log.warning("worker %s stopped heartbeating; registration removed", worker_id)
        return jobs

    def advance_schedules(self, now: datetime | None = None) -> list[Job]:
        """Create the jobs of the fires that follow those whose time has come (see Store.advance_schedules)."""
        jobs = self.store.advance_schedules(now or utcnow())
        for job in jobs:
            log.info("schedule %s: next job %s at %s", job.schedule_id, job.job_id, job.run_at)
        return jobs

    def age(self, now: datetime | None = None) -> int:
        """Priority aging (see Store.age_pending): long-waiting jobs are not starved by higher priorities."""
        return self.store.age_pending(now or utcnow(), self.settings.priority_aging_seconds,
                                      self.settings.priority_aging_max)

    def cleanup(self, now: datetime | None = None) -> int:
        now = now or utcnow()
        removed = self.store.cleanup(retention_cutoffs(self.settings, now), now)
        if removed:
            log.info("retention cleanup removed %d jobs", removed)
        return removed
