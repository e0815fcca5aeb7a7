"""The Redis store's connections: how they are made (timeouts, no silent retries, a bounded pool), and what a
lost server becomes (StoreUnavailableError)."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, TypeVar

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from ...errors import StoreUnavailableError
from ..urls import masked_url
from .keys import RedisLocation

T = TypeVar("T")

SOCKET_TIMEOUT_SECONDS = 30.0
CONNECT_TIMEOUT_SECONDS = 5.0
MAX_CONNECTIONS = 32
"""Connections one store instance keeps to Redis at most (one of them is its events subscription)."""
POOL_WAIT_SECONDS = 60.0


def connect(location: RedisLocation) -> tuple[redis.BlockingConnectionPool, Any]:
    """A connection pool and a client on it, checked with a PING (StoreUnavailableError if it does not answer).

    No silent retries: a script re-sent after a lost reply could apply twice; a lost server is reported
    (StoreUnavailableError) and workers wait it out. Timeouts (overridable in the URL, e.g. ?socket_timeout=10)
    keep a hung server from hanging its clients. At most MAX_CONNECTIONS per store: a thousand threads calling
    at once take turns on them instead of opening a thousand sockets at once (a connection storm overflows the
    server's accept queue). The client is typed Any: redis-py's annotations do not follow decode_responses=True
    (every reply is str here).
    """
    pool = redis.BlockingConnectionPool.from_url(
        location.url, max_connections=MAX_CONNECTIONS, timeout=POOL_WAIT_SECONDS, decode_responses=True,
        health_check_interval=30, socket_timeout=SOCKET_TIMEOUT_SECONDS,
        socket_connect_timeout=CONNECT_TIMEOUT_SECONDS, retry=Retry(NoBackoff(), 0),
        client_name=f"jobhandle-{location.prefix.strip('{}')}")  # how its connections show in CLIENT LIST
    client: Any = redis.Redis(connection_pool=pool)
    try:
        client.ping()
    except redis.RedisError as exc:
        pool.disconnect()
        raise StoreUnavailableError(f"the Redis server at {masked_url(location.url)} does not answer: {exc}") from exc
    return pool, client


def unreachable(exc: redis.RedisError) -> StoreUnavailableError:
    return StoreUnavailableError(f"the Redis store is unreachable: {exc}")


def reachable(method: Callable[..., T]) -> Callable[..., T]:
    """A primitive that talks to Redis directly: a lost server is StoreUnavailableError, as in a script call."""
    @functools.wraps(method)
    def call(*args: Any, **kwargs: Any) -> T:
        try:
            return method(*args, **kwargs)
        except (redis.ConnectionError, redis.TimeoutError) as exc:
            raise unreachable(exc) from exc
    return call
