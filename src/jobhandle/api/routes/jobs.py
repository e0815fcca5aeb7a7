"""``/api/v1/jobs``: submit, list, status, long-poll, SSE, stats, cancel and restart (docs/api.md)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Header, Path, Query, Response
from starlette.concurrency import run_in_threadpool

from ...errors import InvalidParameterError, JobHandleError
from ...models import CANCELLABLE, Job, JobPriority, JobStatus, parse_job_id, parse_key_value, utcnow
from ...queue import JobQueue
from ...stores.base import JobPosition
from .. import pagination, sse
from ..auth import Principal, authenticate
from ..schemas import (
    ERROR_RESPONSES,
    PRIORITY_RANGE,
    ActionOut,
    BatchOut,
    BatchSubmitRequest,
    BulkCancelOut,
    BulkCancelRequest,
    DateTimeIn,
    Document,
    JobListOut,
    JobOptions,
    JobOut,
    NotCancelled,
    PolledJobOut,
    StatsOut,
    SubmitRequest,
)
from ..state import ApiState, Caller, State, utc

router = APIRouter(prefix="/api/v1/jobs", tags=["jobs"], responses=ERROR_RESPONSES,
                   dependencies=[Depends(authenticate)])

CANCELLED_MESSAGE = "Job cancelled successfully"
RESTARTED_MESSAGE = "Job restarted and re-queued"
BULK_CANCEL_LIMIT = 1000
"""Jobs one bulk cancel by filter cancels at most (``truncated`` says when more matched)."""

JobId = Annotated[str, Path(description="The job's id (a UUID)", json_schema_extra={"format": "uuid"})]


# -- submitting ----------------------------------------------------------------------------------------------

def check_priority(value: int | str | None) -> int | None:
    if value is None:
        return None
    priority = JobPriority.parse(value)
    if not -PRIORITY_RANGE <= priority < PRIORITY_RANGE:
        raise InvalidParameterError(f"priority must lie in [-2**31, 2**31), not {priority}")
    return priority


def _options(principal: Principal, body: JobOptions, state: ApiState) -> dict[str, Any]:
    """A submit body's options as ``JobQueue.submit`` keywords, owner and dependencies checked for the caller."""
    depends_on = None
    if body.depends_on is not None:
        depends_on = [d if isinstance(d, str) else d.model_dump() for d in body.depends_on]
        if not principal.admin:  # another user's job must not be usable (or detectable) as a parent
            for dep in depends_on:
                parent = dep if isinstance(dep, str) else dep["job_id"]
                try:
                    state.visible_job(principal, parent)
                except JobHandleError:
                    raise InvalidParameterError(f"depends_on names job {parent}, which does not exist",
                                                job_id=parent) from None
    return {
        "priority": check_priority(body.priority), "user_id": principal.owner_for_submit(body.user_id),
        "queue": body.queue, "scheduled_time": utc(body.scheduled_time, "scheduled_time"),
        "delay_seconds": body.delay_seconds, "max_retries": body.max_retries, "retry_delay": body.retry_delay,
        "timeout_seconds": body.timeout_seconds, "depends_on": depends_on, "idempotency_key": body.idempotency_key,
    }


def submit_job(state: ApiState, principal: Principal, job_type: str, body: JobOptions) -> Job:
    """Submit one job for the caller (shared with the extraction alias)."""
    options = _options(principal, body, state)
    if body.cron_expression is not None:
        for name in ("scheduled_time", "delay_seconds", "depends_on", "idempotency_key"):
            if options[name] is None:
                del options[name]
        job = state.queue.submit(job_type, body.parameters, cron_expression=body.cron_expression, **options)
    else:
        job = state.queue.submit(job_type, body.parameters, **options)
    return job


@router.post("", status_code=201, response_model=JobOut, summary="Submit a job")
def submit(body: SubmitRequest, state: State, principal: Caller) -> Document:
    """Submit one job; 201 with the job as stored (pending, scheduled or waiting for its dependencies).

    With ``cron_expression`` a recurring schedule is created and the job of its first fire is returned
    (it carries ``schedule_id``)."""
    return Document(submit_job(state, principal, body.job_type, body).to_dict(), status_code=201)


