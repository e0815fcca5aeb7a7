"""Waiting for the store at start-up: ``open_store(url, wait_seconds=...)`` retries a store whose server does not
answer with exponential backoff, and ``jobhandle worker``/``jobhandle serve --wait-for-store SECONDS`` (setting
``JOBHANDLE_WAIT_FOR_STORE``) start once Redis comes up, or exit with one line when the time is up."""

from __future__ import annotations

import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import IO

import httpx
import pytest
from helpers import wait_until
from store_urls import private_redis_server

import jobhandle.stores as stores
from jobhandle import JobQueue, JobStatus, Settings, StoreUnavailableError, StoreURLError
from jobhandle.errors import StoreOpenError
from jobhandle.registry import HandlerRegistry
from jobhandle.stores import masked_url, open_store

JOBHANDLE = Path(sys.executable).parent / "jobhandle"
DEADLINE = 20.0

HANDLERS = '''
from jobhandle import handler


@handler("echo_after_wait")
def echo_after_wait(ctx, text: str = "hi"):
    return {"echo": text}
'''


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def redis_binary() -> str:
    binary = shutil.which("redis-server")
    if binary is None:
        reason = "redis-server is not installed"
        if os.environ.get("JOBHANDLE_REQUIRE_REDIS") == "1":
            pytest.fail(reason + " (JOBHANDLE_REQUIRE_REDIS=1)")
        pytest.skip(reason)
    return binary


