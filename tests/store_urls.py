"""The stores every store-parametrised test runs on: store id -> a factory for the URL of a fresh, empty store.

A factory gets the test's request, so it can use fixtures (a server, a key prefix) and skip with a reason when
its service is missing. A new store joins the suite by adding one entry to ``STORE_URLS``.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable

import pytest
import redis


def memory_url(request: pytest.FixtureRequest) -> str:
    return "memory://"


def sqlite_url(request: pytest.FixtureRequest) -> str:
    return f"sqlite:///{request.getfixturevalue('tmp_path')}/jobs.db"


def redis_url(request: pytest.FixtureRequest) -> str:
    """A store of its own on the test Redis server (a fresh key prefix), whose keys are deleted afterwards."""
    server = request.getfixturevalue("redis_server")
    name = f"jhtest-{uuid.uuid4().hex[:12]}"
    request.addfinalizer(lambda: delete_redis_store(server, name))
    return f"{server}?prefix={name}"


def delete_redis_store(server: str, name: str) -> None:
    client = redis.Redis.from_url(server)
    try:
        keys = list(client.scan_iter(match=f"{{{name}}}:*", count=1000))
        for start in range(0, len(keys), 500):
            client.delete(*keys[start:start + 500])
    finally:
        client.close()


STORE_URLS: dict[str, Callable[[pytest.FixtureRequest], str]] = {
    "memory": memory_url,
    "sqlite": sqlite_url,
    "redis": redis_url,
}
