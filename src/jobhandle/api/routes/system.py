"""Workers, analytics, health and Prometheus metrics."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST

from ... import health
from ...supervise import LoopHealth
from ..auth import authenticate
from ..schemas import ERROR_RESPONSES, AnalyticsOut, HealthOut, PoolOut, ProbeOut, WorkerOut
from ..state import ApiState, Caller, State

router = APIRouter(prefix="/api/v1/jobs", tags=["system"], responses=ERROR_RESPONSES)
metrics_router = APIRouter(tags=["system"], responses=ERROR_RESPONSES, dependencies=[Depends(authenticate)])
probes_router = APIRouter(tags=["system"])
"""Health at the root, for orchestrators and seed 003: no API key."""


@router.get("/workers", response_model=list[WorkerOut], summary="Registered workers",
            dependencies=[Depends(authenticate)])
def workers(state: State, principal: Caller) -> list[dict[str, Any]]:
    """Every registered worker with its heartbeat age and running job ids (admin keys only)."""
    principal.require_admin("listing workers")
    return state.queue.workers()


@router.get("/workers/pools", response_model=list[PoolOut], summary="Worker pools and their scaling decisions",
            dependencies=[Depends(authenticate)])
def pools(state: State, principal: Caller) -> list[dict[str, Any]]:
    """Every registered worker pool (`jobhandle pool`): its size within its range, the load it last read, and
    its latest events, each scaling decision with its reason (admin keys only)."""
    principal.require_admin("listing worker pools")
    return state.queue.pools()


@router.get("/analytics", response_model=AnalyticsOut, summary="Throughput, success rate, wait and run times",
            dependencies=[Depends(authenticate)])
def analytics(state: State, principal: Caller,
              window: Annotated[Literal["1h", "24h", "7d"], Query(description="how far back")] = "24h",
              ) -> dict[str, Any]:
    """Jobs completed, failed, cancelled and retried per slot (a minute, 15 minutes or 2 hours), success rate,
    wait and run time p50/p95/p99 per job type, and failures by error type, over the last hour, day or week.
    Read from rollups the store keeps as jobs run (not by scanning jobs), so it costs the same with ten
    million jobs as with ten, and covers jobs retention has removed. The figures are every user's: keys that
    see every user (admin, viewer) only."""
    principal.require_admin("analytics (every user's jobs)")
    return state.queue.analytics(window).to_dict()


def _loops(state: ApiState) -> list[LoopHealth]:
    """This server's background loops: the change hub's, the store's (checkpointer, wake-up listener)."""
    return [h for h in [state.hub.health(), *state.queue.store.health()] if h is not None]


def health_report(state: ApiState) -> tuple[dict[str, Any], int]:
    """(report, HTTP status): 503 when the store cannot be read, else 200 (``degraded`` lists the issues)."""
    hub = state.hub
    hub_health = hub.health()
    report = health.store_report(state.queue, _loops(state))
    if report.status != "unhealthy" and (not hub.running or (hub_health is not None and not hub_health.healthy)):
        report.issues.insert(0, "the change feed is not followed: SSE and long-poll get no updates")
        report.status = "degraded"
    report.details["events"] = {"running": hub.running, "last_seq": hub.last_seq,
                                "subscribers": hub.subscriber_count,
                                "error": hub_health.last_error if hub_health is not None else None}
    return report.to_dict(), 503 if report.status == "unhealthy" else 200


@router.get("/health", response_model=HealthOut, summary="Health", responses={503: {"model": HealthOut}})
def health_route(state: State) -> JSONResponse:
    """Store reachability, workers, the oldest pending job's wait, the last hour's failure rate, resource
    alerts, background threads, last cleanup. 200 when the store answers (status ``healthy``, or
    ``degraded`` with its issues), 503 when it does not. Needs no API key. Also at ``/health``."""
    report, code = health_report(state)
    return JSONResponse(HealthOut.model_validate(report).model_dump(mode="json"), status_code=code)


@probes_router.get("/health", response_model=HealthOut, summary="Health (seed 003's status and issues)",
                   responses={503: {"model": HealthOut}})
def health_root(state: State) -> JSONResponse:
    """The same report as ``/api/v1/jobs/health``."""
    return health_route(state)


@probes_router.get("/health/live", response_model=ProbeOut, summary="Liveness probe",
                   responses={503: {"model": ProbeOut}})
async def live(state: State) -> JSONResponse:
    """``alive`` while this server's background loops run (a loop that fails and retries is alive); 503 when
    one has stopped. Makes no store call, so a store outage does not get every server restarted."""
    report = health.loops_report(_loops(state))
    return JSONResponse(report.to_dict(), status_code=200 if report.ok else 503)


@probes_router.get("/health/ready", response_model=ProbeOut, summary="Readiness probe",
                   responses={503: {"model": ProbeOut}})
def ready(state: State) -> JSONResponse:
    """``ready`` when the store answers a read and the change feed is followed; 503 otherwise."""
    report = health.ready_report(state.queue)
    if report.ok and not state.hub.running:
        report = health.Report("not_ready", ["the change feed is not followed: SSE and long-poll get no updates"],
                               report.details)
    return JSONResponse(report.to_dict(), status_code=200 if report.ok else 503)


@metrics_router.get("/metrics", summary="Prometheus metrics", response_class=Response,
                    responses={200: {"content": {CONTENT_TYPE_LATEST: {}},
                                     "description": "Prometheus text exposition format"}})
def metrics(state: State) -> Response:
    """Jobs by status and type, submissions/completions/failures by type, run durations, active workers."""
    return Response(state.metrics.render(), media_type=CONTENT_TYPE_LATEST)
