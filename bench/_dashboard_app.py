"""The dashboard benchmark's handler (``bench/dashboard_bench.py``), loaded by its worker process.

``ticker(steps, pause)`` reports progress ``steps`` times, ``pause`` seconds apart; each stage message is the
wall-clock time of the report (``time.time()``), so the browser can tell how long it took to reach the page.
"""

from __future__ import annotations

import time

from jobhandle import JobContext, handler


@handler("ticker")
def ticker(ctx: JobContext, steps: int = 40, pause: float = 0.25) -> dict[str, int]:
    for step in range(1, steps + 1):
        ctx.progress(step / steps, f"{time.time():.6f}")
        time.sleep(pause)  # longer than progress_interval: every report is written, none merged
    return {"steps": steps}
