"""Templates (Jinja2, autoescaped) and the filters they format values with."""

from __future__ import annotations

import json
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import jinja2
from fastapi import Request
from fastapi.templating import Jinja2Templates
from starlette.responses import Response

from ..api.auth import Principal
from ..models import ALL_STATUSES, CANCELLABLE, RESTARTABLE, Job, as_utc
from .guard import current_session, sessions_of
from .session import COOKIE

HERE = Path(__file__).parent
templates = Jinja2Templates(env=jinja2.Environment(loader=jinja2.FileSystemLoader(HERE / "templates"),
                                                   autoescape=True, undefined=jinja2.StrictUndefined))
"""Autoescaping on for every template: a user's string is never markup."""


def when(value: datetime | str | None) -> str:
    """A time as ``YYYY-MM-DD HH:MM:SS`` UTC (the page's script shows it in local time, relative)."""
    at = as_utc(value)
    return "" if at is None else at.strftime("%Y-%m-%d %H:%M:%S")


def iso(value: datetime | str | None) -> str:
    at = as_utc(value)
    return "" if at is None else at.isoformat()


def duration(seconds: float | None) -> str:
    if seconds is None:
        return ""
    if seconds < 1:
        return f"{seconds * 1000:.0f} ms"
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, secs = divmod(int(seconds), 60)
    if minutes < 60:
        return f"{minutes} m {secs} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes} m" if hours < 48 else f"{hours // 24} d {hours % 24} h"


def pretty(value: Any) -> str:
    return json.dumps(value, indent=2, sort_keys=True, ensure_ascii=False, default=str)


def run_seconds(job: Job) -> float | None:
    """How long the job ran (so far, while it runs)."""
    if job.started_at is None:
        return None
    end = job.completed_at or datetime.now(job.started_at.tzinfo)
    return max(0.0, (end - job.started_at).total_seconds())


def wait_seconds(job: Job) -> float | None:
    """How long it waited between submission and start."""
    if job.started_at is None:
        return None
    return max(0.0, (job.started_at - job.created_at).total_seconds())


templates.env.filters.update(when=when, iso=iso, duration=duration, pretty=pretty,
                             at=lambda ts: datetime.fromtimestamp(ts, timezone.utc))
templates.env.globals.update(statuses=[s.value for s in ALL_STATUSES], run_seconds=run_seconds,
                             wait_seconds=wait_seconds, cancellable=[s.value for s in CANCELLABLE],
                             restartable=[s.value for s in RESTARTABLE])


def page(request: Request, principal: Principal | None, name: str, context: dict[str, Any],
         status_code: int = 200) -> Response:
    """A full page: the template with the caller, the CSRF token and the active section; issues the session
    cookie when the visitor has none yet."""
    sessions = sessions_of(request)
    session = current_session(request)
    cookie = None
    if session is None:
        cookie = sessions.issue()
        session = sessions.read(cookie)
        assert session is not None
    response = templates.TemplateResponse(request, name, {
        "principal": principal, "csrf": sessions.csrf_token(session), "auth_required": sessions.required,
        "rendered_at": f"{time.time():.6f}", **context}, status_code=status_code)
    if cookie is not None:
        set_session_cookie(request, response, cookie, sessions.lifetime)
    return response


def set_session_cookie(request: Request, response: Response, value: str, max_age: int) -> None:
    response.set_cookie(COOKIE, value, max_age=max_age, httponly=True, samesite="strict", path="/",
                        secure=request.url.scheme == "https")
