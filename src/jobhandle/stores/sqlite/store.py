"""SQLite store: every primitive is one ``BEGIN IMMEDIATE`` transaction over the statements in queries.sql.

WAL mode with ``synchronous=NORMAL``: readers never block the writer, a commit survives a process crash.
Within a process, writes are group-committed (see ``_GroupCommit``); across processes SQLite's own write lock
serialises them. Waiters in other processes are woken by a datagram after each commit (see wake.py), with
``PRAGMA data_version`` checked every ``poll_interval`` seconds as a fallback.
"""

from __future__ import annotations

import json
import re
import sqlite3
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime
from importlib import resources
from pathlib import Path
from typing import Any, TypeVar

from ... import cron
from ...errors import (
    InvalidParameterError,
    InvalidTransitionError,
    JobAlreadyCompletedError,
    JobNotFoundError,
    ScheduleNotFoundError,
    StoreClosedError,
)
from ...models import (
    CANCELLABLE,
    DUE_STATUSES,
    ERROR_HISTORY_LIMIT,
    PROGRESS_HISTORY_LIMIT,
    RESTARTABLE,
    TERMINAL_STATUSES,
    Dependency,
    Job,
    JobMetrics,
    JobStatus,
    Schedule,
    at_ts,
    dependency_met,
    dumps_json,
    from_ts,
    iso,
    take_token,
    to_ts,
)
from ..base import (
    NO_LIMIT,
    ChangeSignal,
    ConcurrencyLimits,
    Finished,
    JobQuery,
    Outcome,
    ProgressUpdate,
    Store,
    StoreCounts,
    WorkerInfo,
)
from .wake import Listener, Notifier


def _status_list(statuses: Sequence[JobStatus]) -> str:
    return ", ".join(f"'{s.value}'" for s in statuses)


def _load_queries() -> dict[str, str]:
    """Parse queries.sql into {name: statement}, filling the state machine's status lists in."""
    text = resources.files(__package__).joinpath("queries.sql").read_text()
    lists = {"due": _status_list(DUE_STATUSES), "cancellable": _status_list(CANCELLABLE),
             "restartable": _status_list(RESTARTABLE)}
    queries: dict[str, str] = {}
    for block in re.split(r"^-- name: ", text, flags=re.M)[1:]:
        name, _, body = block.partition("\n")
        sql = "\n".join(line for line in body.splitlines() if not line.lstrip().startswith("--")).strip()
        queries[name.strip()] = sql.format(**lists)
    return queries


T = TypeVar("T")
Q = _load_queries()
SCHEMA = resources.files(__package__).joinpath("schema.sql").read_text()

UNLIMITED = NO_LIMIT
"""Stands for "no limit" and "above every priority" in the claim's arithmetic."""
CLEANUP_BATCH = 2000
CHECKPOINT_INTERVAL = 0.25
"""Seconds between background WAL checkpoints while commits happen."""
WAL_AUTOCHECKPOINT_CAP_PAGES = 20000
"""SQLite checkpoints inside a commit only past this many WAL pages (~80 MB): normally never."""
_SORT_COLUMNS = {name: name for name in JobQuery.SORTABLE}
_STATUSES = {status.value: status for status in JobStatus}
"""A stored status -> JobStatus: a dict lookup where calling the Enum runs its Python-level lookup."""
_ALL_NULL = (None,) * 8
"""The optional columns of insert_job (its last eight) of a job that has none of them: see insert_plain_job."""




def _loads(text: str | None) -> Any:
    return None if text is None else json.loads(text)


def _loads_list(text: str) -> list[Any]:
    """A JSON list column; most are empty, and decoding ``[]`` is the common case worth skipping."""
    return [] if text == "[]" else json.loads(text)


JOB_COLUMNS = (
    "job_id", "job_type", "queue", "status", "priority", "user_id", "parameters", "result", "error", "error_type",
    "progress", "progress_message", "progress_history", "error_history", "created_at", "scheduled_time",
    "started_at", "completed_at", "attempts", "max_retries", "retry_delay", "timeout_seconds", "depends_on",
    "cron_expression", "schedule_id", "idempotency_key", "worker_id", "execution_time", "items_processed",
    "total_items", "cpu_seconds", "peak_memory_mb", "run_at", "lease_expires_at", "seq", "aged")
"""The jobs table's columns in table order (checked at open): row_to_job unpacks rows by position, because
reading 36 columns by name costs more than building the Job."""


def row_to_job(r: sqlite3.Row) -> Job:
    (job_id, job_type, queue, status, priority, user_id, parameters, result, error, error_type, progress,
     progress_message, progress_history, error_history, created_at, scheduled_time, started_at, completed_at,
     attempts, max_retries, retry_delay, timeout_seconds, depends_on, cron_expression, schedule_id,
     idempotency_key, worker_id, execution_time, items_processed, total_items, cpu_seconds, peak_memory_mb,
     run_at, lease_expires_at, seq, aged) = r
    return Job(
        job_id=job_id, job_type=job_type, queue=queue, status=_STATUSES[status], priority=priority - aged,
        priority_boost=aged, user_id=user_id, parameters=json.loads(parameters), result=_loads(result),
        error=error, error_type=error_type, progress=progress, progress_message=progress_message,
        progress_history=_loads_list(progress_history), error_history=_loads_list(error_history),
        created_at=at_ts(created_at), scheduled_time=from_ts(scheduled_time), started_at=from_ts(started_at),
        completed_at=from_ts(completed_at), attempts=attempts, max_retries=max_retries, retry_delay=retry_delay,
        timeout_seconds=timeout_seconds, depends_on=[Dependency(**d) for d in _loads_list(depends_on)],
        cron_expression=cron_expression, schedule_id=schedule_id, idempotency_key=idempotency_key,
        worker_id=worker_id,
        metrics=JobMetrics(execution_time_seconds=execution_time, items_processed=items_processed,
                           total_items=total_items, cpu_seconds=cpu_seconds, peak_memory_mb=peak_memory_mb),
        run_at=from_ts(run_at), lease_expires_at=from_ts(lease_expires_at), seq=seq,
    )


