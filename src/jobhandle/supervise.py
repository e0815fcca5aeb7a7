"""Supervised background threads: a loop that raises is logged and started again after a pause that grows
with each failure in a row, and its state is visible (``health``) instead of the thread dying silently.

Every background thread of jobhandle runs under one: the worker's slots, monitor and maintenance, the stores'
wake-up listeners and checkpointer, the API's change hub. A loop reports progress with ``ok()`` (which ends a
run of failures) and returns when it should stop for good.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

FIRST_PAUSE_SECONDS = 0.5
MAX_PAUSE_SECONDS = 30.0
QUIET_SECONDS = 60.0
"""While a loop keeps failing, its failure is logged in full once, then one line at most this often."""


@dataclass(frozen=True, slots=True)
class LoopHealth:
    """What a supervised loop is doing: running or not, and its current run of failures."""

    name: str
    alive: bool
    failures: int  # in a row, since the loop last said ok(); 0: healthy
    last_error: str | None
    failing_since: float | None  # time.time() of the first failure of the current run

    @property
    def healthy(self) -> bool:
        return self.alive and self.failures == 0

    def describe(self) -> str:
        if not self.alive:
            return f"{self.name}: not running"
        if self.failures:
            return f"{self.name}: failed {self.failures} time(s) in a row, last: {self.last_error}"
        return f"{self.name}: ok"


class Supervised:
    """Runs ``loop`` in a daemon thread named ``jobhandle-<name>``; restarts it when it raises.

    ``stopping`` ends the pauses between restarts at once; ``loop`` itself must watch it (or whatever tells it
    to stop) and return. ``describe_error`` turns an exception into the text health shows and logs.
    ``expected`` failures (a store outage) are logged as warnings without a traceback: they are not bugs.
    """

    def __init__(self, name: str, loop: Callable[[], None], *, stopping: threading.Event,
                 log: logging.Logger, first_pause: float = FIRST_PAUSE_SECONDS,
                 max_pause: float = MAX_PAUSE_SECONDS,
                 describe_error: Callable[[BaseException], str] = repr,
                 expected: tuple[type[BaseException], ...] = ()) -> None:
        self.name = name
        self._loop = loop
        self._stopping = stopping
        self._log = log
        self._first_pause = first_pause
        self._max_pause = max_pause
        self._describe = describe_error
        self._expected = expected
        self._lock = threading.Lock()
        self._failures = 0
        self._last_error: str | None = None
        self._failing_since: float | None = None
        self._logged_at = float("-inf")
        self.thread = threading.Thread(target=self._run, name=f"jobhandle-{name}", daemon=True)

    def start(self) -> Supervised:
        self.thread.start()
        return self

    def join(self, timeout: float | None = None) -> None:
        if self.thread.is_alive() and self.thread is not threading.current_thread():
            self.thread.join(timeout)

    def ok(self) -> None:
        """The loop made progress: a run of failures, if any, is over."""
        if self._failures:
            with self._lock:
                failures, self._failures = self._failures, 0
                self._last_error = self._failing_since = None
                self._logged_at = float("-inf")
            self._log.warning("%s works again after %d failure(s)", self.name, failures)

    def health(self) -> LoopHealth:
        with self._lock:
            return LoopHealth(self.name, self.thread.is_alive(), self._failures, self._last_error,
                              self._failing_since)

    def _run(self) -> None:
        pause = self._first_pause
        while True:
            try:
                self._loop()
                return
            except Exception as exc:  # noqa: BLE001 - logged, visible in health, and the loop goes on
                if self._stopping.is_set():
                    return
                pause = self._failed(exc, pause)
            if self._stopping.wait(pause):
                return

    def _failed(self, exc: Exception, pause: float) -> float:
        """Record a failure; return the pause before the next start."""
        now = time.monotonic()
        text = self._describe(exc)
        with self._lock:
            self._failures += 1
            first = self._failures == 1
            if first:
                pause = self._first_pause
                self._failing_since = time.time()
            self._last_error = text
            loud = first or now - self._logged_at >= QUIET_SECONDS
            if loud:
                self._logged_at = now
            failures = self._failures
        level = logging.WARNING if isinstance(exc, self._expected) else logging.ERROR
        if first:
            self._log.log(level, "%s failed: %s; starting it again in %.1fs", self.name, text, pause,
                          exc_info=None if level == logging.WARNING else exc)
        elif loud:
            self._log.log(level, "%s still failing (%d times in a row): %s; next try in %.1fs", self.name,
                          failures, text, pause)
        return pause if first else min(pause * 2, self._max_pause)
