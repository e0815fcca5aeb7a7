"""The dashboard's pages: overview, jobs, a job, failures, analytics, schedules, workers, signing in and out.

Page handlers are plain ``def``: FastAPI runs them in its thread pool, so their store reads never block the
event loop. Every filter is in the query string, so a page's URL can be shared.
"""

from __future__ import annotations

from typing import Annotated
from urllib.parse import urlencode

from fastapi import APIRouter, Form, Query, Request
from starlette.datastructures import QueryParams
from starlette.responses import RedirectResponse, Response

from ..analytics import WINDOWS, window_named
from ..api.routes.jobs import JobFilter, list_page, parse_statuses
from ..api.state import utc
from ..errors import InvalidParameterError, JobHandleError, JobNotFoundError
from ..models import CANCELLABLE, RESTARTABLE, Dependency, Job, JobPriority, JobStatus, parse_key_value
from .failures import SCAN_LIMIT, failed_jobs, group_failures
from .guard import PagePrincipal, check_csrf, current_session, sessions_of, state_of
from .render import page, set_session_cookie

router = APIRouter(include_in_schema=False)

PAGE_SIZES = (25, 50, 100, 200)
TEXT_FILTERS = ("job_type", "queue", "user_id", "q", "error", "created_after", "created_before")
"""The jobs page's filters given as text (status and sort are parsed on their own)."""
PLACEHOLDER = Job(job_type="", job_id="00000000-0000-4000-8000-000000000000", user_id="")
"""The row the page's script clones for a job that arrives live (it fills every field in)."""
SORTS = {"-created_at": "newest first", "created_at": "oldest first", "status": "status", "-progress": "progress",
         "-priority": "priority", "-completed_at": "recently finished"}


def filter_from(params: QueryParams) -> tuple[JobFilter, dict[str, str]]:
    """The job filter a query string names, and the same as form values (for the filter bar and links)."""
    given = [value for value in params.getlist("status") if value.strip()]  # the form sends status= when empty
    statuses = parse_statuses(given) if given else None
    sort = params.get("sort") or "-created_at"
    if sort not in SORTS:
        raise InvalidParameterError(f"sort must be one of {', '.join(SORTS)}, not {sort!r}")
    text = {name: (params.get(name) or "").strip() for name in TEXT_FILTERS}
    words = text["q"].split()  # KEY=VALUE words filter by a parameter; the rest is an id or user id start
    pairs = dict(parse_key_value(w, "a parameter filter") for w in words if "=" in w)
    prefix = " ".join(w for w in words if "=" not in w)
    f = JobFilter(statuses=statuses, job_type=text["job_type"] or None, queue=text["queue"] or None,
                  user_id=text["user_id"] or None, q=prefix or None, error=text["error"] or None,
                  parameters=pairs or None,
                  created_after=utc(text["created_after"] or None, "created_after"),
                  created_before=utc(text["created_before"] or None, "created_before"), sort=sort)
    return f, {**text, "sort": sort, "status": ",".join(statuses or [])}


def _query(values: dict[str, str], **changes: str | None) -> str:
    merged = {**values, **changes}
    return urlencode({k: v for k, v in merged.items() if v})


@router.get("/")
def overview(request: Request, principal: PagePrincipal) -> Response:
    state = state_of(request)
    snapshot = request.app.state.jobhandle_overview.snapshot(principal)
    # Newest submitted first: the order every store keeps an index in (sorting by completion would read them all).
    recent_failures = state.queue.list([JobStatus.FAILED.value], user_id=principal.scope(None),
                                       sort="-created_at", limit=5)
    return page(request, principal, "overview.html", {"section": "overview", "o": snapshot,
                                                      "recent_failures": recent_failures})


@router.get("/jobs")
def jobs(request: Request, principal: PagePrincipal,
         limit: Annotated[int, Query(ge=1, le=max(PAGE_SIZES))] = 50, cursor: str | None = None) -> Response:
    state = state_of(request)
    try:
        f, values = filter_from(request.query_params)
        found, next_cursor = list_page(state, principal, f, limit, cursor)
        problem = None
    except InvalidParameterError as exc:  # shown above the table, the filter bar kept as typed
        found, next_cursor, problem = [], None, exc.message
        values = {name: request.query_params.get(name, "") for name in
                  (*TEXT_FILTERS, "sort", "status")}
        f = JobFilter()
    counts = state.queue.store.counts() if principal.admin else None
    return page(request, principal, "jobs.html", {
        "section": "jobs", "jobs": found, "values": values, "filter": f, "problem": problem,
        "limit": limit, "page_sizes": PAGE_SIZES, "sorts": SORTS, "first_page": cursor is None,
        "next_url": f"/jobs?{_query(values, cursor=next_cursor, limit=str(limit))}" if next_cursor else None,
        "first_url": f"/jobs?{_query(values, limit=str(limit))}",
        "status_counts": counts.by_status if counts else None,
        "status_url": lambda status: f"/jobs?{_query(values, status=status, cursor=None)}",
        "sort_url": lambda sort: f"/jobs?{_query(values, sort=sort)}",
        "filter_query": _query(values), "placeholder": PLACEHOLDER,
    }, status_code=400 if problem else 200)


