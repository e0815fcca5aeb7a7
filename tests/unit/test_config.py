"""Settings: seed 003's variable names, JOBHANDLE_-prefixed ones, defaults, keyword overrides, validation."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from jobhandle import Settings

SEED_VARIABLES = [
    "REDIS_URL", "JOB_QUEUE_WORKERS_MIN", "JOB_QUEUE_WORKERS_MAX", "JOB_QUEUE_CPU_THRESHOLD",
    "JOB_QUEUE_MEMORY_THRESHOLD", "JOB_DEFAULT_TIMEOUT", "JOB_MAX_RETRIES", "JOB_RETRY_DELAY",
    "JOB_MAX_CPU_PERCENT", "JOB_MAX_MEMORY_MB", "JOB_MAX_API_CALLS_PER_MINUTE",
]


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """Each test starts from an environment without any variable Settings reads."""
    for name in SEED_VARIABLES + [n for n in os.environ if n.startswith("JOBHANDLE_")]:
        monkeypatch.delenv(name, raising=False)


def test_defaults() -> None:
    s = Settings()
    assert s.store == "sqlite:///./jobhandle.db"
    assert s.redis_url is None
    assert (s.workers_min, s.workers_max) == (2, 10)
    assert (s.max_retries, s.retry_delay, s.default_timeout) == (3, 60.0, 259200.0)
    assert (s.global_max_concurrent_jobs, s.per_user_max_concurrent_jobs) == (10, 3)


@pytest.mark.parametrize(("variable", "field", "text", "expected"), [
    ("REDIS_URL", "redis_url", "redis://cache:6379/2", "redis://cache:6379/2"),
    ("JOB_QUEUE_WORKERS_MIN", "workers_min", "1", 1),
    ("JOB_QUEUE_WORKERS_MAX", "workers_max", "20", 20),
    ("JOB_QUEUE_CPU_THRESHOLD", "cpu_threshold", "70.5", 70.5),
    ("JOB_QUEUE_MEMORY_THRESHOLD", "memory_threshold", "90", 90.0),
    ("JOB_DEFAULT_TIMEOUT", "default_timeout", "120", 120.0),
    ("JOB_MAX_RETRIES", "max_retries", "7", 7),
    ("JOB_RETRY_DELAY", "retry_delay", "2.5", 2.5),
    ("JOB_MAX_CPU_PERCENT", "max_cpu_percent", "50", 50.0),
    ("JOB_MAX_MEMORY_MB", "max_memory_mb", "512", 512.0),
    ("JOB_MAX_API_CALLS_PER_MINUTE", "max_api_calls_per_minute", "120", 120),
    ("JOBHANDLE_STORE", "store", "memory://", "memory://"),
    ("JOBHANDLE_GLOBAL_MAX_CONCURRENT_JOBS", "global_max_concurrent_jobs", "25", 25),
    ("JOBHANDLE_PER_USER_MAX_CONCURRENT_JOBS", "per_user_max_concurrent_jobs", "5", 5),
    ("JOBHANDLE_HEARTBEAT_INTERVAL", "heartbeat_interval", "1.5", 1.5),
    ("JOBHANDLE_RETENTION_COMPLETED_HOURS", "retention_completed_hours", "48", 48.0),
])
def test_environment_variables_are_read(monkeypatch: pytest.MonkeyPatch, variable: str, field: str, text: str,
                                        expected: object) -> None:
    monkeypatch.setenv(variable, text)
    assert getattr(Settings(), field) == expected


def test_redis_url_alone_names_the_store(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REDIS_URL", "redis://cache:6379/2")
    assert Settings().store == "redis://cache:6379/2"
    monkeypatch.setenv("JOBHANDLE_STORE", "sqlite:///jobs.db")
    assert Settings().store == "sqlite:///jobs.db"
    assert Settings(store="memory://").store == "memory://"


def test_keyword_arguments_override_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("JOB_MAX_RETRIES", "7")
    monkeypatch.setenv("JOBHANDLE_HEARTBEAT_INTERVAL", "9")
    s = Settings(max_retries=1, heartbeat_interval=0.5)
    assert (s.max_retries, s.heartbeat_interval) == (1, 0.5)


@pytest.mark.parametrize(("variable", "text", "named"), [
    ("JOB_MAX_RETRIES", "abc", "JOB_MAX_RETRIES"),
    ("JOB_MAX_RETRIES", "-1", "JOB_MAX_RETRIES"),
    ("JOB_RETRY_DELAY", "-5", "JOB_RETRY_DELAY"),
    ("JOB_DEFAULT_TIMEOUT", "0", "JOB_DEFAULT_TIMEOUT"),
    ("JOB_QUEUE_WORKERS_MAX", "0", "JOB_QUEUE_WORKERS_MAX"),
    ("JOB_QUEUE_CPU_THRESHOLD", "lots", "JOB_QUEUE_CPU_THRESHOLD"),
    ("JOBHANDLE_HEARTBEAT_INTERVAL", "0", "heartbeat_interval"),
    ("JOBHANDLE_GLOBAL_MAX_CONCURRENT_JOBS", "zero", "global_max_concurrent_jobs"),
    ("JOBHANDLE_PROGRESS_INTERVAL", "-1", "progress_interval"),
])
def test_invalid_values_are_rejected_naming_the_setting(monkeypatch: pytest.MonkeyPatch, variable: str,
                                                        text: str, named: str) -> None:
    monkeypatch.setenv(variable, text)
    with pytest.raises(ValueError) as error:
        Settings()
    assert named.lower() in str(error.value).lower()


def test_invalid_keyword_values_are_rejected() -> None:
    with pytest.raises(ValueError, match="worker_timeout"):
        Settings(worker_timeout=0)


def test_fewer_max_workers_than_min_is_rejected(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("JOB_QUEUE_WORKERS_MIN", "5")
    monkeypatch.setenv("JOB_QUEUE_WORKERS_MAX", "2")
    with pytest.raises(ValueError, match=r"(?i)workers"):
        Settings()


@pytest.mark.parametrize("variable", ["JOB_QUEUE_CPU_THRESHOLD", "JOB_QUEUE_MEMORY_THRESHOLD"])
def test_percent_thresholds_above_100_are_rejected(monkeypatch: pytest.MonkeyPatch, variable: str) -> None:
    monkeypatch.setenv(variable, "150")
    with pytest.raises(ValueError, match=variable):
        Settings()


def test_an_unknown_keyword_is_rejected_by_name() -> None:
    with pytest.raises(ValueError, match="unknown setting max_retry"):
        Settings(max_retry=1)


def test_every_bad_value_is_named_in_one_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("JOB_MAX_RETRIES", "many")
    with pytest.raises(ValueError) as error:
        Settings(worker_mode="fork", heartbeat_interval=True)
    message = str(error.value)
    assert "max_retries (JOB_MAX_RETRIES): must be a whole number (got 'many')" in message
    assert "worker_mode: must be one of thread, process (got 'fork')" in message
    assert "heartbeat_interval: must be a number, not a boolean" in message


def test_values_are_converted_to_the_settings_types(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("JOBHANDLE_DOCUMENTS_INPUT_ROOTS", f"{tmp_path}{os.pathsep}{os.pathsep}/srv/in")
    s = Settings(heartbeat_file=str(tmp_path / "beat.json"), max_retries=2.0, retry_delay=1)
    assert s.documents_input_roots == [tmp_path, Path("/srv/in")]
    assert s.heartbeat_file == tmp_path / "beat.json"
    assert (s.max_retries, type(s.max_retries), s.retry_delay, type(s.retry_delay)) == (2, int, 1.0, float)
    with pytest.raises(ValueError, match="documents_input_roots: must name at least one folder"):
        Settings(documents_input_roots=[])


def test_secrets_are_not_shown(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("JOBHANDLE_API_KEYS", "k3y-value:ann")
    s = Settings(session_secret="s3cret")
    assert s.api_keys is not None and s.api_keys.get_secret_value() == "k3y-value:ann"
    assert s.session_secret is not None and s.session_secret.get_secret_value() == "s3cret"
    assert "k3y-value" not in repr(s) and "s3cret" not in repr(s) and "s3cret" not in str(s.session_secret)


def test_replace_validates_and_keeps_the_rest(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REDIS_URL", "redis://cache:6379/2")
    s = Settings(max_retries=5)
    copy = s.replace(retry_delay=2)
    assert (copy.max_retries, copy.retry_delay, copy.store) == (5, 2.0, "redis://cache:6379/2")
    assert s.retry_delay == 60.0
    with pytest.raises(ValueError, match="retry_delay: must be at least 0"):
        s.replace(retry_delay=-1)
