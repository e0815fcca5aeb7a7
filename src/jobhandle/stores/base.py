"""The store seam: the atomic primitives every store provides, grouped by role.

Each method that changes job state is one atomic step inside the store (one SQL transaction, one Lua
script, one lock hold): it checks the current state and changes it, or changes nothing. Code outside the
stores never reads a job, decides, and writes it back. The conformance suite in ``tests/conformance``
defines the behaviour; a store is done when it passes it.

The roles are what each caller needs: ``Submitting`` and ``Controlling`` (the API, the CLI), ``Running``
(a worker's slots and monitor), ``Maintaining`` (the maintenance loop), ``Scheduling``, ``Registry`` (the
workers' registrations), ``Reading`` and ``ChangeFeed`` (readers, SSE, the dashboard) and ``Notifier`` (the
wake-ups). Each is a Protocol, so a caller can be typed by the role it uses (a wrapper such as the worker's
guard provides just those methods); ``Store`` is all of them, and what a store implements.

Fencing: a running job belongs to ``(worker_id, attempt)``. ``report_progress``, ``finish`` and ``release``
name that pair and change nothing unless the job is still running under it, so a worker that lost its lease
(cancelled, recovered after a missed heartbeat) can never overwrite the job's new owner.

Change feed: every change of a job's visible state gives the job a new, store-wide increasing ``seq``.
``changes_since(seq)`` returns the jobs changed after ``seq`` in order (each job once, in its latest state),
which is what SSE resumption and dashboards need. ``wait_for_change`` wakes waiters in this process when
anything in the store changed, including commits by other processes or hosts.
"""

from __future__ import annotations

import json
import threading
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

from ..analytics import RollupRow
from ..errors import InvalidParameterError
from ..models import Job, JobStatus, Schedule, at_ts, dumps_json, iso
from ..supervise import LoopHealth


def prefix_end(prefix: str) -> str:
    """The first string after every string that starts with ``prefix`` (a range ``[prefix, end)`` holds
    exactly those): its last character, incremented."""
    if not prefix or ord(prefix[-1]) == 0x10FFFF:
        return prefix + "\U0010ffff"
    return prefix[:-1] + chr(ord(prefix[-1]) + 1)


@dataclass(frozen=True, slots=True)
class JobPosition:
    """A place in a list sorted by creation time: the last job of a page (its created_at and job_id, which
    never change, so a job keeps its place however often it changes). The next page starts right after it,
    found through the creation-time index whatever the depth (keyset paging).

    Jobs created in the same instant (one bulk submit) are in an order each store keeps for good: Redis and
    memory by job id, SQLite by insertion (its rowid). Should the position's job be deleted before the next
    page is read, SQLite starts that page with the first job of the position's instant: jobs of that instant
    may be listed twice, none is skipped."""

    created_at: datetime
    job_id: str


SCAN_LIMIT = 50_000
"""Jobs a list checks at most for the filters no index serves (JobQuery) before it is refused."""


@dataclass(slots=True)
class JobQuery:
    """Filters for ``list_jobs``. ``sort`` is a field name, ``-`` in front for descending. ``after`` (sorts by
    created_at only) starts the page right after that position, in sort order; ``offset`` skips rows.

    ``error_contains`` (in the error message, any case) and ``parameters`` (top-level parameters equal to
    these JSON values; 3 and 3.0 are equal) are served by no index: they are checked on the jobs the other
    filters select, newest first, and a list that would check more than ``SCAN_LIMIT`` of them without
    filling its page is refused (InvalidParameterError saying how to narrow it)."""

    statuses: Sequence[JobStatus] | None = None
    job_type: str | None = None
    user_id: str | None = None
    queue: str | None = None
    search: str | None = None  # the start of a job id (any case) or of a user id
    idempotency_key: str | None = None
    created_after: datetime | None = None
    created_before: datetime | None = None
    sort: str = "-created_at"
    limit: int = 100
    offset: int = 0
    after: JobPosition | None = None
    error_contains: str | None = None
    parameters: Mapping[str, Any] | None = None

    SORTABLE = ("created_at", "status", "progress", "priority", "completed_at", "started_at")

    def check_scan(self) -> None:
        """Text and parameter filters: plain JSON scalars under string keys (InvalidParameterError otherwise)."""
        for key, value in (self.parameters or {}).items():
            if not isinstance(key, str) or not key or '"' in key:
                raise InvalidParameterError(f"a parameter filter needs a name without double quotes, not {key!r}")
            if not isinstance(value, (str, int, float, bool, type(None))) or value != value:
                raise InvalidParameterError(f"parameter {key}: filter by a string, number, true, false or null, "
                                            f"not {value!r}")

    @property
    def scans(self) -> bool:
        """Whether a filter no index serves is set (see the class docstring)."""
        return bool(self.error_contains) or bool(self.parameters)

    def check_after(self) -> None:
        """A keyset position only makes sense in creation order (InvalidParameterError otherwise)."""
        if self.after is not None and self.sort.removeprefix("-") != "created_at":
            raise InvalidParameterError(f"a list position (after) needs a sort by created_at, not {self.sort!r}")


