"""Fixtures shared by every test: the stores to run on, a fast-settings JobQueue per test, its store.

Every test that uses ``store_url`` (directly or through ``queue``/``store``) runs once per store in
``STORE_URLS``. A new store joins the suite by adding one entry there.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator

import pytest
from store_urls import STORE_URLS, private_redis_server, redis_answers

from jobhandle import HandlerRegistry, JobQueue, Settings
from jobhandle.stores import Store

# Resource protection pauses claiming while other processes load the CPU; test machines run busy suites, so
# tests turn it off (by default, and for the worker processes they start) unless they test it themselves.
os.environ.setdefault("JOB_QUEUE_CPU_THRESHOLD", "100")


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The URL of a Redis server for tests: ``JOBHANDLE_TEST_REDIS_URL`` or ``REDIS_URL``, else the one on
    127.0.0.1:6379, else a throwaway ``redis-server`` on a free port. Without any, Redis tests are skipped with
    the reason printed, or fail when ``JOBHANDLE_REQUIRE_REDIS=1`` (as in CI)."""
    configured = os.environ.get("JOBHANDLE_TEST_REDIS_URL") or os.environ.get("REDIS_URL")
    candidates = [configured] if configured else ["redis://127.0.0.1:6379/0"]
    for url in candidates:
        if redis_answers(url):
            yield url
            return
    binary = shutil.which("redis-server")
    if binary is None:
        reason = f"no Redis answers at {candidates[0]} and redis-server is not installed"
        if os.environ.get("JOBHANDLE_REQUIRE_REDIS") == "1":
            pytest.fail(reason + " (JOBHANDLE_REQUIRE_REDIS=1)")
        pytest.skip(reason)
    with private_redis_server(binary, tmp_path_factory.mktemp("redis")) as (url, _, _):
        yield url


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
    """The URL of a fresh store; the test runs once per entry of STORE_URLS (ids: memory, sqlite, redis)."""
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
