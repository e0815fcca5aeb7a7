"""Fixtures of the REST API tests: ``make_api`` builds an app (and its TestClient) on a fresh store: SQLite,
unless a test module overrides ``api_store_url`` (test_http_api.py runs on every store)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from api_helpers import KEYS, ApiFactory, TestClient

from jobhandle import HandlerRegistry, JobQueue, Settings
from jobhandle.api import create_app


@pytest.fixture
def api_store_url(tmp_path: Path) -> str:
    """A fresh SQLite file (the default store, with its cross-process wake-ups)."""
    return f"sqlite:///{tmp_path}/jobs.db"


@pytest.fixture
def api_queue(api_store_url: str, registry: HandlerRegistry, settings: Settings) -> Iterator[JobQueue]:
    """A JobQueue on the API tests' store."""
    q = JobQueue(api_store_url, registry=registry, settings=settings)
    try:
        yield q
    finally:
        q.close()


@pytest.fixture
def make_api(api_queue: JobQueue, settings: Settings) -> Iterator[ApiFactory]:
    """``make_api(**settings)``: a started TestClient of an app on ``api_queue`` with those settings."""
    clients: list[TestClient] = []

    def make(**overrides: Any) -> TestClient:
        client = TestClient(create_app(api_queue, settings.replace(**overrides)))
        client.__enter__()  # runs the lifespan: the change hub starts
        clients.append(client)
        return client

    try:
        yield make
    finally:
        for client in clients:
            client.__exit__(None, None, None)


@pytest.fixture
def api(make_api: ApiFactory) -> TestClient:
    """An app without authentication."""
    return make_api()


@pytest.fixture
def auth_api(make_api: ApiFactory) -> TestClient:
    """An app with three keys: ADMIN_KEY (user root, admin), ALICE_KEY (alice), BOB_KEY (bob)."""
    return make_api(api_keys=KEYS)
