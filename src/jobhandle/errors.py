"""Typed errors. Each has a stable ``error_type`` name (the class name) that the REST API reports."""

from __future__ import annotations

from typing import Any


class JobHandleError(Exception):
    """Base of every error jobhandle raises on purpose."""

    def __init__(self, message: str, **context: Any) -> None:
        super().__init__(message)
        self.message = message
        self.context = context

    def to_dict(self) -> dict[str, Any]:
        """The documented error shape: ``{"error": <type>, "message": ..., **context}``."""
        return {"error": type(self).__name__, "message": self.message, **self.context}


class InvalidParameterError(JobHandleError, ValueError):
    """Bad input: an unknown priority, non-JSON parameters, a malformed id, unknown handler arguments..."""


class JobNotFoundError(JobHandleError, LookupError):
    def __init__(self, job_id: str) -> None:
        super().__init__(f"Job {job_id} not found", job_id=job_id)


class ScheduleNotFoundError(JobHandleError, LookupError):
    def __init__(self, schedule_id: str) -> None:
        super().__init__(f"Schedule {schedule_id} not found", schedule_id=schedule_id)


class InvalidTransitionError(JobHandleError):
    """The job's current status does not allow the requested change."""

    def __init__(self, job_id: str, current_status: str, action: str) -> None:
        super().__init__(f"Cannot {action} job in status {current_status}", job_id=job_id,
                         current_status=current_status)


class JobAlreadyCompletedError(InvalidTransitionError):
    """The job already reached a terminal status (the REST API's name for a refused cancel)."""

    def __init__(self, job_id: str, current_status: str, action: str = "cancel") -> None:
        super().__init__(job_id, current_status, action)
        self.message = f"Cannot {action} job that is already {current_status}"
        self.args = (self.message,)


class UnknownHandlerError(JobHandleError, LookupError):
    def __init__(self, job_type: str) -> None:
        super().__init__(f"No handler registered for job type {job_type!r}", job_type=job_type)


class StoreURLError(JobHandleError, ValueError):
    """A store URL that names no known store, or a malformed one."""


class StoreClosedError(JobHandleError, RuntimeError):
    """The store was closed; nothing more can be read or written through it."""


class StoreError(JobHandleError, RuntimeError):
    """A store primitive failed in a way it does not document (a driver error, a script error, a bug): the
    message names the primitive, ``primitive`` in the context."""


class StoreConflictError(JobHandleError, RuntimeError):
    """A change that kept losing to other changes of the same object; trying again later may succeed."""


class StoreOpenError(JobHandleError, OSError):
    """A store that cannot be opened where its URL points: a SQLite file this process may not create or write
    (a read-only folder, a missing folder, a path under a file, ``/proc``), or a file that is no SQLite database."""


class StoreSchemaError(JobHandleError, RuntimeError):
    """The store's data has a layout this release cannot use (written by a newer release, or damaged)."""


class StoreUnavailableError(JobHandleError, ConnectionError):
    """The store's server (Redis) does not answer."""


class JobTimeoutError(JobHandleError, TimeoutError):
    """Raised by ``JobQueue.wait`` when the job is not terminal within the timeout."""


class TimeLimitExceeded(Exception):
    """A job ran longer than its ``timeout_seconds``: recorded as the attempt's error (retry policy applies)."""


class ResourceLimitExceeded(Exception):
    """A process-mode job used more memory than ``JOB_MAX_MEMORY_MB``: it was killed and fails (no retry)."""


class JobProcessStartError(RuntimeError):
    """A job process did not start: waiting will not make it start (a script without the ``__main__`` guard)."""


class JobProcessDied(Exception):
    """A process-mode job's process ended without reporting how the job ended (a crash, or killed from
    outside): the attempt failed, and the retry policy applies."""


class JobCancelled(Exception):
    """Raised inside a handler by ``ctx.check_cancelled()`` once its job was cancelled or its lease lost.

    Not a JobHandleError on purpose: it is control flow, caught by the worker, never shown as a failure.
    """
