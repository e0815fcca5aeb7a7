"""The web dashboard at ``/`` and the API's documentation page at ``/docs``, served with ``jobhandle serve``.

Server-rendered pages (Jinja2) with one small script, its assets in ``static/`` (nothing is fetched from
another origin); live updates over SSE from the API's change hub. See docs/dashboard.md.
"""

from __future__ import annotations

import secrets

from fastapi import FastAPI, Request
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.staticfiles import StaticFiles
from starlette.responses import HTMLResponse, Response

from ..api.state import ApiState
from . import pages, ui
from .guard import LoginRequired, SecurityHeaders, login_redirect
from .overview import Overview
from .render import HERE
from .session import Sessions

API_PREFIXES = ("/api/", "/docs", "/openapi.json", "/metrics")
"""Paths that are the API's, not the dashboard's (its security headers are not added there)."""


def install(app: FastAPI, state: ApiState) -> None:
    """Serve the dashboard, its static files and a local ``/docs`` page on ``app``."""
    secret = state.settings.session_secret
    app.state.jobhandle_sessions = Sessions(
        secret.get_secret_value().encode() if secret is not None else secrets.token_bytes(32),
        state.auth, state.settings.session_hours * 3600)
    app.state.jobhandle_overview = Overview(state.queue, state.settings)
    app.mount("/static", StaticFiles(directory=HERE / "static"), name="static")
    app.include_router(pages.router)
    app.include_router(ui.router)

    @app.get("/docs", include_in_schema=False)
    async def docs() -> HTMLResponse:
        return get_swagger_ui_html(openapi_url="/openapi.json", title="jobhandle API",
                                   swagger_js_url="/static/vendor/swagger-ui/swagger-ui-bundle.js",
                                   swagger_css_url="/static/vendor/swagger-ui/swagger-ui.css",
                                   swagger_favicon_url="/static/vendor/swagger-ui/favicon-32x32.png")

    @app.exception_handler(LoginRequired)
    async def to_login(request: Request, exc: LoginRequired) -> Response:
        return login_redirect(exc)

    app.add_middleware(SecurityHeaders, skip_prefixes=API_PREFIXES)
