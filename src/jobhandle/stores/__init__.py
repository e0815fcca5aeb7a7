"""Stores and the URL scheme that names them."""

from __future__ import annotations

import logging
import sqlite3
import tempfile
import time
from pathlib import Path
from urllib.parse import unquote, urlsplit

from ..errors import StoreOpenError, StoreUnavailableError, StoreURLError
from .base import JobQuery, Outcome, PoolEvent, PoolInfo, ProgressUpdate, Store, StoreCounts, WorkerInfo
from .memory import MemoryStore
from .sqlite import SQLiteStore
from .urls import masked_url, sqlite_path

__all__ = ["JobQuery", "MemoryStore", "Outcome", "PoolEvent", "PoolInfo", "ProgressUpdate", "SQLiteStore", "Store",
           "StoreCounts", "WorkerInfo", "masked_url", "open_store", "sqlite_path"]

log = logging.getLogger("jobhandle.stores")

FIRST_RETRY_SECONDS = 0.5
"""``open_store(wait_seconds=...)``: the pause after the first failed try; it doubles after each one..."""
MAX_RETRY_SECONDS = 5.0
"""...up to this."""

_monotonic = time.monotonic  # the waiting's clock and sleep, replaceable in tests
_sleep = time.sleep


def open_store(url: str, *, sqlite_poll_interval: float = 0.1, wait_seconds: float = 0.0) -> Store:
    """Open the store a URL names: ``sqlite:///path``, ``redis://host:port/db[?prefix=name]``, ``memory://``.

    ``wait_seconds``: while the store's server does not answer (StoreUnavailableError: Redis is down, or not up
    yet, as when a container starts before its Redis), try again for up to that many seconds, 0.5 s after the
    first try and twice as long after each next one (at most 5 s), logging each failed try at WARNING; then
    raise StoreUnavailableError. Any other error (a bad URL, a file that cannot be created) is raised at once.
    Passwords in the URL are masked in what is logged or raised.
    """
    deadline = _monotonic() + max(wait_seconds, 0.0)
    pause = FIRST_RETRY_SECONDS
    tries = 0
    while True:
        tries += 1
        try:
            return _open(url, sqlite_poll_interval)
        except StoreUnavailableError as exc:
            reason = _mask_in(exc.message, url)
            remaining = deadline - _monotonic()
            if remaining <= 0:
                if wait_seconds <= 0:
                    raise StoreUnavailableError(reason, **exc.context) from exc
                raise StoreUnavailableError(f"gave up waiting for the store {masked_url(url)} after {wait_seconds:g}s "
                                            f"({tries} tries): {reason}", **exc.context) from exc
            delay = min(pause, remaining)
            log.warning("waiting for the store %s: try %d failed (%s); next try in %.1fs, giving up in %.1fs",
                        masked_url(url), tries, reason.rstrip("."), delay, remaining)
            _sleep(delay)
            pause = min(pause * 2, MAX_RETRY_SECONDS)


def _open(url: str, sqlite_poll_interval: float) -> Store:
    scheme = urlsplit(url).scheme
    if scheme == "sqlite":
        path = sqlite_path(url)
        try:
            return SQLiteStore(path, poll_interval=sqlite_poll_interval)
        except StoreOpenError:
            raise
        except (OSError, sqlite3.Error) as exc:
            raise StoreOpenError(f"cannot open the SQLite store {path}: {_open_problem(path, exc)}",
                                 path=str(path)) from exc
    if scheme == "memory":
        return MemoryStore()
    if scheme in ("redis", "rediss"):
        from .redis import RedisStore  # imported on demand: embedded use never loads redis-py

        return RedisStore(url)
    raise StoreURLError(f"unknown store URL {url!r}: use sqlite:///path/to/jobs.db, redis://host:6379/0 or memory://")


def _open_problem(path: Path, exc: OSError | sqlite3.Error) -> str:
    """Why a SQLite file could not be opened, in the operating system's words when it has some (SQLite only
    says "unable to open database file")."""
    folder = next((p for p in (path.parent, *path.parent.parents) if p.exists()), None)
    if folder is not None and not folder.is_dir():
        return f"{folder} is not a folder"
    try:
        if path.exists():
            with path.open("r+b"):  # is a folder, or may not be written
                pass
        elif path.parent.is_dir():
            with tempfile.NamedTemporaryFile(dir=path.parent, prefix=f".{path.name}-probe-"):
                pass  # SQLite creates the file and its -wal and -shm files beside it
    except OSError as refusal:
        reason = refusal.strerror or str(refusal)
        return reason if path.exists() else f"cannot create files in {path.parent}: {reason}"
    if isinstance(exc, OSError):
        return exc.strerror or str(exc)
    return str(exc)


def _mask_in(text: str, url: str) -> str:
    """``text`` (an error message that may quote the URL) with the URL's password masked."""
    password = urlsplit(url).password
    if password is None:
        return text
    for spelling in {password, unquote(password)}:
        text = text.replace(f":{spelling}@", ":***@")
    return text
