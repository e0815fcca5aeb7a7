"""``bench/redis_peers.py``'s job for RQ (``rq worker-pool``): RQ finds functions by their dotted path."""

from __future__ import annotations

from bench._peers_app import latency, stamp

__all__ = ["latency", "stamp"]
