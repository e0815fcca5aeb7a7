"""The embedded ``JobManager`` API: a small facade over ``JobQueue`` for apps such as Streamlit.

Jobs live in a SQLite file (``db_path``) and survive restarts; ``start()`` runs an in-process worker with
``max_workers`` thread slots. Job records come back as flat dicts whose keys are the ones the Streamlit "Jobs"
tab reads (``JOB_KEYS``), with running jobs reported as ``"processing"`` and progress as a percentage.

Handlers may use the JobManager style (``fn(job_id, payload, update_progress)``, ``fn(job_id, payload)`` or
``fn(payload)``) or jobhandle's own (``fn(ctx, **payload)``); see ``JobManager.register_handler``.
"""

from __future__ import annotations

import inspect
import json
import threading
from collections.abc import Callable, Mapping
from os import PathLike
from typing import Any

from .config import Settings
from .errors import (
    InvalidParameterError,
    InvalidTransitionError,
    JobNotFoundError,
    UnknownHandlerError,
)
from .models import ALL_STATUSES, Job, JobPriority, JobStatus, iso
from .queue import JobQueue
from .registry import HandlerRegistry
from .worker import JobContext, Worker

JOB_KEYS = ("job_id", "job_type", "status", "priority", "created_at", "started_at", "completed_at",
            "progress", "payload", "result", "error")
"""The keys of every job dict ``JobManager`` returns, exactly."""

PROCESSING = "processing"
"""The JobManager's name for the running status, used in job dicts and stats."""

UpdateProgress = Callable[..., None]


def manager_status(status: JobStatus) -> str:
    """A status as the JobManager names it: ``"processing"`` for running, the status value otherwise."""
    return PROCESSING if status is JobStatus.RUNNING else status.value


def job_to_dict(job: Job) -> dict[str, Any]:
    """A job as the Streamlit Jobs tab reads it: ISO times, progress in percent, payload/result as JSON text."""
    return {
        "job_id": job.job_id,
        "job_type": job.job_type,
        "status": manager_status(job.status),
        "priority": job.priority,
        "created_at": iso(job.created_at),
        "started_at": iso(job.started_at),
        "completed_at": iso(job.completed_at),
        "progress": round(job.progress * 100, 1),
        "payload": json.dumps(job.parameters),
        "result": None if job.result is None else json.dumps(job.result),
        "error": job.error,
    }


def adapt_handler(job_type: str, fn: Callable[..., Any]) -> Callable[..., Any]:
    """Turn a handler written in any supported style into jobhandle's ``fn(ctx, **payload)``.

    A function whose first parameter is named ``ctx`` already is one and is returned unchanged. Otherwise
    the number of positional parameters decides the call: 3 -> ``fn(job_id, payload, update_progress)``,
    2 -> ``fn(job_id, payload)``, 1 -> ``fn(payload)``.
    """
    if not callable(fn):
        raise InvalidParameterError(f"handler for {job_type!r} is not callable: {fn!r}")
    params = list(inspect.signature(fn).parameters.values())
    if params and params[0].name == "ctx":
        return fn
    arity = _positional_arity(params)
    if arity not in (1, 2, 3):
        raise InvalidParameterError(
            f"handler for {job_type!r} takes {arity} positional parameters; use fn(ctx, **payload), "
            "fn(job_id, payload, update_progress), fn(job_id, payload) or fn(payload)")

    def arguments(ctx: JobContext, payload: dict[str, Any]) -> tuple[Any, ...]:
        return ((payload,), (ctx.job_id, payload), (ctx.job_id, payload, _progress_reporter(ctx)))[arity - 1]

    if inspect.iscoroutinefunction(fn):
        async def async_adapter(ctx: JobContext, **payload: Any) -> Any:
            return await fn(*arguments(ctx, payload))

        return async_adapter

    def adapter(ctx: JobContext, **payload: Any) -> Any:
        return fn(*arguments(ctx, payload))

    return adapter


def _positional_arity(params: list[inspect.Parameter]) -> int:
    """How many positional arguments to pass: 3 for ``*args``, else the positional parameters' count."""
    if any(p.kind is p.VAR_POSITIONAL for p in params):
        return 3
    return sum(p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD) for p in params)


def _progress_reporter(ctx: JobContext) -> UpdateProgress:
    """``update_progress(percent, message=None)`` for JobManager-style handlers.

    It also is their way to notice cancellation: once the job was cancelled, the next call raises
    ``JobCancelled``, which ends the handler quietly (the worker treats it as control flow, not a failure).
    The report goes first because writing it is one of the ways the worker learns of a cancellation.
    """

    def update_progress(percent: float, message: str | None = None) -> None:
        if isinstance(percent, bool) or not isinstance(percent, (int, float)):
            raise InvalidParameterError(f"update_progress takes a percentage from 0 to 100, not {percent!r}")
        ctx.progress(percent / 100, message)
        ctx.check_cancelled()

    return update_progress


