"""The job record, its state machine and the value types around it.

The transition table below is the only definition of which status may follow which; the stores derive
their SQL/Lua guards from it (see ``sources_of``) instead of spelling the lists again.
"""

from __future__ import annotations

import json
import math
import os
import reprlib
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field, fields
from datetime import datetime, timezone
from enum import Enum, IntEnum
from json.encoder import c_make_encoder, encode_basestring_ascii  # type: ignore[attr-defined]
from typing import Any, NoReturn

from .errors import InvalidParameterError

PROGRESS_HISTORY_LIMIT = 50
"""At most this many progress entries are kept per job (the newest ones)."""

ERROR_HISTORY_LIMIT = 20
"""At most this many attempt errors are kept per job (the newest ones)."""


class JobStatus(str, Enum):
    """Where a job is in its life. ``PROCESSING`` is an alias of ``RUNNING`` (the JobManager's name)."""

    WAITING = "waiting"
    SCHEDULED = "scheduled"
    PENDING = "pending"
    RUNNING = "running"
    RETRYING = "retrying"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"
    PROCESSING = "running"  # alias: JobStatus.PROCESSING is JobStatus.RUNNING

    @property
    def is_terminal(self) -> bool:
        return self in TERMINAL_STATUSES

    @classmethod
    def parse(cls, value: str | JobStatus) -> JobStatus:
        """Accept a status value or name in any case (``"processing"`` means running)."""
        if isinstance(value, JobStatus):
            return value
        text = str(value).strip().lower()
        try:
            return cls(text)
        except ValueError:
            try:
                return cls[text.upper()]
            except KeyError:
                names = ", ".join(s.value for s in ALL_STATUSES)
                raise InvalidParameterError(f"unknown status {value!r}; expected one of: {names}") from None


ALL_STATUSES: tuple[JobStatus, ...] = tuple(JobStatus)  # aliases are not iterated
TERMINAL_STATUSES = frozenset({JobStatus.COMPLETED, JobStatus.FAILED, JobStatus.CANCELLED})


@dataclass(frozen=True, slots=True)
class Transition:
    """A named change of a job's status: from any of ``sources`` to one of ``targets``."""

    name: str
    sources: frozenset[JobStatus]
    targets: frozenset[JobStatus]
    means: str

    def ordered_sources(self) -> tuple[JobStatus, ...]:
        """``sources`` in status order (for generated SQL and Lua: the same text every time)."""
        return tuple(s for s in ALL_STATUSES if s in self.sources)


def _t(name: str, sources: set[JobStatus], targets: set[JobStatus], means: str) -> Transition:
    return Transition(name, frozenset(sources), frozenset(targets), means)


_S = JobStatus
MACHINE: tuple[Transition, ...] = (
    _t("promote", {_S.SCHEDULED, _S.RETRYING}, {_S.PENDING},
       "its run time came (done by the next claim, in the same step)"),
    _t("resolve", {_S.WAITING}, {_S.PENDING, _S.SCHEDULED, _S.CANCELLED},
       "its dependencies were decided: all met (scheduled while its run time is ahead) or one can no longer be"),
    _t("claim", {_S.PENDING}, {_S.RUNNING}, "a worker took it; its attempt counts"),
    _t("complete", {_S.RUNNING}, {_S.COMPLETED}, "its handler returned a result"),
    _t("retry", {_S.RUNNING}, {_S.RETRYING}, "the attempt failed (or its worker was lost) with attempts left"),
    _t("fail", {_S.RUNNING}, {_S.FAILED}, "the attempt failed with no attempt left, or for good"),
    _t("release", {_S.RUNNING}, {_S.PENDING},
       "handed back unfinished (a stopping worker, a claim its worker never heard of); not counted"),
    _t("cancel", {_S.WAITING, _S.SCHEDULED, _S.PENDING, _S.RETRYING, _S.RUNNING}, {_S.CANCELLED},
       "cancelled by a caller (a running handler is told to stop; its late result is discarded)"),
    _t("restart", {_S.FAILED, _S.CANCELLED}, {_S.PENDING}, "run again by a caller: same id, attempts reset"),
)
"""The state machine: every way a job's status changes, by name. It is the only definition: TRANSITIONS and
the status lists below are derived from it, the stores' SQL and Lua guards are generated from it, and the
stores check every status change they make against it."""

