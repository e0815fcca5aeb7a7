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
