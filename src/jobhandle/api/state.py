"""What the routes share: the app's JobQueue, settings, change hub, metrics, authenticator and read batcher."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Annotated

from fastapi import Depends, Request

from ..config import Settings
from ..errors import InvalidParameterError, JobNotFoundError
from ..models import Job, as_utc, parse_job_id
from ..queue import JobQueue
from .auth import Authenticator, Principal, authenticate
from .events import ChangeHub
from .metrics import ApiMetrics
from .offload import ReadBatcher


@dataclass(slots=True)
class ApiState:
    queue: JobQueue
    settings: Settings
    hub: ChangeHub
    metrics: ApiMetrics
    auth: Authenticator
    reads: ReadBatcher

    def visible_job(self, principal: Principal, job_id: str) -> Job:
        """The job if the caller may see it; JobNotFoundError otherwise (another user's job does not exist)."""
        job = self.queue.get(job_id)
        if not principal.may_see(job.user_id):
            raise JobNotFoundError(parse_job_id(job_id))
        return job


async def get_state(request: Request) -> ApiState:
    """FastAPI dependency (async: FastAPI runs a plain-def dependency in its thread pool, a costly hop)."""
    state: ApiState = request.app.state.jobhandle
    return state


State = Annotated[ApiState, Depends(get_state)]
Caller = Annotated[Principal, Depends(authenticate)]


def utc(value: datetime | str | None, name: str) -> datetime | None:
    """A client's date-time as aware UTC; one that UTC cannot represent (year 0 or 10000) is refused."""
    try:
        return as_utc(value)
    except OverflowError:
        raise InvalidParameterError(f"{name} is out of range: {value!r}") from None
    except InvalidParameterError as exc:
        raise InvalidParameterError(f"{name}: {exc.message}") from None
