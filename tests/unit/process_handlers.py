"""Handlers for the process-mode tests. Process mode imports a handler by module and name in the job's own
process, so these live at the top level of an importable module (not inside the tests)."""

from __future__ import annotations

import asyncio
import os
import time
from pathlib import Path

from jobhandle import JobContext
from jobhandle.retry import PermanentError, Retry

MB = 2**20
LONGEST = 60.0
"""No handler here runs longer than this, whatever happens to the test that started it."""


def echo_pid(ctx: JobContext, value: object = None) -> dict[str, object]:
    return {"pid": os.getpid(), "value": value, "attempt": ctx.attempt, "user_id": ctx.user_id}


async def async_echo(ctx: JobContext, value: object = None) -> dict[str, object]:
    await asyncio.sleep(0)
    return {"pid": os.getpid(), "value": value}


def report_then_wait(ctx: JobContext, release_file: str) -> str:
    """Report half-way progress, then wait until the test creates ``release_file``."""
    ctx.progress(items_processed=1, total_items=2)
    ctx.progress(message="half way")
    _until(lambda: Path(release_file).exists())
    ctx.progress(1.0, "done")
    return "released"


def spin(ctx: JobContext, pid_file: str, marker_file: str | None = None, hog_mb: int = 0) -> str:
    """Write the process id, optionally hold ``hog_mb`` MB, then ignore ``ctx.cancelled`` and spin: only a
    kill ends it. ``marker_file`` is written by its ``finally`` (SIGTERM lets it run)."""
    Path(pid_file).write_text(str(os.getpid()))
    held = b"x" * (hog_mb * MB)  # written bytes: resident, not just reserved
    try:
        _until(lambda: False)
        return f"escaped holding {len(held)} bytes"
    finally:
        if marker_file:
            Path(marker_file).write_text("cleaned up")


def linger(ctx: JobContext, pid_file: str, stopping_file: str, cleanup_seconds: float = 1.0) -> str:
    """Like ``spin``, but once told to stop it writes ``stopping_file`` and then cleans up for
    ``cleanup_seconds`` (a handler closing files, flushing a buffer): its process stays alive that long."""
    Path(pid_file).write_text(str(os.getpid()))
    try:
        _until(lambda: False)
        return "escaped"
    finally:
        Path(stopping_file).write_text("stopping")
        time.sleep(cleanup_seconds)


def crash(ctx: JobContext) -> None:
    os._exit(3)


def permanent(ctx: JobContext) -> None:
    raise PermanentError("this cannot work")


def retry_once(ctx: JobContext) -> int:
    if ctx.attempt == 1:
        raise Retry(delay=0, message="try again")
    return ctx.attempt


def not_json(ctx: JobContext) -> object:
    return {1: "a non-string key"}


def rate_limited(ctx: JobContext, calls: int) -> int:
    for _ in range(calls):
        ctx.rate_limit("process-test", per_minute=600, burst=1)
    return calls


def _until(condition: object) -> None:
    deadline = time.monotonic() + LONGEST
    while not condition() and time.monotonic() < deadline:  # type: ignore[operator]
        time.sleep(0.01)


def burn(ctx: JobContext, seconds: float) -> int:
    """Keep one CPU busy for ``seconds`` of wall time; return how many rounds it managed."""
    rounds, end = 0, time.monotonic() + seconds
    while time.monotonic() < end:
        rounds += 1
    return rounds
