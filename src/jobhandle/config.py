"""The one settings object. Nothing else in jobhandle reads ``os.environ``.

The established job-queue variables keep their names (``REDIS_URL``, ``JOB_*``, ``JOB_QUEUE_*``); jobhandle's own are
prefixed ``JOBHANDLE_``. Construct ``Settings(...)`` with keyword arguments to override in code.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Literal

from pydantic import AliasChoices, BeforeValidator, Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict


def _folder_list(value: object) -> object:
    """Folders given as one string are separated by ``os.pathsep`` (``:``, on Windows ``;``), as in ``PATH``;
    empty entries are ignored. At least one folder is required."""
    if isinstance(value, Path):
        value = [value]
    elif isinstance(value, str):
        value = [part for part in value.split(os.pathsep) if part]
    if isinstance(value, (list, tuple)) and not value:
        raise ValueError(f"must name at least one folder (several are separated by {os.pathsep!r})")
    return value


FolderList = Annotated[list[Path], NoDecode, BeforeValidator(_folder_list)]
"""A list of folders; from the environment one string separated by ``os.pathsep`` (not JSON)."""


def _env(name: str) -> AliasChoices:
    """Read a field from its established unprefixed variable, keeping the field name usable in code."""
    return AliasChoices(name)


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="JOBHANDLE_", extra="ignore", populate_by_name=True)

    # Where jobs live.
    store: str = Field("sqlite:///./jobhandle.db",
                       description="Store URL: sqlite:///path, redis://host:6379/0[?prefix=name], memory://")
    redis_url: str | None = Field(
        None, validation_alias=_env("REDIS_URL"), description="The store, when JOBHANDLE_STORE is unset")
    wait_for_store: float = Field(
        60.0, ge=0, description="jobhandle worker/serve: seconds to keep trying a store that does not answer at "
                                "start-up (Redis not up yet); 0: fail at once")

    # Worker pool and resource thresholds.
    workers_min: int = Field(2, ge=0, validation_alias=_env("JOB_QUEUE_WORKERS_MIN"))
    workers_max: int = Field(10, ge=1, validation_alias=_env("JOB_QUEUE_WORKERS_MAX"))
    cpu_threshold: float = Field(80.0, gt=0, le=100, validation_alias=_env("JOB_QUEUE_CPU_THRESHOLD"))
    memory_threshold: float = Field(85.0, gt=0, le=100, validation_alias=_env("JOB_QUEUE_MEMORY_THRESHOLD"))

    # Job defaults and limits.
    default_timeout: float = Field(259200.0, gt=0, validation_alias=_env("JOB_DEFAULT_TIMEOUT"))
    max_retries: int = Field(3, ge=0, validation_alias=_env("JOB_MAX_RETRIES"))
    retry_delay: float = Field(60.0, ge=0, validation_alias=_env("JOB_RETRY_DELAY"))
    max_cpu_percent: float = Field(80.0, gt=0, le=100, validation_alias=_env("JOB_MAX_CPU_PERCENT"))
    max_memory_mb: float = Field(1024.0, gt=0, validation_alias=_env("JOB_MAX_MEMORY_MB"))
    max_api_calls_per_minute: int = Field(60, gt=0, validation_alias=_env("JOB_MAX_API_CALLS_PER_MINUTE"))

    # jobhandle's own.
    global_max_concurrent_jobs: int = Field(10, ge=0, description="Jobs running at once in all; 0: no limit")
    per_user_max_concurrent_jobs: int = Field(3, ge=0, description="Jobs running at once per user; 0: no limit")
    worker_concurrency: int = Field(4, ge=1, description="Slots of a worker started without --concurrency")
    worker_mode: Literal["thread", "process"] = Field(
        "thread", description="thread: handlers run in the worker's threads; process: in a child process per slot")
    heartbeat_interval: float = Field(5.0, gt=0, description="Seconds between worker heartbeats")
    worker_timeout: float = Field(30.0, gt=0, description="A worker silent this long is dead")
    shutdown_grace: float = Field(30.0, ge=0, description="SIGTERM: seconds running jobs may still finish")
    progress_interval: float = Field(0.2, ge=0, description="At most one progress write per job this often")
    retention_completed_hours: float = Field(24.0, ge=0)
    retention_failed_hours: float = Field(168.0, ge=0)
    retention_cancelled_hours: float = Field(168.0, ge=0)
    cleanup_interval: float = Field(600.0, gt=0, description="Seconds between retention cleanups")
    sqlite_poll_interval: float = Field(
        0.1, gt=0, description="Fallback: how often a SQLite waiter checks for commits it was not woken for")
    retry_backoff_cap: float = Field(3600.0, ge=0, description="Longest automatic retry delay, seconds")
    health_max_wait_seconds: float = Field(
        600.0, ge=0, description="Health reports an issue when the oldest pending job has waited longer; 0: off")
    health_max_failure_rate: float = Field(
        0.5, ge=0, le=1, description="Health reports an issue when more of the last hour's finished jobs failed "
                                     "(judged from 20 finished jobs on)")
    heartbeat_file: Path | None = Field(
        None, description="A worker writes its heartbeat here (JSON) for probes that do not reach the store")
    priority_aging_seconds: float = Field(
        60.0, ge=0, description="A pending job gains one priority level per this many seconds waited; 0: off")
    priority_aging_max: int = Field(10, ge=0, description="Most priority levels a job gains by waiting")

    # REST API (jobhandle serve). No keys configured: authentication is off.
    api_keys: SecretStr | None = Field(
        None, description="API keys as comma-separated key:user[:role] entries, role user (default), admin or "
                          "viewer (sees all, changes nothing)")
    api_keys_file: Path | None = Field(
        None, description="A file of API keys, one key:user[:role] per line; # starts a comment")
    max_body_bytes: int = Field(1_048_576, ge=0, description="Largest request body the API accepts, bytes")
    sse_keepalive_seconds: float = Field(15.0, gt=0, description="Idle seconds between SSE keep-alive comments")
    poll_timeout_max: float = Field(120.0, gt=0, description="Longest wait of a long-poll request, seconds")

    # Web dashboard (jobhandle serve, at /).
    session_secret: SecretStr | None = Field(
        None, description="Signs dashboard session cookies: set the same value on every API server behind one "
                          "address. Unset: a random secret per process (sessions end when it restarts)")
    session_hours: float = Field(12.0, gt=0, description="A dashboard sign-in lasts this many hours")
    alert_wait_seconds: float = Field(
        300.0, gt=0, description="Dashboard alert: a queue whose oldest ready job has waited longer than this")

    # Bundled document handlers (jobhandle.handlers): the only folders job parameters may name.
    documents_input_roots: FolderList = Field(
        default_factory=lambda: [Path(".")],
        description="Folders process_document/process_batch may read, separated by os.pathsep; relative paths "
                    "in job parameters resolve against the first. Default: the worker's current directory")
    documents_output_root: Path = Field(
        Path("."), description="The folder their output_dir resolves against and must stay inside. Default: the "
                               "worker's current directory")

    @model_validator(mode="after")
    def _min_not_above_max(self) -> Settings:
        if self.workers_min > self.workers_max:
            raise ValueError(f"JOB_QUEUE_WORKERS_MIN ({self.workers_min}) must not exceed "
                             f"JOB_QUEUE_WORKERS_MAX ({self.workers_max})")
        return self

    @model_validator(mode="after")
    def _redis_url_names_the_store(self) -> Settings:
        """Deployments that set only ``REDIS_URL``: it names the store unless JOBHANDLE_STORE does."""
        if self.redis_url and "store" not in self.model_fields_set:
            self.store = self.redis_url
        return self
