"""The FastAPI application factory."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from ..config import Settings
from ..queue import JobQueue
from . import errors
from .auth import Authenticator, load_keys
from .events import ChangeHub
from .limits import BodyLimitMiddleware
from .metrics import ApiMetrics
from .routes import extraction, jobs, schedules, system
from .state import ApiState

DESCRIPTION = """Submit, watch, cancel and restart background jobs.

Errors are `{"error": "<ErrorType>", "message": "...", ...context}`. With API keys configured, send
`Authorization: Bearer <key>`; see docs/api.md."""


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
                     auth=Authenticator(load_keys(settings)))

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        state.hub.start()
        try:
            yield
        finally:
            state.hub.stop()
            if owns_queue:
                queue.close()

    app = FastAPI(title="jobhandle", description=DESCRIPTION, version="1", lifespan=lifespan)
    app.state.jobhandle = state
    errors.install(app)
    for module in (jobs, system, schedules, extraction):
        app.include_router(module.router)
    app.include_router(system.metrics_router)
    app.add_middleware(BodyLimitMiddleware, max_bytes=settings.max_body_bytes)
    return app
