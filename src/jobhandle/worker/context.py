"""JobContext: what a handler gets as ``ctx``."""

from __future__ import annotations

import functools
import logging
import threading
import time
from typing import Any

from ..errors import InvalidParameterError, JobCancelled, StoreError, StoreUnavailableError
from ..models import Job, clamp_progress, utcnow
from ..stores.base import AttemptKey, ProgressUpdate, Running

job_log = logging.getLogger("jobhandle.job")


@functools.lru_cache(maxsize=1024)
def job_logger(job_type: str) -> logging.Logger:
    """``jobhandle.job.<type>``: looked up once per type, not once per job."""
    return job_log.getChild(job_type)


class JobContext:
    """The running job as its handler sees it: identity, parameters, progress reports, cancellation.

    Progress writes are throttled: at most one per ``progress_interval`` seconds reaches the store; a report
    held back is written by the worker soon after, and the last one always lands (with the job's end).
    """

    def __init__(self, job: Job, store: Running, worker_id: str, progress_interval: float,
                 logger: logging.Logger, rate_per_minute: float = 60.0) -> None:
        self.job = job
        self.started_at = utcnow()  # the handler starts now; the store has the claim's time until told
        self._rate_default = rate_per_minute
        self._store = store
        self._worker_id = worker_id
        self._interval = progress_interval
        self._cancel = threading.Event()
        self._lock = threading.Lock()
        self._pending: ProgressUpdate | None = None
        self._last_write = 0.0
        self.handed_back = False  # set by a stopping worker that gave the job back to the queue
        self.logger = logging.LoggerAdapter(logger, {"job_id": job.job_id})

    @property
    def job_id(self) -> str:
        return self.job.job_id

    @property
    def attempt(self) -> int:
        """1 on the first run, 2 on the first retry, ..."""
        return self.job.attempts

    @property
    def user_id(self) -> str:
        return self.job.user_id

    @property
    def parameters(self) -> dict[str, Any]:
        return self.job.parameters

    @property
    def rate_per_minute(self) -> float:
        """``rate_limit``'s default rate (``JOB_MAX_API_CALLS_PER_MINUTE``)."""
        return self._rate_default

    @property
    def cancelled(self) -> bool:
        """True once the job was cancelled (or this worker lost it): stop and return soon."""
        return self._cancel.is_set()

    def check_cancelled(self) -> None:
        """Raise JobCancelled when ``cancelled``: a one-line way out of a handler's loop."""
        if self._cancel.is_set():
            raise JobCancelled(self.job_id)

    def progress(self, fraction: float | None = None, message: str | None = None, *,
                 items_processed: int | None = None, total_items: int | None = None) -> None:
        """Report progress (0.0-1.0) and/or a stage message and item counts."""
        if fraction is None and items_processed is not None and total_items:
            fraction = items_processed / total_items
        update = ProgressUpdate(None if fraction is None else clamp_progress(fraction), message,
                                items_processed, total_items, utcnow(), self.started_at)
        with self._lock:
            self._pending = _merge(self._pending, update)
        self.flush_progress(force=False)

    def rate_limit(self, key: str = "api", per_minute: float | None = None, *, burst: float = 1.0) -> None:
        """Block until a call under limit ``key`` is allowed: at most ``per_minute`` calls a minute (default
        ``JOB_MAX_API_CALLS_PER_MINUTE``), shared by every worker of the store, with bursts of up to ``burst``
        calls. Raises JobCancelled if the job is cancelled while waiting."""
        per_second, burst = rate_limit_args(self._rate_default if per_minute is None else per_minute, burst)
        while True:
            wait = self.take_token(key, per_second, burst)
            if wait <= 0:
                return
            if self._cancel.wait(wait):
                raise JobCancelled(self.job_id)

    def take_token(self, key: str, per_second: float, burst: float) -> float:
        """One try at limit ``key``'s token bucket: 0 when a call may go now, else seconds to wait."""
        return self._store.take_token(f"rate:{key}", per_second, burst, utcnow())

    # -- used by the worker ----------------------------------------------------------------------------

    def flush_progress(self, force: bool) -> None:
        """Write the held-back report when the interval has passed (or ``force``)."""
        with self._lock:
            if self._pending is None or (not force and time.monotonic() - self._last_write < self._interval):
                return
            update, self._pending = self._pending, None
            self._last_write = time.monotonic()
        try:
            owned = self._store.report_progress(AttemptKey(self.job_id, self._worker_id, self.job.attempts), update)
        except (StoreUnavailableError, StoreError) as exc:  # keep the report for the next write: a store that
            with self._lock:                                # fails now must not fail the handler reporting
                self._pending = update if self._pending is None else _merge(update, self._pending)
            if not isinstance(exc, StoreUnavailableError):
                self.logger.warning("progress of job %s not written yet: %s", self.job_id, exc)
            return
        if not owned:
            self._cancel.set()  # no longer ours: cancelled, or recovered after a lost lease

    def take_pending_progress(self) -> ProgressUpdate | None:
        with self._lock:
            update, self._pending = self._pending, None
            return update

    def mark_cancelled(self) -> None:
        self._cancel.set()


def rate_limit_args(per_minute: object, burst: object) -> tuple[float, float]:
    """Check ``rate_limit``'s arguments; return (calls per second, burst)."""
    if isinstance(per_minute, bool) or not isinstance(per_minute, (int, float)) or per_minute <= 0:
        raise InvalidParameterError(f"per_minute must be a positive number, not {per_minute!r}")
    if isinstance(burst, bool) or not isinstance(burst, (int, float)) or burst < 1:
        raise InvalidParameterError(f"burst must be a number of at least 1, not {burst!r}")
    return per_minute / 60.0, float(burst)


def _merge(old: ProgressUpdate | None, new: ProgressUpdate) -> ProgressUpdate:
    if old is None:
        return new
    return ProgressUpdate(
        new.fraction if new.fraction is not None else old.fraction,
        new.message if new.message is not None else old.message,
        new.items_processed if new.items_processed is not None else old.items_processed,
        new.total_items if new.total_items is not None else old.total_items,
        new.at,
        new.started_at or old.started_at,
    )
