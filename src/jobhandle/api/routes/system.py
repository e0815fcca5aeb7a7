"""Workers, analytics, health and Prometheus metrics."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST

from ...supervise import LoopHealth
from ..auth import authenticate
from ..schemas import ERROR_RESPONSES, AnalyticsOut, HealthOut, WorkerOut
from ..state import ApiState, Caller, State

router = APIRouter(prefix="/api/v1/jobs", tags=["system"], responses=ERROR_RESPONSES)
metrics_router = APIRouter(tags=["system"], responses=ERROR_RESPONSES, dependencies=[Depends(authenticate)])


@router.get("/workers", response_model=list[WorkerOut], summary="Registered workers",
            dependencies=[Depends(authenticate)])
def workers(state: State, principal: Caller) -> list[dict[str, Any]]:
    """Every registered worker with its heartbeat age and running job ids (admin keys only)."""
    principal.require_admin("listing workers")
    return state.queue.workers()


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


def health_report(state: ApiState) -> tuple[dict[str, Any], int]:
    """(report, HTTP status): 503 when the store cannot be read, else 200 (``degraded`` lists the issues)."""
    hub = state.hub
    hub_health = hub.health()
    events = {"running": hub.running, "last_seq": hub.last_seq, "subscribers": hub.subscriber_count,
              "error": hub_health.last_error if hub_health is not None else None}
    background = [h for h in [hub_health, *state.queue.store.health()] if h is not None]
    try:
        stats = state.queue.stats()
    except Exception as exc:  # whatever the store raises, the answer is "unreachable", not a 500
        return {"status": "unhealthy", "store": {"reachable": False, "kind": state.queue.store.kind,
                                                 "error": repr(exc)},
                "workers": {}, "resource_alerts": [], "last_cleanup": None, "events": events,
                "background": [_loop(h) for h in background],
                "issues": [f"store unreachable: {exc!r}"]}, 503
    issues = list(stats["resource_alerts"])
    if stats["worker_health_status"] == "no_workers":
        issues.append("no workers registered: jobs wait until one starts")
    elif stats["worker_health_status"] != "healthy":
        issues.append(f"workers {stats['worker_health_status']}")
    issues += [f"worker {w['worker_id']} {w['state']}" for w in stats["degraded_workers"]]
    if not hub.running or (hub_health is not None and not hub_health.healthy):
        issues.append("the change feed is not followed: SSE and long-poll get no updates")
    issues += [f"background thread {h.describe()}" for h in background if h is not hub_health and not h.healthy]
    report = {
        "status": "degraded" if issues else "healthy",
        "store": {"reachable": True, "kind": stats["queue_type"], "error": None},
        "workers": {"active": stats["active_workers"], "paused": stats["paused_workers"],
                    "health": stats["worker_health_status"]},
        "resource_alerts": stats["resource_alerts"], "last_cleanup": stats["last_cleanup"], "events": events,
        "background": [_loop(h) for h in background],
        "issues": issues,
    }
    return report, 200


def _loop(health: LoopHealth) -> dict[str, Any]:
    return {"name": health.name, "alive": health.alive, "failures": health.failures, "error": health.last_error}


@router.get("/health", response_model=HealthOut, summary="Health", responses={503: {"model": HealthOut}})
def health(state: State) -> JSONResponse:
    """Store reachability, worker health, resource alerts, last cleanup. 200 when the store answers (status
    ``healthy`` or ``degraded`` with issues), 503 when it does not. Needs no API key."""
    report, code = health_report(state)
    return JSONResponse(HealthOut.model_validate(report).model_dump(mode="json"), status_code=code)


@metrics_router.get("/metrics", summary="Prometheus metrics", response_class=Response,
                    responses={200: {"content": {CONTENT_TYPE_LATEST: {}},
                                     "description": "Prometheus text exposition format"}})
def metrics(state: State) -> Response:
    """Jobs by status and type, submissions/completions/failures by type, run durations, active workers."""
    return Response(state.metrics.render(), media_type=CONTENT_TYPE_LATEST)
