"""The stores every store-parametrised test runs on: store id -> a factory for the URL of a fresh, empty store.

A factory gets the test's request, so it can use fixtures (a server, a key prefix) and skip with a reason when
its service is missing. A new store joins the suite by adding one entry to ``STORE_URLS``.
"""

from __future__ import annotations

import socket
import subprocess
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import redis
from helpers import wait_until


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


def redis_answers(url: str) -> bool:
    client = redis.Redis.from_url(url, socket_connect_timeout=1)
    try:
        return bool(client.ping())
    except redis.RedisError:
        return False
    finally:
        client.close()


@contextmanager
def private_redis_server(binary: str, folder: Path, *, port: int = 0,
                         persistent: bool = False) -> Iterator[tuple[str, int, subprocess.Popen[bytes]]]:
    """A throwaway ``redis-server`` on loopback (a free port unless given): (its URL, port, process), stopped
    on exit. ``persistent``: every write is in its append-only file in ``folder``, so a server started again on
    the same folder has every job back."""
    if not port:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = sock.getsockname()[1]
    durability = ["--appendonly", "yes", "--appendfsync", "always"] if persistent else ["--appendonly", "no"]
    proc = subprocess.Popen([binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", *durability,
                             "--dir", str(folder)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"redis://127.0.0.1:{port}/0"
    try:
        wait_until(lambda: redis_answers(url), timeout=10, message=f"redis-server on port {port} to answer")
        yield url, port, proc
    finally:
        proc.terminate()
        proc.wait(timeout=10)
