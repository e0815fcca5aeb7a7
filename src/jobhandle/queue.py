"""JobQueue: the one facade the Python API, the CLI and (later) the REST API and dashboard all use."""

from __future__ import annotations

import builtins
import gc
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import datetime, timedelta
from typing import Any

from . import cron
from .analytics import Analytics, summarize, window_named
from .config import Settings
from .errors import (
    InvalidParameterError,
    InvalidTransitionError,
    JobNotFoundError,
    JobTimeoutError,
    ScheduleNotFoundError,
)
from .models import (
    ALL_STATUSES,
    TERMINAL_STATUSES,
    Dependency,
    Job,
    JobPriority,
    JobStatus,
    Schedule,
    as_utc,
    check_json,
    iso,
    new_job_id,
    new_job_ids,
    parse_job_id,
    utcnow,
)
from .registry import HandlerRegistry, default_registry
from .scheduler import Maintenance
from .stores import JobQuery, Store, open_store
from .stores.base import JobPosition
from .worker import Worker

SUBMIT_OPTIONS = frozenset({
    "priority", "user_id", "queue", "scheduled_time", "delay_seconds", "max_retries", "retry_delay",
    "timeout_seconds", "depends_on", "idempotency_key",
})
SPEC_KEYS = SUBMIT_OPTIONS | {"job_type", "parameters"}
"""What an item of ``submit_many`` may hold."""
GC_PAUSE_MIN_JOBS = 1000
"""``submit_many`` of at least this many jobs pauses Python's cyclic garbage collector (see _collector_paused)."""


