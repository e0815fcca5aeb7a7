"""Failed jobs grouped by what went wrong: job type, error type and the error's message with its numbers,
ids and quoted values masked, so "timed out after 3.2 s" and "timed out after 4.1 s" are one group."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime

from ..api.auth import Principal
from ..models import Job, JobStatus
from ..queue import JobQueue

SCAN_LIMIT = 5000
"""Most recent failures the grouping reads (the page says when there are more)."""

_MASKS = [
    (re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}", re.I), "<id>"),
    (re.compile(r"0x[0-9a-f]+", re.I), "<hex>"),
    (re.compile(r"'[^']*'|\"[^\"]*\""), "'…'"),
    (re.compile(r"\d+(?:\.\d+)?"), "<n>"),
]


def signature(error: str | None) -> str:
    """The error's first line with its variable parts masked."""
    text = (error or "").strip().splitlines()[0] if (error or "").strip() else ""
    for pattern, mask in _MASKS:
        text = pattern.sub(mask, text)
    return text[:300]


@dataclass(slots=True)
class FailureGroup:
    job_type: str
    error_type: str
    message: str
    count: int = 0
    first_seen: datetime | None = None
    last_seen: datetime | None = None
    sample: Job | None = None
    job_ids: list[str] = field(default_factory=list)


def failed_jobs(queue: JobQueue, principal: Principal) -> list[Job]:
    """The newest SCAN_LIMIT failed jobs (by submission: the order both stores index)."""
    return queue.list([JobStatus.FAILED.value], user_id=principal.scope(None), sort="-created_at",
                      limit=SCAN_LIMIT)


def group_failures(jobs: list[Job]) -> list[FailureGroup]:
    """Groups, the largest first; each with its newest failure as the sample."""
    groups: dict[tuple[str, str, str], FailureGroup] = {}
    for job in jobs:
        key = (job.job_type, job.error_type or "", signature(job.error))
        group = groups.get(key)
        if group is None:
            group = groups[key] = FailureGroup(*key, sample=job)
        group.count += 1
        group.job_ids.append(job.job_id)
        when = job.completed_at
        if when is not None:
            group.first_seen = when if group.first_seen is None else min(group.first_seen, when)
            group.last_seen = when if group.last_seen is None else max(group.last_seen, when)
    return sorted(groups.values(), key=lambda g: (-g.count, g.job_type, g.message))
