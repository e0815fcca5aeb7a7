"""The FastAPI application factory."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from starlette.concurrency import run_in_threadpool
from starlette.routing import Match, Router, get_route_path
from starlette.types import Receive, Scope, Send

from .. import web
from ..config import Settings
from ..queue import JobQueue
from . import errors, websockets
from .auth import Authenticator, load_keys
from .events import ChangeHub
from .limits import BodyLimitMiddleware
from .metrics import ApiMetrics
from .offload import ReadBatcher
from .routes import extraction, jobs, schedules, system
from .state import ApiState

DESCRIPTION = """Submit, watch, cancel and restart background jobs.

Errors are `{"error": "<ErrorType>", "message": "...", ...context}`. With API keys configured, send
`Authorization: Bearer <key>`; see docs/api.md."""


class SlashInsensitive:
    """The router's fallback when no route matches: a path with a trailing slash is the same path.

    Tried with the trailing slash removed (or, when it has none, added), a path some route serves is served
    as if it had been asked that way: the same answer, where Starlette would send a bodyless 307 redirect
    (which clients drop a POST body on, or do not follow). Each route is registered once, so the OpenAPI schema
    lists each path once; this runs only for requests no route matched as sent. Anything else: the 404.
    """

    def __init__(self, router: Router) -> None:
        self.router = router
        self.not_found = router.not_found

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        other = self._other_spelling(scope) if scope["type"] == "http" else None
        if other is not None and any(route.matches(other)[0] is not Match.NONE for route in self.router.routes):
            scope.update(other)  # in place: what wraps the router (error handlers: 405's Allow) sees it too
            await self.router.app(scope, receive, send)  # it matches now: this fallback is not reached again
        else:
            await self.not_found(scope, receive, send)

    @staticmethod
    def _other_spelling(scope: Scope) -> Scope | None:
        """The scope with the path's trailing slash removed or added (None for the root path)."""
        path: str = scope["path"]
        if get_route_path(scope) in ("", "/"):
            return None
        other = {**scope, "path": path.rstrip("/") if path.endswith("/") else path + "/"}
        raw: bytes | None = scope.get("raw_path")
        if raw:
            other["raw_path"] = raw.rstrip(b"/") if raw.endswith(b"/") else raw + b"/"
        return other


def create_app(queue: JobQueue | None = None, settings: Settings | None = None) -> FastAPI:
    """The REST API over ``queue`` (by default a JobQueue on ``settings.store``, closed with the app).

    The change hub that feeds SSE and long-polls runs from the app's startup to its shutdown (lifespan), so
    run the app under a server (uvicorn) or a ``with TestClient(app)`` block. ``settings`` defaults to the
    queue's. API keys are read here: a bad key entry raises InvalidParameterError before anything serves.
    """
    owns_queue = queue is None
    settings = settings or (queue.settings if queue is not None else Settings())
    queue = queue or JobQueue(settings=settings)
    metrics = ApiMetrics(queue)
    state = ApiState(queue=queue, settings=settings, hub=ChangeHub(queue.store, metrics.observe), metrics=metrics,
                     auth=Authenticator(load_keys(settings)), reads=ReadBatcher())

    def shut_down() -> None:
        state.hub.stop()
        state.reads.close()
        if owns_queue:
            queue.close()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        # In the thread pool, like every store call the API makes: none may block the event loop.
        await run_in_threadpool(state.hub.start)
        try:
            yield
        finally:
            await run_in_threadpool(shut_down)

    app = FastAPI(title="jobhandle", description=DESCRIPTION, version="1", lifespan=lifespan, redirect_slashes=False,
                  docs_url=None, redoc_url=None)
    app.router.default = SlashInsensitive(app.router)
    app.state.jobhandle = state
    errors.install(app)
    for module in (jobs, system, schedules, extraction):
        app.include_router(module.router)
    app.include_router(system.metrics_router)
    app.include_router(system.probes_router)
    app.include_router(websockets.router)
    web.install(app, state)  # the dashboard at / and /docs with local assets
    app.add_middleware(BodyLimitMiddleware, max_bytes=settings.max_body_bytes)
    return app