ADDED_COLUMNS = {"aged": "ALTER TABLE jobs ADD COLUMN aged INTEGER NOT NULL DEFAULT 0"}
"""Columns added to ``jobs`` since its first release, for databases created before them."""


def _upgrade_jobs_table(conn: sqlite3.Connection) -> None:
    """Add the columns a database created by an earlier release lacks; check the layout row_to_job expects."""
    conn.execute("BEGIN IMMEDIATE")  # two processes opening an old database at once: one adds, one sees
    try:
        have = {row[1] for row in conn.execute("PRAGMA table_info(jobs)")}
        for column, ddl in ADDED_COLUMNS.items():
            if column not in have:
                conn.execute(ddl)
        layout = tuple(row[1] for row in conn.execute("PRAGMA table_info(jobs)"))
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    if layout != JOB_COLUMNS:
        raise RuntimeError(f"the jobs table has columns {layout}, expected {JOB_COLUMNS}")


def row_to_schedule(r: sqlite3.Row) -> Schedule:
    return Schedule(
        schedule_id=r["schedule_id"], name=r["name"], cron_expression=r["cron_expression"], timezone=r["timezone"],
        job_type=r["job_type"], parameters=json.loads(r["parameters"]), queue=r["queue"], priority=r["priority"],
        user_id=r["user_id"], max_retries=r["max_retries"], retry_delay=r["retry_delay"],
        timeout_seconds=r["timeout_seconds"], paused=bool(r["paused"]), generation=r["generation"],
        created_at=at_ts(r["created_at"]), next_fire_at=from_ts(r["next_fire_at"]),
        last_fire_at=from_ts(r["last_fire_at"]),
    )


def _schedule_params(s: Schedule) -> dict[str, Any]:
    return {
        "schedule_id": s.schedule_id, "name": s.name, "cron_expression": s.cron_expression, "timezone": s.timezone,
        "job_type": s.job_type, "parameters": dumps_json(s.parameters), "queue": s.queue, "priority": s.priority,
        "user_id": s.user_id, "max_retries": s.max_retries, "retry_delay": s.retry_delay,
        "timeout_seconds": s.timeout_seconds, "paused": int(s.paused), "generation": s.generation,
        "created_at": to_ts(s.created_at), "next_fire_at": to_ts(s.next_fire_at),
        "last_fire_at": to_ts(s.last_fire_at),
    }


def _unmet(parent_id: str, status: JobStatus | None, condition: str) -> str:
    ended = "no longer exists" if status is None else f"ended {status.value}"
    return f"dependency {parent_id} {ended}; this job needed its {condition}"


def _progress_params(update: ProgressUpdate | None) -> dict[str, Any]:
    u = update or ProgressUpdate()
    return {"fraction": u.fraction, "message": u.message, "items_processed": u.items_processed,
            "total_items": u.total_items}


class _Tx:
    """One write transaction: the connection plus the change-sequence allocator.

    The first allocation of a transaction reserves its numbers in the stored sequence and reads it in one
    statement (a statement less than reading it, then writing it back); later ones are counted here and written
    back by ``flush`` before COMMIT. The write lock that BEGIN IMMEDIATE holds makes that safe across processes.
    A reservation undone by ROLLBACK TO (its primitive failed, in a group commit) takes back only numbers that
    primitive's rolled-back changes had; any number handed out after it is above what is stored, so ``flush``
    writes it.
    """

    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn
        self._last: int | None = None
        self._stored: int | None = None

    def seqs(self, n: int) -> range:
        if self._last is None:
            self._last = self._stored = int(self.conn.execute(Q["reserve_seqs"], (n,)).fetchone()[0])
            return range(self._last - n + 1, self._last + 1)
        first = self._last + 1
        self._last += n
        return range(first, self._last + 1)

    def seq(self) -> int:
        return self.seqs(1)[0]

    def flush(self) -> None:
        if self._last is not None and self._last != self._stored:
            self.conn.execute(Q["set_seq"], {"value": self._last})
            self._stored = self._last


class _Call:
    """A write primitive waiting to be run, and then its result."""

    __slots__ = ("fn", "result", "error", "done")

    def __init__(self, fn: Callable[[_Tx], Any]) -> None:
        self.fn = fn
        self.result: Any = None
        self.error: BaseException | None = None
        self.done = False


