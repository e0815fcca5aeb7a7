"""Who a dashboard request comes from, and the checks every dashboard response and action passes.

Pages need a signed-in session when API keys are configured (else they redirect to ``/login``); the JSON and
SSE endpoints the pages' script calls answer 401 instead. Every state-changing request also needs the
session's CSRF token and, when the browser sends one, an ``Origin`` equal to the server's own.
"""

from __future__ import annotations

from typing import Annotated
from urllib.parse import quote

from fastapi import Depends, Request
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ..api.auth import ANONYMOUS_ADMIN, Principal
from ..api.errors import AuthenticationError, PermissionDeniedError
from ..api.state import ApiState
from .session import COOKIE, Session, Sessions

CSRF_HEADER = "x-csrf-token"

CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
    "font-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)
"""No inline script or style, nothing from another origin, no framing."""

SECURITY_HEADERS = [
    (b"content-security-policy", CONTENT_SECURITY_POLICY.encode()),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"same-origin"),
    (b"x-frame-options", b"DENY"),
]


class LoginRequired(Exception):
    """A page asked for without a signed-in session: answered with a redirect to the sign-in page."""

    def __init__(self, next_path: str) -> None:
        super().__init__(next_path)
        self.next_path = next_path


def sessions_of(request: Request) -> Sessions:
    sessions: Sessions = request.app.state.jobhandle_sessions
    return sessions


def state_of(request: Request) -> ApiState:
    state: ApiState = request.app.state.jobhandle
    return state


def current_session(request: Request) -> Session | None:
    """The request's verified session, read once per request."""
    try:
        session: Session | None = request.state.jh_session
    except AttributeError:
        session = request.state.jh_session = sessions_of(request).read(request.cookies.get(COOKIE))
    return session


async def page_principal(request: Request) -> Principal:
    """Dependency of pages: the signed-in principal, else a redirect to the sign-in page (without API keys:
    everyone is the anonymous admin; the page then issues the session cookie that carries the CSRF token)."""
    session = current_session(request)
    if session is not None and session.principal is not None:
        return session.principal
    if not sessions_of(request).required:
        return ANONYMOUS_ADMIN
    target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    raise LoginRequired(target)
    return session.principal


async def ui_principal(request: Request) -> Principal:
    """Dependency of the script's endpoints: the signed-in principal, else 401; CSRF and Origin checked on
    anything but GET/HEAD, and a viewer refused there."""
    session = current_session(request)
    if session is None or session.principal is None:
        raise AuthenticationError("sign in to the dashboard first (/login)")
    if request.method not in ("GET", "HEAD"):
        check_csrf(request, session, request.headers.get(CSRF_HEADER))
        session.principal.require_may_act(request.method)
    return session.principal


def check_csrf(request: Request, session: Session, token: str | None) -> None:
    origin = request.headers.get("origin")
    if origin is not None and origin != f"{request.url.scheme}://{request.url.netloc}":
        raise PermissionDeniedError(f"cross-origin request from {origin} refused")
    if not sessions_of(request).csrf_ok(session, token):
        raise PermissionDeniedError("missing or wrong CSRF token: reload the page and try again")


PagePrincipal = Annotated[Principal, Depends(page_principal)]
UiPrincipal = Annotated[Principal, Depends(ui_principal)]


def login_redirect(exc: LoginRequired) -> Response:
    return Response(status_code=303, headers={"location": f"/login?next={quote(exc.next_path, safe='/')}"})


class SecurityHeaders:
    """Adds the Content-Security-Policy and its companions to every response of the dashboard's paths."""

    def __init__(self, app: ASGIApp, skip_prefixes: tuple[str, ...]) -> None:
        self.app = app
        self.skip = skip_prefixes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"].startswith(self.skip):
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", []), *SECURITY_HEADERS]
            await send(message)

        await self.app(scope, receive, send_with_headers)
