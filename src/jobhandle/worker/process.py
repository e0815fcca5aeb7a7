"""Process mode, the worker's side: each slot runs its jobs in a child process of its own.

The child is spawned once per slot (not per job: starting Python and importing the handlers costs about half
a second) and replaced whenever it is killed. While a job runs, the slot thread relays the child's progress
reports and rate-limit requests to the store, and every WATCH_SECONDS it checks: whether the job
should stop (cancelled, its lease lost, its timeout passed, the worker handing it back) — then the child is
terminated for real — and the memory the child and its own children use, against ``JOB_MAX_MEMORY_MB``, and
their share of the machine's CPUs, against ``JOB_MAX_CPU_PERCENT`` (paused while over it).
"""

from __future__ import annotations

import atexit
import contextlib
import json
import logging
import multiprocessing
import sys
import threading
import time
import weakref
from collections import deque
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess
from typing import Any

import psutil

from ..errors import InvalidParameterError, JobProcessDied, JobProcessStartError, ResourceLimitExceeded
from ..models import Job, JobStatus, utcnow
from ..registry import Handler
from ..retry import outcome_for_error, outcome_for_failure, permanent_failure
from ..stores.base import Outcome
from .child import Target, child_main
from .context import JobContext

log = logging.getLogger("jobhandle.worker")

WATCH_SECONDS = 0.05
"""How often a slot checks its running child for a stop request and for its memory use."""
CPU_WINDOW_SECONDS = 2.0
"""JOB_MAX_CPU_PERCENT is held over this many seconds of a job's run (see CpuThrottle)."""
KILL_GRACE_SECONDS = 2.0
"""After SIGTERM (the handler sees JobCancelled and its ``finally`` blocks run), SIGKILL. The grace matters when
the signal lands just before a blocking call (a sleep, a read): Python runs its handler only after that call."""
START_TIMEOUT_SECONDS = 60.0
"""A new job process that has not said it is ready by then never will be (see JobProcess.start)."""
MB = 2**20


_live: weakref.WeakSet[JobProcess] = weakref.WeakSet()


@atexit.register  # registered after multiprocessing's own exit hook, so it runs before it
def _kill_left_over() -> None:
    """A program that ends without stopping its process-mode worker: its job processes must neither keep it
    from exiting (multiprocessing waits for non-daemon children at exit) nor outlive it. Their jobs are
    recovered when their lease expires, as after any crash."""
    for process in list(_live):
        process.close(graceful=False)


