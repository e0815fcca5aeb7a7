"""Stores and the URL scheme that names them."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlsplit

from ..errors import StoreURLError
from .base import JobQuery, Outcome, ProgressUpdate, Store, StoreCounts, WorkerInfo
from .memory import MemoryStore
from .sqlite import SQLiteStore

__all__ = ["JobQuery", "MemoryStore", "Outcome", "ProgressUpdate", "SQLiteStore", "Store", "StoreCounts",
           "WorkerInfo", "open_store", "sqlite_path"]


def sqlite_path(url: str) -> Path:
    """``sqlite:///relative/path.db`` or ``sqlite:////absolute/path.db`` -> the file's path."""
    path = url[len("sqlite:///"):]
    if not url.startswith("sqlite:///") or not path:
        raise StoreURLError(f"SQLite URLs look like sqlite:///jobs.db or sqlite:////abs/jobs.db, not {url!r}")
    return Path(path)


def open_store(url: str, *, sqlite_poll_interval: float = 0.1) -> Store:
    """Open the store a URL names: ``sqlite:///path``, ``redis://host:port/db[?prefix=name]``, ``memory://``."""
    scheme = urlsplit(url).scheme
    if scheme == "sqlite":
        return SQLiteStore(sqlite_path(url), poll_interval=sqlite_poll_interval)
    if scheme == "memory":
        return MemoryStore()
    if scheme in ("redis", "rediss"):
        from .redis import RedisStore  # imported on demand: embedded use never loads redis-py

        return RedisStore(url)
    raise StoreURLError(f"unknown store URL {url!r}: use sqlite:///path/to/jobs.db, redis://host:6379/0 or memory://")
