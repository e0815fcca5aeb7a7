"""Redis store: every primitive that changes state is one Lua script (lua/*.lua), run atomically by Redis.

For teams that outgrow one machine: API servers and workers on many hosts share one Redis. The scripts keep
the indexes a claim needs (pending jobs by queue, level and user, due jobs, leases) in step with each job's
hash, and maintain the counters, so no primitive scans the jobs. Python formats every stored value (numbers
as exact text) and turns stored hashes back into Jobs; the scripts decide and write.

Wake-ups: each write script publishes its last change number on ``P:events``; a listener thread per store
(started by the first ``wait_for_change``) turns those messages into in-process wake-ups, so a worker on one
host hears of a job submitted on another within a network round trip.

Cron arithmetic stays in Python: schedule changes are computed from a read and applied by a compare-and-set
script (schedule.lua), retried when another caller changed the schedule first.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from typing import Any, TypeVar

import redis
from redis.client import PubSub

from ...analytics import RollupRow
from ...errors import (
    InvalidParameterError,
    InvalidTransitionError,
    JobAlreadyCompletedError,
    JobNotFoundError,
    StoreClosedError,
    StoreSchemaError,
    StoreUnavailableError,
)
from ...models import (
    ERROR_HISTORY_LIMIT,
    PROGRESS_HISTORY_LIMIT,
    TERMINAL_STATUSES,
    Job,
    JobStatus,
    at_ts,
    check_finish,
    dumps_json,
    from_ts,
)
from ...supervise import LoopHealth, Supervised
from ..base import (
    NO_LIMIT,
    SCAN_LIMIT,
    TURN_MEMORY_SECONDS,
    AttemptKey,
    ChangeSignal,
    ClaimRequest,
    Finished,
    JobQuery,
    Outcome,
    PoolInfo,
    ProgressUpdate,
    StepSizer,
    Store,
    StoreCounts,
    WorkerInfo,
    history_entry,
    prefix_end,
)
from ..urls import masked_url
from .client import connect, reachable, unreachable
from .codec import (
    finish_item,
    job_spec,
    payload_to_job,
    progress_set,
    time_of,
    ts,
)
from .keys import parse_redis_url
from .schedules import RedisSchedules
from .scripts import FUNCTIONS, LIBRARY, READ_ONLY, SOURCES

log = logging.getLogger("jobhandle.store")
T = TypeVar("T")
RESUBSCRIBE_MAX_SECONDS = 5.0
"""The events listener subscribes again after a failure within this long of the server being back."""
LAYOUT = 3
"""The version of the key layout (keys.py) this release writes; lua/layout.lua upgrades older stores."""
AGING_BATCH = 200
"""Jobs one priority-aging script raises at most."""
AGING_LIMIT = 1000
"""Jobs one age_pending call raises at most (the maintenance task calls again at its next tick)."""
SORT_SCAN_LIMIT = SCAN_LIMIT
"""Jobs a list sorted by another field than created_at may read (they are all read to be sorted); also the
deepest offset a list may ask for, and how many jobs the filters no index serves may pass over. Past it the
list is refused: the script would hold Redis meanwhile."""
DEPENDANTS_SORTED = 10_000
"""A job's dependants are listed in job id order up to this many of them; past it, a random sample."""
SEARCH_LIMIT = 10_000
"""Candidates a list search reads from each of its indexes at most (job ids, then the jobs of matching users)."""
FORGET_BATCH = 1000
"""Users one step of the round robin's upkeep looks at (Store.cleanup's last part)."""


