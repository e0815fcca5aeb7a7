"""Handlers for the cross-process SSE test: loaded by a ``jobhandle worker --app`` process."""

from __future__ import annotations

import time

from jobhandle import JobContext, handler


@handler("stepper")
def stepper(ctx: JobContext, steps: int = 5, pause: float = 0.1) -> dict[str, int]:
    """Report progress ``steps`` times; each message is the CLOCK_MONOTONIC time of the report (system-wide on
    Linux, so the test process can tell how long the update took to reach it)."""
    for step in range(1, steps + 1):
        ctx.progress(step / steps, f"{time.monotonic():.6f}")
        time.sleep(pause)  # the handler's "work" between two reports
    return {"steps": steps}