class _GroupCommit:
    """Group commit without a writer thread (leader/follower).

    A caller that finds no transaction running becomes the leader: it runs every queued primitive in one
    transaction, each inside its own SAVEPOINT (so each stays atomic and one that raises is rolled back alone),
    then commits once. Callers arriving meanwhile queue up and wait; one of them leads the next round. Alone,
    a primitive runs in its caller's thread with no hand-off; under load many primitives share one COMMIT.
    """

    MAX_BATCH = 256

    def __init__(self, conn: sqlite3.Connection, after_commit: Callable[[], None]) -> None:
        self._conn = conn
        self._after_commit = after_commit
        self._cond = threading.Condition()
        self._queue: list[_Call] = []
        self._leading = False

    def call(self, fn: Callable[[_Tx], Any]) -> Any:
        item = _Call(fn)
        with self._cond:
            self._queue.append(item)
        while True:  # lead rounds until our own primitive ran (it may be past the first batch)
            with self._cond:
                while self._leading and not item.done:
                    self._cond.wait()
                if item.done:
                    break
                self._leading = True
                batch, self._queue = self._queue[:self.MAX_BATCH], self._queue[self.MAX_BATCH:]
            changes = self._conn.total_changes
            try:
                self._transact(batch)
            finally:
                with self._cond:
                    self._leading = False
                    for done in batch:
                        done.done = True
                    self._cond.notify_all()
                if self._conn.total_changes != changes:  # a round that wrote nothing (a claim that found no
                    self._after_commit()                 # job) has nothing to announce: it wakes no one
        if item.error is not None:
            raise item.error
        return item.result

    def _transact(self, batch: list[_Call]) -> None:
        conn = self._conn
        try:
            conn.execute("BEGIN IMMEDIATE")
            tx = _Tx(conn)
            for item in batch:
                if len(batch) > 1:
                    conn.execute("SAVEPOINT primitive")
                try:
                    item.result = item.fn(tx)
                except Exception as exc:  # noqa: BLE001 - its caller gets it; the others go on
                    if len(batch) == 1:
                        raise
                    conn.execute("ROLLBACK TO primitive")
                    item.error = exc
                if len(batch) > 1:
                    conn.execute("RELEASE primitive")
            tx.flush()
            conn.execute("COMMIT")
        except BaseException as exc:  # the transaction itself failed: every caller hears of it
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            for item in batch:
                item.error = exc


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
        self._checkpointer: threading.Thread | None = None
        self._committed = threading.Event()
        self._listener: Listener | None = None
        self._listener_conn: sqlite3.Connection | None = None
        self._notifier = None if self._memory else Notifier(self.path)
        if not self._memory:
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        self._shared = self._connect() if self._memory else None
        with self._lock:
            self._conn().executescript(f"BEGIN IMMEDIATE;\n{SCHEMA}\nCOMMIT;")  # all or nothing, one opener at once
            _upgrade_jobs_table(self._conn())
        self._writer = _GroupCommit(self._shared or self._connect(), self._after_commit)

    # -- connections -------------------------------------------------------------------------------------

    def _connect(self) -> sqlite3.Connection:
        conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False, timeout=60)
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

    def _transact(self, fn: Callable[[_Tx], T]) -> T:
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
        return self._transact(lambda tx: self._insert(tx, jobs, now))

    def _insert(self, tx: _Tx, jobs: Sequence[Job], now: datetime) -> list[Job]:
        """Insert new jobs (see ``submit``); part of the caller's transaction. Returns the same Job objects,
        with the fields the store decides (status, created_at, seq) set: nothing is read back."""
        now_ts = now.timestamp()
        out: list[Job] = []
        plain_rows: list[tuple[Any, ...]] = []
        rows: list[tuple[Any, ...]] = []
        dependency_rows: list[tuple[str, str, str]] = []
        inserted: dict[tuple[str, str, str], int] = {}  # (queue, job_type, status) -> jobs, for the counters
        by_key: dict[str, Job] = {}  # idempotency keys met earlier in this same batch
        in_batch: dict[str, JobStatus] = {}  # parents may come earlier in the same batch
        for job, seq in zip(jobs, tx.seqs(len(jobs)), strict=True):
            if job.idempotency_key is not None:
                if job.idempotency_key in by_key:
                    out.append(by_key[job.idempotency_key])
                    continue
                existing = tx.conn.execute(Q["job_by_idempotency_key"], {"key": job.idempotency_key}).fetchone()
                if existing is not None:
                    out.append(row_to_job(existing))
                    continue
                by_key[job.idempotency_key] = job
            run_at = to_ts(job.run_at)
            job.status = JobStatus.SCHEDULED if run_at is not None and run_at > now_ts else JobStatus.PENDING
            job.created_at = now
            job.seq = seq
            depends_on = "[]"
            if job.depends_on:
                self._apply_dependencies(tx, job, in_batch, now)
                if job.status is JobStatus.WAITING:
                    dependency_rows += [(d.job_id, job.job_id, d.condition) for d in job.depends_on]
                depends_on = dumps_json([{"job_id": d.job_id, "condition": d.condition} for d in job.depends_on])
            status = job.status.value
            in_batch[job.job_id] = job.status
            kind = (job.queue, job.job_type, status)
            inserted[kind] = inserted.get(kind, 0) + 1
            row = (job.job_id, job.job_type, job.queue, status, job.priority, job.user_id, dumps_json(job.parameters),
                   now_ts, job.max_retries, job.retry_delay, job.timeout_seconds, depends_on, seq)
            optional = (to_ts(job.scheduled_time), run_at, job.idempotency_key, job.cron_expression,
                        job.schedule_id, job.error, job.error_type, to_ts(job.completed_at))
            if optional == _ALL_NULL:
                plain_rows.append(row)
            else:
                rows.append(row + optional)
            out.append(job)
        for statement, batch in ((Q["insert_plain_job"], plain_rows), (Q["insert_job"], rows),
                                 (Q["insert_dependency"], dependency_rows)):
            if batch:
                tx.conn.executemany(statement, batch)
        tx.conn.executemany(Q["count_add"], [(*kind, n) for kind, n in inserted.items()])
        return out

    def _apply_dependencies(self, tx: _Tx, job: Job, in_batch: dict[str, JobStatus], now: datetime) -> None:
        """A new job's status given its parents': WAITING while undecided, CANCELLED if one can no longer be
        met, else as decided without dependencies. Unknown parents are refused (the whole submit is)."""
        undecided = False
        for dep in job.depends_on:
            status = in_batch.get(dep.job_id)
            if status is None:
                row = tx.conn.execute(Q["job_status"], {"job_id": dep.job_id}).fetchone()
                if row is None:
                    raise InvalidParameterError(f"depends_on names job {dep.job_id}, which does not exist",
                                                job_id=dep.job_id)
                status = JobStatus(row[0])
            met = dependency_met(dep.condition, status)
            if met is False:
                job.status, job.completed_at = JobStatus.CANCELLED, now
                job.error, job.error_type = _unmet(dep.job_id, status, dep.condition), "DependencyFailedError"
                return
            undecided = undecided or met is None
        if undecided:
            job.status = JobStatus.WAITING

    def _resolve_dependants(self, tx: _Tx, parent_ids: Sequence[str], now_ts: float) -> None:
        """Jobs just finished: release their waiting dependants whose parents are all met, cancel those one of
        whose parents can no longer be met, and so on down the chain (a cancelled dependant is a parent too)."""
        if not parent_ids:
            return
        todo = [p for (p,) in tx.conn.execute(Q["parents_with_waiting_dependants"],
                                              {"ids": dumps_json(list(parent_ids))})]
        while todo:
            parent = todo.pop()
            for (child,) in tx.conn.execute(Q["waiting_dependants"], {"parent_id": parent}).fetchall():
                unmet, undecided = None, False
                for dep_parent, condition, status in tx.conn.execute(Q["dependencies_of"], {"job_id": child}):
                    met = False if status is None else dependency_met(condition, JobStatus(status))
                    if met is False:
                        unmet = _unmet(dep_parent, None if status is None else JobStatus(status), condition)
                        break
                    undecided = undecided or met is None
                if unmet is not None:
                    moved = tx.conn.execute(Q["cancel_waiting"], {"job_id": child, "now": now_ts, "error": unmet,
                                                                  "seq": tx.seq()}).fetchall()
                    todo.append(child)
                elif not undecided:
                    moved = tx.conn.execute(Q["release_waiting"], {"job_id": child, "now": now_ts,
                                                                   "seq": tx.seq()}).fetchall()
                else:
                    continue
                self._count(tx, [(queue, job_type, JobStatus.WAITING.value, new, 1) for queue, job_type, new in moved])

    def get(self, job_id: str) -> Job | None:
        with self._read() as conn:
            row = conn.execute(Q["get_job"], {"job_id": job_id}).fetchone()
        return None if row is None else row_to_job(row)

    def list_jobs(self, query: JobQuery) -> list[Job]:
        where, params = [], {}
        if query.statuses:
            where.append(f"status IN ({_status_list(query.statuses)})")
        for name in ("job_type", "user_id", "queue", "idempotency_key"):
            if getattr(query, name) is not None:
                where.append(f"{name} = :{name}")
                params[name] = getattr(query, name)
        if query.search:
            where.append("(substr(job_id, 1, length(:q)) = lower(:q) OR instr(user_id, :q) > 0)")
            params["q"] = query.search
        if query.created_after is not None:
            where.append("created_at >= :after")
            params["after"] = to_ts(query.created_after)
        if query.created_before is not None:
            where.append("created_at < :before")
            params["before"] = to_ts(query.created_before)
        descending = query.sort.startswith("-")
        column = _SORT_COLUMNS[query.sort.removeprefix("-")]
        direction = "DESC" if descending else "ASC"
        sql = "SELECT * FROM jobs"
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += f" ORDER BY {column} {direction}, seq {direction} LIMIT :limit OFFSET :offset"
        params.update(limit=query.limit, offset=query.offset)
        with self._read() as conn:
            return [row_to_job(r) for r in conn.execute(sql, params)]

    def _promote_due(self, tx: _Tx, now_ts: float) -> None:
        due = tx.conn.execute(Q["due_jobs"], {"now": now_ts}).fetchall()
        if due:
            tx.conn.executemany(Q["make_pending"], [{"job_id": row[0], "seq": s}
                                                    for row, s in zip(due, tx.seqs(len(due)), strict=True)])
            self._count(tx, [(queue, job_type, old, JobStatus.PENDING.value, 1) for _, queue, job_type, old in due])

    def claim(self, worker_id: str, queues: Sequence[str], limit: int, lease_seconds: float,
              now: datetime, limits: ConcurrencyLimits | None = None) -> list[Job]:
        now_ts = now.timestamp()
        with self._read() as conn:
            # A read-only look first: waiting with nothing claimable (no work, or with limits every user with
            # work at their limit) must not take the write lock, or idle slots would storm it on every change.
            due, pending = conn.execute(Q["claim_lookout"], {"q": queues[0]}).fetchone()
            if due is None or due > now_ts:
                if limits is None:
                    claimable = pending or any(conn.execute(Q["any_pending"], {"q": q}).fetchone()
                                               for q in queues[1:])
                else:
                    claimable = bool(self._pick_fairly(conn, queues, *self._limits_now(conn, 1, limits)))
                if not claimable:
                    return []
        return self._transact(lambda tx: self._claim(tx, worker_id, queues, limit, lease_seconds, now_ts, limits))

    @staticmethod
    def _limits_now(conn: sqlite3.Connection, limit: int,
                    limits: ConcurrencyLimits | None) -> tuple[int, dict[str, int], int]:
        """(jobs that may still start, running jobs per user, per-user maximum) under ``limits``."""
        if limits is None:
            return limit, {}, UNLIMITED
        in_all = conn.execute(Q["running_total"]).fetchone()[0]
        return (min(limit, limits.global_max - in_all), dict(conn.execute(Q["running_per_user"]).fetchall()),
                limits.per_user_max)

    def _claim(self, tx: _Tx, worker_id: str, queues: Sequence[str], limit: int, lease_seconds: float,
               now_ts: float, limits: ConcurrencyLimits | None) -> list[Job]:
        self._promote_due(tx, now_ts)
        picks = self._pick_fairly(tx.conn, queues, *self._limits_now(tx.conn, limit, limits))
        if not picks:
            return []
        lease = now_ts + lease_seconds
        seqs = tx.seqs(len(picks))
        tx.conn.executemany(Q["start_job"], [
            {"job_id": job_id, "worker_id": worker_id, "now": now_ts, "lease": lease, "seq": seq}
            for job_id, seq in zip(picks, seqs, strict=True)])
        jobs = [row_to_job(r) for r in tx.conn.execute(Q["jobs_by_seq"], {"first": seqs[0], "last": seqs[-1]})]
        if len(jobs) != len(picks):  # picked under the write lock: every pick is pending, every update applies
            raise RuntimeError(f"claim started {len(jobs)} of the {len(picks)} jobs it picked")
        self._count(tx, [(job.queue, job.job_type, JobStatus.PENDING.value, JobStatus.RUNNING.value, 1)
                         for job in jobs])
        turns = {job.user_id: job.seq for job in jobs}  # each user's turn: the seq of its last job claimed
        tx.conn.executemany(Q["set_user_turn"], [{"u": u, "turn": t} for u, t in turns.items()])
        return jobs

    def _pick_fairly(self, conn: sqlite3.Connection, queues: Sequence[str], allowed: int, running: dict[str, int],
                     per_user_max: int) -> list[str]:
        """Up to ``allowed`` pending job ids in claim order (see Store.claim), skipping users at their limit."""
        picks: list[str] = []
        if allowed <= 0:
            return picks
        first = [row for q in queues for row in conn.execute(Q["first_pending"], {"q": q})][:2]
        if len(first) < 2:  # none or one job pending: no order to decide, only the user's limit to respect
            return [job_id for job_id, user in first if running.get(user, 0) < per_user_max]
        level = self._next_level(conn, queues, UNLIMITED)
        while level is not None and len(picks) < allowed:
            users = {u for q in queues for (u,) in conn.execute(Q["waiting_users"], {"q": q, "p": level})}
            ring = [u for u in users if running.get(u, 0) < per_user_max]
            if len(ring) > 1:  # whose turn: only a question when several users wait
                ring.sort(key=lambda u: (self._turn(conn, u), u))
            after = dict.fromkeys(ring, -1)
            while ring and len(picks) < allowed:
                for user in list(ring):
                    # Several users take turns, one job each; a lone user takes all it may in one query.
                    n = 1 if len(ring) > 1 else min(allowed - len(picks), per_user_max - running.get(user, 0))
                    found = self._next_of_user(conn, queues, level, user, after[user], n)
                    if not found:
                        ring.remove(user)
                        continue
                    picks.extend(job_id for job_id, _ in found)
                    after[user] = found[-1][1]
                    running[user] = running.get(user, 0) + len(found)
                    if running[user] >= per_user_max:
                        ring.remove(user)
                    if len(picks) == allowed:
                        break
            if len(picks) < allowed:
                level = self._next_level(conn, queues, level)
        return picks

    @staticmethod
    def _next_level(conn: sqlite3.Connection, queues: Sequence[str], below: int) -> int | None:
        levels = [conn.execute(Q["top_priority"], {"q": q, "below": below}).fetchone()[0] for q in queues]
        return max((level for level in levels if level is not None), default=None)

    @staticmethod
    def _turn(conn: sqlite3.Connection, user: str) -> int:
        row = conn.execute(Q["user_turn"], {"u": user}).fetchone()
        return 0 if row is None else int(row[0])

    @staticmethod
    def _next_of_user(conn: sqlite3.Connection, queues: Sequence[str], level: int, user: str, after: int,
                      n: int) -> list[tuple[str, int]]:
        """``user``'s next ``n`` pending jobs at ``level`` after seq ``after``, in order: (job_id, seq)."""
        found = [(r[0], r[1]) for q in queues for r in conn.execute(Q["next_of_user"], {
            "q": q, "p": level, "u": user, "after": after, "n": n})]
        if len(queues) > 1:
            found.sort(key=lambda r: r[1])
        return found[:n]

    def finish_many_and_claim(self, worker_id: str, finished: Sequence[Finished], queues: Sequence[str],
                              claim_limit: int, lease_seconds: float, now: datetime,
                              limits: ConcurrencyLimits | None = None) -> tuple[list[bool], list[Job]]:
        def op(tx: _Tx) -> tuple[list[bool], list[Job]]:
            owned = self._finish_all(tx, [(f.job_id, worker_id, f.attempt, f.outcome) for f in finished],
                                     now.timestamp())
            if claim_limit <= 0:
                return owned, []
            return owned, self._claim(tx, worker_id, queues, claim_limit, lease_seconds, now.timestamp(), limits)

        return self._transact(op)

    def heartbeat(self, worker: WorkerInfo, lease_seconds: float, now: datetime) -> set[str]:
        now_ts = now.timestamp()

        def op(tx: _Tx) -> set[str]:
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

    def report_progress(self, job_id: str, worker_id: str, attempt: int, update: ProgressUpdate) -> bool:
        entry = {"at": iso(update.at), "progress": update.fraction, "message": update.message}
        if update.items_processed is not None:
            entry["items_processed"] = update.items_processed

        def op(tx: _Tx) -> bool:
            cur = tx.conn.execute(Q["report_progress"], {
                **_progress_params(update), "job_id": job_id, "worker_id": worker_id, "attempt": attempt,
                "entry": dumps_json(entry), "limit": PROGRESS_HISTORY_LIMIT, "seq": tx.seq(),
            })
            return cur.rowcount == 1

        return self._transact(op)

    def _finish_all(self, tx: _Tx, attempts: Sequence[tuple[str, str, int, Outcome]], now_ts: float) -> list[bool]:
        """End attempts, each fenced by (job_id, worker_id, attempt): write the outcomes, count the jobs that
        left ``running`` (one statement for them all: see counters in schema.sql), resolve the dependants of
        those that ended. Returns which attempts were still owned."""
        if not attempts:
            return []
        seqs = tx.seqs(len(attempts))
        owned = [self._finish(tx, job_id, worker_id, attempt, outcome, now_ts, seq)
                 for (job_id, worker_id, attempt, outcome), seq in zip(attempts, seqs, strict=True)]
        if any(owned):
            self._count_moved(tx, JobStatus.RUNNING, seqs[0], seqs[-1])
        self._resolve_dependants(tx, [a[0] for a, ok in zip(attempts, owned, strict=True)
                                      if ok and a[3].status in TERMINAL_STATUSES], now_ts)
        return owned

    @classmethod
    def _count_moved(cls, tx: _Tx, old: JobStatus, first: int, last: int) -> None:
        """Every job whose last change has a seq in [first, last] just left ``old``: move it in the counters."""
        cls._count(tx, [(queue, job_type, old.value, status, n) for queue, job_type, status, n in
                        tx.conn.execute(Q["changed_by_kind"], {"first": first, "last": last})])

    @staticmethod
    def _count(tx: _Tx, moves: Iterable[tuple[str, str, str, str, int]]) -> None:
        """Keep the counters exact: each move is (queue, job_type, old status, new status, how many jobs)."""
        delta: dict[tuple[str, str, str], int] = {}
        for queue, job_type, old, new, n in moves:
            if old != new:
                delta[queue, job_type, new] = delta.get((queue, job_type, new), 0) + n
                delta[queue, job_type, old] = delta.get((queue, job_type, old), 0) - n
        tx.conn.executemany(Q["count_add"], [(q, t, s, n) for (q, t, s), n in delta.items() if n])

    def _finish(self, tx: _Tx, job_id: str, worker_id: str, attempt: int, outcome: Outcome,
                now_ts: float, seq: int) -> bool:
        error_entry = None
        if outcome.error is not None:
            error_entry = dumps_json({"attempt": attempt, "at": iso(from_ts(now_ts)), "error": outcome.error,
                                  "error_type": outcome.error_type})
        terminal = outcome.status in TERMINAL_STATUSES
        result = outcome.result
        cur = tx.conn.execute(Q["finish_job"], {
            **_progress_params(outcome.progress),
            "status": outcome.status.value,
            "result": None if outcome.status is not JobStatus.COMPLETED else "null" if result is None else
            dumps_json(result),
            "error": outcome.error, "error_type": outcome.error_type, "error_entry": error_entry,
            "error_limit": ERROR_HISTORY_LIMIT, "completed_at": now_ts if terminal else None,
            "run_at": to_ts(outcome.run_at), "execution_time": outcome.execution_time_seconds,
            "cpu_seconds": outcome.cpu_seconds, "peak_memory_mb": outcome.peak_memory_mb,
            "seq": seq, "job_id": job_id, "worker_id": worker_id, "attempt": attempt,
        })
        return cur.rowcount == 1

    def finish(self, job_id: str, worker_id: str, attempt: int, outcome: Outcome, now: datetime) -> bool:
        return self._transact(lambda tx: self._finish_all(tx, [(job_id, worker_id, attempt, outcome)],
                                                          now.timestamp())[0])

    def release(self, job_id: str, worker_id: str, attempt: int, now: datetime) -> Job | None:
        def op(tx: _Tx) -> Job | None:
            row = tx.conn.execute(Q["release_job"], {"job_id": job_id, "worker_id": worker_id,
                                                     "attempt": attempt, "seq": tx.seq()}).fetchone()
            if row is None:
                return None
            job = row_to_job(row)
            self._count(tx, [(job.queue, job.job_type, JobStatus.RUNNING.value, job.status.value, 1)])
            return job

        return self._transact(op)

    def _refuse(self, tx: _Tx, job_id: str, action: str) -> None:
        row = tx.conn.execute(Q["job_status"], {"job_id": job_id}).fetchone()
        if row is None:
            raise JobNotFoundError(job_id)
        status = JobStatus(row[0])
        if status in TERMINAL_STATUSES and action == "cancel":
            raise JobAlreadyCompletedError(job_id, status.value)
        raise InvalidTransitionError(job_id, status.value, action)

    def cancel(self, job_id: str, now: datetime, reason: str | None = None) -> Job:
        def op(tx: _Tx) -> Job:
            old = tx.conn.execute(Q["job_status"], {"job_id": job_id}).fetchone()
            row = tx.conn.execute(Q["cancel_job"], {"job_id": job_id, "now": now.timestamp(),
                                                    "reason": reason, "seq": tx.seq()}).fetchone()
            if row is None:
                self._refuse(tx, job_id, "cancel")
            job = row_to_job(row)
            self._count(tx, [(job.queue, job.job_type, old[0], job.status.value, 1)])
            self._resolve_dependants(tx, [job_id], now.timestamp())
            return job

        return self._transact(op)

    def restart(self, job_id: str, now: datetime) -> Job:
        def op(tx: _Tx) -> Job:
            old = tx.conn.execute(Q["job_status"], {"job_id": job_id}).fetchone()
            row = tx.conn.execute(Q["restart_job"], {"job_id": job_id, "seq": tx.seq(), "now": now.timestamp()}
                                  ).fetchone()
            if row is None:
                self._refuse(tx, job_id, "restart")
            job = row_to_job(row)
            self._count(tx, [(job.queue, job.job_type, old[0], job.status.value, 1)])
            return job

        return self._transact(op)

    def age_pending(self, now: datetime, interval: float, max_boost: int) -> int:
        params = {"now": now.timestamp(), "interval": interval, "max_boost": max_boost}
        with self._read() as conn:  # the common case, nothing to age, takes no write lock
            if conn.execute(Q["agable_jobs"], params).fetchone() is None:
                return 0

        def op(tx: _Tx) -> int:
            rows = tx.conn.execute(Q["agable_jobs"], params).fetchall()
            tx.conn.executemany(Q["age_job"], [{"job_id": job_id, "boost": boost, "seq": seq} for (job_id, boost), seq
                                               in zip(rows, tx.seqs(len(rows)), strict=True)])
            return len(rows)

        return self._transact(op)

    def recover_expired(self, now: datetime, backoff: Callable[[Job, datetime], Outcome]) -> list[Job]:
        now_ts = now.timestamp()
        with self._read() as conn:
            if conn.execute(Q["expired_leases"], {"now": now_ts}).fetchone() is None:
                return []

        def op(tx: _Tx) -> list[Job]:
            expired = [row_to_job(row) for row in tx.conn.execute(Q["expired_leases"], {"now": now_ts}).fetchall()]
            owned = self._finish_all(tx, [(job.job_id, job.worker_id or "", job.attempts, backoff(job, now))
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

    def list_workers(self) -> list[WorkerInfo]:
        with self._read() as conn:
            rows = conn.execute(Q["list_workers"]).fetchall()
        return [WorkerInfo(worker_id=r["worker_id"], name=r["name"], hostname=r["hostname"], pid=r["pid"],
                           queues=json.loads(r["queues"]), concurrency=r["concurrency"],
                           started_at=at_ts(r["started_at"]), last_seen=from_ts(r["last_seen"]),
                           state=r["state"], current_jobs=json.loads(r["current_jobs"])) for r in rows]

    def take_token(self, key: str, per_second: float, burst: float, now: datetime) -> float:
        now_ts = now.timestamp()

        def op(tx: _Tx) -> float:
            row = tx.conn.execute(Q["get_bucket"], {"key": key}).fetchone()
            tokens, updated_at = (burst, now_ts) if row is None else (row[0], row[1])
            tokens, wait = take_token(tokens, updated_at, now_ts, per_second, burst)
            tx.conn.execute(Q["set_bucket"], {"key": key, "tokens": tokens, "now": max(now_ts, updated_at)})
            return wait

        return self._transact(op)

    # -- schedules -----------------------------------------------------------------------------------------

    def create_schedule(self, schedule: Schedule, now: datetime) -> tuple[Schedule, Job]:
        first_fire = schedule.next_fire_at
        assert first_fire is not None, "a new schedule knows its first fire time"

        def op(tx: _Tx) -> tuple[Schedule, Job]:
            tx.conn.execute(Q["insert_schedule"], _schedule_params(schedule))
            [job] = self._insert(tx, [cron.job_for_fire(schedule, first_fire)], now)
            return schedule, job

        return self._transact(op)

    def get_schedule(self, schedule_id: str) -> Schedule | None:
        with self._read() as conn:
            row = conn.execute(Q["get_schedule"], {"schedule_id": schedule_id}).fetchone()
        return None if row is None else row_to_schedule(row)

    def list_schedules(self) -> list[Schedule]:
        with self._read() as conn:
            return [row_to_schedule(r) for r in conn.execute(Q["list_schedules"])]

    def advance_schedules(self, now: datetime) -> list[Job]:
        now_ts = now.timestamp()
        with self._read() as conn:  # the usual answer is "nothing due": no write lock for it
            if conn.execute(Q["due_schedules"], {"now": now_ts}).fetchone() is None:
                return []

        def op(tx: _Tx) -> list[Job]:
            created = []
            for row in tx.conn.execute(Q["due_schedules"], {"now": now_ts}).fetchall():
                schedule = row_to_schedule(row)
                fired = schedule.next_fire_at
                assert fired is not None
                following = cron.next_fire(schedule.cron_expression, schedule.timezone, max(now, fired))
                created += self._insert(tx, [cron.job_for_fire(schedule, following)], now)
                schedule.last_fire_at, schedule.next_fire_at = fired, following
                tx.conn.execute(Q["set_schedule_fire"], _schedule_params(schedule))
            return created

        return self._transact(op)

    def _schedule_or_raise(self, tx: _Tx, schedule_id: str) -> Schedule:
        row = tx.conn.execute(Q["get_schedule"], {"schedule_id": schedule_id}).fetchone()
        if row is None:
            raise ScheduleNotFoundError(schedule_id)
        return row_to_schedule(row)

    def _cancel_upcoming(self, tx: _Tx, schedule: Schedule, now_ts: float, reason: str) -> None:
        if schedule.next_fire_at is not None:
            key = cron.fire_key(schedule.schedule_id, schedule.generation, schedule.next_fire_at)
            moved = tx.conn.execute(Q["cancel_upcoming"], {"key": key, "now": now_ts, "reason": reason,
                                                           "seq": tx.seq()}).fetchall()
            self._count(tx, [(queue, job_type, JobStatus.SCHEDULED.value, new, 1) for queue, job_type, new in moved])

    def pause_schedule(self, schedule_id: str, now: datetime) -> Schedule:
        def op(tx: _Tx) -> Schedule:
            schedule = self._schedule_or_raise(tx, schedule_id)
            if not schedule.paused:
                self._cancel_upcoming(tx, schedule, now.timestamp(), "its schedule was paused")
                schedule.paused = True
                tx.conn.execute(Q["set_schedule_fire"], _schedule_params(schedule))
            return schedule

        return self._transact(op)

    def resume_schedule(self, schedule_id: str, now: datetime) -> Schedule:
        def op(tx: _Tx) -> Schedule:
            schedule = self._schedule_or_raise(tx, schedule_id)
            if schedule.paused:
                schedule.paused, schedule.generation = False, schedule.generation + 1
                schedule.next_fire_at = cron.next_fire(schedule.cron_expression, schedule.timezone, now)
                self._insert(tx, [cron.job_for_fire(schedule, schedule.next_fire_at)], now)
                tx.conn.execute(Q["set_schedule_fire"], _schedule_params(schedule))
            return schedule

        return self._transact(op)

    def delete_schedule(self, schedule_id: str, now: datetime) -> Schedule:
        def op(tx: _Tx) -> Schedule:
            schedule = self._schedule_or_raise(tx, schedule_id)
            self._cancel_upcoming(tx, schedule, now.timestamp(), "its schedule was deleted")
            tx.conn.execute(Q["delete_schedule"], {"schedule_id": schedule_id})
            return schedule

        return self._transact(op)

    # -- counters, retention, change feed ----------------------------------------------------------------

    def _meta(self, conn: sqlite3.Connection, key: str) -> Any:
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
                           last_cleanup=from_ts(last_cleanup), last_cleanup_removed=int(removed))

    def count_by_status(self, user_id: str) -> dict[str, int]:
        with self._read() as conn:
            return dict(conn.execute(Q["count_by_status"], {"user_id": user_id}).fetchall())

    def cleanup(self, cutoffs: dict[JobStatus, datetime], now: datetime) -> int:
        def delete_batch(status: JobStatus, cutoff: float) -> int:
            def op(tx: _Tx) -> int:
                ids = [r[0] for r in tx.conn.execute(Q["expired_terminal"], {"status": status.value,
                                                                             "cutoff": cutoff})]
                tx.conn.executemany(Q["delete_job"], [{"job_id": j} for j in ids])
                tx.conn.executemany(Q["delete_dependencies"], [{"job_id": j} for j in ids])
                return len(ids)
            return self._transact(op)

        removed = 0
        for status, cutoff in cutoffs.items():
            while True:  # in batches, so a large cleanup never holds the write lock for long
                n = delete_batch(status, cutoff.timestamp())
                removed += n
                if n < CLEANUP_BATCH:
                    break

        def record(tx: _Tx) -> None:
            tx.conn.execute(Q["meta_set"], {"key": "last_cleanup", "value": now.timestamp()})
            tx.conn.execute(Q["meta_set"], {"key": "last_cleanup_removed", "value": removed})

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
            self._checkpointer = threading.Thread(target=self._checkpoint_loop, name="jobhandle-sqlite-checkpoint",
                                                  daemon=True)
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
