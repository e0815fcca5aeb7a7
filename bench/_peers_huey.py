"""``bench/redis_peers.py``'s job for Huey on Redis (``huey_consumer bench._peers_huey.huey``): ``RedisHuey``
with its defaults, named after the run (``JH_PEERS_RUN``)."""

from __future__ import annotations

import os

from huey import RedisHuey

from bench import _peers_app

huey = RedisHuey(f"huey-{os.environ.get('JH_PEERS_RUN', 'bench')}", url=_peers_app.REDIS_URL)


@huey.task()
def stamp(key: str) -> None:
    _peers_app.stamp(key)


@huey.task()
def latency(key: str, submitted: float) -> None:
    _peers_app.latency(key, submitted)