class JobProcess:
    """One slot's child process. Not shared between threads, except ``close`` (the stopping worker's)."""

    def __init__(self, memory_limit_mb: float, retry_backoff_cap: float, cpu_limit_percent: float = 100.0) -> None:
        self.memory_limit_mb = memory_limit_mb
        self.cpu_limit_percent = cpu_limit_percent
        self._cap = retry_backoff_cap
        self._mp = multiprocessing.get_context("spawn")  # fork would copy the worker's threads and locks
        self._lock = threading.Lock()
        self._closing = threading.Lock()
        self._proc: BaseProcess | None = None
        self._conn: Connection | None = None
        self._ps: psutil.Process | None = None
        _live.add(self)

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    def start(self) -> None:
        """Spawn the child if there is none (the slot does this before it claims, so jobs do not wait)."""
        with self._lock:
            if self._proc is not None and self._proc.is_alive():
                return
            ours, theirs = self._mp.Pipe()
            proc = self._mp.Process(target=child_main, args=(theirs, logging.getLogger().getEffectiveLevel()),
                                    name="jobhandle-job", daemon=False)  # a job may start processes itself
            proc.start()
            theirs.close()
            # The child imports the parent's __main__ module before it runs anything: a script that starts a
            # process-mode worker at import time (no `if __name__ == "__main__":`) would run again in there,
            # and jobs sent to it would wait forever.
            if not ours.poll(START_TIMEOUT_SECONDS) or _ready(ours) is not True:
                proc.kill()
                proc.join()
                ours.close()
                raise JobProcessStartError(
                    f"a process-mode job process did not start within {START_TIMEOUT_SECONDS:.0f}s (exit code "
                    f"{proc.exitcode}); if a script starts the worker, it must do so under "
                    "`if __name__ == \"__main__\":` (the job processes import the script's module)")
            self._proc, self._conn, self._ps = proc, ours, psutil.Process(proc.pid)

    def run(self, job: Job, handler: Handler, ctx: JobContext) -> Outcome | None:
        """Run ``job`` in the child; return how it ended (None: it was told to stop, nothing to write)."""
        payload = {"job_id": job.job_id, "job_type": job.job_type, "attempt": job.attempts,
                   "user_id": job.user_id, "parameters": job.parameters, "target": target_of(handler),
                   "rate_per_minute": ctx.rate_per_minute}
        self.start()
        conn, ps = self._conn, self._ps
        assert conn is not None and ps is not None
        cpu_before = _cpu_seconds(ps) or 0.0
        peak = 0.0
        try:
            conn.send(payload)
        except OSError:
            return self._died(job, ctx)
        next_watch = time.monotonic() + WATCH_SECONDS
        throttle = CpuThrottle(ps, self.cpu_limit_percent)
        while True:
            try:  # a stopping worker's close() may close the connection between any two uses of it
                message: tuple[Any, ...] | None = conn.recv() if conn.poll(WATCH_SECONDS) else None
            except (EOFError, OSError):
                return self._died(job, ctx)
            if message is not None:
                kind = message[0]
                if kind == "progress":
                    ctx.progress(message[1], message[2], items_processed=message[3], total_items=message[4])
                elif kind == "token":
                    granted = ctx.take_token(message[1], message[2], message[3])  # its store errors propagate
                    try:
                        conn.send(granted)
                    except OSError:
                        return self._died(job, ctx)
                else:
                    throttle.release()
                    outcome = self._outcome(job, message)
                    outcome.cpu_seconds = _since(_cpu_seconds(ps), cpu_before)
                    outcome.peak_memory_mb = max(peak, message[-1] or 0.0) or None
                    return outcome
            if time.monotonic() < next_watch:
                continue
            next_watch = time.monotonic() + WATCH_SECONDS
            if ctx.cancelled:
                throttle.release()
                self.close()
                return None
            throttle.check()
            used = _resident_mb(ps)
            peak = max(peak, used or 0.0)
            if used is not None and used > self.memory_limit_mb:
                cpu = _since(_cpu_seconds(ps), cpu_before)
                throttle.release()
                self.close(graceful=False)  # it may be allocating still: no time for clean-up
                outcome = permanent_failure(ResourceLimitExceeded(
                    f"the job used {used:.0f} MB of memory, over its limit of {self.memory_limit_mb:g} MB "
                    f"(JOB_MAX_MEMORY_MB): its process was killed"))
                outcome.cpu_seconds, outcome.peak_memory_mb = cpu, peak
                return outcome

    def close(self, graceful: bool = True) -> None:
        """Terminate the child (SIGTERM, then SIGKILL after KILL_GRACE_SECONDS; at once if not ``graceful``)
        and wait for it. Closes are serialised and the child is forgotten only once it is gone: the slot and a
        stopping worker may both close it, and neither may return while the child still runs."""
        with self._closing:
            with self._lock:
                proc, conn, ps = self._proc, self._conn, self._ps
            if proc is None:
                return
            if ps is not None and proc.is_alive():  # paused by its CPU limit, it would not see SIGTERM
                _resume(_tree(ps))
            if proc.is_alive() and not graceful:
                proc.kill()
            elif proc.is_alive():
                proc.terminate()
                proc.join(KILL_GRACE_SECONDS)
                if proc.is_alive():
                    log.warning("job process %s did not stop within %.0fs of SIGTERM: killing it", proc.pid,
                                KILL_GRACE_SECONDS)
                    proc.kill()
            proc.join()
            with self._lock:
                self._proc, self._conn, self._ps = None, None, None
            if conn is not None:
                conn.close()

    def _outcome(self, job: Job, message: tuple[Any, ...]) -> Outcome:
        kind = message[0]
        if kind == "result":
            return Outcome(JobStatus.COMPLETED, result=json.loads(message[1]))
        if kind == "failure":
            return outcome_for_failure(job, message[1], utcnow(), self._cap)
        if kind == "unfit":
            return permanent_failure(InvalidParameterError(message[1]))
        raise RuntimeError(f"unexpected message from a job process: {kind!r}")

    def _died(self, job: Job, ctx: JobContext) -> Outcome | None:
        proc = self._proc
        code = None
        if proc is not None:
            proc.join(KILL_GRACE_SECONDS)
            code = proc.exitcode
        self.close()
        if ctx.cancelled:
            return None
        how = f"was killed by signal {-code}" if code is not None and code < 0 else f"exited with code {code}"
        exc = JobProcessDied(f"the job's process {how} before the job ended")
        return outcome_for_error(job, exc, utcnow(), self._cap)


