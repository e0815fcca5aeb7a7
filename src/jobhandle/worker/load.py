"""Machine load as a worker's resource protection sees it (psutil).

CPU counts the load of everything but this process, smoothed over a few seconds: a worker's own jobs are the
work it exists to do, and a worker that paused because of them would only oscillate. Memory is the whole
machine's: new jobs are what would push it further.

The CPU figures come from this sampler's own deltas of cumulative CPU times, not ``psutil.cpu_percent``:
that keeps one process-wide "since the last call" baseline, which any other caller (``JobQueue.stats``)
would reset, leaving a measurement over a few microseconds. psutil is imported by the first sample (the
worker's monitor thread), not while the worker starts.
"""

from __future__ import annotations

import time
from typing import Any

SMOOTHING = 0.5
"""Weight of the newest measurement in the CPU average (measurements come about once a second)."""
MIN_INTERVAL = 0.25
"""Seconds a measurement must span; a shorter one says nothing and is not taken."""


class LoadSampler:
    def __init__(self) -> None:
        self._psutil: Any = None
        self._process: Any = None
        self._last = (0.0, 0.0, 0.0, 0.0)
        self._cpu_other: float | None = None

    def _read(self) -> tuple[float, float, float, float]:
        """(monotonic time, machine busy CPU seconds, machine total CPU seconds, this process's CPU seconds)."""
        times = self._psutil.cpu_times()
        total = sum(times)
        idle = times.idle + getattr(times, "iowait", 0.0)
        own = self._process.cpu_times()
        return time.monotonic(), total - idle, total, own.user + own.system

    def sample(self) -> tuple[float, float]:
        """(percent of the machine's CPU used by other processes, smoothed, 0 until measured; percent of
        memory in use)."""
        if self._psutil is None:
            import psutil

            self._psutil, self._process = psutil, psutil.Process()
            self._last = self._read()
        now = self._read()
        elapsed, busy, total, own = (a - b for a, b in zip(now, self._last, strict=True))
        if elapsed >= MIN_INTERVAL and total > 0:
            other = max(0.0, 100.0 * (busy - own) / total)
            self._cpu_other = other if self._cpu_other is None else \
                SMOOTHING * other + (1 - SMOOTHING) * self._cpu_other
            self._last = now
        return self._cpu_other or 0.0, self._psutil.virtual_memory().percent
