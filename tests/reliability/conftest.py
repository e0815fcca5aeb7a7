"""Fixtures for tests that run workers as real processes on one shared store (SQLite file or Redis)."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from store_urls import STORE_URLS

from jobhandle import JobQueue, Settings

WORKER = Path(__file__).parent / "worker_proc.py"
FAST = {"JOBHANDLE_HEARTBEAT_INTERVAL": "0.2", "JOBHANDLE_WORKER_TIMEOUT": "1.5", "JOB_RETRY_DELAY": "0",
        "JOBHANDLE_SHUTDOWN_GRACE": "5",
        # These tests race many slots against each other: concurrency limits would leave most of them idle.
        "JOBHANDLE_GLOBAL_MAX_CONCURRENT_JOBS": "0", "JOBHANDLE_PER_USER_MAX_CONCURRENT_JOBS": "0"}


class WorkerProcess:
    def __init__(self, proc: subprocess.Popen[str], log: Path) -> None:
        self.proc = proc
        self.log = log  # the process's stderr (a file: a pipe nobody reads could fill up and block it)
        line = proc.stdout.readline() if proc.stdout else ""
        if not line.startswith("ready "):
            proc.kill()
            raise AssertionError(f"worker process did not start: {line!r}\n{log.read_text()}")
        self.worker_id = line.split()[1]

    @property
    def pid(self) -> int:
        return self.proc.pid

    def signal(self, sig: int) -> None:
        os.kill(self.proc.pid, sig)

    def freeze(self, db_url: str, timeout: float = 20) -> None:
        """SIGSTOP the worker at a moment it holds no SQLite write lock.

        SQLite has one writer lock per file: a process frozen inside a write transaction holds every other
        writer up until it resumes or dies (a SIGKILL releases it), which no lease can work around. A test of
        lease loss freezes the worker between transactions, as a paused VM or a long GC pause mostly would.
        """
        path = db_url.removeprefix("sqlite:///") if db_url.startswith("sqlite:///") else None
        deadline = time.monotonic() + timeout
        while True:
            self.signal(signal.SIGSTOP)
            if path is None or _write_lock_free(path):
                return
            self.signal(signal.SIGCONT)
            if time.monotonic() > deadline:
                raise AssertionError(f"the worker held the SQLite write lock at every try for {timeout}s")

    def terminate_and_wait(self, timeout: float = 20) -> int:
        self.signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.signal(signal.SIGUSR1)  # worker_proc dumps every thread's stack to its log
            try:
                self.proc.wait(2)
            except subprocess.TimeoutExpired:
                pass
            raise AssertionError(f"worker did not stop within {timeout}s; its log:\n{self.log.read_text()}") from None


def _write_lock_free(path: str) -> bool:
    conn = sqlite3.connect(path, timeout=0.5, isolation_level=None)
    try:
        conn.execute("BEGIN IMMEDIATE")
        conn.execute("ROLLBACK")
        return True
    except sqlite3.OperationalError:
        return False
    finally:
        conn.close()


@pytest.fixture(params=["sqlite", "redis"])
def db_url(request: pytest.FixtureRequest) -> str:
    """The store every process of a test shares: a SQLite file, or a Redis store (the many-hosts engine)."""
    return STORE_URLS[request.param](request)


@pytest.fixture
def spawn_worker(db_url: str, tmp_path: Path) -> Iterator[Callable[..., WorkerProcess]]:
    procs: list[subprocess.Popen[str]] = []

    def spawn(concurrency: int = 2, grace: float | None = None, mode: str = "thread") -> WorkerProcess:
        args = [sys.executable, str(WORKER), db_url, str(concurrency)] + ([str(grace)] if grace is not None else [])
        log = tmp_path / f"worker{len(procs)}.log"
        with log.open("w") as stderr:
            proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=stderr, text=True,
                                    env={**os.environ, **FAST, "JOBHANDLE_WORKER_MODE": mode})
        procs.append(proc)
        return WorkerProcess(proc, log)

    yield spawn
    for proc in procs:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)


@pytest.fixture
def queue(db_url: str) -> Iterator[JobQueue]:
    """The test's own view of the store (no handlers: it submits and watches)."""
    q = JobQueue(db_url, settings=Settings(heartbeat_interval=0.2, worker_timeout=1.5, retry_delay=0))
    yield q
    q.close()
