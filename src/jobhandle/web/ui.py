"""What the dashboard's script calls: the live event stream, the overview snapshot, and the job actions.

The stream is the server's one change hub (api/events.py), scoped to what the signed-in principal may see;
the overview is the shared snapshot (overview.py). Actions need the session's CSRF token and a role that may act.
"""

from __future__ import annotations

import time
from typing import Any, Literal

from fastapi import APIRouter, Request
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import QueryParams
from starlette.responses import Response

from ..analytics import window_named
from ..api import sse
from ..api.auth import Principal
from ..api.routes import schedules as schedule_routes
from ..api.routes.jobs import submit_job
from ..api.schemas import ScheduleCreate, SubmitRequest
from ..errors import InvalidParameterError, JobHandleError
from ..models import CANCELLABLE, RESTARTABLE, JobStatus
from .failures import failed_jobs, group_failures
from .guard import UiPrincipal, state_of
from .live import Interest, page_stream, parse_watch
from .pages import filter_from

router = APIRouter(prefix="/ui", include_in_schema=False)

BULK_LIMIT = 10_000
"""Jobs one bulk action by filter acts on at most (the dialog says when more match)."""
BATCH = 500


@router.get("/events")
async def events(request: Request, principal: UiPrincipal, watch: str | None = None, new: bool = False,
                 failures: bool = False, since: float | None = None) -> Response:
    """The open page's events (web/live.py): the jobs it ``watch``es, ``new`` jobs (created after ``since``,
    the page's render time; default now), ``failures``; ``changed``."""
    state = state_of(request)
    sub = state.hub.subscribe(user_id=None if principal.admin else principal.user_id)
    opened = time.time() if since is None else min(since, time.time())
    interest = Interest(watch=parse_watch(watch), new=new, failures=failures, opened_at=opened)
    return sse.SubscribedStream(page_stream(sub, interest, state.settings.sse_keepalive_seconds), state.hub, sub)


@router.get("/overview")
async def overview(request: Request, principal: UiPrincipal) -> dict[str, Any]:
    snapshot: dict[str, Any] = await run_in_threadpool(request.app.state.jobhandle_overview.snapshot, principal)
    return snapshot


@router.get("/analytics")
def analytics(request: Request, principal: UiPrincipal, window: str = "24h") -> dict[str, Any]:
    """The analytics page's figures (every user's: admin and viewer sessions only)."""
    principal.require_admin("analytics (every user's jobs)")
    return state_of(request).queue.analytics(window_named(window).name).to_dict()


@router.get("/jobs/{job_id}")
def job(request: Request, principal: UiPrincipal, job_id: str) -> dict[str, Any]:
    return state_of(request).visible_job(principal, job_id).to_dict()


@router.post("/jobs", status_code=201)
def submit(request: Request, principal: UiPrincipal, body: SubmitRequest) -> dict[str, Any]:
    """The submit form: the REST API's submit, for the signed-in principal."""
    return submit_job(state_of(request), principal, body.job_type, body).to_dict()


Action = Literal["cancel", "restart"]


@router.post("/jobs/{job_id}/{action}")
def act(request: Request, principal: UiPrincipal, job_id: str, action: Action) -> dict[str, Any]:
    state = state_of(request)
    visible = state.visible_job(principal, job_id)
    changed = state.queue.cancel(visible.job_id) if action == "cancel" else state.queue.restart(visible.job_id)
    return changed.to_dict()


class CleanupRequest(BaseModel):
    days: float = Field(ge=0, le=36500, description="Remove finished jobs older than this many days")
    dry_run: bool = False


@router.post("/cleanup")
def cleanup(request: Request, principal: UiPrincipal, body: CleanupRequest) -> dict[str, Any]:
    """Remove completed, failed and cancelled jobs that finished more than ``days`` days ago (every user's:
    admins only). ``dry_run``: only count the candidates, for the confirmation dialog."""
    principal.require_admin("removing every user's finished jobs")
    queue = state_of(request).queue
    if body.dry_run:
        return {"candidates": queue.cleanup_candidates(body.days), "days": body.days}
    removed = queue.cleanup_old_jobs(body.days)
    request.app.state.jobhandle_overview.forget()  # the page reloads its figures next: show the removal
    return {"removed": removed, "days": body.days}


class BulkRequest(BaseModel):
    action: Action
    job_ids: list[str] | None = Field(None, max_length=BULK_LIMIT)
    filter: str | None = Field(None, description="The jobs page's query string")
    dry_run: bool = False