INITIAL_STATUSES = frozenset({_S.WAITING, _S.SCHEDULED, _S.PENDING, _S.CANCELLED})
"""What a job may be when submitted (cancelled: a dependency that could no longer be met)."""

TRANSITION = {t.name: t for t in MACHINE}

# For each status, the statuses it may move to.
TRANSITIONS: dict[JobStatus, frozenset[JobStatus]] = {
    status: frozenset(target for t in MACHINE if status in t.sources for target in t.targets)
    for status in ALL_STATUSES
}


def can_transition(current: JobStatus, target: JobStatus) -> bool:
    return target in TRANSITIONS[current]


def sources_of(target: JobStatus, *, among: frozenset[JobStatus] | None = None) -> tuple[JobStatus, ...]:
    """Statuses from which ``target`` may be reached (optionally limited to ``among``), in a stable order."""
    return tuple(s for s in ALL_STATUSES if target in TRANSITIONS[s] and (among is None or s in among))


CANCELLABLE = TRANSITION["cancel"].ordered_sources()
RESTARTABLE = TRANSITION["restart"].ordered_sources()
DUE_STATUSES = TRANSITION["promote"].ordered_sources()
"""Statuses that become pending by themselves once their ``run_at`` has passed."""
FINISH_TARGETS = frozenset().union(*(TRANSITION[n].targets for n in ("complete", "retry", "fail")))
"""How an attempt may end (Store.finish): completed, retrying or failed."""


def check_finish(status: JobStatus) -> None:
    """Refuse an attempt's end the state machine has no transition for."""
    if status not in FINISH_TARGETS:
        allowed = ", ".join(s.value for s in ALL_STATUSES if s in FINISH_TARGETS)
        raise InvalidParameterError(f"an attempt ends {allowed}, not {status.value}")


_MOVES = frozenset((old.value, new.value) for old, targets in TRANSITIONS.items() for new in targets)


def check_move(old: str, new: str) -> None:
    """Refuse a status change (stored status values) the state machine has no transition for: the stores call
    it on each change they make, so it is a set lookup."""
    if old != new and (old, new) not in _MOVES:
        raise RuntimeError(f"a job moved from {old} to {new}: no transition of the state machine does that")


def dependency_met(condition: str, parent: JobStatus) -> bool | None:
    """Whether a dependency on a parent now in status ``parent`` is met (True), can no longer be met (False),
    or is undecided while the parent is not finished (None). Conditions: success, failure, completion."""
    if parent not in TERMINAL_STATUSES:
        return None
    if condition == "completion":
        return True
    return parent is (JobStatus.COMPLETED if condition == "success" else JobStatus.FAILED)


class JobPriority(IntEnum):
    """Named priorities. Any integer is a valid priority; higher runs first, FIFO within a priority."""

    LOW = -10
    NORMAL = 0
    HIGH = 10
    URGENT = 20

    @classmethod
    def parse(cls, value: int | str | JobPriority | None) -> int:
        """A priority name (any case) or an integer (also as text) -> int."""
        if value is None:
            return int(cls.NORMAL)
        if isinstance(value, bool):
            raise InvalidParameterError(f"priority must be an integer or one of {cls.names()}, not {value!r}")
        if isinstance(value, int):
            return int(value)
        if isinstance(value, str):
            text = value.strip()
            try:
                return int(text)
            except ValueError:
                pass
            try:
                return int(cls[text.upper()])
            except KeyError:
                pass
        raise InvalidParameterError(f"unknown priority {value!r}; use an integer or one of {cls.names()}")

    @classmethod
    def names(cls) -> str:
        return ", ".join(m.name for m in cls)


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


def as_utc(value: datetime | str | None) -> datetime | None:
    """Make a datetime timezone-aware UTC; naive input is taken as UTC. ISO 8601 text is parsed."""
    if value is None:
        return None
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
        except ValueError:
            raise InvalidParameterError(f"not an ISO 8601 date-time: {value!r}") from None
    if not isinstance(value, datetime):
        raise InvalidParameterError(f"expected a datetime, got {type(value).__name__}")
    if value.tzinfo is None:
        return value.replace(tzinfo=timezone.utc)
    return value.astimezone(timezone.utc)


