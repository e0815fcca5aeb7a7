"""The dashboard's event stream: of all the changes the hub hands it, only what the open page shows.

A page says what it shows (``/ui/events?watch=<ids>&new=1&failures=1``): the jobs on it, whether new jobs may
join it, whether failures raise a notice there. The stream sends ``job_update``/``job_complete`` for those
jobs (a new job it sent is watched from then on) and, at most once a second while anything changes, a
``changed`` event (the overview refreshes its shared snapshot on it). So a store with a million jobs, whose
maintenance changes thousands of them a minute (priority aging), costs an open page the changes it shows,
not every change: each filtered on the server, in the hub's fan-out, nothing re-read from the store.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

from fastapi.sse import format_sse_event

from ..api.events import Subscription
from ..api.sse import KEEPALIVE, RETRY_MS, drain, job_event, next_change
from ..models import Job, JobStatus

CHANGED_EVERY_SECONDS = 1.0
"""The ``changed`` event is sent at most this often."""
WATCH_LIMIT = 1000
"""Jobs one stream watches at most (a page shows at most 200; new jobs it was sent join them)."""


@dataclass(slots=True)
class Interest:
    """What one open page shows."""

    watch: set[str] = field(default_factory=set)
    new: bool = False
    failures: bool = False
    opened_at: float = field(default_factory=time.time)
    """New jobs are the ones created after this (Unix time): when the page was rendered, which it says."""

    def wants(self, job: Job) -> bool:
        if job.job_id in self.watch:
            return True
        if self.failures and job.status is JobStatus.FAILED:
            return True
        # Created since the page opened, whatever its status by now (the feed hands over a job's latest state:
        # one that started at once is first seen running).
        if self.new and job.created_at.timestamp() > self.opened_at:
            if len(self.watch) < WATCH_LIMIT:
                self.watch.add(job.job_id)  # its later changes are the page's too
            return True
        return False


def parse_watch(text: str | None) -> set[str]:
    """``watch=<id>,<id>...``: job ids (anything else is ignored: nothing would match it)."""
    ids = [part.strip().lower() for part in (text or "").split(",") if part.strip()]
    return set(ids[:WATCH_LIMIT])


async def page_stream(sub: Subscription, interest: Interest, keepalive: float) -> AsyncIterator[bytes]:
    """The events of one open page; see the module docstring."""
    yield format_sse_event(retry=RETRY_MS)
    changed_at = 0.0
    pending_change = False
    while True:
        if sub.overflowed:  # too slow to keep up: the page re-reads what it shows
            drain(sub)
            yield format_sse_event(data_str="{}", event="resync")
            continue
        timeout = keepalive if not pending_change else max(0.0, changed_at + CHANGED_EVERY_SECONDS - time.monotonic())
        job = await next_change(sub, timeout)
        now = time.monotonic()
        if job is not None:
            pending_change = True
            if interest.wants(job):
                yield job_event(job)
        elif not pending_change:
            yield KEEPALIVE
        if pending_change and now - changed_at >= CHANGED_EVERY_SECONDS:
            changed_at, pending_change = now, False
            yield format_sse_event(data_str="{}", event="changed")
