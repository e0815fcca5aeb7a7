"""SQLite store: every primitive is one ``BEGIN IMMEDIATE`` transaction over the statements in queries.sql.

WAL mode with ``synchronous=NORMAL``: readers never block the writer, a commit survives a process crash.
Within a process, writes are group-committed (commit.py); across processes SQLite's own write lock serialises
them. Waiters in other processes are woken by a datagram after each commit (wake.py), with ``PRAGMA
data_version`` checked every ``poll_interval`` seconds as a fallback. The schema is versioned (migrate.py).

This module holds the connections, the wake-ups and the Store methods; what each primitive does lives in a
module per concern: submit.py, claim.py, attempts.py (progress, finish, hand-back), deps.py, schedules.py.
"""

from __future__ import annotations

import functools
import json
import logging
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import datetime, timedelta
from pathlib import Path
from typing import TypeVar

from ...analytics import TIERS, RollupRow
from ...errors import (
    InvalidParameterError,
    InvalidTransitionError,
    JobAlreadyCompletedError,
    JobNotFoundError,
    StoreClosedError,
    StoreOpenError,
)
from ...models import TERMINAL_STATUSES, Job, JobStatus, Schedule, at_ts, dumps_json, from_ts, take_token, to_ts
from ...supervise import LoopHealth, Supervised
from ..base import (
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
    prefix_end,
)
from . import attempts, claim, schedules
from .codec import row_to_job, row_to_schedule
from .commit import GroupCommit, Tx
from .deps import resolve_dependants
from .migrate import migrate
from .sql import Q, status_list
from .submit import insert
from .wake import Listener, Notifier

log = logging.getLogger("jobhandle.store")

T = TypeVar("T")

CHECKPOINT_INTERVAL = 0.25
"""Seconds between background WAL checkpoints while commits happen."""
WAL_AUTOCHECKPOINT_CAP_PAGES = 20000
"""SQLite checkpoints inside a commit only past this many WAL pages (~80 MB): normally never."""
_SORT_COLUMNS = {name: name for name in JobQuery.SORTABLE}
_ANCHOR_ROWID = "coalesce((SELECT rowid FROM jobs WHERE job_id = :after_id AND created_at = :after_ts), :no_anchor)"
"""The rowid of a page position's job. When that job is gone, the page starts with the first job created at
the position's time (``no_anchor``): jobs created in the same instant may be listed again, none is skipped."""
_NO_ANCHOR_DESC = 2**63 - 1
_NO_ANCHOR_ASC = 0
AGING_BATCH = 200
"""Jobs one priority-aging transaction raises at most."""
AGING_LIMIT = 1000
"""Jobs one age_pending call raises at most (the maintenance task calls again at its next tick)."""


def _age_batch(tx: Tx, params: Mapping[str, float]) -> int:
    """One aging transaction: raise the jobs ``agable_jobs`` names (``params``: its parameters)."""
    rows = tx.conn.execute(Q["agable_jobs"], params).fetchall()
    tx.conn.executemany(Q["age_job"], [{"job_id": row[0], "boost": row[1], "seq": seq}
                                       for row, seq in zip(rows, tx.seqs(len(rows)), strict=True)])
    for _, boost, queue, user_id, priority, aged in rows:
        tx.pend(queue, priority, user_id, -1)
        tx.pend(queue, priority - aged + boost, user_id, 1)
    return len(rows)


def _allowed() -> int:
    return 1


def _too_many(query: JobQuery) -> InvalidParameterError:
    return InvalidParameterError(
        f"the error text and parameter filters would check more than {SCAN_LIMIT:,} jobs: narrow the list with a "
        f"status, a job type, a user or a time range")


