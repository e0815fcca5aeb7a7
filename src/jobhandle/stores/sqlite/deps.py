"""Dependencies in the SQLite store: a new job's status from its parents', and dependants released or
cancelled when their parents end (models.dependency_met decides each dependency)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from ...errors import InvalidParameterError
from ...models import Job, JobStatus, dependency_met, dumps_json
from .commit import Tx
from .sql import Q


def unmet(parent_id: str, status: JobStatus | None, condition: str) -> str:
    ended = "no longer exists" if status is None else f"ended {status.value}"
    return f"dependency {parent_id} {ended}; this job needed its {condition}"


def apply_dependencies(tx: Tx, job: Job, in_batch: dict[str, JobStatus], now: datetime) -> None:
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
            job.error, job.error_type = unmet(dep.job_id, status, dep.condition), "DependencyFailedError"
            return
        undecided = undecided or met is None
    if undecided:
        job.status = JobStatus.WAITING


def resolve_dependants(tx: Tx, parent_ids: Sequence[str], now_ts: float) -> None:
    """Jobs just finished: release their waiting dependants whose parents are all met, cancel those one of
    whose parents can no longer be met, and so on down the chain (a cancelled dependant is a parent too)."""
    if not parent_ids:
        return
    todo = [p for (p,) in tx.conn.execute(Q["parents_with_waiting_dependants"],
                                          {"ids": dumps_json(list(parent_ids))})]
    while todo:
        parent = todo.pop()
        for (child,) in tx.conn.execute(Q["waiting_dependants"], {"parent_id": parent}).fetchall():
            problem, undecided = None, False
            for dep_parent, condition, status in tx.conn.execute(Q["dependencies_of"], {"job_id": child}):
                met = False if status is None else dependency_met(condition, JobStatus(status))
                if met is False:
                    problem = unmet(dep_parent, None if status is None else JobStatus(status), condition)
                    break
                undecided = undecided or met is None
            if problem is not None:
                moved = tx.conn.execute(Q["cancel_waiting"], {"job_id": child, "now": now_ts, "error": problem,
                                                              "seq": tx.seq()}).fetchall()
                todo.append(child)
                tx.count(((queue, job_type, JobStatus.WAITING.value, new, 1) for queue, job_type, new in moved),
                         now_ts)
            elif not undecided:
                for queue, job_type, new, user_id, level in tx.conn.execute(
                        Q["release_waiting"], {"job_id": child, "now": now_ts, "seq": tx.seq()}).fetchall():
                    tx.count([(queue, job_type, JobStatus.WAITING.value, new, 1)], now_ts)
                    if new == JobStatus.PENDING.value:
                        tx.pend(queue, level, user_id, 1)
