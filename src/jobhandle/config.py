"""The one settings object. Nothing else in jobhandle reads ``os.environ``.

The established job-queue variables keep their names (``REDIS_URL``, ``JOB_*``, ``JOB_QUEUE_*``); jobhandle's own are
prefixed ``JOBHANDLE_``. Construct ``Settings(...)`` with keyword arguments to override in code; ``replace(...)``
gives a copy with some changed, validated the same way.

A plain dataclass rather than a pydantic-settings model: every worker, pool and CLI call reads the settings at
start-up, and importing pydantic-settings alone takes longer than a whole worker's start (``jobhandle worker``
is ready to claim in well under 0.2 s; see bench/README.md "Worker start").
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, cast

from .errors import InvalidParameterError

PREFIX = "JOBHANDLE_"


class SettingsError(InvalidParameterError):
    """A setting (a keyword or an environment variable) has a value it cannot take; the message names each."""


@dataclass(frozen=True, slots=True)
class SecretStr:
    """A secret (API keys, the session secret): never shown by ``repr`` or ``str``."""

    secret: str = dataclasses.field(repr=False)

    def get_secret_value(self) -> str:
        return self.secret

    def __str__(self) -> str:
        return "**********"


def _number(kind: type[int] | type[float]) -> Callable[[object], int | float]:
    def convert(value: object) -> int | float:
        if isinstance(value, bool):
            raise ValueError("must be a number, not a boolean")
        if kind is int and isinstance(value, float):
            if not value.is_integer():
                raise ValueError("must be a whole number")
            return int(value)
        if isinstance(value, (int, float)):
            return kind(value)
        if isinstance(value, str):
            try:
                return kind(value.strip())
            except ValueError:
                raise ValueError(f"must be {'a whole number' if kind is int else 'a number'}") from None
        raise ValueError(f"must be a number, not {type(value).__name__}")
    return convert


def _text(value: object) -> str:
    if not isinstance(value, str):
        raise ValueError(f"must be a string, not {type(value).__name__}")
    return value


def _path(value: object) -> Path:
    if not isinstance(value, (str, os.PathLike)):
        raise ValueError(f"must be a path, not {type(value).__name__}")
    return Path(value)


def _secret(value: object) -> SecretStr:
    return value if isinstance(value, SecretStr) else SecretStr(_text(value))


def _folder_list(value: object) -> list[Path]:
    """Folders given as one string are separated by ``os.pathsep`` (``:``, on Windows ``;``), as in ``PATH``;
    empty entries are ignored. At least one folder is required."""
    if isinstance(value, (str, os.PathLike)):
        value = [part for part in os.fspath(value).split(os.pathsep) if part] if isinstance(value, str) else [value]
    if not isinstance(value, (list, tuple)):
        raise ValueError(f"must be a list of folders, not {type(value).__name__}")
    if not value:
        raise ValueError(f"must name at least one folder (several are separated by {os.pathsep!r})")
    return [_path(part) for part in value]


def _choice(*allowed: str) -> Callable[[object], str]:
    def convert(value: object) -> str:
        if value not in allowed:
            raise ValueError(f"must be one of {', '.join(allowed)}")
        return cast(str, value)
    return convert


def _optional(convert: Callable[[object], Any]) -> Callable[[object], Any]:
    return lambda value: None if value is None else convert(value)


def setting(default: Any = None, *, convert: Callable[[object], Any] | None = None, env: str | None = None,
            ge: float | None = None, gt: float | None = None, le: float | None = None,
            factory: Callable[[], Any] | None = None, description: str = "") -> Any:
    """A setting: its default, how a keyword or a variable's text becomes its value, its bounds, and the
    environment variable it is read from (``env``; else ``JOBHANDLE_`` + its name in capitals)."""
    meta = {"convert": convert, "env": env, "ge": ge, "gt": gt, "le": le, "description": description}
    if factory is not None:
        return dataclasses.field(default_factory=factory, metadata=meta)
    return dataclasses.field(default=default, metadata=meta)


@dataclass(init=False)
class Settings:
    # Where jobs live.
    store: str = setting("sqlite:///./jobhandle.db", convert=_text,
                         description="Store URL: sqlite:///path, redis://host:6379/0[?prefix=name], memory://")
    redis_url: str | None = setting(None, convert=_optional(_text), env="REDIS_URL",
                                    description="The store, when JOBHANDLE_STORE is unset")
    wait_for_store: float = setting(
        60.0, ge=0, description="jobhandle worker/serve: seconds to keep trying a store that does not answer at "
                                "start-up (Redis not up yet); 0: fail at once")

    # Worker pool and resource thresholds.
    workers_min: int = setting(2, ge=0, env="JOB_QUEUE_WORKERS_MIN")
    workers_max: int = setting(10, ge=1, env="JOB_QUEUE_WORKERS_MAX")
    cpu_threshold: float = setting(80.0, gt=0, le=100, env="JOB_QUEUE_CPU_THRESHOLD")
    memory_threshold: float = setting(85.0, gt=0, le=100, env="JOB_QUEUE_MEMORY_THRESHOLD")

    # Job defaults and limits.
    default_timeout: float = setting(259200.0, gt=0, env="JOB_DEFAULT_TIMEOUT")
    max_retries: int = setting(3, ge=0, env="JOB_MAX_RETRIES")
    retry_delay: float = setting(60.0, ge=0, env="JOB_RETRY_DELAY")
    max_cpu_percent: float = setting(80.0, gt=0, le=100, env="JOB_MAX_CPU_PERCENT")
    max_memory_mb: float = setting(1024.0, gt=0, env="JOB_MAX_MEMORY_MB")
    max_api_calls_per_minute: int = setting(60, gt=0, env="JOB_MAX_API_CALLS_PER_MINUTE")

    # jobhandle's own.
    global_max_concurrent_jobs: int = setting(10, ge=0, description="Jobs running at once in all; 0: no limit")
    per_user_max_concurrent_jobs: int = setting(3, ge=0, description="Jobs running at once per user; 0: no limit")
    worker_concurrency: int = setting(4, ge=1, description="Slots of a worker started without --concurrency")
    worker_mode: Literal["thread", "process"] = setting(
        "thread", convert=_choice("thread", "process"),
        description="thread: handlers run in the worker's threads; process: in a child process per slot")
    heartbeat_interval: float = setting(5.0, gt=0, description="Seconds between worker heartbeats")
    worker_timeout: float = setting(30.0, gt=0, description="A worker silent this long is dead")
    shutdown_grace: float = setting(30.0, ge=0, description="SIGTERM: seconds running jobs may still finish")
    progress_interval: float = setting(0.2, ge=0, description="At most one progress write per job this often")
    retention_completed_hours: float = setting(24.0, ge=0)
    retention_failed_hours: float = setting(168.0, ge=0)
    retention_cancelled_hours: float = setting(168.0, ge=0)
    cleanup_interval: float = setting(600.0, gt=0, description="Seconds between retention cleanups")
    sqlite_poll_interval: float = setting(
        0.1, gt=0, description="Fallback: how often a SQLite waiter checks for commits it was not woken for")
    retry_backoff_cap: float = setting(3600.0, ge=0, description="Longest automatic retry delay, seconds")
    health_max_wait_seconds: float = setting(
        600.0, ge=0, description="Health reports an issue when the oldest pending job has waited longer; 0: off")
    health_max_failure_rate: float = setting(
        0.5, ge=0, le=1, description="Health reports an issue when more of the last hour's finished jobs failed "
                                     "(judged from 20 finished jobs on)")
    heartbeat_file: Path | None = setting(
        None, convert=_optional(_path),
        description="A worker writes its heartbeat here (JSON) for probes that do not reach the store")
    priority_aging_seconds: float = setting(
        60.0, ge=0, description="A pending job gains one priority level per this many seconds waited; 0: off")
    priority_aging_max: int = setting(10, ge=0, description="Most priority levels a job gains by waiting")

    # REST API (jobhandle serve). No keys configured: authentication is off.
    api_keys: SecretStr | None = setting(
        None, convert=_optional(_secret),
        description="API keys as comma-separated key:user[:role] entries, role user (default), admin or "
                    "viewer (sees all, changes nothing)")
    api_keys_file: Path | None = setting(
        None, convert=_optional(_path),
        description="A file of API keys, one key:user[:role] per line; # starts a comment")
    max_body_bytes: int = setting(1_048_576, ge=0, description="Largest request body the API accepts, bytes")
    sse_keepalive_seconds: float = setting(15.0, gt=0, description="Idle seconds between SSE keep-alive comments")
    poll_timeout_max: float = setting(120.0, gt=0, description="Longest wait of a long-poll request, seconds")

    # Web dashboard (jobhandle serve, at /).
    session_secret: SecretStr | None = setting(
        None, convert=_optional(_secret),
        description="Signs dashboard session cookies: set the same value on every API server behind one "
                    "address. Unset: a random secret per process (sessions end when it restarts)")
    session_hours: float = setting(12.0, gt=0, description="A dashboard sign-in lasts this many hours")
    alert_wait_seconds: float = setting(
        300.0, gt=0, description="Dashboard alert: a queue whose oldest ready job has waited longer than this")

    # Bundled document handlers (jobhandle.handlers): the only folders job parameters may name.
    documents_input_roots: list[Path] = setting(
        convert=_folder_list, factory=lambda: [Path(".")],
        description="Folders process_document/process_batch may read, separated by os.pathsep; relative paths "
                    "in job parameters resolve against the first. Default: the worker's current directory")
    documents_output_root: Path = setting(
        Path("."), convert=_path, description="The folder their output_dir resolves against and must stay inside. "
                                              "Default: the worker's current directory")

    def __init__(self, **values: Any) -> None:
        """Each setting from its keyword, else its environment variable, else its default; every value that
        cannot be taken is named in one SettingsError."""
        unknown = sorted(set(values) - {f.name for f in dataclasses.fields(self)})
        if unknown:
            raise SettingsError(f"invalid configuration: unknown setting {', '.join(unknown)}")
        problems: list[str] = []
        for f in dataclasses.fields(self):
            variable = f.metadata["env"] or PREFIX + f.name.upper()
            if f.name in values:
                given, source = values[f.name], f.name
            elif variable in os.environ:
                given, source = os.environ[variable], f"{f.name} ({variable})"
            else:
                setattr(self, f.name, _default(f))
                continue
            try:
                setattr(self, f.name, _checked(f, given))
            except ValueError as exc:
                problems.append(f"{source}: {exc} (got {given!r})")
        if not problems and self.workers_min > self.workers_max:
            problems.append(f"JOB_QUEUE_WORKERS_MIN ({self.workers_min}) must not exceed "
                            f"JOB_QUEUE_WORKERS_MAX ({self.workers_max})")
        if problems:
            raise SettingsError(f"invalid configuration: {'; '.join(problems)}")
        if self.redis_url and "store" not in values and PREFIX + "STORE" not in os.environ:
            self.store = self.redis_url  # deployments that set only REDIS_URL

    def replace(self, **changes: Any) -> Settings:
        """A copy with ``changes`` applied, each validated as in ``Settings(...)``."""
        return Settings(**{**self.as_dict(), **changes})

    def as_dict(self) -> dict[str, Any]:
        """Every setting by name (secrets stay SecretStr)."""
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}


def _default(f: dataclasses.Field[Any]) -> Any:
    if f.default_factory is not dataclasses.MISSING:
        return f.default_factory()
    return f.default


def _checked(f: dataclasses.Field[Any], given: object) -> Any:
    meta = f.metadata
    convert = meta["convert"] or _number(int if f.type in ("int", int) else float)
    value = convert(given)
    if meta["ge"] is not None and value < meta["ge"]:
        raise ValueError(f"must be at least {meta['ge']:g}")
    if meta["gt"] is not None and value <= meta["gt"]:
        raise ValueError(f"must be more than {meta['gt']:g}")
    if meta["le"] is not None and value > meta["le"]:
        raise ValueError(f"must be at most {meta['le']:g}")
    return value
