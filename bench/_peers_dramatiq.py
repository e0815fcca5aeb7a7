"""``bench/redis_peers.py``'s job for Dramatiq (``dramatiq bench._peers_dramatiq``): its Redis broker with
its defaults, in a namespace of the run's own (``JH_PEERS_RUN``)."""

from __future__ import annotations

import os

import dramatiq
from dramatiq.brokers.redis import RedisBroker

from bench import _peers_app

broker = RedisBroker(url=_peers_app.REDIS_URL, namespace=f"dramatiq-{os.environ.get('JH_PEERS_RUN', 'bench')}")
dramatiq.set_broker(broker)


@dramatiq.actor(max_retries=0)
def stamp(key: str) -> None:
    _peers_app.stamp(key)


@dramatiq.actor(max_retries=0)
def latency(key: str, submitted: float) -> None:
    _peers_app.latency(key, submitted)
