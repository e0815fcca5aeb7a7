"""Retry policy: a pure function of (job, error, now) -> how the attempt ends.

Automatic retries back off exponentially from the job's ``retry_delay`` (attempt 1 waits retry_delay,
attempt 2 twice that, ...), capped at ``cap`` seconds, with jitter: the wait is drawn between half and all of
that, so jobs that failed together do not come back together.
"""

from __future__ import annotations

import random
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from .models import Job, JobStatus
from .stores.base import Outcome


class Retry(Exception):
    """Raise from a handler to ask for another attempt, ``delay`` seconds from now (None: the backoff).

    It counts as an attempt: when the job has no retries left it fails with this message.
    """

    def __init__(self, delay: float | None = None, message: str = "handler asked for a retry") -> None:
        super().__init__(message)
        self.delay = delay


class PermanentError(Exception):
    """Raise (or subclass) for a failure that another attempt cannot fix: the job fails without retries."""


def backoff_seconds(base: float, attempt: int, cap: float, rand: Callable[[], float] = random.random) -> float:
    raw = min(cap, base * 2 ** max(0, attempt - 1))
    return raw * (0.5 + 0.5 * rand())


TRACEBACK_LIMIT = 8000
"""Characters of a traceback an attempt's error record keeps (its end: where it was raised)."""


def describe(exc: BaseException) -> str:
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def traceback_of(exc: BaseException) -> str:
    """The exception's traceback as Python prints it, cut to its last TRACEBACK_LIMIT characters."""
    text = "".join(traceback.format_exception(exc)).rstrip()
    return text if len(text) <= TRACEBACK_LIMIT else "…" + text[-TRACEBACK_LIMIT:]


@dataclass(frozen=True, slots=True)
class Failure:
    """What a failed attempt raised, reduced to what the retry policy needs (a process-mode job's child
    process sends this, not the exception, which may not cross a process boundary)."""

    error: str
    error_type: str
    permanent: bool = False
    asked_delay: float | None = None  # Retry(delay=...) from the handler
    traceback: str | None = None

    @classmethod
    def of(cls, exc: BaseException) -> Failure:
        return cls(describe(exc), type(exc).__name__, isinstance(exc, PermanentError),
                   exc.delay if isinstance(exc, Retry) else None, traceback_of(exc))


def outcome_for_error(job: Job, exc: BaseException, now: datetime, cap: float) -> Outcome:
    """How an attempt that raised ``exc`` ends: RETRYING with a run time, or FAILED."""
    return outcome_for_failure(job, Failure.of(exc), now, cap)


def outcome_for_failure(job: Job, failure: Failure, now: datetime, cap: float) -> Outcome:
    if failure.permanent or job.attempts > job.max_retries:
        return Outcome(JobStatus.FAILED, error=failure.error, error_type=failure.error_type,
                       traceback=failure.traceback)
    delay = failure.asked_delay if failure.asked_delay is not None else \
        backoff_seconds(job.retry_delay, job.attempts, cap)
    return Outcome(JobStatus.RETRYING, error=failure.error, error_type=failure.error_type,
                   traceback=failure.traceback, run_at=now + timedelta(seconds=max(0.0, delay)))


def permanent_failure(exc: BaseException) -> Outcome:
    """FAILED at once, whatever attempts remain: for failures no retry can fix (decided by the worker)."""
    return Outcome(JobStatus.FAILED, error=describe(exc), error_type=type(exc).__name__, traceback=traceback_of(exc))


class WorkerLostError(Exception):
    """The worker running a job stopped heartbeating before the job finished."""


def lost_worker_policy(cap: float, max_delay: float | None = None) -> Callable[[Job, datetime], Outcome]:
    """The outcome for a job whose worker's lease expired (used by the stores' recover_expired).

    Losing its worker is rarely the job's doing (a deploy, a crash, a killed container): the first time, the
    job is retried at once. When its workers keep getting lost (a job that crashes its worker?), it backs off
    like any failure, counting the losses, but never longer than ``max_delay`` (the worker timeout: a job whose
    worker was killed runs again within about twice that)."""

    def decide(job: Job, now: datetime) -> Outcome:
        exc = WorkerLostError(f"worker {job.worker_id} was lost (no heartbeat before its lease expired)")
        outcome = outcome_for_error(job, exc, now, cap)
        if outcome.status is JobStatus.RETRYING:
            losses = sum(1 for e in job.error_history if e.get("error_type") == WorkerLostError.__name__)
            delay = backoff_seconds(job.retry_delay, losses, cap) if losses else 0.0
            if max_delay is not None:
                delay = min(delay, max_delay)
            outcome.run_at = now + timedelta(seconds=delay)
        return outcome

    return decide
