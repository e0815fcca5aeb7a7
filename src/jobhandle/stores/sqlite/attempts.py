"""Running jobs in the SQLite store: progress, the end of an attempt, hand-back and lease recovery, each
fenced by (job_id, worker_id, attempt)."""

from __future__ import annotations

from collections.abc import Sequence

from ...models import (
    ERROR_HISTORY_LIMIT,
    PROGRESS_HISTORY_LIMIT,
    TERMINAL_STATUSES,
    Job,
    JobStatus,
    check_finish,
    dumps_json,
    from_ts,
    to_ts,
)
from ..base import AttemptKey, Outcome, ProgressUpdate, error_entry, history_entry
from .codec import progress_params, row_to_job
from .commit import Tx
from .deps import resolve_dependants
from .sql import Q

RUNNING, COMPLETED = JobStatus.RUNNING.value, JobStatus.COMPLETED.value
Attempt = tuple[str, str, int, Outcome]
"""(job_id, worker_id, attempt, how it ended)."""


def report_progress(tx: Tx, key: AttemptKey, update: ProgressUpdate) -> bool:
    cur = tx.conn.execute(Q["report_progress"], {
        **progress_params(update), "job_id": key.job_id, "worker_id": key.worker_id, "attempt": key.attempt,
        "entry": history_entry(update), "limit": PROGRESS_HISTORY_LIMIT, "seq": tx.seq(),
    })
    return cur.rowcount == 1


def finish_all(tx: Tx, attempts: Sequence[Attempt], now_ts: float) -> list[bool]:
    """End attempts, each fenced by (job_id, worker_id, attempt): write the outcomes, count the jobs that
    left ``running`` (one statement for them all), resolve the dependants of those that ended. Returns which
    attempts were still owned."""
    if not attempts:
        return []
    for attempt in attempts:
        check_finish(attempt[3].status)
    seqs = tx.seqs(len(attempts))
    owned = [_finish(tx, job_id, worker_id, attempt, outcome, now_ts, seq)
             for (job_id, worker_id, attempt, outcome), seq in zip(attempts, seqs, strict=True)]
    if any(owned):
        ended = tx.conn.execute(Q["ended_by_seq"], {"first": seqs[0], "last": seqs[-1]}).fetchall()
        tx.count([(queue, job_type, RUNNING, status, 1) for queue, job_type, status, _, _ in ended], now_ts)
        for _, job_type, status, ran, error_type in ended:
            tx.tally.ended(job_type, ran, error_type, status != COMPLETED, now_ts)
    resolve_dependants(tx, [a[0] for a, ok in zip(attempts, owned, strict=True)
                            if ok and a[3].status in TERMINAL_STATUSES], now_ts)
    return owned


def _finish(tx: Tx, job_id: str, worker_id: str, attempt: int, outcome: Outcome, now_ts: float, seq: int) -> bool:
    entry = error_entry(attempt, worker_id, outcome, from_ts(now_ts))
    terminal = outcome.status in TERMINAL_STATUSES
    result = outcome.result
    progress = progress_params(outcome.progress)
    if outcome.started_at is not None:
        progress["started_at"] = outcome.started_at.timestamp()
    cur = tx.conn.execute(Q["finish_job"], {
        **progress,
        "status": outcome.status.value,
        "result": None if outcome.status is not JobStatus.COMPLETED else "null" if result is None else
        dumps_json(result),
        "error": outcome.error, "error_type": outcome.error_type, "error_entry": entry,
        "entry": history_entry(outcome.progress), "limit": PROGRESS_HISTORY_LIMIT,
        "error_limit": ERROR_HISTORY_LIMIT, "completed_at": now_ts if terminal else None,
        "run_at": to_ts(outcome.run_at), "execution_time": outcome.execution_time_seconds,
        "cpu_seconds": outcome.cpu_seconds, "peak_memory_mb": outcome.peak_memory_mb,
        "seq": seq, "job_id": job_id, "worker_id": worker_id, "attempt": attempt,
    })
    return cur.rowcount == 1


def release(tx: Tx, key: AttemptKey, now_ts: float) -> Job | None:
    """A running job handed back: pending again, its attempt not counted."""
    row = tx.conn.execute(Q["release_job"], {"job_id": key.job_id, "worker_id": key.worker_id,
                                             "attempt": key.attempt, "seq": tx.seq()}).fetchone()
    if row is None:
        return None
    job = row_to_job(row)
    tx.count([(job.queue, job.job_type, JobStatus.RUNNING.value, job.status.value, 1)], now_ts)
    tx.pend(job.queue, job.priority + job.priority_boost, job.user_id, 1)
    return job