class RedisStore(RedisSchedules, Store):
    kind = "redis"

    def __init__(self, url: str) -> None:
        location = parse_redis_url(url)
        self._key = location.key
        self._prefix = location.prefix
        self._pool, self._redis = connect(location)
        self._scripts = {name: self._redis.register_script(source) for name, source in SOURCES.items()}
        self._signal = ChangeSignal()
        self._closed = threading.Event()
        try:
            self._functions = self._load_library()
        except (redis.ConnectionError, redis.TimeoutError) as exc:
            self._pool.disconnect()
            raise unreachable(exc) from exc
        found = int(self._call("layout", {"layout": LAYOUT}))
        if found > LAYOUT:
            self._pool.disconnect()
            raise StoreSchemaError(
                f"the Redis store {location.prefix} at {masked_url(location.url)} has key layout {found}, written "
                f"by a newer jobhandle; this one knows layouts up to {LAYOUT}: upgrade jobhandle to use it",
                layout=found)
        self._listener: Supervised | None = None
        self._pubsub: PubSub | None = None
        self._listener_lock = threading.Lock()

    # -- calling scripts ---------------------------------------------------------------------------------

    @property
    def uses_functions(self) -> bool:
        """Whether the calls run as functions of the loaded library (Redis 7+), not as scripts."""
        return self._functions

    def _load_library(self) -> bool:
        """Load the calls' function library (scripts.LIBRARY) unless the server has it; False when the server
        takes no function libraries (Redis 6) or refuses FUNCTION LOAD (ACLs): the calls then run as scripts."""
        try:
            self._redis.function_load(LIBRARY)
        except redis.exceptions.NoPermissionError as exc:
            log.info("the Redis store %s runs its calls as scripts (EVALSHA): %s", self._prefix, exc)
            return False
        except redis.ResponseError as exc:
            if "already exists" in str(exc):
                return True
            if "unknown command" in str(exc).lower():
                log.info("the Redis store %s runs its calls as scripts (EVALSHA): %s", self._prefix, exc)
                return False
            raise
        return True

    def _call(self, name: str, args: dict[str, Any]) -> Any:
        """Run one call with ``args``; a write that changed something wakes this process's waiters at once
        (other processes hear the call's publish)."""
        if self._closed.is_set():
            raise StoreClosedError("the store is closed")
        payload = json.dumps(args)
        try:
            if self._functions:
                try:
                    answer = self._redis.fcall(FUNCTIONS[name], 1, self._prefix, payload)
                except redis.ResponseError as exc:
                    if "Function not found" not in str(exc):
                        raise
                    # The server lost the library (restarted without persistence, FUNCTION FLUSH): the call
                    # did not run, so it is run again once the library is back.
                    self._functions = self._load_library()
                    answer = (self._redis.fcall(FUNCTIONS[name], 1, self._prefix, payload) if self._functions
                              else self._scripts[name](keys=[self._prefix], args=[payload]))
            else:
                answer = self._scripts[name](keys=[self._prefix], args=[payload])
        except (redis.ConnectionError, redis.TimeoutError) as exc:
            raise unreachable(exc) from exc
        if name in READ_ONLY:
            return answer
        changed, *result = answer  # see WRITE_WRAPPER; a nil answer leaves nothing after the flag
        if changed:  # only then: a claim that found nothing must not wake the waiter that made it (a spin)
            self._signal.bump()
        return result[0] if result else None

    def _fetch(self, ids: Sequence[str]) -> list[Job | None]:
        if not ids:
            return []
        return [None if p is None else payload_to_job(p) for p in self._call("fetch", {"ids": list(ids)})]

    def _insert_answers(self, jobs: Sequence[Job], answers: list[list[Any]], now: datetime) -> list[Job]:
        """Jobs as stored, from insert's answers (lib.lua): new ones updated in place, others fetched."""
        if answers and answers[0][0] == "error":
            problem, job_id = answers[0][1], answers[0][2]
            if problem == "duplicate_id":
                raise InvalidParameterError(f"a job with id {job_id} exists already", job_id=job_id)
            raise InvalidParameterError(f"depends_on names job {job_id}, which does not exist", job_id=job_id)
        existing = {a[1] for a in answers if a[0] == "existing"}
        fetched = {job.job_id: job for job in self._fetch(sorted(existing)) if job is not None}
        out: list[Job] = []
        for job, answer in zip(jobs, answers, strict=True):
            kind = answer[0]
            if kind == "new":
                job.status, job.created_at, job.seq = JobStatus(answer[1]), now, int(answer[2])
                if job.status is JobStatus.CANCELLED:
                    job.error, job.error_type, job.completed_at = answer[3], "DependencyFailedError", now
                out.append(job)
            elif kind == "same":
                out.append(out[int(answer[1]) - 1])
            else:
                out.append(fetched[answer[1]])
        return out

    # -- jobs --------------------------------------------------------------------------------------------

    def submit(self, jobs: Sequence[Job], now: datetime) -> list[Job]:
        if not jobs:
            return []
        answers = self._call("submit", {"now": repr(now.timestamp()), "jobs": [job_spec(j) for j in jobs]})
        return self._insert_answers(jobs, answers, now)

    def get(self, job_id: str) -> Job | None:
        return self._fetch([job_id])[0]

    def list_jobs(self, query: JobQuery) -> list[Job]:
        args = {
            "statuses": [JobStatus(s).value for s in query.statuses or ()], "job_type": query.job_type,
            "user_id": query.user_id, "queue": query.queue, "idempotency_key": query.idempotency_key,
            "search": query.search, "created_after": ts(query.created_after),
            "created_before": ts(query.created_before), "sort": query.sort.removeprefix("-"),
            "descending": query.sort.startswith("-"), "limit": query.limit, "offset": query.offset,
            "after_created": ts(query.after.created_at) if query.after else None,
            "after_id": query.after.job_id if query.after else None,
            "search_end": prefix_end(query.search) if query.search else None,
            "search_id_end": prefix_end(query.search.lower()) if query.search else None,
            "search_limit": SEARCH_LIMIT, "scan_limit": SORT_SCAN_LIMIT,
            "error_contains": query.error_contains.lower() if query.error_contains else None,
            "params": dict(query.parameters) if query.parameters else None,
        }
        query.check_after()
        query.check_scan()
        if args["sort"] not in JobQuery.SORTABLE:
            raise InvalidParameterError(f"cannot sort by {query.sort!r}")
        found = self._call("list", args)
        if found and found[0] == "too many":
            raise InvalidParameterError(
                f"this list would read more than {SORT_SCAN_LIMIT:,} jobs ({found[1]:,} candidates: sorted by "
                f"{args['sort']}, {query.offset:,} deep, or a filter no index serves), holding the Redis server "
                f"for every client: narrow it with a status, a user or a time range, sort by created_at, or page "
                f"with next_cursor")
        return [payload_to_job(p) for p in found]

    @staticmethod
    def _claim_args(request: ClaimRequest, now_ts: float) -> dict[str, Any]:
        limits = request.limits
        return {"worker_id": request.worker_id, "queues": list(request.queues), "limit": request.limit,
                "lease": repr(now_ts + request.lease_seconds),
                "global_max": limits.global_max if limits else NO_LIMIT,
                "per_user_max": limits.per_user_max if limits else NO_LIMIT}

    def claim(self, request: ClaimRequest, now: datetime) -> list[Job]:
        now_ts = now.timestamp()
        return [payload_to_job(p) for p in self._call("claim", {"now": repr(now_ts),
                                                                "claim": self._claim_args(request, now_ts)})]

    def heartbeat(self, worker: WorkerInfo, lease_seconds: float, now: datetime) -> set[str]:
        now_ts = now.timestamp()
        fields = {"worker_id": worker.worker_id, "name": worker.name, "hostname": worker.hostname,
                  "pid": str(worker.pid), "queues": dumps_json(worker.queues),
                  "concurrency": str(worker.concurrency), "started_at": ts(worker.started_at),
                  "state": worker.state}
        ids = self._call("heartbeat", {"worker_id": worker.worker_id, "fields": fields, "now": repr(now_ts),
                                       "lease": repr(now_ts + lease_seconds)})
        return set(ids)

    @reachable
    def owned_jobs(self, worker_id: str) -> set[str]:
        # Exact without reading the jobs: lib.lua's enter/leave keep wjobs:<worker> to the jobs running under it
        # (the worker's cancel watch asks this many times a second).
        return set(self._redis.smembers(self._key("wjobs", worker_id)))

    def report_progress(self, key: AttemptKey, update: ProgressUpdate) -> bool:
        return bool(self._call("progress", {"job_id": key.job_id, "worker_id": key.worker_id,
                                            "attempt": key.attempt, "set": progress_set(update),
                                            "entry": history_entry(update), "limit": PROGRESS_HISTORY_LIMIT}))

    def _finish(self, items: list[dict[str, Any]], now_ts: float,
                claim: dict[str, Any] | None = None) -> tuple[list[bool], list[Job]]:
        for item in items:
            check_finish(JobStatus(item["status"]))
        owned, claimed = self._call("finish", {"now": repr(now_ts), "items": items, "claim": claim,
                                               "error_limit": ERROR_HISTORY_LIMIT,
                                               "progress_limit": PROGRESS_HISTORY_LIMIT})
        return [bool(o) for o in owned], [payload_to_job(p) for p in claimed]

    def finish(self, key: AttemptKey, outcome: Outcome, now: datetime) -> bool:
        now_ts = now.timestamp()
        return self._finish([finish_item(key.job_id, key.worker_id, key.attempt, outcome, now_ts)], now_ts)[0][0]

    def finish_many_and_claim(self, worker_id: str, finished: Sequence[Finished], request: ClaimRequest | None,
                              now: datetime) -> tuple[list[bool], list[Job]]:
        now_ts = now.timestamp()
        items = [finish_item(f.job_id, worker_id, f.attempt, f.outcome, now_ts) for f in finished]
        claim = None if request is None or request.limit <= 0 else self._claim_args(request, now_ts)
        return self._finish(items, now_ts, claim)

    def release(self, key: AttemptKey, now: datetime) -> Job | None:
        answer = self._call("release", {"job_id": key.job_id, "worker_id": key.worker_id, "attempt": key.attempt})
        return None if answer is None else payload_to_job(answer)

    def _changed_job(self, job_id: str, action: str, answer: list[Any]) -> Job:
        if answer[0] == "missing":
            raise JobNotFoundError(job_id)
        if answer[0] == "refused":
            status = JobStatus(answer[1])
            if status in TERMINAL_STATUSES and action == "cancel":
                raise JobAlreadyCompletedError(job_id, status.value)
            raise InvalidTransitionError(job_id, status.value, action)
        return payload_to_job(answer[1])

    def cancel(self, job_id: str, now: datetime, reason: str | None = None) -> Job:
        answer = self._call("cancel", {"job_id": job_id, "now": repr(now.timestamp()), "reason": reason})
        return self._changed_job(job_id, "cancel", answer)

    def restart(self, job_id: str, now: datetime) -> Job:
        return self._changed_job(job_id, "restart",
                                 self._call("restart", {"job_id": job_id, "now": repr(now.timestamp())}))

    def age_pending(self, now: datetime, interval: float, max_boost: int) -> int:
        if max_boost <= 0:
            return 0
        # Up to AGING_LIMIT jobs a call, AGING_BATCH per script: Redis is never blocked for long.
        risen = 0
        while risen < AGING_LIMIT:
            batch = min(AGING_BATCH, AGING_LIMIT - risen)
            done = int(self._call("age", {"now": repr(now.timestamp()), "interval": repr(float(interval)),
                                          "max_boost": max_boost, "limit": batch}))
            risen += done
            if done < batch:
                return risen
        return risen

    @reachable
    def recover_expired(self, now: datetime, backoff: Callable[[Job, datetime], Outcome]) -> list[Job]:
        now_ts = now.timestamp()
        ids = self._redis.zrangebyscore(self._key("leases"), "-inf", f"({now_ts!r}", start=0, num=1000)
        expired = [job for job in self._fetch(ids) if job is not None and job.status is JobStatus.RUNNING]
        if not expired:
            return []
        items = []
        for job in expired:
            item = finish_item(job.job_id, job.worker_id or "", job.attempts, backoff(job, now), now_ts)
            item["lease_before"] = repr(now_ts)  # a lease renewed since the read above is not recovered
            items.append(item)
        owned, _ = self._finish(items, now_ts)
        return [job for job in self._fetch([j.job_id for j, ok in zip(expired, owned, strict=True) if ok])
                if job is not None]

    # -- workers -----------------------------------------------------------------------------------------

    def reap_workers(self, silent_since: datetime) -> list[str]:
        return list(self._call("reap", {"silent_since": repr(silent_since.timestamp())}))

    @reachable
    def unregister_worker(self, worker_id: str) -> None:
        with self._redis.pipeline() as pipe:
            pipe.delete(self._key("worker", worker_id))
            pipe.zrem(self._key("workers"), worker_id)
            pipe.execute()

    @reachable
    def record_pool(self, pool: PoolInfo, now: datetime) -> None:
        with self._redis.pipeline() as pipe:  # MULTI: the id is never listed without its document
            pipe.set(self._key("pool", pool.pool_id), pool.to_doc())
            pipe.zadd(self._key("pools"), {pool.pool_id: now.timestamp()})
            pipe.execute()

    @reachable
    def list_pools(self) -> list[PoolInfo]:
        seen = self._redis.zrange(self._key("pools"), 0, -1, withscores=True)
        if not seen:
            return []
        docs = self._redis.mget([self._key("pool", pool_id) for pool_id, _ in seen])
        pools = [PoolInfo.from_doc(doc, last_seen) for (_, last_seen), doc in zip(seen, docs, strict=True)
                 if doc is not None]  # unregistered between the two reads
        pools.sort(key=lambda p: (p.started_at, p.pool_id))
        return pools

    @reachable
    def unregister_pool(self, pool_id: str) -> None:
        with self._redis.pipeline() as pipe:
            pipe.delete(self._key("pool", pool_id))
            pipe.zrem(self._key("pools"), pool_id)
            pipe.execute()

    def reap_pools(self, silent_since: datetime) -> list[str]:
        return list(self._call("reap_pools", {"silent_since": repr(silent_since.timestamp())}))

    @reachable
    def list_workers(self) -> list[WorkerInfo]:
        ids = self._redis.zrange(self._key("workers"), 0, -1)
        with self._redis.pipeline() as pipe:
            for worker_id in ids:
                pipe.hgetall(self._key("worker", worker_id))
                pipe.smembers(self._key("wjobs", worker_id))
            replies = pipe.execute()
        workers = []
        for h, running in zip(replies[::2], replies[1::2], strict=True):
            if not h:
                continue  # unregistered between the two reads
            workers.append(WorkerInfo(
                worker_id=h["worker_id"], name=h["name"], hostname=h["hostname"], pid=int(h["pid"]),
                queues=json.loads(h["queues"]), concurrency=int(h["concurrency"]),
                started_at=at_ts(float(h["started_at"])), last_seen=time_of(h.get("last_seen")), state=h["state"],
                current_jobs=sorted(running)))
        workers.sort(key=lambda w: w.started_at)
        return workers

    def hold_lease(self, name: str, holder: str, seconds: float, now: datetime) -> bool:
        return bool(self._call("lease", {"name": name, "holder": holder, "ms": max(1, int(seconds * 1000))}))

    def release_lease(self, name: str, holder: str) -> None:
        self._call("lease", {"name": name, "holder": holder, "ms": 0})

    def take_token(self, key: str, per_second: float, burst: float, now: datetime) -> float:
        return float(self._call("take_token", {"key": key, "per_second": per_second, "burst": burst,
                                               "now": repr(now.timestamp())}))

    # -- counters, retention, change feed ----------------------------------------------------------------

    @reachable
    def counts(self) -> StoreCounts:
        with self._redis.pipeline() as pipe:
            pipe.hgetall(self._key("count", "status"))
            pipe.hgetall(self._key("count", "queue"))
            pipe.hgetall(self._key("count", "type"))
            pipe.hmget(self._key("meta"), ["last_cleanup", "last_cleanup_removed"])
            by_status, by_queue, by_type, (last_cleanup, removed) = pipe.execute()

        def split(counts: dict[str, str]) -> dict[str, dict[str, int]]:
            out: dict[str, dict[str, int]] = {}
            for field, n in counts.items():
                name, _, status = field.rpartition("\0")
                if int(n):
                    out.setdefault(name, {})[status] = int(n)
            return out

        return StoreCounts(by_status={s: int(n) for s, n in by_status.items() if int(n)},
                           by_queue=split(by_queue), by_type=split(by_type), last_cleanup=time_of(last_cleanup),
                           last_cleanup_removed=int(removed or 0))

    @reachable
    def count_by_status(self, user_id: str) -> dict[str, int]:
        counts = self._redis.hgetall(self._key("ucount", user_id))
        return {status: int(n) for status, n in counts.items() if int(n)}

    @reachable
    def cleanup(self, cutoffs: dict[JobStatus, datetime], now: datetime, limit: int | None = None,
                removed_before: int = 0) -> int:
        removed = 0
        sizer = StepSizer()  # steps of a few ms: Redis runs nothing else during one
        for status, cutoff in cutoffs.items():
            skip = 0
            while limit is None or removed < limit:
                size = sizer.size
                started = time.perf_counter()
                deleted, kept, looked = self._call("cleanup", {"status": status.value, "cutoff": ts(cutoff),
                                                               "batch": size, "skip": skip})
                sizer.took(looked, time.perf_counter() - started)
                removed += deleted
                skip += kept
                if looked < size:
                    break
            if limit is not None and removed >= limit:
                return removed
        before = repr((now - timedelta(seconds=TURN_MEMORY_SECONDS)).timestamp())
        while self._call("forget", {"before": before, "now": repr(now.timestamp()),
                                    "batch": FORGET_BATCH}) >= FORGET_BATCH:
            pass
        self._redis.hset(self._key("meta"), mapping={"last_cleanup": repr(now.timestamp()),
                                                     "last_cleanup_removed": str(removed_before + removed)})
        return removed

    def changes_since(self, seq: int, limit: int = 500) -> list[Job]:
        return [payload_to_job(p) for p in self._call("changes", {"seq": seq, "limit": limit})]

    @reachable
    def last_seq(self) -> int:
        return int(self._redis.get(self._key("seq")) or 0)

    @reachable
    def count_created_before(self, statuses: Sequence[JobStatus], before: datetime) -> int:
        with self._redis.pipeline(transaction=False) as pipe:
            for status in statuses:
                pipe.zcount(self._key("status", JobStatus(status).value), "-inf", f"({before.timestamp()!r}")
            return sum(int(n) for n in pipe.execute())

    @reachable
    def dependants(self, job_id: str, limit: int = 100) -> tuple[list[str], int]:
        key = self._key("dependants", job_id)
        total = int(self._redis.scard(key))
        if total <= DEPENDANTS_SORTED:  # a set has no order: read it whole and sort, or take a sample
            return sorted(self._redis.smembers(key))[:limit], total
        return sorted(self._redis.srandmember(key, limit)), total

    @reachable
    def rollups(self, step: int, since: datetime, until: datetime) -> list[RollupRow]:
        first = -(-int(since.timestamp()) // step) * step  # the first slot starting at or after ``since``
        slots = range(first, int(until.timestamp()) + 1, step)
        with self._redis.pipeline(transaction=False) as pipe:
            for slot in slots:
                pipe.hgetall(self._key("roll", str(step), str(slot)))
            answers = pipe.execute()
        rows = []
        for slot, fields in zip(slots, answers, strict=True):
            for name, n in fields.items():
                job_type, metric, key = name.split("\0")
                rows.append(RollupRow(slot, job_type, metric, key, int(n)))
        return rows

    @reachable
    def next_due_at(self) -> datetime | None:
        first = self._redis.zrange(self._key("due"), 0, 0, withscores=True)
        return from_ts(first[0][1]) if first else None

    # -- wake-ups ----------------------------------------------------------------------------------------

    @property
    def change_version(self) -> int:
        # A waiter reads this, then looks at the store, then waits: the subscription must exist before the
        # read, or a change published in between is never heard (the waiter sleeps until its timeout).
        if self._listener is None:
            self._start_listener()
        return self._signal.version

    def wake_waiters(self) -> None:
        self._signal.bump()

    def wait_for_change(self, seen: int, timeout: float | None) -> int:
        if self._listener is None:
            self._start_listener()
        return self._signal.wait(seen, timeout)

    def _start_listener(self) -> None:
        with self._listener_lock:
            if self._listener is not None or self._closed.is_set():
                return
            self._pubsub = self._subscribe()  # subscribed before the first wait: no change can slip by unheard
            self._listener = Supervised("redis-events", self._listen, stopping=self._closed, log=log,
                                        max_pause=RESUBSCRIBE_MAX_SECONDS,
                                        expected=(StoreUnavailableError, redis.ConnectionError,
                                                  redis.TimeoutError))
            self._listener.start()

    def _subscribe(self) -> PubSub:
        """A subscription to the store's ``events`` channel, confirmed by the server."""
        pubsub = self._redis.pubsub()
        try:
            pubsub.subscribe(self._key("events"))
            while True:
                message = pubsub.get_message(timeout=5)
                if message is None:
                    raise StoreUnavailableError("the Redis server did not confirm the events subscription")
                if message["type"] == "subscribe":
                    return pubsub
        except BaseException:
            pubsub.close()
            raise

    def _listen(self) -> None:
        """Turn the store's ``events`` messages (published by every write script, from any host) into
        in-process wake-ups. Supervised: after any failure (a lost connection, an error reply) it subscribes
        again, and wakes the waiters once, since changes made meanwhile were not heard."""
        pubsub, self._pubsub = self._pubsub, None
        if pubsub is None:
            pubsub = self._subscribe()
            self._signal.bump()
        assert self._listener is not None
        try:
            while not self._closed.is_set():
                if pubsub.get_message(timeout=0.5) is not None:
                    self._signal.bump()
                self._listener.ok()
        finally:
            pubsub.close()

    def health(self) -> list[LoopHealth]:
        return [] if self._listener is None else [self._listener.health()]

    def close(self) -> None:
        self._closed.set()
        self._signal.bump()
        if self._listener is not None:
            self._listener.join(timeout=5)
        self._pool.disconnect()