@dataclass(slots=True)
class ProgressUpdate:
    """One progress report from a running handler. ``None`` fields leave the stored value as it is."""

    fraction: float | None = None
    message: str | None = None
    items_processed: int | None = None
    total_items: int | None = None
    at: datetime | None = None
    started_at: datetime | None = None  # when the handler began (the claim time stands until it is written)


def error_entry(attempt: int, worker_id: str, outcome: Outcome, at: datetime | None) -> str | None:
    """The ``error_history`` entry (JSON text) of an attempt that ended in an error, as every store appends
    it: the attempt, when, on which worker, the error, its type and (when the worker sent one) the
    traceback. None for an attempt without an error."""
    if outcome.error is None:
        return None
    entry: dict[str, Any] = {"attempt": attempt, "at": iso(at), "worker_id": worker_id, "error": outcome.error,
                             "error_type": outcome.error_type}
    if outcome.traceback is not None:
        entry["traceback"] = outcome.traceback
    return dumps_json(entry)


def history_entry(update: ProgressUpdate | None) -> str | None:
    """The ``progress_history`` entry (JSON text) of a report, as every store appends it: for a progress write
    and for the report an outcome carries. None when there is no report."""
    if update is None:
        return None
    entry: dict[str, Any] = {"at": iso(update.at), "progress": update.fraction, "message": update.message}
    if update.items_processed is not None:
        entry["items_processed"] = update.items_processed
    return dumps_json(entry)


@dataclass(slots=True)
class Outcome:
    """How an attempt ended, decided by the worker (with ``retry.py``) and applied fenced by ``finish``.

    ``status`` is COMPLETED, RETRYING (then ``run_at`` is when to run again) or FAILED.
    """

    status: JobStatus
    result: Any = None
    error: str | None = None
    error_type: str | None = None
    traceback: str | None = None  # where the error was raised: kept in the attempt's error_history entry
    run_at: datetime | None = None
    execution_time_seconds: float | None = None
    cpu_seconds: float | None = None
    peak_memory_mb: float | None = None
    progress: ProgressUpdate | None = None  # the last throttled progress report not yet written
    started_at: datetime | None = None  # when the handler began (see ProgressUpdate.started_at)


NO_LIMIT = 1 << 62
"""A limit that never binds."""

TURN_MEMORY_SECONDS = 3600.0
"""How long the round robin remembers a user with nothing waiting: cleanup forgets the turn of a user last
served longer ago. (A forgotten user ranks as one never served, which is how its old turn ranked it against
every user served since.)"""


@dataclass(frozen=True, slots=True)
class ConcurrencyLimits:
    """At most ``global_max`` jobs running in all, and ``per_user_max`` per user (claims stop short of them)."""

    global_max: int
    per_user_max: int

    @classmethod
    def from_settings(cls, global_max: int, per_user_max: int) -> ConcurrencyLimits | None:
        """Settings' limits, where 0 means none; None when neither limits anything."""
        if not global_max and not per_user_max:
            return None
        return cls(global_max or NO_LIMIT, per_user_max or NO_LIMIT)


@dataclass(frozen=True, slots=True)
class AttemptKey:
    """One attempt of a job as the worker that runs it holds it: the fence of progress, finish and release,
    which change nothing unless the job still runs under this (worker_id, attempt)."""

    job_id: str
    worker_id: str
    attempt: int