def to_ts(value: datetime | None) -> float | None:
    """Datetime -> POSIX seconds (how stores keep times)."""
    return None if value is None else value.timestamp()


def from_ts(value: float | None) -> datetime | None:
    return None if value is None else datetime.fromtimestamp(value, timezone.utc)


def at_ts(value: float) -> datetime:
    """POSIX seconds -> datetime, for times that are always set."""
    return datetime.fromtimestamp(value, timezone.utc)


def iso(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat()


def _not_json(value: Any) -> Any:
    """The encoder's ``default``: called for any value JSON has no form for; names it."""
    raise TypeError(f"{reprlib.repr(value)} (of type {type(value).__name__}) has no JSON form")


def _strict_encoder() -> Callable[[Any], str]:
    """Compact, strict JSON (no NaN/Infinity, no objects without a JSON form) as one shared function.

    ``JSONEncoder.encode`` sets up a C encoder on every call, which is most of the cost of small values (0.8 of
    1.4 us for ``{"a": 1.5}``); the C encoder is stateless without a circular-reference memo, so it is built once
    here (a circular value then raises RecursionError, as does one nested too deeply). Without the C module
    (other Pythons), the pure-Python encoder does the same job.
    """
    if c_make_encoder is None:
        return json.JSONEncoder(separators=(",", ":"), allow_nan=False, check_circular=False,
                                default=_not_json).encode
    encode = c_make_encoder(None, _not_json, encode_basestring_ascii, None, ":", ",", False, False, False)
    return lambda value: "".join(encode(value, 0))


dumps_json = _strict_encoder()

_JSON_SCALARS = (str, int, bool, type(None))


def parse_key_value(item: str, what: str) -> tuple[str, Any]:
    """``KEY=VALUE`` (``what`` names it in errors); the value is JSON when it parses as JSON (``3``, ``true``,
    ``["a"]``), else a string."""
    key, sep, raw = item.partition("=")
    key = key.strip()
    if not sep or not key:
        raise InvalidParameterError(f"{what} expects KEY=VALUE, not {item!r}")
    try:  # NaN/Infinity are not JSON: they stay strings
        return key, json.loads(raw, parse_constant=reject_json_constant)
    except ValueError:
        return key, raw


def reject_json_constant(name: str) -> NoReturn:
    """``parse_constant`` for ``json.loads``: NaN and Infinity are not JSON, so they are refused."""
    raise ValueError(name)


def check_json(value: Any, what: str) -> Any:
    """Reject anything that is not plain JSON (no pickling, ever), including object keys that are not
    strings: JSON would turn them into strings and the handler would get other data than was submitted."""
    if type(value) in _JSON_SCALARS or _is_flat_json_object(value):  # the common cases, checked without encoding
        return value
    try:
        dumps_json(value)
    except (TypeError, ValueError) as exc:
        raise InvalidParameterError(f"{what} must be JSON-serialisable: {exc}") from None
    except RecursionError:
        raise InvalidParameterError(f"{what} must be JSON-serialisable: it is circular or nested too deeply") from None
    bad = _non_string_key(value)
    if bad is not None:
        raise InvalidParameterError(f"{what} must be JSON: object keys must be strings, not {bad!r}")
    return value


def _is_flat_json_object(value: Any) -> bool:
    """A dict of string keys and JSON scalars (finite floats included): most parameters, and JSON as they are."""
    if type(value) is not dict:
        return False
    for key, item in value.items():
        if type(key) is not str:
            return False
        if type(item) not in _JSON_SCALARS and not (type(item) is float and math.isfinite(item)):
            return False
    return True


def _non_string_key(value: Any) -> Any:
    """The first dict key, at any depth, that is not a string (None when there is none)."""
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            for key, child in item.items():
                if not isinstance(key, str):
                    return key
                if isinstance(child, (dict, list, tuple)):
                    stack.append(child)
        elif isinstance(item, (list, tuple)):
            stack.extend(child for child in item if isinstance(child, (dict, list, tuple)))
    return None


@dataclass(slots=True)
class JobMetrics:
    """What a run measured. ``cpu_seconds``/``peak_memory_mb`` are filled where measured (process mode)."""

    execution_time_seconds: float | None = None
    items_processed: int | None = None
    total_items: int | None = None
    cpu_seconds: float | None = None
    peak_memory_mb: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"execution_time_seconds": self.execution_time_seconds, "items_processed": self.items_processed,
                "total_items": self.total_items, "cpu_seconds": self.cpu_seconds,
                "peak_memory_mb": self.peak_memory_mb}

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None) -> JobMetrics:
        if not data:
            return cls()
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in names})