@router.post("/batch", status_code=201, response_model=BatchOut, summary="Submit many jobs at once")
def submit_batch(body: BatchSubmitRequest, state: State, principal: Caller) -> Document:
    """Submit up to 1000 jobs in one atomic step: all are stored, or (on bad input) none."""
    specs = []
    for index, item in enumerate(body.jobs):
        if item.cron_expression is not None:
            raise InvalidParameterError(f"job {index}: cron_expression is not accepted in a batch; "
                                        "create schedules with POST /api/v1/schedules")
        try:
            options = _options(principal, item, state)
        except InvalidParameterError as exc:
            raise InvalidParameterError(f"job {index}: {exc.message}", **exc.context) from None
        specs.append({"job_type": item.job_type, "parameters": item.parameters,
                      **{k: v for k, v in options.items() if v is not None}})
    jobs = state.queue.submit_many(specs)
    return Document({"jobs": [job.to_dict() for job in jobs]}, status_code=201)


# -- reading -------------------------------------------------------------------------------------------------

def parse_statuses(values: list[str] | None) -> list[str] | None:
    """``?status=a&status=b`` and ``?status=a,b`` alike; names in any case (``processing`` is running)."""
    if not values:
        return None
    parts = [part.strip() for value in values for part in value.split(",")]
    if not all(parts):
        raise InvalidParameterError(f"status has an empty value in {values!r}; name statuses, e.g. "
                                    "status=pending,running")
    return sorted({JobStatus.parse(part).value for part in parts})


@router.get("", response_model=JobListOut, summary="List jobs")
def list_jobs(
    state: State, principal: Caller,
    status: Annotated[list[str] | None, Query(description="Repeatable, or comma-separated")] = None,
    job_type: str | None = None,
    user_id: Annotated[str | None, Query(description="Admins only; a user key always lists its own")] = None,
    queue: str | None = None,
    q: Annotated[str | None, Query(description="The start of a job id or of a user id")] = None,
    error: Annotated[str | None, Query(description="Text in the job's error message (any case)")] = None,
    param: Annotated[list[str] | None, Query(
        description="Repeatable KEY=VALUE: a top-level parameter equal to VALUE (JSON when it parses, else a "
                    "string: customer=42, name=report.pdf)")] = None,
    created_after: DateTimeIn | None = None,
    created_before: DateTimeIn | None = None,
    sort: Annotated[str, Query(description="created_at, status, progress, priority, started_at or "
                                           "completed_at; prefix - for descending")] = "-created_at",
    limit: Annotated[int, Query(ge=1, le=1000)] = 50,
    cursor: Annotated[str | None, Query(description="next_cursor of the previous page")] = None,
) -> Document:
    """Jobs matching every filter given, newest first by default, a page at a time (``next_cursor``).
    ``error`` and ``param`` are served by no index: they are checked on at most 50,000 of the jobs the other
    filters select, and a list that would check more without filling its page is a 400 saying how to narrow."""
    jobs, next_cursor = list_page(state, principal, JobFilter(
        statuses=parse_statuses(status), job_type=job_type, user_id=user_id, queue=queue, q=q,
        error=error or None, parameters=dict(parse_key_value(p, "param") for p in param or ()) or None,
        created_after=utc(created_after, "created_after"), created_before=utc(created_before, "created_before"),
        sort=sort), limit, cursor)
    return Document({"jobs": [job.to_dict() for job in jobs], "next_cursor": next_cursor})


@dataclass(frozen=True, slots=True)
class JobFilter:
    """What a job list asks for (the API's list and the dashboard's)."""

    statuses: list[str] | None = None
    job_type: str | None = None
    user_id: str | None = None
    queue: str | None = None
    q: str | None = None
    created_after: datetime | None = None
    created_before: datetime | None = None
    sort: str = "-created_at"
    error: str | None = None
    parameters: dict[str, Any] | None = None


def list_page(state: ApiState, principal: Principal, f: JobFilter, limit: int,
              cursor: str | None) -> tuple[list[Job], str | None]:
    """One page of the jobs ``f`` matches that ``principal`` may see, and the cursor of the next (or None)."""
    if not principal.admin and f.user_id not in (None, principal.user_id):
        return [], None
    owner = principal.scope(f.user_id)
    filters: dict[str, Any] = {
        "status": f.statuses, "job_type": f.job_type, "user_id": owner, "queue": f.queue, "q": f.q,
        "created_after": f.created_after, "created_before": f.created_before, "sort": f.sort}
    filters.update({k: v for k, v in (("error", f.error), ("parameters", f.parameters)) if v})
    page = pagination.decode(cursor, filters) if cursor else pagination.Cursor(0, utcnow())
    bound = page.as_of if f.created_before is None else min(f.created_before, page.as_of)
    keyset = f.sort.removeprefix("-") == "created_at"
    jobs = state.queue.list(f.statuses, job_type=f.job_type, user_id=owner, queue=f.queue, search=f.q,
                            created_after=f.created_after, created_before=bound, sort=f.sort, limit=limit + 1,
                            offset=0 if keyset else page.offset, after=page.after if keyset else None,
                            error_contains=f.error, parameters=f.parameters)
    next_cursor = None
    if len(jobs) > limit:
        jobs = jobs[:limit]
        last = jobs[-1]
        following = (pagination.Cursor(0, page.as_of, JobPosition(last.created_at, last.job_id)) if keyset
                     else pagination.Cursor(page.offset + limit, page.as_of))
        next_cursor = pagination.encode(following, filters)
    return jobs, next_cursor


