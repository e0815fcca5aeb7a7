"""The extraction routes: thin aliases of the jobs API for jobs of type ``extraction``.

A job of another type does not exist under these paths (404).
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path

from ...errors import JobNotFoundError
from ...models import Job
from ..auth import Principal, authenticate
from ..schemas import ERROR_RESPONSES, ActionOut, Document, JobOptions, JobOut
from ..state import ApiState, Caller, State
from .jobs import CANCELLED_MESSAGE, RESTARTED_MESSAGE, submit_job

JOB_TYPE = "extraction"

router = APIRouter(prefix="/api/extraction", tags=["extraction"], responses=ERROR_RESPONSES,
                   dependencies=[Depends(authenticate)])

JobId = Annotated[str, Path(description="The job's id (a UUID)", json_schema_extra={"format": "uuid"})]


def _extraction_job(state: ApiState, principal: Principal, job_id: str) -> Job:
    job = state.visible_job(principal, job_id)
    if job.job_type != JOB_TYPE:
        raise JobNotFoundError(job.job_id)
    return job


@router.post("/", status_code=201, response_model=JobOut, summary="Submit an extraction job")
def submit_extraction(body: JobOptions, state: State, principal: Caller) -> Document:
    """``POST /api/v1/jobs`` with ``job_type`` set to ``extraction``."""
    return Document(submit_job(state, principal, JOB_TYPE, body).to_dict(), status_code=201)


@router.get("/{job_id}", response_model=JobOut, summary="Get an extraction job")
def get_extraction(job_id: JobId, state: State, principal: Caller) -> Document:
    return Document(_extraction_job(state, principal, job_id).to_dict())


@router.delete("/{job_id}", response_model=ActionOut, summary="Cancel an extraction job")
def cancel_extraction(job_id: JobId, state: State, principal: Caller) -> dict[str, Any]:
    job = state.queue.cancel(_extraction_job(state, principal, job_id).job_id)
    return {"job_id": job.job_id, "status": job.status.value, "message": CANCELLED_MESSAGE}


@router.post("/{job_id}/restart", response_model=ActionOut, summary="Restart an extraction job")
def restart_extraction(job_id: JobId, state: State, principal: Caller) -> dict[str, Any]:
    job = state.queue.restart(_extraction_job(state, principal, job_id).job_id)
    return {"job_id": job.job_id, "status": job.status.value, "message": RESTARTED_MESSAGE}