@dataclass(slots=True)
class Dependency:
    """``job_id`` must reach ``condition`` (success, failure or completion) before the dependant runs."""

    job_id: str
    condition: str = "success"

    CONDITIONS = ("success", "failure", "completion")

    def __post_init__(self) -> None:
        if self.condition not in self.CONDITIONS:
            raise InvalidParameterError(
                f"dependency condition must be one of {', '.join(self.CONDITIONS)}, not {self.condition!r}")
        self.job_id = parse_job_id(self.job_id)

    @classmethod
    def parse(cls, value: str | dict[str, Any] | Dependency) -> Dependency:
        if isinstance(value, Dependency):
            return value
        if isinstance(value, str):
            return cls(value)
        if isinstance(value, dict) and "job_id" in value:
            return cls(str(value["job_id"]), str(value.get("condition", "success")))
        raise InvalidParameterError(f"depends_on entries are job ids or {{job_id, condition}}, not {value!r}")


_UUID_VARIANT = {digit: "89ab"[int(digit, 16) & 3] for digit in "0123456789abcdef"}


def new_job_ids(n: int) -> list[str]:
    """``n`` random UUIDs (version 4) as text, from one read of the OS's random source.

    What ``str(uuid.uuid4())`` gives, at a third of its cost (bulk submits make one per job): the version
    digit is set to 4 and the variant digit to one of 8, 9, a, b; the other 122 bits are random."""
    h = os.urandom(16 * n).hex()
    return [f"{h[i:i + 8]}-{h[i + 8:i + 12]}-4{h[i + 13:i + 16]}-{_UUID_VARIANT[h[i + 16]]}{h[i + 17:i + 20]}-"
            f"{h[i + 20:i + 32]}" for i in range(0, 32 * n, 32)]


def new_job_id() -> str:
    """A random UUID (version 4) as text."""
    return new_job_ids(1)[0]


def parse_job_id(value: str) -> str:
    """A job id is a UUID; return it in canonical form or raise."""
    try:
        return str(uuid.UUID(str(value)))
    except (ValueError, AttributeError, TypeError):
        raise InvalidParameterError(f"job id must be a UUID, not {value!r}") from None