@router.get("/jobs/{job_id}")
def job_detail(request: Request, principal: PagePrincipal, job_id: str) -> Response:
    state = state_of(request)
    try:
        job = state.visible_job(principal, job_id)
    except (JobNotFoundError, InvalidParameterError) as exc:
        return page(request, principal, "missing.html", {"section": "jobs", "message": exc.message},
                    status_code=404)
    parents: list[tuple[Dependency, Job | None]] = []
    for dep in job.depends_on:
        try:
            parents.append((dep, state.visible_job(principal, dep.job_id)))
        except JobHandleError:
            parents.append((dep, None))  # removed by retention
    children, dependant_count = state.queue.dependants(job.job_id, 50)
    return page(request, principal, "job.html", {
        "section": "jobs", "job": job, "parents": parents,
        "children": [c for c in children if principal.may_see(c.user_id)],
        "dependant_count": dependant_count if principal.admin else 0,  # others' jobs are not even counted
        "can_cancel": job.status in CANCELLABLE, "can_restart": job.status in RESTARTABLE})


@router.get("/submit")
def submit_form(request: Request, principal: PagePrincipal) -> Response:
    state = state_of(request)
    known = set(state.queue.registry.names()) | set(state.queue.store.counts().by_type)
    return page(request, principal, "submit.html", {
        "section": "submit", "job_types": sorted(known), "priorities": [p.name.lower() for p in JobPriority],
        "defaults": state.settings})


@router.get("/failures")
def failures(request: Request, principal: PagePrincipal) -> Response:
    jobs = failed_jobs(state_of(request).queue, principal)
    return page(request, principal, "failures.html", {
        "section": "failures", "groups": group_failures(jobs), "scanned": len(jobs), "scan_limit": SCAN_LIMIT})


@router.get("/analytics")
def analytics(request: Request, principal: PagePrincipal, window: str = "24h") -> Response:
    chosen = window_named(window)
    data = state_of(request).queue.analytics(chosen.name).to_dict() if principal.admin else None
    return page(request, principal, "analytics.html", {"section": "analytics", "window": chosen.name,
                                                        "windows": list(WINDOWS), "data": data})


@router.get("/schedules")
def schedules(request: Request, principal: PagePrincipal) -> Response:
    state = state_of(request)
    listed = [s for s in state.queue.schedules() if principal.may_see(s.user_id)]
    known = set(state.queue.registry.names()) | set(state.queue.store.counts().by_type)
    return page(request, principal, "schedules.html", {
        "section": "schedules", "schedules": listed, "job_types": sorted(known),
        "priorities": [p.name.lower() for p in JobPriority]})


@router.get("/workers")
def workers(request: Request, principal: PagePrincipal) -> Response:
    state = state_of(request)
    listed = state.queue.workers() if principal.admin else []
    pools = state.queue.pools() if principal.admin else []
    return page(request, principal, "workers.html", {
        "section": "workers", "workers": listed, "pools": pools, "timeout": state.settings.worker_timeout})


# -- signing in ----------------------------------------------------------------------------------------------

def _safe_next(target: str | None) -> str:
    """Where to go after signing in: a path on this site only (no ``//host`` or ``https://``)."""
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return "/"
    return target


@router.get("/login")
def login_form(request: Request, next: str | None = None) -> Response:
    sessions = sessions_of(request)
    if not sessions.required:
        return RedirectResponse(_safe_next(next), status_code=303)
    session = current_session(request)
    if session is not None and session.principal is not None:
        return RedirectResponse(_safe_next(next), status_code=303)
    return page(request, None, "login.html",
                {"section": "login", "next": _safe_next(next), "problem": None})


@router.post("/login")
def login(request: Request, key: Annotated[str, Form()], csrf: Annotated[str, Form()] = "",
          next: Annotated[str, Form()] = "/") -> Response:
    sessions = sessions_of(request)
    session = current_session(request)
    if session is None:
        raise InvalidParameterError("your sign-in form expired: reload the page")
    check_csrf(request, session, csrf)
    principal = sessions.auth.find(key.strip()) if key.strip() else None
    if principal is None:
        return page(request, None, "login.html",
                    {"section": "login", "next": _safe_next(next), "problem": "unknown API key"}, status_code=401)
    response = RedirectResponse(_safe_next(next), status_code=303)
    set_session_cookie(request, response, sessions.issue(key.strip()), sessions.lifetime)
    return response


@router.post("/logout")
def logout(request: Request, csrf: Annotated[str, Form()] = "") -> Response:
    sessions = sessions_of(request)
    session = current_session(request)
    if session is not None:
        check_csrf(request, session, csrf)
    response = RedirectResponse("/login" if sessions.required else "/", status_code=303)
    set_session_cookie(request, response, sessions.issue(), sessions.lifetime)
    return response