class JobManager:
    """The job manager for embedding (Streamlit and the like): jobs in ``db_path`` (SQLite), ``max_workers``
    in-process worker threads.

    ``queue`` is the underlying ``JobQueue`` for everything this facade does not cover (waiting, listing by
    type, retries...). Thread-safe: Streamlit may call it from several script threads.
    """

    def __init__(self, db_path: str | PathLike[str] = "jobs.db", max_workers: int = 2, *,
                 settings: Settings | None = None) -> None:
        if isinstance(max_workers, bool) or not isinstance(max_workers, int) or max_workers < 1:
            raise InvalidParameterError(f"max_workers must be an integer of at least 1, not {max_workers!r}")
        self.db_path = str(db_path)
        if not self.db_path:
            raise InvalidParameterError("db_path must name a SQLite file, e.g. 'jobs.db'")
        self.max_workers = max_workers
        self.registry = HandlerRegistry()
        self.queue = JobQueue("sqlite:///" + self.db_path, settings=settings, registry=self.registry)
        self._worker: Worker | None = None
        self._lock = threading.Lock()

    # -- handlers and workers ----------------------------------------------------------------------------

    def register_handler(self, job_type: str, fn: Callable[..., Any]) -> None:
        """Register the function that runs jobs of ``job_type`` (any style ``adapt_handler`` accepts)."""
        self.registry.register(job_type, adapt_handler(job_type, fn))

    def start(self) -> None:
        """Start the in-process worker (``max_workers`` slots). Does nothing when it is already running."""
        with self._lock:
            if self._running():
                return
            self.queue.stop()  # a worker that died is cleaned up before a new one starts
            self._worker = self.queue.start(self.max_workers)

    def stop(self, grace: float | None = None) -> None:
        """Stop the worker. Running jobs may finish within ``grace`` seconds (settings' shutdown_grace by
        default); the rest go back to pending and run at the next ``start()``, in this or a later process."""
        with self._lock:
            self.queue.stop(grace)
            self._worker = None

    @property
    def running(self) -> bool:
        """True while the worker is up (False before start, after stop, or if the worker died)."""
        return self._running()

    def _running(self) -> bool:
        return self._worker is not None and not self._worker.stopping

    def close(self) -> None:
        """Stop the worker and close the database."""
        self.stop()
        self.queue.close()

    def __enter__(self) -> JobManager:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- jobs --------------------------------------------------------------------------------------------

    def submit_job(self, job_type: str, payload: Mapping[str, Any] | None = None,
                   priority: int | str | JobPriority = 0) -> str:
        """Queue a job and return its id. ``priority``: an integer (higher runs first) or a JobPriority name."""
        if job_type not in self.registry:
            raise UnknownHandlerError(job_type)
        return self.queue.submit(job_type, payload, priority=priority).job_id

    def get_job(self, job_id: str) -> dict[str, Any] | None:
        """The job as a dict (``JOB_KEYS``), or None when there is no such job."""
        try:
            return job_to_dict(self.queue.get(job_id))
        except JobNotFoundError:
            return None

    def get_all_jobs(self, status: JobStatus | str | None = None, limit: int = 50) -> list[dict[str, Any]]:
        """Jobs as dicts, newest first; ``status`` filters (``JobStatus.PROCESSING`` means running)."""
        return [job_to_dict(job) for job in self.queue.list(status, limit=limit)]

    def get_stats(self) -> dict[str, int]:
        """Job counts: ``total`` and one key per status, with ``processing`` for running jobs."""
        by_status = self.queue.stats()["by_status"]
        counts = {manager_status(s): by_status[s.value] for s in ALL_STATUSES}
        return {"total": sum(counts.values()), **counts}

    def update_job_status(self, job_id: str, status: JobStatus | str) -> bool:
        """Change a job's status the ways the state machine allows: ``CANCELLED`` cancels it (a running
        handler is told to stop), ``PENDING`` restarts a failed or cancelled job.

        Returns False when the job's current status does not allow the change (say it completed meanwhile),
        True when it changed. Unknown jobs raise JobNotFoundError; other target statuses
        InvalidParameterError, since workers alone move jobs through the other states.
        """
        target = JobStatus.parse(status)
        actions = {JobStatus.CANCELLED: self.queue.cancel, JobStatus.PENDING: self.queue.restart}
        if target not in actions:
            raise InvalidParameterError(
                f"update_job_status supports CANCELLED (cancel) and PENDING (restart), not {target.name}")
        try:
            actions[target](job_id)
        except InvalidTransitionError:
            return False
        return True

    def cleanup_old_jobs(self, days_old: float = 7) -> int:
        """Delete completed, failed and cancelled jobs that finished more than ``days_old`` days ago."""
        return self.queue.cleanup_old_jobs(days_old)
