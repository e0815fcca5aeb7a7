"""Server-Sent Event streams and the long-poll, all fed by the change hub (see events.py).

Wire format: each change is ``event: job_update`` (``job_complete`` once the job is completed, failed or
cancelled) with ``id: <seq>`` (the job's change number) and the job as JSON in ``data``. Idle streams get a
``: keep-alive`` comment every ``sse_keepalive_seconds``. A client that reconnects with ``Last-Event-ID``
resumes: a job stream sends the job's current state only if it changed after that id (and answers 204, which
tells EventSource to stop reconnecting, when the job had already ended by then); the all-jobs stream replays
every change after that id from the store first.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from typing import Any

from fastapi.sse import EventSourceResponse, format_sse_event
from starlette.concurrency import run_in_threadpool
from starlette.types import Receive, Scope, Send

from ..errors import InvalidParameterError
from ..models import Job, JobStatus, dumps_json
from ..stores import Store
from .events import FEED_BATCH, ChangeHub, Subscription

KEEPALIVE = b": keep-alive\n\n"
RETRY_MS = 3000
"""Reconnection delay suggested to EventSource clients."""


def job_event(job: Job) -> bytes:
    name = "job_complete" if job.is_terminal else "job_update"
    return format_sse_event(data_str=dumps_json(job.to_dict()), event=name, id=str(job.seq))


def last_event_id(header: str | None) -> int | None:
    """The ``Last-Event-ID`` header as a change number (None when absent; 400 when not one of ours)."""
    if header is None or not header.strip():
        return None
    text = header.strip()
    if not text.isdigit() or len(text) > 18:
        raise InvalidParameterError(f"Last-Event-ID must be an event id this API sent, not {header!r}")
    return int(text)


async def next_change(sub: Subscription, timeout: float) -> Job | None:
    """The subscription's next change, or None after ``timeout`` seconds without one."""
    try:
        return await asyncio.wait_for(sub.queue.get(), timeout)
    except TimeoutError:
        return None


def drain(sub: Subscription) -> None:
    """Forget what an overflowed subscription holds; its owner resyncs from the store instead."""
    sub.overflowed = False
    while not sub.queue.empty():
        sub.queue.get_nowait()


class SubscribedStream(EventSourceResponse):
    """An SSE response that ends its hub subscription when the response ends, however it ends: a client that
    leaves at once may end the response before the stream's generator ever started (and so ran no cleanup)."""

    def __init__(self, content: AsyncIterator[bytes], hub: ChangeHub, sub: Subscription) -> None:
        super().__init__(content, headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})
        self.hub = hub
        self.sub = sub

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            self.hub.unsubscribe(self.sub)


async def job_changes(sub: Subscription, first: Job, resume_after: int | None, read: Callable[[], Job],
                      keepalive: float) -> AsyncIterator[Job | None]:
    """One job's changes until it ends (None: ``keepalive`` seconds passed without one). ``sub`` was subscribed
    before ``first`` was read. The SSE stream and the WebSocket both send these."""
    sent = -1 if resume_after is None else resume_after
    job: Job | None = first
    while True:
        if job is not None and job.seq > sent:
            sent = job.seq
            yield job
            if job.is_terminal:
                return
        if sub.overflowed:
            drain(sub)
            job = await run_in_threadpool(read)
            continue
        job = await next_change(sub, keepalive)
        if job is None:
            yield None


async def feed_changes(hub: ChangeHub, sub: Subscription, store: Store, resume_after: int | None,
                       keepalive: float) -> AsyncIterator[Job | None]:
    """Every change ``sub`` may see, for as long as the client stays; replays after ``resume_after`` first
    (None: ``keepalive`` seconds passed without a change)."""

    async def replay(after: int) -> AsyncIterator[Job]:
        while True:
            batch = await run_in_threadpool(store.changes_since, after, FEED_BATCH)
            for job in batch:
                if sub.matches(job):
                    yield job
            if len(batch) < FEED_BATCH:
                return
            after = batch[-1].seq

    sent = hub.last_seq if resume_after is None else resume_after  # live changes from here on
    replay_from = resume_after
    while True:
        if sub.overflowed:  # too slow to keep up live: catch up from the store, then go on live
            drain(sub)
            replay_from = sent
        if replay_from is not None:
            async for old in replay(replay_from):
                sent = old.seq
                yield old
            replay_from = None
            continue
        job = await next_change(sub, keepalive)
        if job is None:
            yield None
        elif job.seq > sent:
            sent = job.seq
            yield job


async def as_sse(changes: AsyncIterator[Job | None]) -> AsyncIterator[bytes]:
    """The SSE wire format of ``changes``: the retry hint, then an event per change, a comment per idle spell."""
    yield format_sse_event(retry=RETRY_MS)
    async for job in changes:
        yield KEEPALIVE if job is None else job_event(job)


async def poll(sub: Subscription, first: Job, current_status: JobStatus | None, since: int, timeout: float,
               read: Callable[[], Job]) -> dict[str, Any]:
    """Long-poll: the job as soon as its status differs from ``current_status`` (without one: as soon as the
    job changes after feed position ``since``), else after ``timeout`` seconds with ``changed: false``.

    ``since`` is the store's last change number, read after subscribing and before reading ``first``: a change
    committed between subscribing and reading is in ``first`` already, and is still the change the client asked
    to wait for; one committed before the request is not.
    """

    def differs(job: Job) -> bool:
        return job.status is not current_status if current_status is not None else job.seq > since

    job: Job = first
    if differs(job):
        return {**job.to_dict(), "changed": True}
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while (remaining := deadline - loop.time()) > 0:
        if sub.overflowed:
            drain(sub)
            change: Job | None = await run_in_threadpool(read)
        else:
            change = await next_change(sub, remaining)
        if change is None:
            break
        if change.seq > job.seq:
            job = change
            if differs(job):
                return {**job.to_dict(), "changed": True}
    return {**job.to_dict(), "changed": False}
