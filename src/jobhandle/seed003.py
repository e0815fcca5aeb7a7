"""Seed 003's Python API, as its examples are written (``src.compileo.features.jobhandle`` becomes ``jobhandle``): a
thin layer over ``JobQueue``, ``health`` and ``pool``. Nothing here holds behaviour of its own.

- ``EnhancedExtractionJob`` is ``Job``; ``JobType`` names seed 003's job types; ``JobDependency``,
  ``JobSchedule`` and ``ResourceLimits`` are its configuration objects, turned into ``submit`` options and
  ``Settings``.
- ``enhanced_job_queue_manager`` (created on first use) is an ``EnhancedJobQueueManager``: a ``JobQueue`` on
  the configured store, which is Redis when ``REDIS_URL`` is set (``EnhancedRedisJobQueue``) and otherwise
  ``JOBHANDLE_STORE`` (``EnhancedInMemoryJobQueue`` is one on ``memory://``, for tests).
- ``submit_extraction_job``, ``perform_health_check`` and ``cleanup_old_jobs`` act on that manager.
- The worker manager (``jobhandle.worker_manager``) wraps ``pool.Pool``.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import Enum
from typing import Any

from .config import Settings
from .health import store_report
from .models import Dependency, Job, JobPriority, parse_job_id
from .queue import JobQueue

EnhancedExtractionJob = Job
"""Seed 003's job class: ``Job`` itself (``EnhancedExtractionJob(job_id=..., job_type=..., parameters=...)``)."""


class JobType(str, Enum):
    """Seed 003's job types; any string is a job type (a handler's name), these are the seed's."""

    EXTRACTION = "extraction"
    BATCH_EXTRACTION = "batch_extraction"
    TAXONOMY_PROCESSING = "taxonomy_processing"
    DOCUMENT_PROCESSING = "document_processing"
    DATASET_GENERATION = "dataset_generation"
    CLEANUP = "cleanup"
    MAINTENANCE = "maintenance"


@dataclass(frozen=True, slots=True)
class JobDependency:
    """A prerequisite: ``job_id`` must reach ``dependency_type`` (completion, success or failure) first."""

    job_id: str
    dependency_type: str = "success"

    def to_dependency(self) -> Dependency:
        return Dependency(self.job_id, self.dependency_type)


@dataclass(frozen=True, slots=True)
class JobSchedule:
    """When and how a job runs: at ``scheduled_time``, or recurring on ``cron_expression``, with its retries and
    time limit (None: the settings' defaults)."""

    scheduled_time: datetime | None = None
    cron_expression: str | None = None
    max_retries: int | None = None
    timeout_seconds: float | None = None
    retry_delay: float | None = None

    def submit_options(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in ("scheduled_time", "cron_expression", "max_retries",
                                                        "timeout_seconds", "retry_delay")
                if getattr(self, name) is not None}


@dataclass(frozen=True, slots=True)
class ResourceLimits:
    """Seed 003's resource limits: ``settings()`` gives Settings that hold them (JOB_MAX_CPU_PERCENT,
    JOB_MAX_MEMORY_MB, JOB_MAX_API_CALLS_PER_MINUTE); memory and CPU are enforced per job in process mode."""

    max_cpu_percent: float = 80.0
    max_memory_mb: float = 1024.0
    max_api_calls_per_minute: int = 60

    def settings(self, base: Settings | None = None) -> Settings:
        return (base or Settings()).replace(max_cpu_percent=self.max_cpu_percent, max_memory_mb=self.max_memory_mb,
                                            max_api_calls_per_minute=self.max_api_calls_per_minute)


class EnhancedJobQueueManager(JobQueue):
    """Seed 003's central manager: a JobQueue on the configured store, with its two extra readers."""

    def get_queue_stats(self) -> dict[str, Any]:
        return self.stats()

    def get_job(self, job_id: str) -> Job | None:
        """The job, or None when there is none (``get`` raises JobNotFoundError)."""
        return self.store.get(parse_job_id(job_id))


class EnhancedRedisJobQueue(EnhancedJobQueueManager):
    """The manager on a Redis store (``redis_url``, default ``REDIS_URL``)."""

    def __init__(self, redis_url: str | None = None, **kwargs: Any) -> None:
        settings = kwargs.pop("settings", None) or Settings()
        url = redis_url or settings.redis_url or "redis://localhost:6379/0"
        super().__init__(url, settings=settings, **kwargs)


class EnhancedInMemoryJobQueue(EnhancedJobQueueManager):
    """The manager on a private in-memory store (development and tests)."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__("memory://", **kwargs)


_manager: EnhancedJobQueueManager | None = None
_manager_lock = threading.Lock()


def get_manager() -> EnhancedJobQueueManager:
    """``enhanced_job_queue_manager``: made on first use, on the configured store."""
    global _manager
    with _manager_lock:
        if _manager is None:
            _manager = EnhancedJobQueueManager()
        return _manager


def submit_extraction_job(parameters: Mapping[str, Any] | None = None, *, schedule: JobSchedule | None = None,
                          priority: JobPriority | int | str | None = None,
                          dependencies: Sequence[JobDependency | str] | None = None,
                          job_type: str = JobType.EXTRACTION.value, user_id: str | None = None,
                          queue: str = "default") -> str:
    """Submit a job (seed 003's ``extraction`` type by default) and return its id."""
    options = schedule.submit_options() if schedule is not None else {}
    depends_on = [d.to_dependency() if isinstance(d, JobDependency) else d for d in dependencies or []]
    job = get_manager().submit(job_type, dict(parameters or {}), priority=priority, user_id=user_id,
                               queue=queue, depends_on=depends_on or None, **options)
    return job.job_id


def perform_health_check() -> dict[str, Any]:
    """``{"status": healthy | degraded | unhealthy, "issues": [...], ...}`` (see ``jobhandle.health``)."""
    return store_report(get_manager()).to_dict()


def cleanup_old_jobs(days_old: float = 30) -> int:
    """Remove finished jobs older than ``days_old`` days; returns how many."""
    return get_manager().cleanup_old_jobs(days_old)
