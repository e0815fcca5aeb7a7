"""Inserting new jobs into the SQLite store (Store.submit, and the jobs of schedule fires)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from ...models import INITIAL_STATUSES, Job, JobStatus, dumps_json, to_ts
from .codec import row_to_job
from .commit import Tx
from .deps import apply_dependencies
from .sql import Q

_ALL_NULL = (None,) * 8
"""The optional columns of insert_job (its last eight) of a job that has none of them: see insert_plain_job."""


def insert(tx: Tx, jobs: Sequence[Job], now: datetime) -> list[Job]:
    """Insert new jobs (see ``Store.submit``); part of the caller's transaction. Returns the same Job objects,
    with the fields the store decides (status, created_at, seq) set: nothing is read back."""
    now_ts = now.timestamp()
    out: list[Job] = []
    plain_rows: list[tuple[Any, ...]] = []
    rows: list[tuple[Any, ...]] = []
    dependency_rows: list[tuple[str, str, str]] = []
    inserted: dict[tuple[str, str, str], int] = {}  # (queue, job_type, status) -> jobs, for the counters
    by_key: dict[tuple[str, str], Job] = {}  # (user, idempotency key) met earlier in this same batch
    in_batch: dict[str, JobStatus] = {}  # parents may come earlier in the same batch
    for job, seq in zip(jobs, tx.seqs(len(jobs)), strict=True):
        if job.idempotency_key is not None:
            key = (job.user_id, job.idempotency_key)
            if key in by_key:
                out.append(by_key[key])
                continue
            existing = tx.conn.execute(Q["job_by_idempotency_key"], {"user_id": job.user_id,
                                                                     "key": job.idempotency_key}).fetchone()
            if existing is not None:
                out.append(row_to_job(existing))
                continue
            by_key[key] = job
        run_at = to_ts(job.run_at)
        job.status = JobStatus.SCHEDULED if run_at is not None and run_at > now_ts else JobStatus.PENDING
        job.created_at = now
        job.seq = seq
        depends_on = "[]"
        if job.depends_on:
            apply_dependencies(tx, job, in_batch, now)
            dependency_rows += [(d.job_id, job.job_id, d.condition) for d in job.depends_on]  # both ways
            depends_on = dumps_json([{"job_id": d.job_id, "condition": d.condition} for d in job.depends_on])
        if job.status not in INITIAL_STATUSES:
            raise RuntimeError(f"a new job cannot be {job.status.value}")
        status = job.status.value
        in_batch[job.job_id] = job.status
        kind = (job.queue, job.job_type, status)
        inserted[kind] = inserted.get(kind, 0) + 1
        tx.tally.moved(job.job_type, None, status, 1, now_ts)  # counted if it ends at once (a parent failed)
        if job.status is JobStatus.PENDING:
            tx.pend(job.queue, job.priority, job.user_id, 1)
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
