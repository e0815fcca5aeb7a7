"""``bench/redis_peers.py``'s job for jobhandle workers (``jobhandle worker --app bench/_peers_jobhandle.py``)."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import _peers_app  # noqa: E402
from jobhandle import JobContext, handler  # noqa: E402


@handler("peer_stamp")
def stamp(ctx: JobContext, key: str) -> None:
    _peers_app.stamp(key)


@handler("peer_latency")
def latency(ctx: JobContext, key: str, submitted: float) -> None:
    _peers_app.latency(key, submitted)
