"""The burst job for ``bench/pool_burst.py``, for jobhandle (``burst_sleep``) and Celery (``bench._pool_app.sleep``):
sleep, then push the end time to a Redis list (``BENCH_POOL_REDIS``, key ``BENCH_POOL_DONE``), so both systems'
completions are counted the same way, from outside either."""

from __future__ import annotations

import os
import time

import redis
from celery import Celery

from jobhandle import handler

_client = redis.Redis.from_url(os.environ.get("BENCH_POOL_REDIS", "redis://127.0.0.1:6379/14"))
_done = os.environ.get("BENCH_POOL_DONE", "bench:pool:done")

celery_app = Celery("bench_pool", broker=os.environ.get("BENCH_CELERY_BROKER", "redis://127.0.0.1:6379/15"))


def _work(seconds: float) -> None:
    time.sleep(seconds)
    _client.rpush(_done, time.time())


@handler("burst_sleep")
def burst_sleep(ctx: object, seconds: float = 1.0) -> None:
    _work(seconds)


@celery_app.task(name="bench.sleep", ignore_result=True)
def sleep(seconds: float = 1.0) -> None:
    _work(seconds)