@dataclass(frozen=True, slots=True)
class ClaimRequest:
    """A claim: up to ``limit`` ready jobs of ``queues`` for ``worker_id``, each leased for ``lease_seconds``,
    within ``limits`` (None: no concurrency limit)."""

    worker_id: str
    queues: Sequence[str]
    limit: int
    lease_seconds: float
    limits: ConcurrencyLimits | None = None


@dataclass(slots=True)
class Finished:
    """An attempt's end, reported by the worker that ran it (``attempt``), at the time it ended."""

    job_id: str
    attempt: int
    outcome: Outcome
    at: datetime


@dataclass(slots=True)
class WorkerInfo:
    """A worker's registration, refreshed by each heartbeat."""

    worker_id: str
    name: str
    hostname: str
    pid: int
    queues: list[str]
    concurrency: int
    started_at: datetime
    last_seen: datetime | None = None
    state: str = "running"  # running | paused (resource limits) | stopping
    current_jobs: list[str] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class PoolEvent:
    """One thing a worker pool did: scaled (from, to, why), replaced a dead worker, gave up, stopped."""

    at: datetime
    kind: str  # "scale", "replace", "crash_loop", "stop"
    detail: str
    workers: int  # its size after it


@dataclass(slots=True)
class PoolInfo:
    """A worker pool's registration (``jobhandle pool``), written each round of its loop: its size and range,
    the load it last read and why it last changed size. ``events`` holds its latest POOL_EVENTS_KEPT, oldest
    first. Its workers register themselves as workers; ``worker_pids`` links them (with ``hostname``)."""

    pool_id: str
    name: str
    hostname: str
    pid: int
    queues: list[str]
    concurrency: int
    min_workers: int
    max_workers: int
    workers: int
    draining: int
    started_at: datetime
    state: str = "running"  # running | crash_loop (replaces no more dead workers) | stopping
    worker_pids: list[int] = field(default_factory=list)
    load: dict[str, Any] = field(default_factory=dict)  # pending, running, oldest_wait_seconds, cpu/memory %
    store_error: str | None = None  # why its last read of the load failed, if it did
    events: list[PoolEvent] = field(default_factory=list)
    last_seen: datetime | None = None

    def to_doc(self) -> str:
        """The registration as the stores keep it: one JSON document (``last_seen`` is kept beside it)."""
        return dumps_json({
            "pool_id": self.pool_id, "name": self.name, "hostname": self.hostname, "pid": self.pid,
            "queues": self.queues, "concurrency": self.concurrency, "min_workers": self.min_workers,
            "max_workers": self.max_workers, "workers": self.workers, "draining": self.draining,
            "started_at": self.started_at.timestamp(), "state": self.state, "worker_pids": self.worker_pids,
            "load": self.load, "store_error": self.store_error,
            "events": [[e.at.timestamp(), e.kind, e.detail, e.workers] for e in self.events[-POOL_EVENTS_KEPT:]],
        })

    @classmethod
    def from_doc(cls, doc: str, last_seen: float) -> PoolInfo:
        d = json.loads(doc)
        return cls(pool_id=d["pool_id"], name=d["name"], hostname=d["hostname"], pid=d["pid"], queues=d["queues"],
                   concurrency=d["concurrency"], min_workers=d["min_workers"], max_workers=d["max_workers"],
                   workers=d["workers"], draining=d["draining"], started_at=at_ts(d["started_at"]),
                   state=d["state"], worker_pids=d["worker_pids"], load=d["load"], store_error=d["store_error"],
                   events=[PoolEvent(at_ts(at), kind, detail, n) for at, kind, detail, n in d["events"]],
                   last_seen=at_ts(last_seen))


POOL_EVENTS_KEPT = 20
"""A pool's latest events kept in its registration (its log and metrics have them all)."""


@dataclass(slots=True)
class StoreCounts:
    """Counters kept with the transitions: jobs by status, and by queue and by type."""

    by_status: dict[str, int]
    by_queue: dict[str, dict[str, int]]
    by_type: dict[str, dict[str, int]]
    last_cleanup: datetime | None = None
    last_cleanup_removed: int = 0