class SQLiteStore(Store):
    kind = "sqlite"

    def __init__(self, path: str | Path, *, poll_interval: float = 0.1) -> None:
        self.path = str(path)
        self._memory = self.path == ":memory:"
        self._poll_interval = poll_interval
        self._lock = threading.RLock()  # writers in this process (and every access for :memory:)
        self._local = threading.local()
        self._conns: list[sqlite3.Connection] = []
        self._conns_lock = threading.Lock()
        self._signal = ChangeSignal()
        self._closed = threading.Event()
        self._checkpointer: Supervised | None = None
        self._committed = threading.Event()
        self._listener: Listener | None = None
        self._listener_conn: sqlite3.Connection | None = None
        self._notifier = None if self._memory else Notifier(self.path)
        folder = Path(self.path).parent
        if not self._memory and not folder.is_dir():  # a mistyped path: say so, create nothing
            problem = "is not a folder" if folder.exists() else "does not exist (create it first, or check the " \
                                                                 "sqlite:/// URL)"
            raise StoreOpenError(f"cannot open the SQLite store {self.path}: {folder} {problem}", path=self.path)
        self._shared = self._connect() if self._memory else None
        with self._lock:
            migrate(self._conn(), self.path)
        self._writer = GroupCommit(self._shared or self._connect(), self._after_commit)

    # -- connections -------------------------------------------------------------------------------------

    def _connect(self) -> sqlite3.Connection:
        conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False, timeout=60)
        # Migration 8's guard: jobs may be deleted through jobhandle's connections only (cleanup keeps the
        # counters and indexes in step); elsewhere the missing function stops the DELETE, naming the way.
        conn.create_function("use_jobhandle_cleanup", 0, _allowed, deterministic=True)
        conn.row_factory = sqlite3.Row
        if not self._memory:
            conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=NORMAL")
        conn.execute("PRAGMA busy_timeout=60000")
        conn.execute("PRAGMA temp_store=MEMORY")
        # Checkpoints run in the background (see _checkpoint_loop); this only caps the WAL if that lags.
        conn.execute(f"PRAGMA wal_autocheckpoint={WAL_AUTOCHECKPOINT_CAP_PAGES}")
        with self._conns_lock:
            self._conns.append(conn)
        return conn

    def _conn(self) -> sqlite3.Connection:
        if self._shared is not None:
            return self._shared
        conn = getattr(self._local, "conn", None)
        if conn is None:
            if self._closed.is_set():
                raise StoreClosedError("the store is closed")
            conn = self._local.conn = self._connect()
        return conn

    @contextmanager
    def _read(self) -> Iterator[sqlite3.Connection]:
        if self._shared is not None:
            with self._lock:
                yield self._shared
        else:
            yield self._conn()

    def _transact(self, fn: Callable[[Tx], T]) -> T:
        """Run one write primitive atomically (group-committed with whatever else is queued)."""
        if self._closed.is_set():
            raise StoreClosedError("the store is closed")
        if self._memory:  # the shared connection also serves reads: hold the lock throughout
            with self._lock:
                return self._writer.call(fn)
        return self._writer.call(fn)

    def _after_commit(self) -> None:
        if self._checkpointer is None and not self._memory:
            self._start_checkpointer()
        self._committed.set()
        if self._notifier is not None:
            self._notifier.notify(self._listener.path if self._listener is not None else None)
        # Last: a thread woken here (an idle slot) needs the GIL, which this one holds until it is done here.
        self._signal.bump()

    # -- jobs --------------------------------------------------------------------------------------------

    def submit(self, jobs: Sequence[Job], now: datetime) -> list[Job]:
        return self._transact(lambda tx: insert(tx, jobs, now))

    def get(self, job_id: str) -> Job | None:
        with self._read() as conn:
            row = conn.execute(Q["get_job"], {"job_id": job_id}).fetchone()
        return None if row is None else row_to_job(row)

    def count_created_before(self, statuses: Sequence[JobStatus], before: datetime) -> int:
        with self._read() as conn:
            return sum(int(conn.execute(Q["count_created_before"], {"status": JobStatus(s).value,
                                                                    "before": before.timestamp()}).fetchone()[0])
                       for s in statuses)

    def dependants(self, job_id: str, limit: int = 100) -> tuple[list[str], int]:
        with self._read() as conn:
            ids = [r[0] for r in conn.execute(Q["dependants"], {"parent_id": job_id, "limit": limit})]
            return ids, int(conn.execute(Q["dependants_count"], {"parent_id": job_id}).fetchone()[0])

    def rollups(self, step: int, since: datetime, until: datetime) -> list[RollupRow]:
        with self._read() as conn:
            rows = conn.execute(Q["rollups_read"], {"step": step, "since": since.timestamp(),
                                                    "until": until.timestamp()}).fetchall()
        return [RollupRow(*row) for row in rows]

    def list_jobs(self, query: JobQuery) -> list[Job]:
        where, params = [], {}
        if query.statuses:
            where.append(f"status IN ({status_list(query.statuses)})")
        for name in ("job_type", "user_id", "queue", "idempotency_key"):
            if getattr(query, name) is not None:
                where.append(f"{name} = :{name}")
                params[name] = getattr(query, name)
        if query.search:  # two index ranges: the primary key's and jobs_user_created's
            where.append("((job_id >= :id_lo AND job_id < :id_hi) OR (user_id >= :q AND user_id < :q_hi))")
            params.update(id_lo=query.search.lower(), id_hi=prefix_end(query.search.lower()), q=query.search,
                          q_hi=prefix_end(query.search))
        # With a position or a search, those ranges must drive the query: the creation-time bounds are then only
        # checked (a unary + keeps SQLite from walking jobs_created by them instead).
        bound = "+created_at" if query.after is not None or query.search else "created_at"
        if query.created_after is not None:
            where.append(f"{bound} >= :after")
            params["after"] = to_ts(query.created_after)
        if query.created_before is not None:
            where.append(f"{bound} < :before")
            params["before"] = to_ts(query.created_before)
        descending = query.sort.startswith("-")
        column = _SORT_COLUMNS[query.sort.removeprefix("-")]
        direction = "DESC" if descending else "ASC"
        query.check_after()
        query.check_scan()
        if query.after is not None:  # keyset: the creation-time index finds the page's first row
            where.append(f"(created_at, rowid) {'<' if descending else '>'} (:after_ts, {_ANCHOR_ROWID})")
            params.update(after_ts=to_ts(query.after.created_at), after_id=query.after.job_id,
                          no_anchor=_NO_ANCHOR_DESC if descending else _NO_ANCHOR_ASC)
        selected = "jobs" + (" WHERE " + " AND ".join(where) if where else "")
        params.update(limit=query.limit, offset=query.offset)
        if not query.scans:
            order = f" ORDER BY {column} {direction}, rowid {direction} LIMIT :limit OFFSET :offset"
            with self._read() as conn:
                return [row_to_job(r) for r in conn.execute("SELECT * FROM " + selected + order, params)]
        return self._scan(query, selected, column, params, direction)

    def _scan(self, query: JobQuery, selected: str, column: str, params: dict[str, object],
              direction: str) -> list[Job]:
        """A list with filters no index serves: checked on at most SCAN_LIMIT of the jobs the others select
        (newest first when sorted by creation; all of them, or a refusal, when sorted otherwise)."""
        checks = []
        if query.error_contains:
            checks.append("instr(lower(coalesce(error, '')), :error_needle) > 0")
            params["error_needle"] = query.error_contains.lower()
        for i, (key, value) in enumerate((query.parameters or {}).items()):
            params[f"p{i}"] = f'$."{key}"'
            if isinstance(value, bool) or value is None:
                checks.append(f"json_type(parameters, :p{i}) = :t{i}")
                params[f"t{i}"] = "null" if value is None else "true" if value else "false"
            elif isinstance(value, str):
                checks.append(f"json_type(parameters, :p{i}) = 'text' AND json_extract(parameters, :p{i}) = :v{i}")
                params[f"v{i}"] = value
            else:
                checks.append(f"json_type(parameters, :p{i}) IN ('integer', 'real') "
                              f"AND json_extract(parameters, :p{i}) = :v{i}")
                params[f"v{i}"] = value
        by_created = query.sort.removeprefix("-") == "created_at"
        params["scan"] = SCAN_LIMIT + query.offset + query.limit
        with self._read() as conn:
            candidates = conn.execute(f"SELECT count(*) FROM (SELECT 1 FROM {selected} LIMIT :scan + 1)",
                                      params).fetchone()[0]
            if candidates > params["scan"] and not by_created:
                raise _too_many(query)
            inner = (f"SELECT *, rowid AS tie FROM {selected} ORDER BY created_at {direction}, rowid {direction} "
                     "LIMIT :scan")
            rows = conn.execute(f"SELECT * FROM ({inner}) WHERE {' AND '.join(checks)} "
                                f"ORDER BY {column} {direction}, tie {direction} LIMIT :limit OFFSET :offset",
                                params).fetchall()
        if len(rows) < query.limit and candidates > params["scan"]:
            raise _too_many(query)
        return [row_to_job(r[:-1]) for r in rows]  # without the tie

    def claim(self, request: ClaimRequest, now: datetime) -> list[Job]:
        now_ts = now.timestamp()
        with self._read() as conn:
            if not claim.claimable(conn, request.queues, now_ts, request.limits):
                return []
        return self._transact(lambda tx: claim.claim(tx, request, now_ts))

    def finish_many_and_claim(self, worker_id: str, finished: Sequence[Finished], request: ClaimRequest | None,
                              now: datetime) -> tuple[list[bool], list[Job]]:
        def op(tx: Tx) -> tuple[list[bool], list[Job]]:
            owned = attempts.finish_all(tx, [(f.job_id, worker_id, f.attempt, f.outcome) for f in finished],
                                        now.timestamp())
            if request is None or request.limit <= 0:
                return owned, []
            return owned, claim.claim(tx, request, now.timestamp())

        return self._transact(op)

    def heartbeat(self, worker: WorkerInfo, lease_seconds: float, now: datetime) -> set[str]:
        now_ts = now.timestamp()

        def op(tx: Tx) -> set[str]:
            tx.conn.execute(Q["worker_upsert"], {
                "worker_id": worker.worker_id, "name": worker.name, "hostname": worker.hostname,
                "pid": worker.pid, "queues": dumps_json(worker.queues), "concurrency": worker.concurrency,
                "started_at": to_ts(worker.started_at), "now": now_ts, "state": worker.state,
            })
            rows = tx.conn.execute(Q["extend_leases"],
                                   {"worker_id": worker.worker_id, "lease": now_ts + lease_seconds})
            return {r[0] for r in rows}

        return self._transact(op)

    def owned_jobs(self, worker_id: str) -> set[str]:
        with self._read() as conn:
            return {r[0] for r in conn.execute(Q["owned_jobs"], {"worker_id": worker_id})}

    def report_progress(self, key: AttemptKey, update: ProgressUpdate) -> bool:
        return self._transact(lambda tx: attempts.report_progress(tx, key, update))

    def finish(self, key: AttemptKey, outcome: Outcome, now: datetime) -> bool:
        return self._transact(lambda tx: attempts.finish_all(tx, [(key.job_id, key.worker_id, key.attempt, outcome)],
                                                             now.timestamp())[0])

    def release(self, key: AttemptKey, now: datetime) -> Job | None:
        return self._transact(lambda tx: attempts.release(tx, key, now.timestamp()))

    def _refuse(self, tx: Tx, job_id: str, action: str) -> None:
        row = tx.conn.execute(Q["job_status"], {"job_id": job_id}).fetchone()
        if row is None:
            raise JobNotFoundError(job_id)
        status = JobStatus(row[0])
        if status in TERMINAL_STATUSES and action == "cancel":
            raise JobAlreadyCompletedError(job_id, status.value)
        raise InvalidTransitionError(job_id, status.value, action)

    def cancel(self, job_id: str, now: datetime, reason: str | None = None) -> Job:
        def op(tx: Tx) -> Job:
            old = tx.conn.execute(Q["job_status"], {"job_id": job_id}).fetchone()
            row = tx.conn.execute(Q["cancel_job"], {"job_id": job_id, "now": now.timestamp(),
                                                    "reason": reason, "seq": tx.seq()}).fetchone()
            if row is None:
                self._refuse(tx, job_id, "cancel")
            job = row_to_job(row)
            tx.count([(job.queue, job.job_type, old[0], job.status.value, 1)], now.timestamp())
            if old[0] == JobStatus.PENDING.value:
                tx.pend(job.queue, job.priority + job.priority_boost, job.user_id, -1)
            resolve_dependants(tx, [job_id], now.timestamp())
            return job

        return self._transact(op)

    def restart(self, job_id: str, now: datetime) -> Job:
        def op(tx: Tx) -> Job:
            old = tx.conn.execute(Q["job_status"], {"job_id": job_id}).fetchone()
            row = tx.conn.execute(Q["restart_job"], {"job_id": job_id, "seq": tx.seq(), "now": now.timestamp()}
                                  ).fetchone()
            if row is None:
                self._refuse(tx, job_id, "restart")
            job = row_to_job(row)
            tx.count([(job.queue, job.job_type, old[0], job.status.value, 1)], now.timestamp())
            tx.pend(job.queue, job.priority, job.user_id, 1)
            return job

        return self._transact(op)

    def age_pending(self, now: datetime, interval: float, max_boost: int) -> int:
        # Up to AGING_LIMIT jobs a call, AGING_BATCH per transaction: the write lock is never held for long (a
        # worker's progress write or a claim waits one small batch at most).
        risen = 0
        for level in range(max_boost):
            params = {"now": now.timestamp(), "interval": interval, "max_boost": max_boost, "level": level}
            while risen < AGING_LIMIT:
                with self._read() as conn:  # the common case, nothing to age, takes no write lock
                    if conn.execute(Q["agable_jobs"], {**params, "limit": 1}).fetchone() is None:
                        break
                batch = {**params, "limit": min(AGING_BATCH, AGING_LIMIT - risen)}
                done = self._transact(functools.partial(_age_batch, params=batch))
                risen += done
                if done < batch["limit"]:
                    break
        return risen

    def recover_expired(self, now: datetime, backoff: Callable[[Job, datetime], Outcome]) -> list[Job]:
        now_ts = now.timestamp()
        with self._read() as conn:
            if conn.execute(Q["expired_leases"], {"now": now_ts}).fetchone() is None:
                return []

        def op(tx: Tx) -> list[Job]:
            expired = [row_to_job(row) for row in tx.conn.execute(Q["expired_leases"], {"now": now_ts}).fetchall()]
            owned = attempts.finish_all(tx, [(job.job_id, job.worker_id or "", job.attempts, backoff(job, now))
                                             for job in expired], now_ts)
            return [row_to_job(tx.conn.execute(Q["get_job"], {"job_id": job.job_id}).fetchone())
                    for job, ok in zip(expired, owned, strict=True) if ok]

        return self._transact(op)

    # -- workers -----------------------------------------------------------------------------------------

    def reap_workers(self, silent_since: datetime) -> list[str]:
        return self._transact(lambda tx: [r[0] for r in tx.conn.execute(
            Q["reap_workers"], {"silent_since": silent_since.timestamp()})])

    def unregister_worker(self, worker_id: str) -> None:
        self._transact(lambda tx: tx.conn.execute(Q["delete_worker"], {"worker_id": worker_id}))

    def record_pool(self, pool: PoolInfo, now: datetime) -> None:
        row = {"pool_id": pool.pool_id, "started_at": pool.started_at.timestamp(), "now": now.timestamp(),
               "doc": pool.to_doc()}
        self._transact(lambda tx: tx.conn.execute(Q["pool_upsert"], row))

    def list_pools(self) -> list[PoolInfo]:
        with self._read() as conn:
            return [PoolInfo.from_doc(doc, last_seen) for doc, last_seen in conn.execute(Q["list_pools"])]

    def unregister_pool(self, pool_id: str) -> None:
        self._transact(lambda tx: tx.conn.execute(Q["delete_pool"], {"pool_id": pool_id}))

    def reap_pools(self, silent_since: datetime) -> list[str]:
        return self._transact(lambda tx: [r[0] for r in tx.conn.execute(
            Q["reap_pools"], {"silent_since": silent_since.timestamp()})])

    def list_workers(self) -> list[WorkerInfo]:
        with self._read() as conn:
            rows = conn.execute(Q["list_workers"]).fetchall()
        return [WorkerInfo(worker_id=r["worker_id"], name=r["name"], hostname=r["hostname"], pid=r["pid"],
                           queues=json.loads(r["queues"]), concurrency=r["concurrency"],
                           started_at=at_ts(r["started_at"]), last_seen=from_ts(r["last_seen"]),
                           state=r["state"], current_jobs=json.loads(r["current_jobs"])) for r in rows]

    def hold_lease(self, name: str, holder: str, seconds: float, now: datetime) -> bool:
        now_ts = now.timestamp()
        with self._read() as conn:  # another holder's lease running: no write lock needed to say so
            row = conn.execute(Q["lease_holder"], {"name": name}).fetchone()
            if row is not None and row[0] != holder and row[1] > now_ts:
                return False
        params = {"name": name, "holder": holder, "until": now_ts + seconds, "now": now_ts}
        return self._transact(lambda tx: tx.conn.execute(Q["hold_lease"], params).fetchone() is not None)

    def release_lease(self, name: str, holder: str) -> None:
        self._transact(lambda tx: tx.conn.execute(Q["release_lease"], {"name": name, "holder": holder}))

    def take_token(self, key: str, per_second: float, burst: float, now: datetime) -> float:
        now_ts = now.timestamp()

        def op(tx: Tx) -> float:
            row = tx.conn.execute(Q["get_bucket"], {"key": key}).fetchone()
            tokens, updated_at = (burst, now_ts) if row is None else (row[0], row[1])
            tokens, wait = take_token(tokens, updated_at, now_ts, per_second, burst)
            at = max(now_ts, updated_at)
            tx.conn.execute(Q["set_bucket"], {"key": key, "tokens": tokens, "now": at,
                                              "full_at": at + (burst - tokens) / per_second})
            return wait

        return self._transact(op)

    # -- schedules -----------------------------------------------------------------------------------------

    def create_schedule(self, schedule: Schedule, now: datetime) -> tuple[Schedule, Job]:
        return self._transact(lambda tx: schedules.create(tx, schedule, now))

    def get_schedule(self, schedule_id: str) -> Schedule | None:
        with self._read() as conn:
            return schedules.get(conn, schedule_id)

    def list_schedules(self) -> list[Schedule]:
        with self._read() as conn:
            return [row_to_schedule(r) for r in conn.execute(Q["list_schedules"])]

    def advance_schedules(self, now: datetime) -> list[Job]:
        with self._read() as conn:  # the usual answer is "nothing due": no write lock for it
            if not schedules.any_due(conn, now.timestamp()):
                return []
        return self._transact(lambda tx: schedules.advance(tx, now))

    def pause_schedule(self, schedule_id: str, now: datetime) -> Schedule:
        return self._transact(lambda tx: schedules.pause(tx, schedule_id, now))

    def resume_schedule(self, schedule_id: str, now: datetime) -> Schedule:
        return self._transact(lambda tx: schedules.resume(tx, schedule_id, now))

    def delete_schedule(self, schedule_id: str, now: datetime) -> Schedule:
        return self._transact(lambda tx: schedules.delete(tx, schedule_id, now))

    # -- counters, retention, change feed ----------------------------------------------------------------

    @staticmethod
    def _meta(conn: sqlite3.Connection, key: str) -> object:
        row = conn.execute(Q["meta_get"], {"key": key}).fetchone()
        return None if row is None else row[0]

    def counts(self) -> StoreCounts:
        by_status: dict[str, int] = {}
        by_queue: dict[str, dict[str, int]] = {}
        by_type: dict[str, dict[str, int]] = {}
        with self._read() as conn:
            rows = conn.execute(Q["counters"]).fetchall()
            last_cleanup = self._meta(conn, "last_cleanup")
            removed = self._meta(conn, "last_cleanup_removed") or 0
        for queue, job_type, status, n in rows:
            by_status[status] = by_status.get(status, 0) + n
            q = by_queue.setdefault(queue, {})
            q[status] = q.get(status, 0) + n
            t = by_type.setdefault(job_type, {})
            t[status] = t.get(status, 0) + n
        return StoreCounts(by_status=by_status, by_queue=by_queue, by_type=by_type,
                           last_cleanup=from_ts(last_cleanup),  # type: ignore[arg-type]
                           last_cleanup_removed=int(removed))  # type: ignore[call-overload]

    def count_by_status(self, user_id: str) -> dict[str, int]:
        with self._read() as conn:
            return dict(conn.execute(Q["count_by_status"], {"user_id": user_id}).fetchall())

    def cleanup(self, cutoffs: dict[JobStatus, datetime], now: datetime, limit: int | None = None,
                removed_before: int = 0) -> int:
        sizer = StepSizer()  # steps of a few ms: a claim queued behind one waits that long at most

        def delete_batch(status: JobStatus, cutoff: float, size: int) -> int:
            def op(tx: Tx) -> int:
                ids = [r[0] for r in tx.conn.execute(Q["expired_terminal"], {"status": status.value,
                                                                             "cutoff": cutoff, "limit": size})]
                tx.conn.executemany(Q["delete_job"], [{"job_id": j} for j in ids])
                tx.conn.executemany(Q["delete_dependencies"], [{"job_id": j} for j in ids])
                return len(ids)
            return self._transact(op)

        removed = 0
        for status, cutoff in cutoffs.items():
            while limit is None or removed < limit:
                size = sizer.size if limit is None else min(sizer.size, limit - removed)
                started = time.perf_counter()
                n = delete_batch(status, cutoff.timestamp(), size)
                sizer.took(n, time.perf_counter() - started)
                removed += n
                if n < size:
                    break
            if limit is not None and removed >= limit:
                return removed

        def record(tx: Tx) -> None:
            tx.conn.execute(Q["forget_turns"], {"before": (now - timedelta(seconds=TURN_MEMORY_SECONDS)).timestamp()})
            tx.conn.execute(Q["forget_buckets"], {"now": now.timestamp()})
            for tier in TIERS:
                tx.conn.execute(Q["rollups_forget"], {"step": tier.step,
                                                         "before": now.timestamp() - tier.keep - tier.step})
            tx.conn.execute(Q["meta_set"], {"key": "last_cleanup", "value": now.timestamp()})
            tx.conn.execute(Q["meta_set"], {"key": "last_cleanup_removed", "value": removed_before + removed})

        self._transact(record)
        return removed

    def changes_since(self, seq: int, limit: int = 500) -> list[Job]:
        with self._read() as conn:
            return [row_to_job(r) for r in conn.execute(Q["changes_since"], {"seq": seq, "limit": limit})]

    def last_seq(self) -> int:
        with self._read() as conn:
            return int(conn.execute(Q["last_seq"]).fetchone()[0])

    def next_due_at(self) -> datetime | None:
        with self._read() as conn:
            return from_ts(conn.execute(Q["next_due"]).fetchone()[0])

    # -- wake-ups ----------------------------------------------------------------------------------------

    @property
    def change_version(self) -> int:
        # A waiter reads this, then looks at the store, then waits: other processes' commits must be heard from
        # the read on, or one landing in between is missed until the next (the listener's data_version
        # fallback starts from the version it first sees).
        if self._listener is None and not self._memory:
            self._start_listener()
        return self._signal.version

    def wake_waiters(self) -> None:
        self._signal.bump()

    def wait_for_change(self, seen: int, timeout: float | None) -> int:
        if self._listener is None and not self._memory:
            self._start_listener()
        return self._signal.wait(seen, timeout)

    def _start_checkpointer(self) -> None:
        with self._conns_lock:
            if self._checkpointer is not None or self._closed.is_set():
                return
            self._checkpointer = Supervised("sqlite-checkpoint", self._checkpoint_loop, stopping=self._closed,
                                            log=log)
        self._checkpointer.start()

    def _checkpoint_loop(self) -> None:
        """Copy committed WAL pages into the database file off the commit path.

        SQLite's automatic checkpoint runs inside the commit that crosses its threshold and fsyncs there,
        stalling that caller for milliseconds (the pickup p99 showed it). PASSIVE does not block writers or
        readers; with several processes, whichever gets there first does the work.
        """
        conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        try:
            while True:
                self._committed.wait()
                if self._closed.is_set():
                    return
                self._committed.clear()
                conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
                assert self._checkpointer is not None
                self._checkpointer.ok()
                if self._closed.wait(CHECKPOINT_INTERVAL):
                    return
        finally:
            conn.close()

    def _start_listener(self) -> None:
        with self._conns_lock:
            if self._listener is not None or self._closed.is_set():
                return
            conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
            version = [conn.execute("PRAGMA data_version").fetchone()[0]]

            def moved() -> bool:
                """Fallback: did a commit we were not told about happen (PRAGMA data_version moved)?"""
                now = conn.execute("PRAGMA data_version").fetchone()[0]
                changed, version[0] = now != version[0], now
                return changed

            self._listener = Listener(self.path, self._signal.bump, moved, self._poll_interval)
            self._listener_conn = conn

    def health(self) -> list[LoopHealth]:
        return [loop.health() for loop in (self._checkpointer, self._listener and self._listener.loop) if loop]

    def close(self) -> None:
        self._closed.set()
        self._committed.set()  # lets the checkpointer see the close
        if self._checkpointer is not None:
            self._checkpointer.join(timeout=10)
        if self._listener is not None:
            self._listener.close()
        if self._listener_conn is not None:
            self._listener_conn.close()
        if self._notifier is not None:
            self._notifier.close()
        with self._lock, self._conns_lock:  # :memory: work holds _lock: never close under it
            conns, self._conns = self._conns, []
        for conn in conns:
            try:
                conn.close()
            except sqlite3.ProgrammingError:  # closed from another thread already
                pass
