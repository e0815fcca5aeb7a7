"""jobhandle: background jobs for Python. Submit work, run it on workers, watch it, cancel it, retry it.

Every name below is imported when first used, so a process loads only what it touches (``jobhandle worker``
does not load the API, the pools or seed 003's layer).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .compat import JobManager
    from .config import Settings
    from .errors import (
        InvalidParameterError,
        InvalidTransitionError,
        JobAlreadyCompletedError,
        JobCancelled,
        JobHandleError,
        JobNotFoundError,
        JobTimeoutError,
        ScheduleNotFoundError,
        StoreClosedError,
        StoreUnavailableError,
        StoreURLError,
        TimeLimitExceeded,
        UnknownHandlerError,
    )
    from .models import Job, JobMetrics, JobPriority, JobStatus, Schedule
    from .queue import JobQueue
    from .registry import HandlerRegistry, default_registry, handler
    from .retry import PermanentError, Retry
    from .worker import JobContext, Worker

_MODULES = {
    "compat": ("JobManager",),
    "config": ("Settings",),
    "errors": ("InvalidParameterError", "InvalidTransitionError", "JobAlreadyCompletedError", "JobCancelled",
               "JobHandleError", "JobNotFoundError", "JobTimeoutError", "ScheduleNotFoundError", "StoreClosedError",
               "StoreUnavailableError", "StoreURLError", "TimeLimitExceeded", "UnknownHandlerError"),
    "models": ("Job", "JobMetrics", "JobPriority", "JobStatus", "Schedule"),
    "queue": ("JobQueue",),
    "registry": ("HandlerRegistry", "default_registry", "handler"),
    "retry": ("PermanentError", "Retry"),
    "worker": ("JobContext", "Worker"),
    # Seed 003's API (from jobhandle import submit_extraction_job, create_worker_manager, ...).
    "seed003": ("EnhancedExtractionJob", "EnhancedInMemoryJobQueue", "EnhancedJobQueueManager",
                "EnhancedRedisJobQueue", "JobDependency", "JobSchedule", "JobType", "ResourceLimits",
                "cleanup_old_jobs", "perform_health_check", "submit_extraction_job"),
    "worker_manager": ("ScalingConfig", "WorkerManager", "WorkerPool", "create_worker_manager"),
}
_HOME = {name: module for module, names in _MODULES.items() for name in names}

__all__ = [
    "HandlerRegistry", "InvalidParameterError", "InvalidTransitionError", "Job", "JobAlreadyCompletedError",
    "JobCancelled", "JobContext", "JobHandleError", "JobManager", "JobMetrics", "JobNotFoundError", "JobPriority",
    "JobQueue", "JobStatus", "JobTimeoutError", "PermanentError", "Retry", "Schedule", "ScheduleNotFoundError",
    "Settings", "StoreClosedError", "StoreUnavailableError", "StoreURLError", "TimeLimitExceeded",
    "UnknownHandlerError", "Worker", "default_registry", "handler",
]


def __getattr__(name: str) -> object:
    """Import the module that defines ``name``; ``enhanced_job_queue_manager`` is made when first asked for, on
    the configured store."""
    if name == "enhanced_job_queue_manager":
        return importlib.import_module(".seed003", __name__).get_manager()
    if name not in _HOME:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{_HOME[name]}", __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *_HOME])