@router.get("/status/{job_id}", response_model=JobOut, summary="Get a job's status")
async def job_status(job_id: JobId, state: State, principal: Caller) -> Document:
    """The job with every field: status, progress, times, error, result, metrics."""
    # The most frequent request there is: its read goes to a thread with the others waiting meanwhile (offload.py).
    job = await state.reads.run(state.visible_job, principal, job_id)
    return Document(job.to_dict())


async def _subscribe_and_read(state: ApiState, principal: Principal, job_id: str) -> tuple[sse.Subscription, Job]:
    """Subscribe to a job's changes, then read it (in that order, so no change is missed)."""
    canonical = parse_job_id(job_id)  # the hub knows jobs by their canonical id
    sub = state.hub.subscribe(job_id=canonical)
    try:
        return sub, await run_in_threadpool(state.visible_job, principal, canonical)
    except BaseException:
        state.hub.unsubscribe(sub)
        raise


@router.get("/status/{job_id}/poll", response_model=PolledJobOut, summary="Long-poll a job's status")
async def poll_status(
    job_id: JobId, state: State, principal: Caller,
    current_status: Annotated[str | None, Query(description="The status you know; returns once it differs")]
    = None,
    timeout: Annotated[float, Query(ge=0, description="Seconds to wait at most (capped by the server, "
                                                      "default cap 120)")] = 30.0,
) -> Document:
    """Wait until the job's status differs from ``current_status`` (at once if it already does) or, without
    ``current_status``, until the job changes at all; after ``timeout`` seconds answer with ``changed:
    false``. Driven by store events, not by re-reading the job."""
    known = JobStatus.parse(current_status) if current_status else None
    canonical = parse_job_id(job_id)
    sub = state.hub.subscribe(job_id=canonical)
    try:
        since, job = await run_in_threadpool(lambda: (state.queue.store.last_seq(),
                                                      state.visible_job(principal, canonical)))
        return Document(await sse.poll(sub, job, known, since, min(timeout, state.settings.poll_timeout_max),
                                       lambda: state.visible_job(principal, canonical)))
    finally:
        state.hub.unsubscribe(sub)


@router.get("/status/{job_id}/stream", response_class=Response, summary="Stream a job's changes (SSE)",
            responses={200: {"content": {"text/event-stream": {}},
                             "description": "job_update events, then one job_complete; the stream then ends"},
                       204: {"description": "Resumed (Last-Event-ID) after the job had ended: nothing to send"}})
async def stream_status(job_id: JobId, state: State, principal: Caller,
                        last_event_id: Annotated[str | None, Header()] = None) -> Response:
    """Server-Sent Events: ``job_update`` on each change of the job, then one ``job_complete`` (completed,
    failed or cancelled, with the result or error), then the stream ends."""
    resume_after = sse.last_event_id(last_event_id)
    sub, job = await _subscribe_and_read(state, principal, job_id)
    if job.is_terminal and resume_after is not None and job.seq <= resume_after:
        state.hub.unsubscribe(sub)
        return Response(status_code=204)
    changes = sse.job_changes(sub, job, resume_after, lambda: state.visible_job(principal, job.job_id),
                              state.settings.sse_keepalive_seconds)
    return sse.SubscribedStream(sse.as_sse(changes), state.hub, sub)


@router.get("/events", response_class=Response, summary="Stream every job change you may see (SSE)",
            responses={200: {"content": {"text/event-stream": {}},
                             "description": "job_update / job_complete events, for as long as the client stays"}})
