"""``/api/v1/schedules``: recurring (cron) jobs."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Path

from ...errors import ScheduleNotFoundError
from ...models import Schedule, parse_job_id
from ..auth import Principal, authenticate
from ..schemas import ERROR_RESPONSES, Document, ScheduleCreate, ScheduleListOut, ScheduleOut
from ..state import ApiState, Caller, State
from .jobs import check_priority

router = APIRouter(prefix="/api/v1/schedules", tags=["schedules"], responses=ERROR_RESPONSES,
                   dependencies=[Depends(authenticate)])

ScheduleId = Annotated[str, Path(description="The schedule's id (a UUID)", json_schema_extra={"format": "uuid"})]


def _visible(state: ApiState, principal: Principal, schedule_id: str) -> Schedule:
    schedule = state.queue.get_schedule(schedule_id)
    if not principal.may_see(schedule.user_id):
        raise ScheduleNotFoundError(parse_job_id(schedule_id))
    return schedule


@router.get("", response_model=ScheduleListOut, summary="List schedules")
def list_schedules(state: State, principal: Caller) -> Document:
    """Every schedule the caller may see, oldest first."""
    return Document({"schedules": [s.to_dict() for s in state.queue.schedules() if principal.may_see(s.user_id)]})


@router.post("", status_code=201, response_model=ScheduleOut, summary="Create a schedule")
def create_schedule(body: ScheduleCreate, state: State, principal: Caller) -> Document:
    """Run ``job_type`` at every fire time of a 5-field cron expression: one job per fire, however many
    workers run. 400 for an invalid expression or time zone."""
    schedule = state.queue.schedule(
        body.job_type, body.cron_expression, body.parameters, timezone=body.timezone, name=body.name,
        priority=check_priority(body.priority), user_id=principal.owner_for_submit(body.user_id), queue=body.queue,
        max_retries=body.max_retries, retry_delay=body.retry_delay, timeout_seconds=body.timeout_seconds)
    return Document(schedule.to_dict(), status_code=201)


@router.get("/{schedule_id}", response_model=ScheduleOut, summary="Get a schedule")
def get_schedule(schedule_id: ScheduleId, state: State, principal: Caller) -> Document:
    return Document(_visible(state, principal, schedule_id).to_dict())


@router.post("/{schedule_id}/pause", response_model=ScheduleOut, summary="Pause a schedule")
def pause_schedule(schedule_id: ScheduleId, state: State, principal: Caller) -> Document:
    """Stop firing; the job of the coming fire is cancelled."""
    return Document(state.queue.pause_schedule(_visible(state, principal, schedule_id).schedule_id).to_dict())


@router.post("/{schedule_id}/resume", response_model=ScheduleOut, summary="Resume a schedule")
def resume_schedule(schedule_id: ScheduleId, state: State, principal: Caller) -> Document:
    """Fire again, from the first fire time after now."""
    return Document(state.queue.resume_schedule(_visible(state, principal, schedule_id).schedule_id).to_dict())


@router.delete("/{schedule_id}", response_model=ScheduleOut, summary="Delete a schedule")
def delete_schedule(schedule_id: ScheduleId, state: State, principal: Caller) -> Document:
    """Remove the schedule (the job of the coming fire is cancelled; jobs it ran are kept); returns it."""
    return Document(state.queue.delete_schedule(_visible(state, principal, schedule_id).schedule_id).to_dict())