class StepSizer:
    """Sizes the steps of a long write (retention cleanup removing a million jobs) so that each holds the store
    for about ``target`` seconds: the claims and finishes queued behind a step wait that long at most, whatever
    a job costs to remove on this machine, with these indexes, at this size. ``took`` adjusts the next size."""

    def __init__(self, target: float = 0.003, first: int = 100, low: int = 10, high: int = 2000) -> None:
        self.target, self.low, self.high = target, low, high
        self.size = first

    def took(self, done: int, seconds: float) -> None:
        if done and seconds > 0:
            self.size = max(self.low, min(self.high, int(self.target * done / seconds)))


class ChangeSignal:
    """In-process wake-ups: a counter bumped on every change and a condition to wait on it."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._version = 0

    @property
    def version(self) -> int:
        return self._version

    def bump(self) -> None:
        with self._cond:
            self._version += 1
            self._cond.notify_all()

    def wait(self, seen: int, timeout: float | None) -> int:
        """Block until the version differs from ``seen`` or the timeout passes; return the version."""
        with self._cond:
            if self._version == seen:
                self._cond.wait(timeout)
            return self._version


Backoff = Callable[[Job, datetime], Outcome]
"""How a job whose worker was lost ends its attempt (retry.lost_worker_policy)."""


class Submitting(Protocol):
    @abstractmethod
    def submit(self, jobs: Sequence[Job], now: datetime) -> list[Job]:
        """Insert new jobs atomically (all or none) and return them as stored.

        Each job's initial status is decided here: SCHEDULED when ``run_at`` is after ``now``, WAITING while a
        dependency is undecided (CANCELLED when one can no longer be met), else PENDING; ``created_at`` is
        ``now``. A job whose ``idempotency_key`` matches a retained job of the same user is not inserted; that
        job is returned instead.
        """


class Reading(Protocol):
    @abstractmethod
    def get(self, job_id: str) -> Job | None:
        """The job, or None."""

    @abstractmethod
    def list_jobs(self, query: JobQuery) -> list[Job]:
        """Jobs matching the query, sorted and paged as it says."""

    @abstractmethod
    def counts(self) -> StoreCounts:
        """The transition-maintained counters (no table scans)."""

    @abstractmethod
    def count_by_status(self, user_id: str) -> dict[str, int]:
        """One user's jobs by status (statuses with none are left out): the API's per-user statistics."""

    @abstractmethod
    def next_due_at(self) -> datetime | None:
        """The earliest ``run_at`` among SCHEDULED/RETRYING jobs (when a sleeping worker must look again)."""

    @abstractmethod
    def count_created_before(self, statuses: Sequence[JobStatus], before: datetime) -> int:
        """Jobs in ``statuses`` created before ``before``, from the status indexes (what a cleanup with that
        cutoff looks at: it removes those of them that also finished before it)."""

    @abstractmethod
    def dependants(self, job_id: str, limit: int = 100) -> tuple[list[str], int]:
        """The jobs that named ``job_id`` in their ``depends_on`` (the first ``limit`` by job id), and how many
        there are in all; kept until either job is removed."""

    @abstractmethod
    def rollups(self, step: int, since: datetime, until: datetime) -> list[RollupRow]:
        """The analytics rollups of tier ``step`` (analytics.TIERS) whose slots start in [since, until]: kept by
        every primitive that starts or ends an attempt, or ends a job, in its own transaction (or script)."""


class Running(Protocol):
    """What a worker does with the jobs it runs. Fenced: a running job belongs to (worker_id, attempt)."""

    @abstractmethod
    def claim(self, request: ClaimRequest, now: datetime) -> list[Job]:
        """Move up to ``request.limit`` ready jobs of its queues to RUNNING under its worker; return them.

        Due SCHEDULED/RETRYING jobs become PENDING first (in the same step). Order: higher priority first;
        within a priority, the users with jobs waiting take turns (round robin: whoever was served least
        recently goes first), and each user's jobs come in the order they became pending. With ``limits``,
        no claim makes more than ``global_max`` jobs run in all or ``per_user_max`` for one user; the jobs of
        a user at the limit wait without holding back other users' jobs. Each claimed job's ``attempts``
        grows by one and its lease runs until ``now + lease_seconds``. No job is ever returned to two callers.
        Its cost does not grow with the number of users waiting (tests/reference.py holds the order).
        """

    @abstractmethod
    def finish(self, key: AttemptKey, outcome: Outcome, now: datetime) -> bool:
        """Fenced end of an attempt; False (and no change) when the caller no longer owns the job.
        ``outcome.status`` must be one the state machine lets a running job end in (models.FINISH_TARGETS):
        anything else is refused with InvalidParameterError."""

    @abstractmethod
    def finish_many_and_claim(self, worker_id: str, finished: Sequence[Finished], claim: ClaimRequest | None,
                              now: datetime) -> tuple[list[bool], list[Job]]:
        """Each ``finish`` (fenced, as reported) then ``claim`` if one is asked for, in one atomic step: a busy
        worker's hot path."""

    @abstractmethod
    def release(self, key: AttemptKey, now: datetime) -> Job | None:
        """Fenced hand-back of a job a worker did not finish: PENDING again, attempt not counted."""

    @abstractmethod
    def report_progress(self, key: AttemptKey, update: ProgressUpdate) -> bool:
        """Fenced progress write; False when the job is no longer running under (worker_id, attempt)."""

    @abstractmethod
    def heartbeat(self, worker: WorkerInfo, lease_seconds: float, now: datetime) -> set[str]:
        """Record the worker as alive, extend the leases of its running jobs, return their ids."""

    @abstractmethod
    def owned_jobs(self, worker_id: str) -> set[str]:
        """Ids of the jobs RUNNING under ``worker_id`` (read only: the worker's cancel watch)."""

    @abstractmethod
    def take_token(self, key: str, per_second: float, burst: float, now: datetime) -> float:
        """Token bucket ``key`` shared by every worker: take a token and return 0, or return how many seconds
        until one is free (nothing taken). A new bucket starts full (``burst`` tokens); one full again is as
        good as none and may be forgotten."""


