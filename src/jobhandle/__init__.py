"""jobhandle: background jobs for Python. Submit work, run it on workers, watch it, cancel it, retry it."""

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

__all__ = [
    "HandlerRegistry", "InvalidParameterError", "InvalidTransitionError", "Job", "JobAlreadyCompletedError",
    "JobCancelled", "JobContext", "JobHandleError", "JobManager", "JobMetrics", "JobNotFoundError", "JobPriority",
    "JobQueue", "JobStatus", "JobTimeoutError", "PermanentError", "Retry", "Schedule", "ScheduleNotFoundError",
    "Settings", "StoreClosedError", "StoreUnavailableError", "StoreURLError", "TimeLimitExceeded",
    "UnknownHandlerError", "Worker", "default_registry", "handler",
]

_SEED003 = {
    **{name: "seed003" for name in (
        "EnhancedExtractionJob", "EnhancedInMemoryJobQueue", "EnhancedJobQueueManager", "EnhancedRedisJobQueue",
        "JobDependency", "JobSchedule", "JobType", "ResourceLimits", "cleanup_old_jobs", "perform_health_check",
        "submit_extraction_job")},
    **{name: "worker_manager" for name in ("ScalingConfig", "WorkerManager", "WorkerPool", "create_worker_manager")},
}


def __getattr__(name: str) -> object:
    """Seed 003's API (``from jobhandle import submit_extraction_job, create_worker_manager, ...``), loaded when
    first asked for; ``enhanced_job_queue_manager`` is made then, on the configured store."""
    import importlib

    if name == "enhanced_job_queue_manager":
        return importlib.import_module(".seed003", __name__).get_manager()
    if name in _SEED003:
        return getattr(importlib.import_module(f".{_SEED003[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
