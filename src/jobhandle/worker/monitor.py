"""A worker's monitor: heartbeats, throttled progress, the cancel watch, time limits, resource protection, and
reconciliation with the store, in one supervised loop that wakes at least every 50 ms while jobs run."""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING

from ..errors import TimeLimitExceeded
from ..health import write_heartbeat_file
from ..models import utcnow
from ..retry import outcome_for_error
from ..stores.base import AttemptKey
from .context import JobContext, job_log

if TYPE_CHECKING:
    from .worker import Worker

log = logging.getLogger("jobhandle.worker")

RESOURCE_CHECK_SECONDS = 1.0
"""How often a worker compares system CPU and memory use with its thresholds."""
RESULT_HOLD_SECONDS = 0.1
"""Outcomes of finished jobs wait at most about this long to be written with a batch."""
BUFFER_HOLD_SECONDS = 0.5
"""A claimed job waiting this long for a free slot of its worker goes back to the store for other workers."""
ORPHAN_SECONDS = 1.0
"""A job the store has running under this worker that the worker neither runs, buffers nor holds an outcome
for, seen so at two heartbeats at least this far apart, is handed back (see Monitor.reconcile)."""


class Monitor:
    """The monitor of ``worker``; ``run`` is its supervised loop, returning when the worker stops."""

    def __init__(self, worker: Worker) -> None:
        self.worker = worker
        self._next_heartbeat = 0.0
        self._next_resource_check = time.monotonic() + RESOURCE_CHECK_SECONDS  # a CPU figure needs an interval
        self._orphans: dict[str, float] = {}  # job id -> when first seen as an orphan

    def run(self) -> None:
        w = self.worker
        while not w.stopping:
            seen = w.store.change_version
            now = time.monotonic()
            if now >= self._next_resource_check:
                self._next_resource_check = now + min(RESOURCE_CHECK_SECONDS, w.settings.heartbeat_interval)
                if self.check_resources():
                    self._next_heartbeat = 0.0  # a new state is reported at once
            if now >= self._next_heartbeat:
                self.heartbeat()
            self.watch_running()
            if w.outcomes.overdue(RESULT_HOLD_SECONDS):  # a slot went on to a longer job: its finished jobs'
                w.write_outcomes(0)                       # outcomes must not wait for it
            w.loops["monitor"].ok()
            if w.stopping_event.wait(0.05):  # at most 20 checks a second, however busy the store is
                break
            wait = min(w.settings.progress_interval or 0.2, max(0.0, self._next_heartbeat - time.monotonic()))
            w.store.wait_for_change(seen, wait)

    def heartbeat(self) -> None:
        """Renew the registration and the leases of every job the store has running under this worker, and
        reconcile with what it said."""
        w = self.worker
        w.info.state = w.state()
        self._next_heartbeat = time.monotonic() + w.settings.heartbeat_interval
        running = w.running.now()
        try:
            owned = w.store.heartbeat(w.info, w.lease, utcnow())
        except Exception as exc:
            self.write_heartbeat_file(f"{type(exc).__name__}: {exc}")
            raise
        self.write_heartbeat_file(None)
        mark_lost(running, owned)
        self.reconcile(owned)

    def write_heartbeat_file(self, store_error: str | None) -> None:
        """Settings.heartbeat_file, for probes that do not reach the store (health.heartbeat_file_report). A
        file that cannot be written is logged, and never stops the heartbeats."""
        w = self.worker
        path = w.settings.heartbeat_file
        if path is None:
            return
        try:
            write_heartbeat_file(path, w.worker_id, w.info.state, store_error)
        except OSError as exc:
            log.warning("worker %s: cannot write its heartbeat file %s: %s", w.worker_id, path, exc)

    def reconcile(self, owned: set[str]) -> None:
        """Hand back the jobs the store has running under this worker while the worker has no trace of them:
        not running, not claimed into the buffer, no outcome held or being written. They happen when a claim
        was applied but its reply lost (a cut connection, a timeout), or a hand-back failed half-way; left
        alone, every heartbeat would renew their leases forever. Seen so at two heartbeats ORPHAN_SECONDS apart
        at least (a claim in flight is in the buffer long before), each goes back to pending, its attempt not
        counted: it never ran here."""
        w = self.worker
        now = time.monotonic()
        mine = w.running.ids() | w.buffer.ids() | w.outcomes.ids()
        candidates = owned - mine
        self._orphans = {job_id: self._orphans.get(job_id, now) for job_id in candidates}
        for job_id, since in list(self._orphans.items()):
            if now - since < ORPHAN_SECONDS:
                continue
            job = w.store.get(job_id)
            if job is not None and job.worker_id == w.worker_id and \
                    job_id not in w.running.ids() | w.buffer.ids() | w.outcomes.ids():
                if w.store.release(AttemptKey(job_id, w.worker_id, job.attempts), utcnow()) is not None:
                    log.warning("worker %s: job %s was running under it in the store but not in the worker (a "
                                "claim whose answer was lost?): handed back", w.worker_id, job_id)
            del self._orphans[job_id]

    def watch_running(self) -> None:
        """While jobs run or wait in the buffer: write throttled progress, enforce time limits, stop handlers
        whose job the store took away (cancelled, recovered), drop such jobs from the buffer, and give back to
        the store the buffered jobs no slot took in time."""
        w = self.worker
        running = w.running.now()
        buffered = w.buffer.ids()
        if not running and not buffered:
            return
        for ctx in running:
            ctx.flush_progress(force=False)
        self.enforce_time_limits(running)
        owned = w.store.owned_jobs(w.worker_id)
        mark_lost(running, owned)
        w.buffer.drop_lost(buffered, owned)
        w.release(w.buffer.take_older_than(time.monotonic() - BUFFER_HOLD_SECONDS))

    def check_resources(self) -> bool:
        """Pause claiming while the CPU other work uses, or the machine's memory use, is above its threshold;
        resume below. Returns whether the state changed; the state (with the reason) shows in list_workers
        and stats. Running jobs go on."""
        w = self.worker
        cpu, memory = w.load.sample()
        over = []
        if cpu > w.cpu_threshold:
            over.append(f"cpu used by other work {cpu:.0f}% > {w.cpu_threshold:g}%")
        if memory > w.memory_threshold:
            over.append(f"memory {memory:.0f}% > {w.memory_threshold:g}%")
        overloaded = ", ".join(over) or None
        if overloaded == w.overloaded:
            return False
        if overloaded:
            w.claiming.clear()
            log.warning("worker %s stops claiming: %s", w.worker_id, overloaded)
        else:
            w.claiming.set()
            log.info("worker %s claims again: resources back under their thresholds", w.worker_id)
        w.overloaded = overloaded
        return True

    def enforce_time_limits(self, running: list[JobContext]) -> None:
        """End attempts that ran past their job's ``timeout_seconds`` and tell their handlers to stop.

        The attempt ends now, as a failure with TimeLimitExceeded under the retry policy, and the job is told
        to stop: in process mode its slot kills its process; a thread cannot be killed, so a thread-mode
        handler is asked to stop (``ctx.cancelled``) and whatever it returns later is fenced out.
        """
        w = self.worker
        now = utcnow()
        for ctx in running:
            job = ctx.job
            if ctx.cancelled:
                continue
            overrun = (now - ctx.started_at).total_seconds() - job.timeout_seconds
            if overrun < 0:
                continue
            exc = TimeLimitExceeded(f"the job ran longer than its timeout of {job.timeout_seconds:g}s")
            outcome = outcome_for_error(job, exc, now, w.settings.retry_backoff_cap)
            outcome.progress = ctx.take_pending_progress()
            outcome.started_at = ctx.started_at
            if w.store.finish(AttemptKey(job.job_id, w.worker_id, job.attempts), outcome, now):
                job_log.warning("job %s (%s) attempt %d: %s -> %s", job.job_id, job.job_type, job.attempts,
                                outcome.error, outcome.status.value)
            ctx.mark_cancelled()


def mark_lost(running: list[JobContext], owned: set[str]) -> None:
    """Tell handlers whose job this worker no longer owns (cancelled, recovered) to stop.

    ``running`` must be read before ``owned``: a job claimed after the owned set was read is not in it.
    """
    for ctx in running:
        if ctx.job_id not in owned:
            ctx.mark_cancelled()