class FakeTime:
    """The waiting's clock and sleep: a sleep moves the clock, and is recorded."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.pauses: list[float] = []

    def monotonic(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.pauses.append(seconds)
        self.now += seconds


@pytest.fixture
def fake_time(monkeypatch: pytest.MonkeyPatch) -> FakeTime:
    fake = FakeTime()
    monkeypatch.setattr(stores, "_monotonic", fake.monotonic)
    monkeypatch.setattr(stores, "_sleep", fake.sleep)
    return fake


# -- open_store(wait_seconds=...) --------------------------------------------------------------------------

def test_an_unreachable_store_is_tried_with_backoff_until_the_time_is_up(
        fake_time: FakeTime, caplog: pytest.LogCaptureFixture) -> None:
    url = f"redis://:s3cret@127.0.0.1:{free_port()}/0"  # nothing listens there: refused at once
    caplog.set_level(logging.WARNING, logger="jobhandle.stores")

    with pytest.raises(StoreUnavailableError) as raised:
        open_store(url, wait_seconds=20)

    assert fake_time.pauses == [0.5, 1, 2, 4, 5, 5, 2.5]  # doubling, at most 5 s, the last one up to the end
    assert "gave up waiting for the store" in raised.value.message and "after 20s" in raised.value.message
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == len(fake_time.pauses)
    assert all(masked_url(url) in w and "does not answer" in w for w in warnings), warnings
    assert "try 1 failed" in warnings[0] and "next try in 0.5s, giving up in 20.0s" in warnings[0], warnings
    assert "s3cret" not in raised.value.message + "".join(warnings)


def test_without_a_wait_an_unreachable_store_fails_at_once(fake_time: FakeTime) -> None:
    with pytest.raises(StoreUnavailableError) as raised:
        open_store(f"redis://:s3cret@127.0.0.1:{free_port()}/0", wait_seconds=0)

    assert fake_time.pauses == []
    assert "does not answer" in raised.value.message and "s3cret" not in raised.value.message


def test_only_an_unreachable_server_is_waited_for(fake_time: FakeTime, tmp_path: Path) -> None:
    with pytest.raises(StoreURLError):
        open_store("redis://", wait_seconds=30)
    with pytest.raises(StoreURLError):
        open_store("postgres://db/jobs", wait_seconds=30)
    (tmp_path / "afile").write_text("")
    with pytest.raises(StoreOpenError):
        open_store(f"sqlite:///{tmp_path}/afile/jobs.db", wait_seconds=30)

    assert fake_time.pauses == []


def test_a_store_that_answers_is_opened_without_waiting(fake_time: FakeTime, redis_server: str) -> None:
    store = open_store(f"{redis_server}?prefix=jhwait-{uuid.uuid4().hex[:8]}", wait_seconds=30)
    try:
        assert store.kind == "redis"
    finally:
        store.close()
    assert fake_time.pauses == []


def test_masked_url_hides_only_the_password() -> None:
    assert masked_url("redis://:pw@host:6379/0?prefix=a") == "redis://:***@host:6379/0?prefix=a"
    assert masked_url("rediss://user:p%40ss@host/1") == "rediss://user:***@host/1"
    assert masked_url("redis://host:6379/0") == "redis://host:6379/0"
    assert masked_url("sqlite:///jobs.db") == "sqlite:///jobs.db"


def test_the_setting_defaults_to_a_minute(monkeypatch: pytest.MonkeyPatch) -> None:
    assert Settings().wait_for_store == 60
    monkeypatch.setenv("JOBHANDLE_WAIT_FOR_STORE", "0")
    assert Settings().wait_for_store == 0


# -- jobhandle worker / serve as real processes ------------------------------------------------------------

class Process:
    """A ``jobhandle ...`` process; stderr goes to a file the test reads."""

    def __init__(self, args: list[str], log: Path, env: dict[str, str] | None = None) -> None:
        self.log = log
        self._stderr: IO[str] = log.open("w")
        self.started = time.monotonic()
        self.proc = subprocess.Popen([str(JOBHANDLE), *args], stdout=subprocess.PIPE, stderr=self._stderr,
                                     text=True, env={**os.environ, **(env or {})})

    def stderr(self) -> str:
        return self.log.read_text()

    def wait_for_log(self, text: str) -> None:
        wait_until(lambda: text in self.stderr() or self.proc.poll() is not None, DEADLINE, f"{text!r} logged")
        assert self.proc.poll() is None, f"exited with {self.proc.returncode}: {self.stderr()}"

    def finish(self, timeout: float = DEADLINE) -> tuple[int, float]:
        """(exit code, seconds it ran)."""
        code = self.proc.wait(timeout)
        return code, time.monotonic() - self.started

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(DEADLINE)
        self._stderr.close()


@pytest.fixture
def processes() -> Iterator[list[Process]]:
    started: list[Process] = []
    yield started
    for process in started:
        process.close()


def assert_gave_up_with_one_line(process: Process, url: str) -> None:
    code, took = process.finish()
    stderr = process.stderr()
    assert code == 1, stderr
    assert took < 10, took
    errors = [line for line in stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and stderr.strip().splitlines()[-1] == errors[0], stderr
    assert "gave up waiting for the store" in errors[0] and masked_url(url) in errors[0], errors
    assert "Traceback" not in stderr


@pytest.mark.slow
def test_a_worker_started_before_redis_runs_jobs_once_redis_is_up(
        redis_binary: str, tmp_path: Path, processes: list[Process]) -> None:
    port = free_port()
    url = f"redis://127.0.0.1:{port}/0"
    app = tmp_path / "wait_handlers.py"
    app.write_text(HANDLERS)
    worker = Process(["worker", "--store", url, "--wait-for-store", "20", "--app", str(app), "--concurrency", "1"],
                     tmp_path / "worker.log")
    processes.append(worker)
    worker.wait_for_log("waiting for the store")  # it is waiting, not gone
    assert url in worker.stderr() and "WARNING" in worker.stderr()

    with private_redis_server(redis_binary, tmp_path, port=port):
        assert worker.proc.stdout is not None and "started" in worker.proc.stdout.readline()
        with JobQueue(url, registry=HandlerRegistry()) as q:
            job = q.submit("echo_after_wait", {"text": "late redis"})
            done = q.wait(job.job_id, DEADLINE)
        assert done.status is JobStatus.COMPLETED and done.result == {"echo": "late redis"}
        worker.proc.send_signal(signal.SIGTERM)
        assert worker.finish()[0] == 0, worker.stderr()


@pytest.mark.slow
def test_a_worker_gives_up_when_the_wait_is_over(tmp_path: Path, processes: list[Process]) -> None:
    url = f"redis://:s3cret@127.0.0.1:{free_port()}/0"
    worker = Process(["worker", "--store", url, "--wait-for-store", "1"], tmp_path / "worker.log")
    processes.append(worker)

    assert_gave_up_with_one_line(worker, url)
    assert "s3cret" not in worker.stderr()


@pytest.mark.slow
def test_wait_for_store_0_from_the_environment_fails_at_once(tmp_path: Path, processes: list[Process]) -> None:
    url = f"redis://127.0.0.1:{free_port()}/0"
    worker = Process(["worker", "--store", url], tmp_path / "worker.log", env={"JOBHANDLE_WAIT_FOR_STORE": "0"})
    processes.append(worker)

    code, took = worker.finish()
    assert code == 1 and took < 10
    lines = worker.stderr().strip().splitlines()
    assert lines[-1].startswith("error: the Redis server at") and "does not answer" in lines[-1], lines
    assert "WARNING" not in worker.stderr()


@pytest.mark.slow
def test_serve_started_before_redis_answers_once_redis_is_up(
        redis_binary: str, tmp_path: Path, processes: list[Process]) -> None:
    port, http_port = free_port(), free_port()
    url = f"redis://127.0.0.1:{port}/0"
    server = Process(["serve", "--store", url, "--wait-for-store", "20", "--port", str(http_port),
                      "--log-level", "WARNING"], tmp_path / "serve.log")
    processes.append(server)
    server.wait_for_log("waiting for the store")
    base = f"http://127.0.0.1:{http_port}"

    def health() -> int | None:
        try:
            return httpx.get(f"{base}/api/v1/jobs/health", timeout=5).status_code
        except httpx.TransportError:
            return None

    assert health() is None  # not listening while it waits
    with private_redis_server(redis_binary, tmp_path, port=port):
        assert wait_until(lambda: health() == 200 or server.proc.poll() is not None, DEADLINE,
                          "the API answering") and server.proc.poll() is None, server.stderr()
        assert httpx.get(f"{base}/api/v1/jobs/health").json()["store"]["kind"] == "redis"
        server.proc.send_signal(signal.SIGTERM)
        assert server.finish()[0] == 0, server.stderr()


@pytest.mark.slow
def test_serve_gives_up_when_the_wait_is_over(tmp_path: Path, processes: list[Process]) -> None:
    url = f"redis://127.0.0.1:{free_port()}/0"
    server = Process(["serve", "--store", url, "--wait-for-store", "1", "--port", str(free_port())],
                     tmp_path / "serve.log")
    processes.append(server)

    assert_gave_up_with_one_line(server, url)
