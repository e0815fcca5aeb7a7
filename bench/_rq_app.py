"""RQ jobs for the benchmark: the same two jobs as ``_jobhandle_app.py``.

RQ stores a job's function by its dotted path, ``bench._rq_app.noop`` / ``bench._rq_app.latency``, so
``bench/redis_bench.py`` imports this module as ``bench._rq_app`` and starts the RQ worker with the repository
root on its ``PYTHONPATH`` (``--path``), which is how the worker finds them.
"""

from __future__ import annotations

import time


def noop() -> float:
    """Do nothing; return when it ran (``time.time()``), for the drain window. RQ keeps the return value."""
    return time.time()


def latency(submitted: float) -> float:
    """The pickup latency in seconds: job start minus the submitter's ``time.time()`` at enqueue."""
    return time.time() - submitted
