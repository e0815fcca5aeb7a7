"""Fixtures shared by every test: the stores to run on, a fast-settings JobQueue per test, its store.

Every test that uses ``store_url`` (directly or through ``queue``/``store``) runs once per store in
``STORE_URLS``. A new store joins the suite by adding one entry there.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import os

import pytest

from jobhandle import HandlerRegistry, JobQueue, Settings
from jobhandle.stores import Store

# Resource protection pauses claiming while other processes load the CPU; test machines run busy suites, so
# tests turn it off (by default, and for the worker processes they start) unless they test it themselves.
os.environ.setdefault("JOB_QUEUE_CPU_THRESHOLD", "100")


def memory_url(request: pytest.FixtureRequest) -> str:
    return "memory://"


def sqlite_url(request: pytest.FixtureRequest) -> str:
    return f"sqlite:///{request.getfixturevalue('tmp_path')}/jobs.db"


STORE_URLS: dict[str, Callable[[pytest.FixtureRequest], str]] = {
    "memory": memory_url,
    "sqlite": sqlite_url,
}
"""Store id -> a factory for the URL of a fresh, empty store of that kind. A factory gets the test's request,
so it can use other fixtures (a server, a key prefix) and skip with a reason when its service is missing."""

FAST_SETTINGS = {
    "heartbeat_interval": 0.2,
    "worker_timeout": 1.0,
    "retry_delay": 0,
    "progress_interval": 0.05,
    "shutdown_grace": 2,
    "cleanup_interval": 3600,
}
"""Settings that keep worker tests quick: short heartbeats and leases, immediate retries."""


@pytest.fixture(params=list(STORE_URLS))
def store_url(request: pytest.FixtureRequest) -> str:
    """The URL of a fresh store; the test runs once per entry of STORE_URLS (ids: memory, sqlite)."""
    return STORE_URLS[request.param](request)


@pytest.fixture
def registry() -> HandlerRegistry:
    """A fresh, empty registry so tests never see each other's handlers (or the global default)."""
    return HandlerRegistry()


@pytest.fixture
def settings() -> Settings:
    return Settings(**FAST_SETTINGS)


@pytest.fixture
def queue(store_url: str, registry: HandlerRegistry, settings: Settings) -> Iterator[JobQueue]:
    """A JobQueue on a fresh store with fast settings; closed (workers stopped) after the test."""
    q = JobQueue(store_url, registry=registry, settings=settings)
    try:
        yield q
    finally:
        q.close()


@pytest.fixture
def store(queue: JobQueue) -> Store:
    """The queue's store, for tests of the store primitives themselves."""
    return queue.store