@dataclass(slots=True)
class Job:
    """One unit of work and everything known about it. Times are timezone-aware UTC."""

    job_type: str
    job_id: str = field(default_factory=new_job_id)
    queue: str = "default"
    status: JobStatus = JobStatus.PENDING
    priority: int = 0
    user_id: str = "default_user"
    parameters: dict[str, Any] = field(default_factory=dict)
    result: Any = None
    error: str | None = None
    error_type: str | None = None
    progress: float = 0.0
    progress_message: str | None = None
    progress_history: list[dict[str, Any]] = field(default_factory=list)
    error_history: list[dict[str, Any]] = field(default_factory=list)
    created_at: datetime = field(default_factory=utcnow)
    scheduled_time: datetime | None = None
    started_at: datetime | None = None
    completed_at: datetime | None = None
    attempts: int = 0
    max_retries: int = 3
    retry_delay: float = 60.0
    timeout_seconds: float = 259200.0
    depends_on: list[Dependency] = field(default_factory=list)
    cron_expression: str | None = None
    schedule_id: str | None = None
    idempotency_key: str | None = None
    worker_id: str | None = None
    metrics: JobMetrics = field(default_factory=JobMetrics)
    # Store bookkeeping, visible for operators:
    run_at: datetime | None = None  # when a scheduled/retrying job becomes due
    lease_expires_at: datetime | None = None  # a running job not heartbeaten by then is recovered
    seq: int = 0  # the change sequence number of this job's last change
    priority_boost: int = 0  # levels a pending job gained by waiting (priority aging); 0 once it starts

    @property
    def is_terminal(self) -> bool:
        return self.status in TERMINAL_STATUSES

    def to_dict(self) -> dict[str, Any]:
        """The API shape: ISO 8601 times, plain JSON values."""
        return {
            "job_id": self.job_id,
            "job_type": self.job_type,
            "queue": self.queue,
            "status": self.status.value,
            "priority": self.priority,
            "user_id": self.user_id,
            "parameters": self.parameters,
            "result": self.result,
            "error": self.error,
            "error_type": self.error_type,
            "progress": self.progress,
            "progress_message": self.progress_message,
            "progress_history": self.progress_history,
            "error_history": self.error_history,
            "created_at": iso(self.created_at),
            "scheduled_time": iso(self.scheduled_time),
            "started_at": iso(self.started_at),
            "completed_at": iso(self.completed_at),
            "attempts": self.attempts,
            "max_retries": self.max_retries,
            "retry_delay": self.retry_delay,
            "timeout_seconds": self.timeout_seconds,
            "depends_on": [{"job_id": d.job_id, "condition": d.condition} for d in self.depends_on],
            "cron_expression": self.cron_expression,
            "schedule_id": self.schedule_id,
            "idempotency_key": self.idempotency_key,
            "worker_id": self.worker_id,
            "metrics": self.metrics.to_dict(),
            "run_at": iso(self.run_at),
            "lease_expires_at": iso(self.lease_expires_at),
            "seq": self.seq,
            "priority_boost": self.priority_boost,
        }


def clamp_progress(value: float) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or math.isnan(value):
        raise InvalidParameterError(f"progress must be a number between 0 and 1, not {value!r}")
    return min(1.0, max(0.0, float(value)))


@dataclass(slots=True)
class Schedule:
    """A recurring job: a cron expression (in a time zone) and the job to enqueue at each fire time.

    The job for the next fire always exists, as a ``scheduled`` job; when its time passes, the job for the
    fire after it is created. ``generation`` grows each time the schedule is resumed.
    """

    job_type: str
    cron_expression: str
    schedule_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    name: str | None = None
    timezone: str = "UTC"
    parameters: dict[str, Any] = field(default_factory=dict)
    queue: str = "default"
    priority: int = 0
    user_id: str = "default_user"
    max_retries: int = 3
    retry_delay: float = 60.0
    timeout_seconds: float = 259200.0
    paused: bool = False
    generation: int = 0
    created_at: datetime = field(default_factory=utcnow)
    next_fire_at: datetime | None = None
    last_fire_at: datetime | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "schedule_id": self.schedule_id, "name": self.name, "cron_expression": self.cron_expression,
            "timezone": self.timezone, "job_type": self.job_type, "parameters": self.parameters,
            "queue": self.queue, "priority": self.priority, "user_id": self.user_id,
            "max_retries": self.max_retries, "retry_delay": self.retry_delay,
            "timeout_seconds": self.timeout_seconds, "paused": self.paused, "created_at": iso(self.created_at),
            "next_fire_at": iso(self.next_fire_at), "last_fire_at": iso(self.last_fire_at),
        }


def take_token(tokens: float, updated_at: float, now: float, per_second: float, burst: float) -> tuple[float, float]:
    """One step of a token bucket: refill since ``updated_at``, then take a token if there is one.

    Returns (tokens left, seconds to wait): a wait of 0 means the token was taken.
    """
    tokens = min(burst, tokens + max(0.0, now - updated_at) * per_second)
    if tokens >= 1.0:
        return tokens - 1.0, 0.0
    return tokens, (1.0 - tokens) / per_second


_SEED003_MODELS = ("EnhancedExtractionJob", "JobType", "JobDependency", "JobSchedule", "ResourceLimits")


def __getattr__(name: str) -> Any:
    """Seed 003's model names (``from jobhandle.models import ResourceLimits, JobSchedule``), defined in
    seed003.py, which builds on this module; loaded when first asked for."""
    if name in _SEED003_MODELS:
        from . import seed003

        return getattr(seed003, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