class CpuThrottle:
    """JOB_MAX_CPU_PERCENT for one running job: the share of the machine's CPUs (100: all of them) its process
    and the processes it started may use, averaged over the last CPU_WINDOW_SECONDS. Above it, the job is
    paused (SIGSTOP to each of its processes) until its average is back under the limit, then resumed
    (SIGCONT): it runs slower, it is not failed. A single-threaded job never reaches 80 % of a machine with
    two cores or more."""

    def __init__(self, ps: psutil.Process, limit_percent: float) -> None:
        self.ps = ps
        self.cores = psutil.cpu_count() or 1
        self.limit = limit_percent
        self.samples: deque[tuple[float, float]] = deque()
        self.paused: list[psutil.Process] = []

    def check(self) -> None:
        if self.limit >= 100:
            return
        cpu = _cpu_seconds(self.ps)
        if cpu is None:
            return
        now = time.monotonic()
        self.samples.append((now, cpu + self._children_cpu()))
        while len(self.samples) > 2 and now - self.samples[1][0] >= CPU_WINDOW_SECONDS:
            self.samples.popleft()
        (t0, c0), (t1, c1) = self.samples[0], self.samples[-1]
        if t1 - t0 < WATCH_SECONDS:
            return
        percent = 100 * (c1 - c0) / (t1 - t0) / self.cores
        if percent > self.limit and not self.paused:
            self.paused = _tree(self.ps)
            for proc in self.paused:
                with contextlib.suppress(psutil.Error):
                    proc.suspend()
        elif percent <= self.limit and self.paused:
            self.release()

    def release(self) -> None:
        """Resume whatever is paused (before the job is stopped, killed or its result read)."""
        paused, self.paused = self.paused, []
        _resume(paused)

    def _children_cpu(self) -> float:
        """CPU of the job's running children (cpu_times counts only those that ended and were waited for)."""
        total = 0.0
        with contextlib.suppress(psutil.Error):
            for sub in self.ps.children(recursive=True):
                with contextlib.suppress(psutil.Error):
                    t = sub.cpu_times()
                    total += t.user + t.system
        return total


def _tree(ps: psutil.Process) -> list[psutil.Process]:
    """The job's process and every process it started."""
    try:
        return [ps, *ps.children(recursive=True)]
    except psutil.Error:
        return [ps]


def _resume(processes: list[psutil.Process]) -> None:
    for proc in processes:
        with contextlib.suppress(psutil.Error):
            proc.resume()


def _ready(conn: Connection) -> bool:
    try:
        return bool(conn.recv() == "ready")
    except (EOFError, OSError):
        return False


def target_of(handler: Handler) -> Target:
    """Where the child finds ``handler``'s function: it must be reachable by name from its module."""
    fn = handler.fn
    module, qualname = getattr(fn, "__module__", None), getattr(fn, "__qualname__", "")
    if not module or "<" in qualname:
        raise InvalidParameterError(
            f"handler {handler.name!r} ({qualname or fn!r}) cannot run in process mode: a process-mode handler "
            "must be a function defined at the top level of a module", job_type=handler.name)
    path = getattr(sys.modules.get(module), "__file__", None)
    return module, qualname, path


def _cpu_seconds(ps: psutil.Process) -> float | None:
    try:
        t = ps.cpu_times()
    except psutil.Error:
        return None
    return t.user + t.system + t.children_user + t.children_system


def _since(now: float | None, before: float) -> float | None:
    return None if now is None else max(0.0, now - before)


def _resident_mb(ps: psutil.Process) -> float | None:
    """Resident memory of the child and every process it started, in MiB (None: it is gone)."""
    try:
        total = ps.memory_info().rss
        for sub in ps.children(recursive=True):
            try:
                total += sub.memory_info().rss
            except psutil.Error:
                pass
    except psutil.Error:
        return None
    return total / MB