class Controlling(Protocol):
    """What operators and callers do to jobs."""

    @abstractmethod
    def cancel(self, job_id: str, now: datetime, reason: str | None = None) -> Job:
        """Cancel a job that is not terminal. Raises JobNotFoundError or JobAlreadyCompletedError."""

    @abstractmethod
    def restart(self, job_id: str, now: datetime) -> Job:
        """FAILED or CANCELLED -> PENDING, same id, attempts reset, histories kept.

        Raises JobNotFoundError or InvalidTransitionError.
        """


class Maintaining(Protocol):
    """Maintenance: each primitive is safe to run in any number of processes at once; the leases let one
    process per store do each task at a time (scheduler.py)."""

    @abstractmethod
    def recover_expired(self, now: datetime, backoff: Backoff) -> list[Job]:
        """Running jobs whose lease ran out: RETRYING (at ``backoff(job, now).run_at``) or FAILED when out of
        attempts, with a WorkerLostError; at most 1,000 per call. Returns the recovered jobs. (Forgetting the
        dead workers' registrations is ``reap_workers``'s part.)"""

    @abstractmethod
    def reap_workers(self, silent_since: datetime) -> list[str]:
        """Delete the registrations of workers not seen since ``silent_since``; return their ids."""

    @abstractmethod
    def reap_pools(self, silent_since: datetime) -> list[str]:
        """Delete the registrations of pools not seen since ``silent_since``; return their ids."""

    @abstractmethod
    def age_pending(self, now: datetime, interval: float, max_boost: int) -> int:
        """Priority aging: give each pending job one priority level per ``interval`` seconds it has waited since
        it became due (its ``run_at``; else its creation), at most ``max_boost`` levels; return how many jobs
        rose. Each rise is a change (new ``seq``), so an aged job queues behind the jobs already at its new
        level. Starting (claim) and restart drop the boost; ``Job.priority`` always reads the submitted one."""

    @abstractmethod
    def cleanup(self, cutoffs: dict[JobStatus, datetime], now: datetime, limit: int | None = None,
                removed_before: int = 0) -> int:
        """Delete terminal jobs finished before their status's cutoff, in batches of their own transactions (or
        scripts); return how many. With ``limit``, stop after about that many (a bounded step: call again while it
        returns ``limit`` or more). A call that found no more to delete records the run (when, and
        ``removed_before`` + what it removed: the earlier steps' count), and forgets the bookkeeping nothing
        needs any more (turns of users long gone, full token buckets, rollup slots older than their tier keeps
        them)."""

    @abstractmethod
    def hold_lease(self, name: str, holder: str, seconds: float, now: datetime) -> bool:
        """Take or renew the lease ``name`` for ``holder``, until ``seconds`` from now: True when ``holder``
        holds it now (it was free, had run out, or was already its own), False while another holder's runs."""

    @abstractmethod
    def release_lease(self, name: str, holder: str) -> None:
        """Give the lease up if ``holder`` holds it (a stopping worker: another may take over at once)."""


