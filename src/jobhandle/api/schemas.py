"""Request and response bodies of the REST API (they are also its OpenAPI schema at ``/docs``).

Requests are checked here for shape (422 when they do not fit); what only jobhandle can judge (a priority
name, a cron expression, a dependency's existence) is checked by ``JobQueue`` (400 InvalidParameterError).
Responses are built from ``Job.to_dict`` / ``Schedule.to_dict``; times are ISO 8601 strings with an offset.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal, get_args

from fastapi.responses import JSONResponse
from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, model_validator

from ..models import ALL_STATUSES, dumps_json

MAX_BATCH = 1000
"""Jobs per batch submit, and ids per bulk cancel."""
MAX_SECONDS = 10 * 365 * 24 * 3600.0
"""Longest delay, retry delay or timeout accepted (ten years): beyond it date arithmetic overflows."""
PRIORITY_RANGE = 2**31
"""Integer priorities lie in [-PRIORITY_RANGE, PRIORITY_RANGE)."""

StatusName = Literal["waiting", "scheduled", "pending", "running", "retrying", "completed", "failed", "cancelled"]
assert set(get_args(StatusName)) == {s.value for s in ALL_STATUSES}, "StatusName must list every JobStatus"
DateTimeText = Annotated[str, Field(json_schema_extra={"format": "date-time"})]


def _no_lone_surrogates(value: Any) -> Any:
    """Reject strings holding lone UTF-16 surrogates (JSON allows ``"\\ud800"``; UTF-8 cannot carry it)."""
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            try:
                item.encode("utf-8")
            except UnicodeEncodeError:
                raise ValueError("text must be valid Unicode (no lone surrogates)") from None
        elif isinstance(item, dict):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return value


class _Request(BaseModel):
    """Base of request bodies: unknown fields are refused, types are strict (``true`` is not the number 1, nor
    ``"5"`` the number 5), floats must be finite, text must be Unicode."""

    model_config = ConfigDict(extra="forbid", strict=True, allow_inf_nan=False)

    @model_validator(mode="before")
    @classmethod
    def _unicode(cls, data: Any) -> Any:
        return _no_lone_surrogates(data)


def _not_blank(text: str) -> str:
    if not text.strip():
        raise ValueError("must not be blank")
    return text


NonEmpty = Annotated[str, Field(min_length=1), AfterValidator(_not_blank)]


def _iso_datetime(value: Any) -> Any:
    """ISO 8601 text only: pydantic alone would also take numbers (and numeric text) as Unix times."""
    if isinstance(value, datetime):
        return value
    if isinstance(value, str):
        try:
            return datetime.fromisoformat(value.strip())
        except ValueError:
            pass
    raise ValueError("must be an ISO 8601 date-time, e.g. 2030-01-01T09:00:00Z")


DateTimeIn = Annotated[datetime, BeforeValidator(_iso_datetime)]
"""A date-time a client sends (no offset: UTC)."""
Seconds = Annotated[float, Field(ge=0, le=MAX_SECONDS)]
Priority = Annotated[int, Field(ge=-PRIORITY_RANGE, lt=PRIORITY_RANGE)] | str


class DependencyIn(_Request):
    job_id: str
    condition: Literal["success", "failure", "completion"] = "success"


class JobOptions(_Request):
    """Everything a submit may say besides the job type."""

    parameters: dict[str, Any] = Field(default_factory=dict, description="The handler's keyword arguments")
    priority: Priority | None = Field(None, description="An integer (higher first) or LOW/NORMAL/HIGH/URGENT")
    user_id: NonEmpty | None = Field(
        None, description="The job's owner (default default_user); a user API key may only name its own user")
    queue: NonEmpty = "default"
    scheduled_time: DateTimeIn | None = Field(None, description="Run no sooner than this (ISO 8601; no offset: UTC)")
    delay_seconds: Seconds | None = Field(None, description="Run no sooner than this many seconds from now")
    cron_expression: NonEmpty | None = Field(
        None, description="Recurring: a 5-field cron expression; the response is the job of its first fire")
    depends_on: list[str | DependencyIn] | None = Field(
        None, max_length=MAX_BATCH, description="Job ids, or {job_id, condition: success|failure|completion}")
    max_retries: Annotated[int, Field(ge=0, le=1000)] | None = None
    retry_delay: Seconds | None = None
    timeout_seconds: Annotated[float, Field(gt=0, le=MAX_SECONDS)] | None = None
    idempotency_key: NonEmpty | None = Field(None, description="Submitting the same key again returns that job")


class SubmitRequest(JobOptions):
    job_type: NonEmpty = Field(description="The handler's name")


class BatchSubmitRequest(_Request):
    jobs: list[SubmitRequest] = Field(min_length=1, max_length=MAX_BATCH)


class DependencyOut(BaseModel):
    job_id: str
    condition: str


class MetricsOut(BaseModel):
    execution_time_seconds: float | None
    items_processed: int | None
    total_items: int | None
    cpu_seconds: float | None
    peak_memory_mb: float | None


class JobOut(BaseModel):
    """A job with every field. Fields added to ``Job.to_dict`` later pass through as they are (extra allowed),
    so the API never hides what the model says."""

    model_config = ConfigDict(extra="allow")

    job_id: str
    job_type: str
    queue: str
    status: StatusName
    priority: int
    user_id: str
    parameters: dict[str, Any]
    result: Any
    error: str | None
    error_type: str | None
    progress: float
    progress_message: str | None
    progress_history: list[dict[str, Any]]
    error_history: list[dict[str, Any]]
    created_at: DateTimeText
    scheduled_time: DateTimeText | None
    started_at: DateTimeText | None
    completed_at: DateTimeText | None
    attempts: int
    max_retries: int
    retry_delay: float
    timeout_seconds: float
    depends_on: list[DependencyOut]
    cron_expression: str | None
    schedule_id: str | None
    idempotency_key: str | None
    worker_id: str | None
    metrics: MetricsOut
    run_at: DateTimeText | None
    lease_expires_at: DateTimeText | None
    seq: int = Field(description="The job's last change number (the SSE event id)")


class PolledJobOut(JobOut):
    changed: bool = Field(description="False when the wait timed out with no change")


class JobListOut(BaseModel):
    jobs: list[JobOut]
    next_cursor: str | None = Field(description="Pass as ?cursor= for the next page; null on the last page")


class BatchOut(BaseModel):
    jobs: list[JobOut]


class ActionOut(BaseModel):
    """The answer to cancel and restart."""

    job_id: str
    status: StatusName
    message: str


class BulkCancelFilter(_Request):
    status: list[StatusName] | None = None
    job_type: NonEmpty | None = None
    user_id: NonEmpty | None = None
    queue: NonEmpty | None = None
    created_after: DateTimeIn | None = None
    created_before: DateTimeIn | None = None


class BulkCancelRequest(_Request):
    """Give ``job_ids`` or ``filter`` (at least one criterion), not both."""

    job_ids: list[str] | None = Field(None, min_length=1, max_length=MAX_BATCH)
    filter: BulkCancelFilter | None = None
    reason: str | None = Field(None, description="Kept as each cancelled job's error message")


class NotCancelled(BaseModel):
    job_id: str
    error: str
    message: str
    current_status: StatusName | None = None


class BulkCancelOut(BaseModel):
    cancelled: list[str]
    not_cancelled: list[NotCancelled]
    truncated: bool = Field(description="True when the filter matched more jobs than one call cancels")


class StatsOut(BaseModel):
    """The queue statistics, plus breakdowns. For a user key the job counts are that user's. Fields
    ``JobQueue.stats`` adds later pass through (extra allowed)."""

    model_config = ConfigDict(extra="allow")

    pending_jobs: int
    running_jobs: int
    scheduled_jobs: int
    completed_jobs: int
    failed_jobs: int
    cancelled_jobs: int
    waiting_jobs: int
    retrying_jobs: int
    total_jobs: int
    queue_type: str
    cache_size: int
    active_workers: int
    cpu_usage_percent: float
    memory_usage_mb: float
    memory_usage_percent: float
    global_max_concurrent_jobs: int
    per_user_max_concurrent_jobs: int
    worker_health_status: str
    paused_workers: int
    degraded_workers: list[dict[str, str]] = Field(
        default_factory=list, description="Workers with a loop failing now: {worker_id, state}")
    resource_alerts: list[str]
    last_cleanup: DateTimeText | None
    last_cleanup_removed: int
    by_status: dict[str, int]
    by_queue: dict[str, dict[str, int]]
    by_type: dict[str, dict[str, int]]


class WorkerOut(BaseModel):
    model_config = ConfigDict(extra="allow")  # fields JobQueue.workers adds later pass through
    worker_id: str
    name: str
    hostname: str
    pid: int
    queues: list[str]
    concurrency: int
    state: str
    started_at: DateTimeText | None
    last_seen: DateTimeText | None
    heartbeat_age_seconds: float | None
    healthy: bool
    current_jobs: list[str]
    pool: str | None = Field(None, description="The name of the pool that started it (None: started alone)")


class PoolEventOut(BaseModel):
    at: DateTimeText
    kind: Literal["scale", "replace", "crash_loop", "stop"]
    detail: str = Field(description="What it did and why, e.g. '1 -> 3: 40 jobs for 8 slots, the oldest waiting 4.2s'")
    workers: int = Field(description="Its size after it")


class PoolOut(BaseModel):
    model_config = ConfigDict(extra="allow")
    pool_id: str
    name: str
    hostname: str
    pid: int
    queues: list[str]
    concurrency: int = Field(description="Slots of each of its workers")
    min_workers: int
    max_workers: int
    workers: int = Field(description="Worker processes running (draining ones not counted)")
    draining: int = Field(description="Workers finishing their jobs before they exit")
    state: Literal["running", "crash_loop", "stopping"]
    worker_pids: list[int]
    load: dict[str, Any] = Field(description="What it last read: {pending, running, oldest_wait_seconds, "
                                             "cpu_percent, memory_percent}")
    store_error: str | None
    started_at: DateTimeText
    last_seen: DateTimeText | None
    heartbeat_age_seconds: float | None
    healthy: bool = Field(description="Its registration was written within JOBHANDLE_WORKER_TIMEOUT")
    events: list[PoolEventOut] = Field(description="Its latest events (at most 20), oldest first")


class HealthOut(BaseModel):
    status: Literal["healthy", "degraded", "unhealthy"]
    store: dict[str, Any] = Field(description="{reachable, kind, error}")
    workers: dict[str, Any] = Field(description="{active, paused, health}")
    resource_alerts: list[str]
    last_cleanup: DateTimeText | None
    events: dict[str, Any] = Field(description="The change hub: {running, last_seq, subscribers, error}")
    background: list[dict[str, Any]] = Field(
        default_factory=list, description="This server's background threads: {name, alive, failures, error}")
    pending_jobs: int | None = None
    oldest_pending_wait_seconds: float | None = Field(
        None, description="How long the pending job created first has waited since it was due")
    failure_rate_1h: float | None = Field(None, description="Failed / finished over the last hour")
    issues: list[str]


class ProbeOut(BaseModel):
    status: Literal["alive", "dead", "ready", "not_ready"]
    issues: list[str]
    loops: list[dict[str, Any]] | None = Field(None, description="Liveness: {name, alive, failures, error} each")
    store: str | None = Field(None, description="Readiness: the store's kind")


class TimesOut(BaseModel):
    count: int
    p50: float | None = Field(description="seconds")
    p95: float | None
    p99: float | None


class JobTypeAnalyticsOut(BaseModel):
    completed: int
    failed: int
    cancelled: int
    retried: int = Field(description="failed attempts that will run again")
    success_rate: float | None = Field(description="completed / (completed + failed); null when neither")
    wait: TimesOut = Field(description="from due (created, scheduled or retry time) to start, per attempt")
    run: TimesOut = Field(description="the handler's run time, per attempt that ended")


class ErrorTypeOut(BaseModel):
    job_type: str
    error_type: str
    count: int
    first_slot: int = Field(description="start (Unix seconds) of the first slot it was seen in")
    last_slot: int


class AnalyticsOut(BaseModel):
    """One window's analytics, from the store's rollups (each percentile exact to within 12.5%)."""

    window: Literal["1h", "24h", "7d"]
    step_seconds: int
    since: DateTimeText
    until: DateTimeText
    slots: list[int] = Field(description="each slot's start, Unix seconds")
    series: dict[str, list[int]] = Field(description="completed, failed, cancelled, retried: a count per slot")
    totals: dict[str, int]
    times: dict[str, dict[str, list[float | None]]] = Field(
        description="wait and run: p50, p95, p99 (seconds) per slot, every job type together")
    success_rate: float | None
    job_types: dict[str, JobTypeAnalyticsOut]
    errors: list[ErrorTypeOut] = Field(description="failed attempts by job type and error type, most first")


class ScheduleCreate(JobOptions):
    """A recurring job: ``job_type`` at each fire of ``cron_expression`` (in ``timezone``, default UTC)."""

    job_type: NonEmpty
    cron_expression: NonEmpty
    timezone: NonEmpty | None = Field(None, description="IANA time zone, e.g. Europe/Paris")
    name: str | None = None

    @model_validator(mode="after")
    def _only_schedule_options(self) -> ScheduleCreate:
        unusable = [f for f in ("scheduled_time", "delay_seconds", "depends_on", "idempotency_key")
                    if getattr(self, f) is not None]
        if unusable:
            raise ValueError(f"a schedule cannot have {', '.join(unusable)}")
        return self


class ScheduleOut(BaseModel):
    schedule_id: str
    name: str | None
    cron_expression: str
    timezone: str
    job_type: str
    parameters: dict[str, Any]
    queue: str
    priority: int
    user_id: str
    max_retries: int
    retry_delay: float
    timeout_seconds: float
    paused: bool
    created_at: DateTimeText
    next_fire_at: DateTimeText | None
    last_fire_at: DateTimeText | None


class ScheduleListOut(BaseModel):
    schedules: list[ScheduleOut]


class Document(JSONResponse):
    """Job and schedule documents, written by the standard library's JSON encoder (ASCII-escaped), not through
    the response model: pydantic refuses to serialise JSON nested deeper than about 250 levels, and a job's
    parameters or a handler's result may be. The response models still document these routes."""

    def render(self, content: Any) -> bytes:
        return dumps_json(content).encode()


class ErrorOut(BaseModel):
    """The shape of every error: its type, a message, and context such as ``job_id``/``current_status``."""

    model_config = ConfigDict(extra="allow")

    error: str
    message: str


ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    code: {"model": ErrorOut, "description": text} for code, text in (
        (400, "Refused input (InvalidParameterError)"),
        (401, "Missing or unknown API key (AuthenticationError)"),
        (403, "Not allowed for this key's role (PermissionDeniedError)"),
        (404, "No such job or schedule, or not the caller's (JobNotFoundError, ScheduleNotFoundError)"),
        (409, "The job's status does not allow it (JobAlreadyCompletedError, InvalidTransitionError)"),
        (413, "Request body too large (PayloadTooLargeError)"),
        (422, "The request does not fit the schema (ValidationError)"),
    )
}
"""Documented on every operation, so the OpenAPI schema names each error response the API can send."""
