"""WebSockets carrying what the SSE streams carry, for clients that prefer them (seed 003's "real-time progress
updates via WebSocket or polling").

- ``/api/v1/jobs/status/{job_id}/ws``: the job's changes, then one ``job_complete``; then the server closes
  (code 1000).
- ``/api/v1/jobs/events/ws``: every change the caller may see, for as long as the client stays.

Each message is JSON text: ``{"event": "job_update" | "job_complete", "id": <seq>, "job": {...}}``; an idle
connection gets ``{"event": "keep-alive"}`` every ``sse_keepalive_seconds``. ``?last_event_id=<seq>`` resumes
as ``Last-Event-ID`` does for SSE. The key goes in the ``Authorization: Bearer`` header or, for browsers
(which cannot set headers on a WebSocket), ``?token=<key>``; the same keys see the same jobs as over SSE. A
refused connection is accepted, told why in the API's error shape (``{"event": "error", "error":
"<ErrorType>", "message": ...}``) and closed with 4400 (bad input), 4401 (no or a wrong key), 4403 (a key
that may not do this) or 4404 (no such job).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

from fastapi import APIRouter, WebSocket, WebSocketDisconnect
from starlette.concurrency import run_in_threadpool

from ..errors import InvalidParameterError, JobHandleError, JobNotFoundError
from ..models import Job, parse_job_id
from . import sse
from .auth import Principal
from .errors import AuthenticationError, PermissionDeniedError
from .state import ApiState

router = APIRouter(prefix="/api/v1/jobs", tags=["jobs"])

CLOSE_CODES: dict[type[JobHandleError], int] = {InvalidParameterError: 4400, AuthenticationError: 4401,
                                                  PermissionDeniedError: 4403, JobNotFoundError: 4404}


def _message(job: Job | None) -> dict[str, Any]:
    if job is None:
        return {"event": "keep-alive"}
    return {"event": "job_complete" if job.is_terminal else "job_update", "id": job.seq, "job": job.to_dict()}


def _principal(websocket: WebSocket, state: ApiState) -> Principal:
    header = websocket.headers.get("authorization")
    token = websocket.query_params.get("token")
    principal = state.auth.principal(header if header or not token else f"Bearer {token}")
    principal.require_may_act("GET")
    return principal


def _resume_after(websocket: WebSocket) -> int | None:
    return sse.last_event_id(websocket.query_params.get("last_event_id"))


async def _refuse(websocket: WebSocket, exc: JobHandleError) -> None:
    code = next((c for kind, c in CLOSE_CODES.items() if isinstance(exc, kind)), 4400)
    await websocket.send_json({"event": "error", "error": type(exc).__name__, "message": exc.message})
    await websocket.close(code)


async def _send_all(websocket: WebSocket, changes: AsyncIterator[Job | None]) -> None:
    """Send every change until they end, or until the client goes (a receive that ends with the connection
    notices it even while no change comes)."""

    async def send() -> None:
        async for job in changes:
            await websocket.send_json(_message(job))
        await websocket.close(1000)

    async def until_gone() -> None:
        while True:
            message = await websocket.receive()
            if message["type"] == "websocket.disconnect":
                return

    sender, watcher = asyncio.create_task(send()), asyncio.create_task(until_gone())
    try:
        await asyncio.wait({sender, watcher}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in (sender, watcher):
            task.cancel()
        for task in (sender, watcher):  # a send to a client that just left fails: that is how it ends
            with contextlib.suppress(asyncio.CancelledError, WebSocketDisconnect, RuntimeError):
                await task


@router.websocket("/status/{job_id}/ws")
async def job_socket(websocket: WebSocket, job_id: str) -> None:
    state: ApiState = websocket.app.state.jobhandle
    await websocket.accept()
    try:
        principal = _principal(websocket, state)
        resume_after = _resume_after(websocket)
        canonical = parse_job_id(job_id)
        sub = state.hub.subscribe(job_id=canonical)  # before the read: no change is missed
    except JobHandleError as exc:
        await _refuse(websocket, exc)
        return
    try:
        try:
            job = await run_in_threadpool(state.visible_job, principal, canonical)
        except JobHandleError as exc:
            await _refuse(websocket, exc)
            return
        if job.is_terminal and resume_after is not None and job.seq <= resume_after:
            await websocket.close(1000)  # resumed after the job had ended: nothing to send
            return
        changes = sse.job_changes(sub, job, resume_after, lambda: state.visible_job(principal, canonical),
                                  state.settings.sse_keepalive_seconds)
        await _send_all(websocket, changes)
    finally:
        state.hub.unsubscribe(sub)


@router.websocket("/events/ws")
async def events_socket(websocket: WebSocket) -> None:
    state: ApiState = websocket.app.state.jobhandle
    await websocket.accept()
    try:
        principal = _principal(websocket, state)
        resume_after = _resume_after(websocket)
    except JobHandleError as exc:
        await _refuse(websocket, exc)
        return
    sub = state.hub.subscribe(user_id=None if principal.admin else principal.user_id)
    try:
        changes = sse.feed_changes(state.hub, sub, state.queue.store, resume_after,
                                   state.settings.sse_keepalive_seconds)
        await _send_all(websocket, changes)
    finally:
        state.hub.unsubscribe(sub)
