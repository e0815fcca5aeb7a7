"""Machine load as a worker's resource protection sees it (psutil).

CPU counts the load of everything but this process, smoothed over a few seconds: a worker's own jobs are the
work it exists to do, and a worker that paused because of them would only oscillate. Memory is the whole
machine's: new jobs are what would push it further.
"""

from __future__ import annotations

import psutil

SMOOTHING = 0.5
"""Weight of the newest sample in the CPU average (samples come about once a second)."""


class LoadSampler:
    def __init__(self) -> None:
        self._process = psutil.Process()
        self._cores = psutil.cpu_count() or 1
        self._cpu_other: float | None = None
        psutil.cpu_percent(interval=None)  # each call reports on the time since the previous one
        self._process.cpu_percent(interval=None)

    def sample(self) -> tuple[float, float]:
        """(percent of the machine's CPU used by other processes, smoothed; percent of memory in use)."""
        machine = psutil.cpu_percent(interval=None)
        own = self._process.cpu_percent(interval=None) / self._cores
        other = max(0.0, machine - own)
        self._cpu_other = other if self._cpu_other is None else \
            SMOOTHING * other + (1 - SMOOTHING) * self._cpu_other
        return self._cpu_other, psutil.virtual_memory().percent
