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
from ..models import Job
from ..stores.base import AttemptKey, Backoff, ClaimRequest, Finished, Outcome, ProgressUpdate, Store, WorkerInfo

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
    """The primitives a worker calls, on ``store``, with named failures (each wrapped once, here)."""

    def __init__(self, store: Store) -> None:
        self.inner = store
        self.kind = store.kind
        self.claim: Callable[[ClaimRequest, datetime], list[Job]] = named("claim", store.claim)
        self.finish_many_and_claim: Callable[[str, Sequence[Finished], ClaimRequest | None, datetime],
                                             tuple[list[bool], list[Job]]] = named(
            "finish_many_and_claim", store.finish_many_and_claim)
        self.finish: Callable[[AttemptKey, Outcome, datetime], bool] = named("finish", store.finish)
        self.release: Callable[[AttemptKey, datetime], Job | None] = named("release", store.release)
        self.report_progress: Callable[[AttemptKey, ProgressUpdate], bool] = named(
            "report_progress", store.report_progress)
        self.take_token: Callable[[str, float, float, datetime], float] = named("take_token", store.take_token)
        self.heartbeat: Callable[[WorkerInfo, float, datetime], set[str]] = named("heartbeat", store.heartbeat)
        self.owned_jobs: Callable[[str], set[str]] = named("owned_jobs", store.owned_jobs)
        self.get: Callable[[str], Job | None] = named("get", store.get)
        self.unregister_worker: Callable[[str], None] = named("unregister_worker", store.unregister_worker)
        self.next_due_at: Callable[[], datetime | None] = named("next_due_at", store.next_due_at)
        self.wait_for_change: Callable[[int, float | None], int] = named("wait_for_change", store.wait_for_change)
        self.wake_waiters: Callable[[], None] = store.wake_waiters
        # maintenance (scheduler.py)
        self.hold_lease: Callable[[str, str, float, datetime], bool] = named("hold_lease", store.hold_lease)
        self.release_lease: Callable[[str, str], None] = named("release_lease", store.release_lease)
        self.recover_expired: Callable[[datetime, Backoff], list[Job]] = named("recover_expired",
                                                                              store.recover_expired)
        self.reap_workers: Callable[[datetime], list[str]] = named("reap_workers", store.reap_workers)
        self.advance_schedules: Callable[[datetime], list[Job]] = named("advance_schedules", store.advance_schedules)
        self.age_pending: Callable[[datetime, float, int], int] = named("age_pending", store.age_pending)
        self.cleanup: Callable[..., int] = named("cleanup", store.cleanup)
        self._change_version = named("change_version", lambda: store.change_version)

    @property
    def change_version(self) -> int:
        return self._change_version()
