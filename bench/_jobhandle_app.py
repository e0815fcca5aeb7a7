"""jobhandle handlers for the benchmark, registered in the default registry.

Loaded by ``bench/run.py`` (in-process worker) and by the separate worker process (``jobhandle worker --app
bench/_jobhandle_app.py`` or ``bench/_jobhandle_worker.py``). Both handlers report wall-clock times so the
benchmark reads its measurements from the jobs' results, not from the worker's internals.
"""

from __future__ import annotations

import time

from jobhandle import JobContext, handler


@handler("noop")
def noop(ctx: JobContext) -> float:
    """Do nothing; the result is when the handler ran (``time.time()``), for the drain window."""
    return time.time()


@handler("latency")
def latency(ctx: JobContext, submitted: float) -> float:
    """The pickup latency in seconds: handler start minus the submitter's ``time.time()`` at submit."""
    return time.time() - submitted
