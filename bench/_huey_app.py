"""Huey tasks for the benchmark: the same two jobs as ``_jobhandle_app.py``.

``huey_consumer bench._huey_app.huey`` builds the Huey instance from the environment (``BENCH_HUEY_DB``: the
SQLite file; ``BENCH_HUEY_SYNC``: ``default`` for Huey's own SQLite settings, ``normal`` for
``PRAGMA synchronous=NORMAL``, jobhandle's setting). ``bench/run.py`` builds its own instances with
``make_huey``; task names are ``bench._huey_app.noop`` / ``.latency`` in both, which is how Huey matches them.
"""

from __future__ import annotations

import os
import sqlite3
import time
from typing import Any

from huey import SqliteHuey
from huey.storage import SqliteStorage

SYNC_MODES = ("default", "normal")


class NormalSyncStorage(SqliteStorage):
    """Huey's SQLite storage with ``synchronous=NORMAL`` (WAL is synced at checkpoints, not every commit):
    the durability jobhandle's SQLite store chooses. Huey only offers FULL (its default) or OFF."""

    def _create_connection(self) -> sqlite3.Connection:
        conn = super()._create_connection()
        conn.execute("PRAGMA synchronous=NORMAL")
        return conn


def noop() -> float:
    """Do nothing; return when it ran. A non-None result is stored, which is how the benchmark counts completions."""
    return time.time()


def latency(submitted: float) -> float:
    """The pickup latency in seconds: task start minus the submitter's ``time.time()`` at enqueue."""
    return time.time() - submitted


def make_huey(filename: str, sync: str = "default") -> tuple[SqliteHuey, Any, Any]:
    """A SqliteHuey on ``filename`` with the benchmark's tasks registered: (huey, noop task, latency task)."""
    if sync not in SYNC_MODES:
        raise ValueError(f"sync must be one of {', '.join(SYNC_MODES)}, not {sync!r}")
    storage = NormalSyncStorage if sync == "normal" else SqliteStorage
    huey = SqliteHuey(filename=filename, storage_class=storage)
    return huey, huey.task()(noop), huey.task()(latency)


def __getattr__(name: str) -> Any:
    """``huey``, built on first use from the environment (only the consumer process asks for it)."""
    if name != "huey":
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    filename = os.environ.get("BENCH_HUEY_DB")
    if not filename:
        raise RuntimeError("set BENCH_HUEY_DB to the Huey SQLite file before loading bench._huey_app.huey")
    huey = make_huey(filename, os.environ.get("BENCH_HUEY_SYNC", "default"))[0]
    globals()["huey"] = huey
    return huey
