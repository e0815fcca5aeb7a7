"""The store as a worker uses it: the primitives its loops call, each one's unexpected failure named.

A store raises its own typed errors for what it documents (a refused transition, an unreachable server); any
other exception (a driver or script error, a bug) reaches the worker as StoreError naming the primitive, so
the loop that called it logs and retries it under that name (see supervise.py) instead of dying.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any, TypeVar

from ..errors import JobHandleError, StoreError
from ..models import Job
from ..stores.base import AttemptKey, Backoff, ClaimRequest, Finished, Outcome, ProgressUpdate, Store, WorkerInfo

T = TypeVar("T")


Observe = Callable[[str, float, bool], None]
"""Told (primitive, seconds, whether it raised) after each timed call: the worker's metrics."""


def _ignore(primitive: str, seconds: float, failed: bool) -> None:
    pass


def named(primitive: str, call: Callable[..., T], observe: Observe | None = None) -> Callable[..., T]:
    """``call`` with any undocumented exception turned into StoreError naming ``primitive``; with ``observe``,
    timed."""
    seen = observe or _ignore

    @functools.wraps(call)
    def guarded(*args: Any, **kwargs: Any) -> T:
        started = time.perf_counter()
        failed = True
        try:
            result = call(*args, **kwargs)
            failed = False
            return result
        except JobHandleError:
            raise
        except Exception as exc:  # noqa: BLE001 - named and re-raised
            raise StoreError(f"store.{primitive} failed: {type(exc).__name__}: {exc}", primitive=primitive) from exc
        finally:
            seen(primitive, time.perf_counter() - started, failed)
    return guarded


class WorkerStore:
    """The primitives a worker calls, on ``store``, with named failures (each wrapped once, here)."""

    def __init__(self, store: Store, observe: Observe | None = None) -> None:
        self.inner = store
        self.kind = store.kind

        def timed(primitive: str, call: Callable[..., T]) -> Callable[..., T]:
            return named(primitive, call, observe)

        self.claim: Callable[[ClaimRequest, datetime], list[Job]] = timed("claim", store.claim)
        self.finish_many_and_claim: Callable[[str, Sequence[Finished], ClaimRequest | None, datetime],
                                             tuple[list[bool], list[Job]]] = timed(
            "finish_many_and_claim", store.finish_many_and_claim)
        self.finish: Callable[[AttemptKey, Outcome, datetime], bool] = timed("finish", store.finish)
        self.release: Callable[[AttemptKey, datetime], Job | None] = timed("release", store.release)
        self.report_progress: Callable[[AttemptKey, ProgressUpdate], bool] = timed(
            "report_progress", store.report_progress)
        self.take_token: Callable[[str, float, float, datetime], float] = timed("take_token", store.take_token)
        self.heartbeat: Callable[[WorkerInfo, float, datetime], set[str]] = timed("heartbeat", store.heartbeat)
        self.owned_jobs: Callable[[str], set[str]] = timed("owned_jobs", store.owned_jobs)
        self.get: Callable[[str], Job | None] = timed("get", store.get)
        self.unregister_worker: Callable[[str], None] = timed("unregister_worker", store.unregister_worker)
        self.next_due_at: Callable[[], datetime | None] = timed("next_due_at", store.next_due_at)
        # Waits, not calls: not timed.
        self.wait_for_change: Callable[[int, float | None], int] = named("wait_for_change",
                                                                         store.wait_for_change)
        self.wake_waiters: Callable[[], None] = store.wake_waiters
        # maintenance (scheduler.py)
        self.hold_lease: Callable[[str, str, float, datetime], bool] = timed("hold_lease", store.hold_lease)
        self.release_lease: Callable[[str, str], None] = timed("release_lease", store.release_lease)
        self.recover_expired: Callable[[datetime, Backoff], list[Job]] = timed("recover_expired",
                                                                              store.recover_expired)
        self.reap_workers: Callable[[datetime], list[str]] = timed("reap_workers", store.reap_workers)
        self.reap_pools: Callable[[datetime], list[str]] = timed("reap_pools", store.reap_pools)
        self.advance_schedules: Callable[[datetime], list[Job]] = timed("advance_schedules", store.advance_schedules)
        self.age_pending: Callable[[datetime, float, int], int] = timed("age_pending", store.age_pending)
        self.cleanup: Callable[..., int] = timed("cleanup", store.cleanup)
        self._change_version = named("change_version", lambda: store.change_version)

    @property
    def change_version(self) -> int:
        return self._change_version()