async def events(state: State, principal: Caller,
                 last_event_id: Annotated[str | None, Header()] = None) -> Response:
    """Server-Sent Events for every job change visible to the caller (a user key: its own jobs), for as long
    as the client stays. With ``Last-Event-ID`` the changes after that id are replayed first."""
    resume_after = sse.last_event_id(last_event_id)
    sub = state.hub.subscribe(user_id=None if principal.admin else principal.user_id)
    changes = sse.feed_changes(state.hub, sub, state.queue.store, resume_after,
                               state.settings.sse_keepalive_seconds)
    return sse.SubscribedStream(sse.as_sse(changes), state.hub, sub)


def user_stats(queue: JobQueue, user_id: str) -> dict[str, Any]:
    """``JobQueue.stats`` with the job counts of one user (the breakdowns by queue and type are left empty)."""
    stats = queue.stats()
    counts = queue.store.count_by_status(user_id)
    by_status = {s: counts.get(s, 0) for s in stats["by_status"]}
    stats.update({f"{s}_jobs": n for s, n in by_status.items()})
    total = sum(by_status.values())
    stats.update(by_status=by_status, total_jobs=total, cache_size=total, by_queue={}, by_type={})
    return stats


@router.get("/queue/stats", response_model=StatsOut, summary="Queue statistics")
def queue_stats(state: State, principal: Caller) -> dict[str, Any]:
    """The queue statistics from the store's counters; a user key gets its own job counts."""
    if principal.admin:
        return state.queue.stats()
    assert principal.user_id is not None
    return user_stats(state.queue, principal.user_id)


# -- changing ------------------------------------------------------------------------------------------------

@router.post("/cancel/{job_id}", response_model=ActionOut, summary="Cancel a job")
def cancel(job_id: JobId, state: State, principal: Caller) -> dict[str, Any]:
    """Cancel a job that has not finished; a running handler is told to stop. 409 when it already ended."""
    job = state.queue.cancel(state.visible_job(principal, job_id).job_id)
    return {"job_id": job.job_id, "status": job.status.value, "message": CANCELLED_MESSAGE}


@router.post("/restart/{job_id}", response_model=ActionOut, summary="Restart a failed or cancelled job")
def restart(job_id: JobId, state: State, principal: Caller) -> dict[str, Any]:
    """Run a failed or cancelled job again: pending, same id, attempts reset. 409 in any other status."""
    job = state.queue.restart(state.visible_job(principal, job_id).job_id)
    return {"job_id": job.job_id, "status": job.status.value, "message": RESTARTED_MESSAGE}


@router.post("/cancel", response_model=BulkCancelOut, summary="Cancel many jobs")
def cancel_many(body: BulkCancelRequest, state: State, principal: Caller) -> dict[str, Any]:
    """Cancel the jobs named by ``job_ids``, or up to 1000 unfinished jobs matching ``filter``. Each job is
    cancelled on its own; the ones that could not be are listed with the error they got."""
    if (body.job_ids is None) == (body.filter is None):
        raise InvalidParameterError("give job_ids or filter, not both and not neither")
    truncated = False
    if body.job_ids is not None:
        ids = list(dict.fromkeys(body.job_ids))
    else:
        f = body.filter
        assert f is not None
        if not f.model_fields_set:
            raise InvalidParameterError("filter needs at least one criterion (cancelling everything takes one)")
        if not principal.admin and f.user_id not in (None, principal.user_id):
            return {"cancelled": [], "not_cancelled": [], "truncated": False}
        wanted = {JobStatus(s) for s in f.status} if f.status else set(CANCELLABLE)
        statuses = [s for s in CANCELLABLE if s in wanted]
        jobs = state.queue.list(statuses, job_type=f.job_type, user_id=principal.scope(f.user_id), queue=f.queue,
                                created_after=utc(f.created_after, "created_after"),
                                created_before=utc(f.created_before, "created_before"), sort="created_at",
                                limit=BULK_CANCEL_LIMIT + 1) if statuses else []
        truncated = len(jobs) > BULK_CANCEL_LIMIT
        ids = [job.job_id for job in jobs[:BULK_CANCEL_LIMIT]]
    cancelled: list[str] = []
    refused: list[NotCancelled] = []
    for job_id in ids:
        try:
            cancelled.append(state.queue.cancel(state.visible_job(principal, job_id).job_id, body.reason).job_id)
        except JobHandleError as exc:
            refused.append(NotCancelled(job_id=job_id, error=type(exc).__name__, message=exc.message,
                                        current_status=exc.context.get("current_status")))
    return {"cancelled": cancelled, "not_cancelled": refused, "truncated": truncated}