def _eligible(action: Action) -> list[JobStatus]:
    return list(CANCELLABLE) if action == "cancel" else list(RESTARTABLE)


@router.post("/jobs/bulk")
def bulk(request: Request, principal: UiPrincipal, body: BulkRequest) -> dict[str, Any]:
    """Cancel or restart the selected jobs, or every job the filter matches that the action applies to (at most
    BULK_LIMIT). ``dry_run``: only count them, for the confirmation dialog."""
    if (body.job_ids is None) == (body.filter is None):
        raise InvalidParameterError("give job_ids or filter, not both and not neither")
    state = state_of(request)
    if body.job_ids is not None:
        ids = list(dict.fromkeys(body.job_ids))
        if body.dry_run:
            return {"matched": len(ids), "more": False, "limit": BULK_LIMIT}
        return _apply(request, principal, body.action, ids)
    f, _ = filter_from(QueryParams(body.filter or ""))
    eligible = [s.value for s in _eligible(body.action)]
    statuses = [s for s in (f.statuses or eligible) if s in eligible]
    if not statuses:
        return {"matched": 0, "more": False, "done": [], "failed": []}
    owner = principal.scope(f.user_id)
    if not principal.admin and f.user_id not in (None, principal.user_id):
        return {"matched": 0, "more": False, "done": [], "failed": []}

    def page(limit: int, offset: int = 0) -> list[str]:
        return [j.job_id for j in state.queue.list(
            statuses, job_type=f.job_type, user_id=owner, queue=f.queue, search=f.q, created_after=f.created_after,
            created_before=f.created_before, sort="created_at", limit=limit, offset=offset,
            error_contains=f.error, parameters=f.parameters)]

    if body.dry_run:
        matched = len(page(BULK_LIMIT))
        return {"matched": matched, "more": matched == BULK_LIMIT and bool(page(1, offset=BULK_LIMIT)),
                "limit": BULK_LIMIT}
    done: list[str] = []
    failed: list[dict[str, str]] = []
    seen: set[str] = set()
    while len(done) + len(failed) < BULK_LIMIT:
        # The jobs acted on leave the filter's statuses; the ones that failed stay, so skip past them.
        ids = [i for i in page(min(BATCH, BULK_LIMIT - len(done) - len(failed)), offset=len(failed))
               if i not in seen]
        if not ids:
            break
        seen.update(ids)
        result = _apply(request, principal, body.action, ids)
        done += result["done"]
        failed += result["failed"]
    return {"matched": len(done) + len(failed), "more": bool(page(1, offset=len(failed))), "done": done,
            "failed": failed}


def _apply(request: Request, principal: Principal, action: Action, ids: list[str]) -> dict[str, Any]:
    state = state_of(request)
    done: list[str] = []
    failed: list[dict[str, str]] = []
    for job_id in ids:
        try:
            visible = state.visible_job(principal, job_id)
            (state.queue.cancel if action == "cancel" else state.queue.restart)(visible.job_id)
            done.append(visible.job_id)
        except JobHandleError as exc:
            failed.append({"job_id": job_id, "error": type(exc).__name__, "message": exc.message})
    return {"matched": len(ids), "more": False, "done": done, "failed": failed}


class FailureGroupRequest(BaseModel):
    job_type: str
    error_type: str
    message: str


@router.post("/failures/restart")
def restart_failure_group(request: Request, principal: UiPrincipal, body: FailureGroupRequest) -> dict[str, Any]:
    """Restart every failed job of one group of the failures page (as the page grouped them: read again now)."""
    state = state_of(request)
    groups = group_failures(failed_jobs(state.queue, principal))
    wanted = (body.job_type, body.error_type, body.message)
    ids = next((g.job_ids for g in groups if (g.job_type, g.error_type, g.message) == wanted), [])
    return _apply(request, principal, "restart", ids)


ScheduleAction = Literal["pause", "resume", "delete"]


@router.post("/schedules", status_code=201)
def create_schedule(request: Request, principal: UiPrincipal, body: ScheduleCreate) -> Response:
    return schedule_routes.create_schedule(body, state_of(request), principal)


@router.post("/schedules/{schedule_id}/{action}")
def change_schedule(request: Request, principal: UiPrincipal, schedule_id: str, action: ScheduleAction) -> Response:
    change = {"pause": schedule_routes.pause_schedule, "resume": schedule_routes.resume_schedule,
              "delete": schedule_routes.delete_schedule}[action]
    return change(schedule_id, state_of(request), principal)
