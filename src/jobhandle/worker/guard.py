"""The store as a worker uses it: the primitives its loops call, each one's unexpected failure named.

A store raises its own typed errors for what it documents (a refused transition, an unreachable server); any
other exception (a driver or script error, a bug) reaches the worker as StoreError naming the primitive, so
the loop that called it logs and retries it under that name (see supervise.py) instead of dying.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any, TypeVar

from ..errors import JobHandleError, StoreError
from ..models import Job, JobStatus
from ..stores.base import ClaimRequest, Finished, Outcome, ProgressUpdate, Store, WorkerInfo

T = TypeVar("T")


def named(primitive: str, call: Callable[..., T]) -> Callable[..., T]:
    """``call`` with any undocumented exception turned into StoreError naming ``primitive``."""
    @functools.wraps(call)
    def guarded(*args: Any, **kwargs: Any) -> T:
        try:
            return call(*args, **kwargs)
        except JobHandleError:
            raise
        except Exception as exc:  # noqa: BLE001 - named and re-raised
            raise StoreError(f"store.{primitive} failed: {type(exc).__name__}: {exc}", primitive=primitive) from exc
    return guarded


class WorkerStore:
    """The primitives a worker calls, on ``store``, with named failures."""

    def __init__(self, store: Store) -> None:
        self.inner = store
        self.kind = store.kind

    def claim(self, request: ClaimRequest, now: datetime) -> list[Job]:
        return named("claim", self.inner.claim)(request, now)

    def finish_many_and_claim(self, worker_id: str, finished: Sequence[Finished], claim: ClaimRequest | None,
                              now: datetime) -> tuple[list[bool], list[Job]]:
        return named("finish_many_and_claim", self.inner.finish_many_and_claim)(worker_id, finished, claim, now)

    def finish(self, job_id: str, worker_id: str, attempt: int, outcome: Outcome, now: datetime) -> bool:
        return named("finish", self.inner.finish)(job_id, worker_id, attempt, outcome, now)

    def release(self, job_id: str, worker_id: str, attempt: int, now: datetime) -> Job | None:
        return named("release", self.inner.release)(job_id, worker_id, attempt, now)

    def report_progress(self, job_id: str, worker_id: str, attempt: int, update: ProgressUpdate) -> bool:
        return named("report_progress", self.inner.report_progress)(job_id, worker_id, attempt, update)

    def take_token(self, key: str, per_second: float, burst: float, now: datetime) -> float:
        return named("take_token", self.inner.take_token)(key, per_second, burst, now)

    def heartbeat(self, worker: WorkerInfo, lease_seconds: float, now: datetime) -> set[str]:
        return named("heartbeat", self.inner.heartbeat)(worker, lease_seconds, now)

    def owned_jobs(self, worker_id: str) -> set[str]:
        return named("owned_jobs", self.inner.owned_jobs)(worker_id)

    def get(self, job_id: str) -> Job | None:
        return named("get", self.inner.get)(job_id)

    def unregister_worker(self, worker_id: str) -> None:
        named("unregister_worker", self.inner.unregister_worker)(worker_id)

    def next_due_at(self) -> datetime | None:
        return named("next_due_at", self.inner.next_due_at)()

    @property
    def change_version(self) -> int:
        return named("change_version", lambda: self.inner.change_version)()

    def wait_for_change(self, seen: int, timeout: float | None) -> int:
        return named("wait_for_change", self.inner.wait_for_change)(seen, timeout)

    def wake_waiters(self) -> None:
        self.inner.wake_waiters()

    # -- maintenance (scheduler.py) ------------------------------------------------------------------------

    def hold_lease(self, name: str, holder: str, seconds: float, now: datetime) -> bool:
        return named("hold_lease", self.inner.hold_lease)(name, holder, seconds, now)

    def release_lease(self, name: str, holder: str) -> None:
        named("release_lease", self.inner.release_lease)(name, holder)

    def recover_expired(self, now: datetime, backoff: Callable[[Job, datetime], Outcome]) -> list[Job]:
        return named("recover_expired", self.inner.recover_expired)(now, backoff)

    def reap_workers(self, silent_since: datetime) -> list[str]:
        return named("reap_workers", self.inner.reap_workers)(silent_since)

    def advance_schedules(self, now: datetime) -> list[Job]:
        return named("advance_schedules", self.inner.advance_schedules)(now)

    def age_pending(self, now: datetime, interval: float, max_boost: int) -> int:
        return named("age_pending", self.inner.age_pending)(now, interval, max_boost)

    def cleanup(self, cutoffs: dict[JobStatus, datetime], now: datetime, limit: int | None = None,
                removed_before: int = 0) -> int:
        return named("cleanup", self.inner.cleanup)(cutoffs, now, limit, removed_before)