class JobQueue:
    """Submit, inspect, cancel, restart and wait for jobs; start in-process workers.

    ``store`` is a URL (``sqlite:///jobs.db``, ``memory://``) or a Store; by default ``JOBHANDLE_STORE``,
    else ``sqlite:///./jobhandle.db``.
    """

    def __init__(self, store: str | Store | None = None, *, settings: Settings | None = None,
                 registry: HandlerRegistry | None = None) -> None:
        self.settings = settings or Settings()
        if isinstance(store, Store):
            self.store, self._owns_store = store, False
        else:
            self.store = open_store(store or self.settings.store,
                                    sqlite_poll_interval=self.settings.sqlite_poll_interval)
            self._owns_store = True
        self.registry = registry if registry is not None else default_registry
        self.maintenance = Maintenance(self.store, self.settings)
        self._workers: list[Worker] = []

    # -- submitting --------------------------------------------------------------------------------------

    def submit(self, job_type: str, parameters: Mapping[str, Any] | None = None, *,
               priority: int | str | JobPriority | None = None, user_id: str | None = None,
               queue: str = "default", scheduled_time: datetime | str | None = None,
               delay_seconds: float | None = None, max_retries: int | None = None,
               retry_delay: float | None = None, timeout_seconds: float | None = None,
               depends_on: Sequence[Any] | None = None, idempotency_key: str | None = None,
               cron_expression: str | None = None) -> Job:
        """Submit one job and return it as stored (pending, scheduled, waiting for dependencies...).

        With ``cron_expression`` it creates a recurring schedule (see ``schedule``) and returns the job of its
        first fire, which carries the ``schedule_id``.
        """
        if cron_expression is not None:
            if scheduled_time is not None or delay_seconds is not None or depends_on or idempotency_key:
                raise InvalidParameterError("cron_expression cannot be combined with scheduled_time, "
                                            "delay_seconds, depends_on or idempotency_key")
            schedule = self.schedule(job_type, cron_expression, parameters, priority=priority, user_id=user_id,
                                     queue=queue, max_retries=max_retries, retry_delay=retry_delay,
                                     timeout_seconds=timeout_seconds)
            return self.next_job_of(schedule.schedule_id)
        job = self._build(job_type, parameters, priority=priority, user_id=user_id, queue=queue,
                          scheduled_time=scheduled_time, delay_seconds=delay_seconds, max_retries=max_retries,
                          retry_delay=retry_delay, timeout_seconds=timeout_seconds, depends_on=depends_on,
                          idempotency_key=idempotency_key)
        return self.store.submit([job], job.created_at)[0]

    def submit_many(self, jobs: Iterable[Mapping[str, Any]]) -> list[Job]:
        """Submit many jobs in one atomic step: each item is ``{"job_type": ..., "parameters": ..., **options}``
        with the options of ``submit``. Either all are stored or, on bad input, none."""
        specs = list(jobs)
        now = utcnow()
        with _collector_paused(len(specs) >= GC_PAUSE_MIN_JOBS):
            built = [self._build_item(index, spec, job_id, now)
                     for index, (spec, job_id) in enumerate(zip(specs, new_job_ids(len(specs)), strict=True))]
            return self.store.submit(built, now) if built else []

    def _build_item(self, index: int, spec: Mapping[str, Any], job_id: str, now: datetime) -> Job:
        """One item of ``submit_many``, built like ``submit``'s job; an error names the item's position."""
        try:
            if not isinstance(spec, Mapping) or "job_type" not in spec:
                raise InvalidParameterError("each job is a mapping with a 'job_type'")
            if not spec.keys() <= SPEC_KEYS:
                raise InvalidParameterError(f"unknown option(s) {', '.join(sorted(set(spec) - SPEC_KEYS))}")
            options = dict(spec)
            return self._build(options.pop("job_type"), options.pop("parameters", None), job_id=job_id, now=now,
                               **options)
        except InvalidParameterError as exc:
            raise InvalidParameterError(f"job {index}: {exc.message}", **exc.context) from None

    def _build(self, job_type: str, parameters: Mapping[str, Any] | None, *, job_id: str | None = None,
               now: datetime | None = None, priority: int | str | JobPriority | None = None,
               user_id: str | None = None, queue: str = "default", scheduled_time: datetime | str | None = None,
               delay_seconds: float | None = None, max_retries: int | None = None,
               retry_delay: float | None = None, timeout_seconds: float | None = None,
               depends_on: Sequence[Any] | None = None, idempotency_key: str | None = None) -> Job:
        """A new job from ``submit``'s arguments, every one checked. Bulk callers pass ``job_id`` and ``now``."""
        if not isinstance(job_type, str) or not job_type.strip():
            raise InvalidParameterError(f"job_type must be a non-empty string, not {job_type!r}")
        params = self._parameters(job_type, parameters)
        now = now or utcnow()
        when = _run_time(now, scheduled_time, delay_seconds)
        dependencies = _dependencies(depends_on)
        for name, value in (("queue", queue), ("user_id", user_id)):
            if value is not None and (not isinstance(value, str) or not value.strip()):
                raise InvalidParameterError(f"{name} must be a non-empty string, not {value!r}")
        if idempotency_key is not None and (not isinstance(idempotency_key, str) or not idempotency_key):
            raise InvalidParameterError(f"idempotency_key must be a non-empty string, not {idempotency_key!r}")
        s = self.settings  # its defaults were checked when it was made
        return Job(
            job_type=job_type, job_id=job_id or new_job_id(), queue=queue, priority=JobPriority.parse(priority),
            user_id=user_id or "default_user", parameters=params, created_at=now, scheduled_time=when,
            run_at=when,
            max_retries=s.max_retries if max_retries is None else int(_number(
                max_retries, "max_retries", minimum=0, integer=True)),
            retry_delay=s.retry_delay if retry_delay is None else _number(retry_delay, "retry_delay", minimum=0),
            timeout_seconds=s.default_timeout if timeout_seconds is None else _number(
                timeout_seconds, "timeout_seconds", minimum=0, exclusive=True),
            idempotency_key=idempotency_key, depends_on=dependencies,
        )

    def _parameters(self, job_type: str, parameters: Mapping[str, Any] | None) -> dict[str, Any]:
        """The job's own copy of its parameters: a JSON object that the job type's handler, when registered
        here, can take."""
        if parameters is None:
            params: dict[str, Any] = {}
        elif isinstance(parameters, Mapping):
            params = dict(parameters)
        else:
            raise InvalidParameterError(
                f"parameters must be a JSON object (a dict), not {type(parameters).__name__}")
        check_json(params, "parameters")
        handler = self.registry.get(job_type)
        if handler is not None:
            handler.check_parameters(params)
        return params

    # -- schedules (recurring jobs) ----------------------------------------------------------------------

    def schedule(self, job_type: str, cron_expression: str, parameters: Mapping[str, Any] | None = None, *,
                 timezone: str | None = None, name: str | None = None,
                 priority: int | str | JobPriority | None = None, user_id: str | None = None,
                 queue: str = "default", max_retries: int | None = None, retry_delay: float | None = None,
                 timeout_seconds: float | None = None) -> Schedule:
        """Run ``job_type`` at every fire time of a standard 5-field cron expression, in ``timezone`` (an IANA
        name; default UTC, or a ``CRON_TZ=Area/City`` prefix). Each fire enqueues exactly one job, however
        many workers run; fires missed while nothing ran are coalesced into one late run."""
        template = self._build(job_type, parameters, priority=priority, user_id=user_id, queue=queue,
                               max_retries=max_retries, retry_delay=retry_delay, timeout_seconds=timeout_seconds)
        expression, tz = cron.split_timezone(cron_expression, timezone)
        cron.validate(expression, tz)
        if name is not None and not isinstance(name, str):
            raise InvalidParameterError(f"a schedule's name must be a string, not {name!r}")
        now = utcnow()
        schedule = Schedule(
            job_type=template.job_type, cron_expression=expression, name=name, timezone=tz,
            parameters=template.parameters, queue=template.queue, priority=template.priority,
            user_id=template.user_id, max_retries=template.max_retries, retry_delay=template.retry_delay,
            timeout_seconds=template.timeout_seconds, created_at=now,
            next_fire_at=cron.next_fire(expression, tz, now))
        return self.store.create_schedule(schedule, now)[0]

    def schedules(self) -> list[Schedule]:
        return self.store.list_schedules()

    def get_schedule(self, schedule_id: str) -> Schedule:
        schedule = self.store.get_schedule(parse_job_id(schedule_id))
        if schedule is None:
            raise ScheduleNotFoundError(str(schedule_id))
        return schedule

    def next_job_of(self, schedule_id: str) -> Job:
        """The job of a schedule's next fire (a scheduled job)."""
        schedule = self.get_schedule(schedule_id)
        if schedule.paused or schedule.next_fire_at is None:
            raise InvalidTransitionError(schedule.schedule_id, "paused", "take the next job of")
        key = cron.fire_key(schedule.schedule_id, schedule.generation, schedule.next_fire_at)
        [job] = self.store.list_jobs(JobQuery(idempotency_key=key, user_id=schedule.user_id, limit=1))
        return job

    def pause_schedule(self, schedule_id: str) -> Schedule:
        return self.store.pause_schedule(parse_job_id(schedule_id), utcnow())

    def resume_schedule(self, schedule_id: str) -> Schedule:
        return self.store.resume_schedule(parse_job_id(schedule_id), utcnow())

    def delete_schedule(self, schedule_id: str) -> Schedule:
        return self.store.delete_schedule(parse_job_id(schedule_id), utcnow())

    # -- reading -----------------------------------------------------------------------------------------

    def get(self, job_id: str) -> Job:
        """The job; JobNotFoundError when there is none (InvalidParameterError for a non-UUID id)."""
        job = self.store.get(parse_job_id(job_id))
        if job is None:
            raise JobNotFoundError(str(job_id))
        return job

    def list(self, status: str | JobStatus | Sequence[str | JobStatus] | None = None, *,
             job_type: str | None = None, user_id: str | None = None, queue: str | None = None,
             search: str | None = None, created_after: datetime | str | None = None,
             created_before: datetime | str | None = None, sort: str = "-created_at", limit: int = 100,
             offset: int = 0, after: JobPosition | None = None, error_contains: str | None = None,
             parameters: Mapping[str, Any] | None = None) -> builtins.list[Job]:
        """Jobs, newest first by default. ``sort`` is one of JobQuery.SORTABLE, ``-`` for descending.
        ``search`` is the start of a job id or of a user id. ``after`` (sorts by created_at only): the jobs
        after that position, as the next page of a keyset walk. ``error_contains`` (text in the error, any
        case) and ``parameters`` (top-level parameters equal to these values) are checked on at most 50,000
        of the jobs the other filters select (see JobQuery)."""
        statuses = None
        if status is not None:
            items = [status] if isinstance(status, (str, JobStatus)) else list(status)
            statuses = [JobStatus.parse(s) for s in items]
        if not isinstance(sort, str) or sort.removeprefix("-") not in JobQuery.SORTABLE:
            raise InvalidParameterError(f"cannot sort by {sort!r}; use one of {', '.join(JobQuery.SORTABLE)}"
                                        " (prefix - for descending)")
        if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= 10000:
            raise InvalidParameterError(f"limit must be an integer from 1 to 10000, not {limit!r}")
        if isinstance(offset, bool) or not isinstance(offset, int) or offset < 0:
            raise InvalidParameterError(f"offset must be a non-negative integer, not {offset!r}")
        return self.store.list_jobs(JobQuery(
            statuses=statuses, job_type=job_type, user_id=user_id, queue=queue, search=search or None,
            created_after=as_utc(created_after), created_before=as_utc(created_before), sort=sort,
            limit=limit, offset=offset, after=after, error_contains=error_contains or None,
            parameters=dict(parameters) if parameters else None))

    def stats(self) -> dict[str, Any]:
        """The queue statistics, from counters, plus breakdowns by status, queue and type."""
        counts = self.store.counts()
        by_status = {s.value: counts.by_status.get(s.value, 0) for s in ALL_STATUSES}
        now = utcnow()
        workers = self.store.list_workers()
        fresh = [w for w in workers if w.last_seen and
                 (now - w.last_seen).total_seconds() <= self.settings.worker_timeout]
        paused = [w for w in fresh if w.state.startswith("paused")]
        degraded = [w for w in fresh if w.state.startswith("degraded")]
        if not workers:
            health = "no_workers"
        elif len(fresh) == len(workers) and not paused and not degraded:
            health = "healthy"
        else:
            health = "degraded"
        import psutil  # only here: a worker or a submitting program does not load it

        memory = psutil.virtual_memory()
        total = sum(by_status.values())
        return {
            "pending_jobs": by_status["pending"],
            "running_jobs": by_status["running"],
            "scheduled_jobs": by_status["scheduled"],
            "completed_jobs": by_status["completed"],
            "failed_jobs": by_status["failed"],
            "cancelled_jobs": by_status["cancelled"],
            "waiting_jobs": by_status["waiting"],
            "retrying_jobs": by_status["retrying"],
            "total_jobs": total,
            "queue_type": self.store.kind,
            "cache_size": total,
            "active_workers": len(fresh),
            "cpu_usage_percent": psutil.cpu_percent(interval=None),
            "memory_usage_mb": round((memory.total - memory.available) / 2**20, 1),
            "memory_usage_percent": memory.percent,
            "global_max_concurrent_jobs": self.settings.global_max_concurrent_jobs,
            "per_user_max_concurrent_jobs": self.settings.per_user_max_concurrent_jobs,
            "worker_health_status": health,
            "paused_workers": len(paused),
            "degraded_workers": [{"worker_id": w.worker_id, "state": w.state} for w in degraded],
            "resource_alerts": [f"worker {w.worker_id} {w.state}" for w in paused],
            "last_cleanup": iso(counts.last_cleanup),
            "last_cleanup_removed": counts.last_cleanup_removed,
            "by_status": by_status,
            "by_queue": counts.by_queue,
            "by_type": counts.by_type,
        }

    def dependants(self, job_id: str, limit: int = 100) -> tuple[builtins.list[Job], int]:
        """The jobs that depend on ``job_id`` (up to ``limit``, by job id; removed ones left out) and how many
        depend on it in all."""
        ids, total = self.store.dependants(parse_job_id(job_id), limit)
        jobs = [self.store.get(i) for i in ids]
        return [j for j in jobs if j is not None], total

    def analytics(self, window: str = "24h", *, now: datetime | None = None) -> Analytics:
        """Throughput, success rate, wait and run time percentiles per job type and failures by error type
        over the last ``window`` (1h, 24h or 7d), from the store's rollups (analytics.py): a few hundred rows
        read, whatever the number of jobs, and kept after retention removed the jobs."""
        chosen = window_named(window)
        now = now or utcnow()
        rows = self.store.rollups(chosen.step, now - timedelta(seconds=chosen.seconds), now)
        return summarize(rows, chosen, now)

    def workers(self) -> builtins.list[dict[str, Any]]:
        """Registered workers with heartbeat age (seconds), the ids of the jobs they run, and the name of the
        pool that started them (None for a worker started alone)."""
        workers = self.store.list_workers()
        now = utcnow()  # after the read: a heartbeat written during it is not in the future
        pool_of = {(p.hostname, pid): p.name for p in self.store.list_pools() for pid in p.worker_pids}
        out = []
        for w in workers:
            age, healthy = self._seen(w.last_seen, now)
            out.append({
                "worker_id": w.worker_id, "name": w.name, "hostname": w.hostname, "pid": w.pid,
                "queues": w.queues, "concurrency": w.concurrency, "state": w.state,
                "started_at": iso(w.started_at), "last_seen": iso(w.last_seen), "heartbeat_age_seconds": age,
                "healthy": healthy, "current_jobs": w.current_jobs, "pool": pool_of.get((w.hostname, w.pid)),
            })
        return out

    def _seen(self, last_seen: datetime | None, now: datetime) -> tuple[float | None, bool]:
        """A registration's age in seconds and whether it is within the worker timeout. Clamped at 0: another
        host's clock may run a little ahead of ours."""
        age = max(0.0, (now - last_seen).total_seconds()) if last_seen else None
        return age, age is not None and age <= self.settings.worker_timeout

    def pools(self) -> builtins.list[dict[str, Any]]:
        """Registered worker pools (``jobhandle pool``): size and range, the load they last read, their latest
        events (scaling decisions with their reasons, replacements), with the age of their registration."""
        pools = self.store.list_pools()
        now = utcnow()
        out = []
        for p in pools:
            age, healthy = self._seen(p.last_seen, now)
            out.append({
                "pool_id": p.pool_id, "name": p.name, "hostname": p.hostname, "pid": p.pid, "queues": p.queues,
                "concurrency": p.concurrency, "min_workers": p.min_workers, "max_workers": p.max_workers,
                "workers": p.workers, "draining": p.draining, "state": p.state, "worker_pids": p.worker_pids,
                "load": p.load, "store_error": p.store_error, "started_at": iso(p.started_at),
                "last_seen": iso(p.last_seen), "heartbeat_age_seconds": age, "healthy": healthy,
                "events": [{"at": iso(e.at), "kind": e.kind, "detail": e.detail, "workers": e.workers}
                           for e in p.events],
            })
        return out

    def wait(self, job_id: str, timeout: float | None = None) -> Job:
        """Block until the job is terminal and return it; JobTimeoutError after ``timeout`` seconds.

        Event-driven: it wakes on store changes, not on a polling interval.
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            seen = self.store.change_version
            job = self.get(job_id)
            if job.status in TERMINAL_STATUSES:
                return job
            remaining = None if deadline is None else deadline - time.monotonic()
            if remaining is not None and remaining <= 0:
                raise JobTimeoutError(f"job {job.job_id} is still {job.status.value} after {timeout}s",
                                      job_id=job.job_id, current_status=job.status.value)
            self.store.wait_for_change(seen, 1.0 if remaining is None else min(remaining, 1.0))

    # -- changing ----------------------------------------------------------------------------------------

    def cancel(self, job_id: str, reason: str | None = None) -> Job:
        """Cancel a job that is not finished; a running handler sees ``ctx.cancelled`` and its result is
        discarded. JobNotFoundError / JobAlreadyCompletedError otherwise."""
        return self.store.cancel(parse_job_id(job_id), utcnow(), reason)

    def restart(self, job_id: str) -> Job:
        """Run a failed or cancelled job again: pending, same id, attempts reset, history kept."""
        return self.store.restart(parse_job_id(job_id), utcnow())

    def cleanup(self) -> int:
        """Remove terminal jobs past their retention (settings: retention_*_hours); return how many."""
        return self.maintenance.cleanup()

    def cleanup_candidates(self, days_old: float = 7) -> int:
        """How many completed, failed and cancelled jobs were created more than ``days_old`` days ago: what
        ``cleanup_old_jobs(days_old)`` looks at (it keeps those of them that finished since). Index counts."""
        days = _number(days_old, "days_old", minimum=0)
        return self.store.count_created_before(sorted(TERMINAL_STATUSES), utcnow() - timedelta(days=days))

    def cleanup_old_jobs(self, days_old: float = 7) -> int:
        """Remove completed, failed and cancelled jobs finished more than ``days_old`` days ago."""
        days = _number(days_old, "days_old", minimum=0)
        now = utcnow()
        cutoff = now - timedelta(days=days)
        return self.store.cleanup({s: cutoff for s in TERMINAL_STATUSES}, now)

    # -- in-process workers ------------------------------------------------------------------------------

    def worker(self, concurrency: int | None = None, *, queues: Sequence[str] = ("default",),
               name: str | None = None, mode: str | None = None) -> Worker:
        """A worker on this queue's store and registry; use it as a context manager or call start()/stop().

        ``mode``: "thread" (default: $JOBHANDLE_WORKER_MODE, else thread) or "process" (each slot runs its
        jobs in a child process: real kills on cancel and timeout, JOB_MAX_MEMORY_MB enforced)."""
        worker = Worker(self.store, self.registry, self.settings, queues=queues, concurrency=concurrency,
                        name=name, mode=mode)
        self._workers.append(worker)
        return worker

    def start(self, concurrency: int | None = None, *, queues: Sequence[str] = ("default",),
              mode: str | None = None) -> Worker:
        """Start a worker in this process (see ``worker``) and return it; ``stop()`` stops them all."""
        return self.worker(concurrency, queues=queues, mode=mode).start()

    def stop(self, grace: float | None = None) -> None:
        workers, self._workers = self._workers, []
        for worker in workers:
            worker.stop(grace)

    def close(self) -> None:
        self.stop()
        if self._owns_store:
            self.store.close()

    def __enter__(self) -> JobQueue:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


@contextmanager
def _collector_paused(pause: bool) -> Iterator[None]:
    """Pause Python's cyclic garbage collector (process-wide) for the block, when ``pause`` and it is running.

    Each job of a bulk submit is a handful of new container objects that all live on after the call, and the
    collector, run every 700 new containers, walks them again and again to find no garbage: a sixth of the CPU
    of a 20,000-job ``submit_many``. Reference counting still frees everything meanwhile; only cycles wait.
    """
    if not pause or not gc.isenabled():
        yield
        return
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


def _run_time(now: datetime, scheduled_time: datetime | str | None, delay_seconds: float | None) -> datetime | None:
    """When a new job is due: ``scheduled_time`` (naive is UTC), ``delay_seconds`` after ``now``, or None (now)."""
    if scheduled_time is not None and delay_seconds is not None:
        raise InvalidParameterError("give scheduled_time or delay_seconds, not both")
    if delay_seconds is not None:
        return now + timedelta(seconds=_number(delay_seconds, "delay_seconds", minimum=0))
    return as_utc(scheduled_time)


def _dependencies(depends_on: Sequence[Any] | None) -> list[Dependency]:
    """``depends_on`` as Dependency records: job ids or {job_id, condition}, each parent once."""
    if depends_on is None:
        return []
    if not isinstance(depends_on, (list, tuple)):
        raise InvalidParameterError(f"depends_on must be a list of job ids or {{job_id, condition}}, "
                                    f"not {type(depends_on).__name__}")
    parsed = [Dependency.parse(d) for d in depends_on]
    seen: set[str] = set()
    for dep in parsed:
        if dep.job_id in seen:
            raise InvalidParameterError(f"depends_on names job {dep.job_id} twice", job_id=dep.job_id)
        seen.add(dep.job_id)
    return parsed


def _number(value: Any, name: str, *, minimum: float, integer: bool = False, exclusive: bool = False) -> float:
    ok_type = isinstance(value, int) if integer else isinstance(value, (int, float))
    if isinstance(value, bool) or not ok_type or value != value:
        kind = "an integer" if integer else "a number"
        raise InvalidParameterError(f"{name} must be {kind}, not {value!r}")
    if value < minimum or (exclusive and value == minimum):
        bound = f"greater than {minimum}" if exclusive else f"at least {minimum}"
        raise InvalidParameterError(f"{name} must be {bound}, not {value!r}")
    return float(value) if not integer else value
