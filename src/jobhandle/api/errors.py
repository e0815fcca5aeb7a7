"""Every error the API sends has one shape: ``{"error": <type>, "message": ..., **context}``.

jobhandle's own errors carry it already (``JobHandleError.to_dict``); this module gives each an HTTP status
and turns FastAPI's and Starlette's errors (validation, unknown route, wrong method) into the same shape.
Status codes: 400 a well-formed request that jobhandle refuses (bad id, unknown priority name, bad cron...),
401 no or wrong API key, 403 not allowed for this key's role, 404 no such job/schedule (also another user's),
409 the job's status does not allow the change, 413 body too large, 422 the request does not fit the schema,
503 the store is closed or its server (Redis) does not answer.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator
from http import HTTPStatus
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import BaseRoute, Match, Route

from ..errors import (
    InvalidParameterError,
    InvalidTransitionError,
    JobHandleError,
    JobNotFoundError,
    ScheduleNotFoundError,
    StoreClosedError,
    StoreConflictError,
    StoreUnavailableError,
)

log = logging.getLogger("jobhandle.api")


class AuthenticationError(JobHandleError):
    """No API key, or one that is not configured."""


class PermissionDeniedError(JobHandleError):
    """The key is valid but its role may not do this (e.g. a user key acting for another user)."""


class PayloadTooLargeError(JobHandleError):
    """The request body is larger than ``max_body_bytes``."""


STATUS_CODES: tuple[tuple[type[JobHandleError], int], ...] = (
    (InvalidParameterError, 400),
    (AuthenticationError, 401),
    (PermissionDeniedError, 403),
    (JobNotFoundError, 404),
    (ScheduleNotFoundError, 404),
    (InvalidTransitionError, 409),  # JobAlreadyCompletedError is one
    (StoreConflictError, 409),
    (PayloadTooLargeError, 413),
    (StoreClosedError, 503),
    (StoreUnavailableError, 503),
)
"""The first matching class decides; any other JobHandleError is a 400."""


def status_of(exc: JobHandleError) -> int:
    for cls, code in STATUS_CODES:
        if isinstance(exc, cls):
            return code
    return 400


def error_response(exc: JobHandleError) -> JSONResponse:
    headers = {"WWW-Authenticate": "Bearer"} if isinstance(exc, AuthenticationError) else None
    return JSONResponse(exc.to_dict(), status_code=status_of(exc), headers=headers)


def _location(loc: tuple[Any, ...] | list[Any]) -> str:
    """``("body", "priority")`` -> ``priority``; ``("query", "limit")`` -> ``limit``."""
    parts = [str(p) for p in loc]
    if parts and parts[0] in ("body", "query", "path", "header"):
        parts = parts[1:]
    return ".".join(parts) or "body"


def validation_payload(errors: list[Any]) -> dict[str, Any]:
    """A RequestValidationError as ``{"error": "ValidationError", "message": "<field>: <problem>", ...}``."""
    details = [_detail(e) for e in errors]
    message = "; ".join(f"{d['field']}: {d['problem']}" for d in details) or "invalid request"
    return {"error": "ValidationError", "message": message, "details": details}


def _detail(error: dict[str, Any]) -> dict[str, str]:
    if error.get("type") == "json_invalid":  # its loc is ("body", <character offset>)
        reason = (error.get("ctx") or {}).get("error", "")
        at = error.get("loc", ("body", "?"))[-1]
        return {"field": "body", "problem": f"not valid JSON: {reason} (at character {at})".replace(":  (", ": ("),
                "type": "json_invalid"}
    return {"field": _location(error.get("loc", ())), "problem": str(error.get("msg", "invalid")),
            "type": str(error.get("type", ""))}


async def _jobhandle_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, JobHandleError)
    return error_response(exc)


async def _validation_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    return JSONResponse(validation_payload(list(exc.errors())), status_code=422)


async def _http_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    try:
        name = "".join(word.capitalize() for word in HTTPStatus(exc.status_code).phrase.split())
    except ValueError:
        name = "HTTPError"
    detail = exc.detail if isinstance(exc.detail, str) else str(exc.detail)
    headers = dict(exc.headers or {})
    if exc.status_code == 405:
        headers["Allow"] = ", ".join(_allowed_methods(request, headers.get("Allow")))
    return JSONResponse({"error": name, "message": detail}, status_code=exc.status_code, headers=headers or None)


def _allowed_methods(request: Request, given: str | None) -> list[str]:
    """Every method some route serves at this path (Starlette names only the first route's, ``given``)."""
    methods = {m.strip() for m in (given or "").split(",") if m.strip()}
    for route in _flat_routes(request.app.routes):
        if route.methods and route.matches(request.scope)[0] is not Match.NONE:
            methods |= route.methods
    return sorted(methods)


def _flat_routes(routes: Iterable[BaseRoute]) -> Iterator[Route]:
    """The app's routes, those of included routers too (FastAPI lists an included router as one entry)."""
    for route in routes:
        if isinstance(route, Route):
            yield route
        included = getattr(route, "original_router", None)
        if included is not None:
            yield from _flat_routes(included.routes)


async def _unexpected_error(request: Request, exc: Exception) -> JSONResponse:
    log.exception("unhandled error on %s %s", request.method, request.url.path, exc_info=exc)
    return JSONResponse({"error": "InternalServerError", "message": "internal server error"}, status_code=500)


def install(app: FastAPI) -> None:
    app.add_exception_handler(JobHandleError, _jobhandle_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(Exception, _unexpected_error)