class Scheduling(Protocol):
    """Recurring jobs: the job of a schedule's next fire always exists, as a scheduled job."""

    @abstractmethod
    def create_schedule(self, schedule: Schedule, now: datetime) -> tuple[Schedule, Job]:
        """Store a schedule whose ``next_fire_at`` is set, with the job of that fire; return both."""

    @abstractmethod
    def get_schedule(self, schedule_id: str) -> Schedule | None:
        """The schedule, or None."""

    @abstractmethod
    def list_schedules(self) -> list[Schedule]:
        """Every schedule, oldest first."""

    @abstractmethod
    def advance_schedules(self, now: datetime) -> list[Job]:
        """For each active schedule whose next fire time has come: create the job of the following fire
        (the first one after ``now``: missed fires are coalesced into the one overdue job) and move the
        schedule on. Exactly one job per fire, however many callers run this at once. Returns new jobs."""

    @abstractmethod
    def pause_schedule(self, schedule_id: str, now: datetime) -> Schedule:
        """Stop firing; the job of a fire not yet come is cancelled. ScheduleNotFoundError if unknown."""

    @abstractmethod
    def resume_schedule(self, schedule_id: str, now: datetime) -> Schedule:
        """Fire again from the first fire time after ``now`` (its job is created)."""

    @abstractmethod
    def delete_schedule(self, schedule_id: str, now: datetime) -> Schedule:
        """Remove the schedule; the job of a fire not yet come is cancelled; jobs already run are kept."""


class Registry(Protocol):
    """The workers' registrations (written by ``Running.heartbeat``) and the worker pools'."""

    @abstractmethod
    def list_workers(self) -> list[WorkerInfo]:
        """Registered workers with their current running job ids."""

    @abstractmethod
    def unregister_worker(self, worker_id: str) -> None:
        """Remove a worker's registration (clean shutdown)."""

    @abstractmethod
    def record_pool(self, pool: PoolInfo, now: datetime) -> None:
        """Write a worker pool's registration, seen at ``now`` (each round of its loop)."""

    @abstractmethod
    def list_pools(self) -> list[PoolInfo]:
        """Registered worker pools, the earliest started first."""

    @abstractmethod
    def unregister_pool(self, pool_id: str) -> None:
        """Remove a pool's registration (it stopped)."""


class ChangeFeed(Protocol):
    """Every change of a job's visible state gives the job a new, store-wide increasing ``seq``."""

    @abstractmethod
    def changes_since(self, seq: int, limit: int = 500) -> list[Job]:
        """Jobs whose last change has a sequence number above ``seq``, oldest change first."""

    @abstractmethod
    def last_seq(self) -> int:
        """The highest change sequence number given so far."""


class Notifier(Protocol):
    """Wake-ups in this process when anything in the store changed, other processes' and hosts' changes too."""

    @property
    @abstractmethod
    def change_version(self) -> int:
        """A process-local number that moves whenever the store changed; pass it to ``wait_for_change``."""

    @abstractmethod
    def wait_for_change(self, seen: int, timeout: float | None) -> int:
        """Block until the store changed after the version ``seen`` (see ``change_version``) or timeout."""

    @abstractmethod
    def wake_waiters(self) -> None:
        """Wake every ``wait_for_change`` in this process now (used when stopping)."""


class Store(Submitting, Reading, Running, Controlling, Maintaining, Scheduling, Registry, ChangeFeed, Notifier,
            ABC):
    """Where jobs live: every role. Synchronous and thread-safe; one instance per process is the usual use."""

    kind: str = "abstract"  # reported as queue_type in stats

    def health(self) -> list[LoopHealth]:
        """The store's background threads (wake-up listeners, checkpointer) and how they are doing."""
        return []

    @abstractmethod
    def close(self) -> None:
        """Release connections and background threads."""
