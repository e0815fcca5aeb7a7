"""Maintenance: recovering jobs whose worker's lease ran out, forgetting dead workers, advancing cron schedules,
priority aging and retention cleanup.

Every primitive it calls is safe to run in any number of processes at once; still, only one process per store
does each task at a time: a worker runs a task only while it holds the task's lease in the store (each task
its own), so a hundred workers do not all scan for expired leases every five seconds. A holder that dies
stops renewing; another worker takes the task over once the lease runs out. Workers run maintenance in a
thread of its own (never on the heartbeat's), and retention cleanup goes in bounded steps, the lease renewed
between them, so a first cleanup of millions of rows after downtime delays nothing else.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Protocol

from .config import Settings
from .models import Job, JobStatus, utcnow
from .retry import lost_worker_policy
from .stores.base import Maintaining

log = logging.getLogger("jobhandle.maintenance")

AGING_TICK_SECONDS = 5.0
"""Priority aging runs this often at most (and at least twice per aging interval)."""
SCHEDULE_TICK_SECONDS = 1.0
"""How often schedules are advanced. Precision does not depend on it: each fire's job exists ahead of its time
(it is created when the previous fire passes) and starts when due like any scheduled job."""
CLEANUP_STEP = 10_000
"""Jobs one step of retention cleanup removes at most; the cleanup lease is renewed between steps."""
TICK_SECONDS = 0.5
"""How often the maintenance loop looks for a task that is due."""


class MaintenanceStore(Maintaining, Protocol):
    """What maintenance calls: the Maintaining role, and the schedules' advance."""

    def advance_schedules(self, now: datetime) -> list[Job]: ...


def retention_cutoffs(settings: Settings, now: datetime) -> dict[JobStatus, datetime]:
    """Terminal jobs finished before these times are removed by cleanup."""
    return {
        JobStatus.COMPLETED: now - timedelta(hours=settings.retention_completed_hours),
        JobStatus.FAILED: now - timedelta(hours=settings.retention_failed_hours),
        JobStatus.CANCELLED: now - timedelta(hours=settings.retention_cancelled_hours),
    }


@dataclass(slots=True)
class Task:
    """A maintenance task: what it runs, how often, and for how long its lease is taken: longer than its
    interval, so its holder keeps it from one run to the next (renewed once half of it has passed)."""

    name: str
    interval: float
    run: Callable[[], object]
    lease_seconds: float
    next_at: float = 0.0
    held_until: float = 0.0  # monotonic: while well before this, the lease is ours without asking the store


class Maintenance:
    """The maintenance tasks of one store. ``run_due`` runs each task that is due and whose lease this holder
    gets (``holder`` None: no leases, every task runs: for explicit calls such as ``JobQueue.cleanup``)."""

    def __init__(self, store: MaintenanceStore, settings: Settings, holder: str | None = None) -> None:
        self.store = store
        self.settings = settings
        self.holder = holder
        aging = settings.priority_aging_seconds
        intervals: dict[str, tuple[float, Callable[[], object]]] = {
            "schedules": (SCHEDULE_TICK_SECONDS, self.advance_schedules),
            "recover": (settings.heartbeat_interval, self.recover),
            "cleanup": (settings.cleanup_interval, self._cleanup_in_steps),
        }
        if aging and settings.priority_aging_max:
            intervals["aging"] = (min(AGING_TICK_SECONDS, aging / 2), self.age)
        self.tasks = [Task(name, interval, run, self._lease_seconds(name, interval, settings))
                      for name, (interval, run) in intervals.items()]

    @staticmethod
    def _lease_seconds(name: str, interval: float, settings: Settings) -> float:
        """Recovery's lease runs out within half the worker timeout: when its holder dies (the workers die in
        the same crash, often), another holder has it before the dead workers' job leases run out, and their
        jobs are recovered on time. The others are held at least the worker timeout: their holder keeps them
        from one run to the next, and a few seconds' delay after its death harms nothing."""
        if name == "recover":
            return max(2 * interval, min(3 * interval, settings.worker_timeout / 2))
        return max(settings.worker_timeout, 3 * interval)

    def run_due(self) -> None:
        """Run every task that is due (and, with a holder, whose lease it holds)."""
        for task in self.tasks:
            clock = time.monotonic()
            if clock < task.next_at:
                continue
            if not self._holds(task, clock):
                task.next_at = clock + min(task.interval, task.lease_seconds / 3)  # look again: it may run out
                continue
            task.next_at = clock + task.interval
            task.run()

    def _holds(self, task: Task, clock: float) -> bool:
        """Whether this holder may run ``task`` now: its lease is ours (renewed when half of it has passed)."""
        if self.holder is None:
            return True
        if clock < task.held_until - task.lease_seconds / 2:
            return True
        if self.store.hold_lease(task.name, self.holder, task.lease_seconds, utcnow()):
            task.held_until = clock + task.lease_seconds
            return True
        task.held_until = 0.0
        return False

    def release_leases(self) -> None:
        """Give up the leases held (a stopping worker: another takes its tasks over at once)."""
        if self.holder is not None:
            for task in self.tasks:
                if task.held_until:
                    self.store.release_lease(task.name, self.holder)
                    task.held_until = 0.0

    def recover(self, now: datetime | None = None) -> list[Job]:
        now = now or utcnow()
        jobs = self.store.recover_expired(now, lost_worker_policy(self.settings.retry_backoff_cap,
                                                                   max_delay=self.settings.worker_timeout / 2))
        for job in jobs:
            log.warning("recovered job %s from lost worker: now %s", job.job_id, job.status.value)
        silent_since = now - timedelta(seconds=self.settings.worker_timeout)
        for worker_id in self.store.reap_workers(silent_since):
            log.warning("worker %s stopped heartbeating; registration removed", worker_id)
        for pool_id in self.store.reap_pools(silent_since):
            log.warning("worker pool %s stopped writing its registration; registration removed", pool_id)
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
        """Retention cleanup, all of it now (an explicit call: ``JobQueue.cleanup``)."""
        now = now or utcnow()
        removed = self.store.cleanup(retention_cutoffs(self.settings, now), now)
        if removed:
            log.info("retention cleanup removed %d jobs", removed)
        return removed

    def _cleanup_in_steps(self) -> int:
        """Retention cleanup in steps of CLEANUP_STEP jobs, renewing the cleanup lease between them; stops early
        when the lease is lost (the next holder goes on)."""
        now = utcnow()
        cutoffs = retention_cutoffs(self.settings, now)
        task = next(t for t in self.tasks if t.name == "cleanup")
        removed = 0
        while True:
            step = self.store.cleanup(cutoffs, now, limit=CLEANUP_STEP, removed_before=removed)
            removed += step
            if step < CLEANUP_STEP or not self._holds(task, time.monotonic()):
                break
        if removed:
            log.info("retention cleanup removed %d jobs", removed)
        return removed
