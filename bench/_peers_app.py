"""The one job every system of ``bench/redis_peers.py`` runs: one small Redis call, ``RPUSH`` of when it ran.

``stamp(key)`` pushes ``time.time()`` onto the list ``key``; ``latency(key, submitted)`` pushes ``time.time() -
submitted``. The bench reads the lists: their lengths tell it how many jobs ran (the same way for every
system), their values give the drain window and the pickup latencies. Each system's worker process imports its
own module below, which registers these two functions as that system's job (``bench/_peers_*.py``).
"""

from __future__ import annotations

import os
import time

import redis

REDIS_URL = os.environ.get("JH_PEERS_REDIS_URL", "redis://127.0.0.1:6379/0")
_client: redis.Redis | None = None


def _redis() -> redis.Redis:
    global _client
    if _client is None:
        _client = redis.Redis.from_url(REDIS_URL)
    return _client


def stamp(key: str) -> None:
    _redis().rpush(key, repr(time.time()))


def latency(key: str, submitted: float) -> None:
    _redis().rpush(key, repr(time.time() - submitted))
