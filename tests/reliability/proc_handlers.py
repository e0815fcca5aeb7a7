"""Handlers imported by the worker processes of the reliability tests (registered in the default registry)."""

from __future__ import annotations

import os
import time
from pathlib import Path

from jobhandle import handler


@handler("record")
def record(ctx, log: str, work_seconds: float = 0.0) -> dict:
    """Append one line per execution, so the test can count how often each job ran."""
    if work_seconds:
        time.sleep(work_seconds)
    with open(log, "a") as f:
        f.write(f"{ctx.job_id} {os.getpid()}\n")
    return {"pid": os.getpid()}


@handler("block")
def block(ctx, started: str, release: str) -> dict:
    """Say it started (pid, attempt), then wait until the test creates ``release`` (or the job is cancelled)."""
    Path(f"{started}.{ctx.attempt}").write_text(str(os.getpid()))
    while not Path(release).exists() and not ctx.cancelled:
        time.sleep(0.01)
    return {"pid": os.getpid(), "attempt": ctx.attempt}
