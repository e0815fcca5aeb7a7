"""A worker's slot: claim > run > finish, adaptively batched, in its own supervised thread."""

from __future__ import annotations

import threading
import time
from typing import TYPE_CHECKING

from ..errors import InvalidParameterError, JobCancelled, UnknownHandlerError
from ..models import Job, JobStatus, check_json, utcnow
from ..retry import outcome_for_error, permanent_failure
from ..stores.base import Finished, Outcome
from .context import JobContext, job_logger

if TYPE_CHECKING:
    from .process import JobProcess
    from .worker import Worker

SHORT_JOB_SECONDS = 0.005
"""Jobs quicker than this are claimed and acknowledged in batches (see Slot.run)."""
BATCH_LIMIT = 64
IDLE_RECHECK_SECONDS = 5.0
"""A safety net only: idle slots wake on store changes and on the next due time, not on this."""


class IdleWatch:
    """Which of a worker's idle slots claims and waits for the store to change: one at a time.

    Were every idle slot to wait on the store, each change would wake them all to race for the same job, and
    the losers' look at the store would slow the winner down (pickup latency). The watch passes from the slot
    that got a job to one of the others waiting for it, which then claims at once (more work may be waiting).
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._holder: int | None = None

    def mine(self) -> bool:
        """Whether the calling thread has the watch."""
        return self._holder == threading.get_ident()

    def take(self, timeout: float) -> None:
        """Wait up to ``timeout`` seconds for the watch (see ``mine``)."""
        if not self.mine() and self._lock.acquire(timeout=timeout):
            self._holder = threading.get_ident()

    def hand_over(self) -> None:
        """Give the watch up, if the calling thread has it."""
        if self._holder == threading.get_ident():
            self._holder = None
            self._lock.release()


class Slot:
    """One slot of ``worker``. ``run`` is its supervised loop: started again after a failure (a store call that
    raised), it goes on where it was; it returns when the worker stops."""

    def __init__(self, worker: Worker, index: int) -> None:
        self.worker = worker
        self.name = f"slot-{index}"
        self.process: JobProcess | None = None

    def run(self) -> None:
        w = self.worker
        try:
            if w.mode == "process" and self.process is None:
                from .process import JobProcess  # multiprocessing and psutil load only in process mode

                self.process = JobProcess(w.settings.max_memory_mb, w.settings.retry_backoff_cap,
                                          w.settings.max_cpu_percent)
                w.processes.append(self.process)
                self.process.start()  # before the first claim: a claimed job should not wait for Python to start
            self._loop()
        except BaseException:
            w.idle_watch.hand_over()  # another idle slot watches while this one pauses
            raise
        w.idle_watch.hand_over()
        if self.process is not None:
            self.process.close()

    def _loop(self) -> None:
        """Claim > run > finish, adaptively batched.

        While jobs are short (under SHORT_JOB_SECONDS) a slot claims up to BATCH_LIMIT at once and writes their
        outcomes together with its next claim: one transaction for many jobs. The claimed jobs it does not
        start at once go to the worker's buffer, which every slot takes from; the monitor hands back to the store
        any job held there too long (all slots busy). A long job drops the batch size back to one. Outcomes
        are held for the next batch a short while at most (the monitor writes them when a slot has gone on to a
        longer job); they are lost only if the process dies, and then the jobs run again (at-least-once, as
        with any crash). Of the idle slots, only the one with the worker's watch claims and waits.
        """
        w = self.worker
        ok = w.loops[self.name].ok  # after each store call that worked: a run of failures is over
        stopping = w.stopping_event.is_set
        claim_size = 1
        while True:
            if stopping():  # buffered jobs are handed back by stop()
                w.write_outcomes(0)
                return
            job = w.buffer.take()
            if job is None:
                if not w.claiming.is_set():  # the machine is overloaded: claim nothing new for now
                    w.write_outcomes(0)
                    w.claiming.wait(IDLE_RECHECK_SECONDS)
                    continue
                if len(w.outcomes):
                    claimed = w.write_outcomes(claim_size)
                    ok()
                    if not claimed or self._paused_meanwhile(claimed):
                        continue  # nothing more now: the next round claims, or waits for work
                else:
                    if not w.idle_watch.mine():
                        w.idle_watch.take(IDLE_RECHECK_SECONDS)
                        continue  # look again (stop, buffer) once the watch is ours, or after the timeout
                    seen = w.store.change_version
                    if stopping():  # stop() sets this, then wakes waiters: seen before, heard after
                        continue
                    claimed = w.store.claim(w.claim_request(claim_size), utcnow())
                    ok()
                    if not claimed:
                        claim_size = 1
                        w.store.wait_for_change(seen, w.idle_timeout())
                        continue
                    if self._paused_meanwhile(claimed):
                        continue
                job = claimed[0]  # a claimed job shows as running: it runs, even if a stop began meanwhile
                w.buffer.add(claimed[1:])
            w.idle_watch.hand_over()  # busy now: the next idle slot watches, and claims at once
            started = time.perf_counter()
            finished = self.execute(job)
            short = time.perf_counter() - started < SHORT_JOB_SECONDS
            claim_size = BATCH_LIMIT if short else 1
            held = w.outcomes.hold(finished)
            if stopping():
                w.write_outcomes(0)
                return
            if held and (not short or held >= BATCH_LIMIT):
                w.buffer.add(w.write_outcomes(0 if len(w.buffer) else claim_size))
                ok()

    def _paused_meanwhile(self, claimed: list[Job]) -> bool:
        """Claiming paused (resources over their thresholds) while this claim was on its way: the jobs go back
        unrun, so that nothing starts once the pause shows (the check before the claim alone leaves a gap)."""
        if self.worker.claiming.is_set():
            return False
        self.worker.release(claimed)
        return True

    def execute(self, job: Job) -> Finished | None:
        """Run one job; return how it ended (None: nothing to write, e.g. it was cancelled or handed back)."""
        w = self.worker
        ctx = JobContext(job, w.store, w.worker_id, w.settings.progress_interval, job_logger(job.job_type),
                         w.settings.max_api_calls_per_minute)
        w.running.add(ctx)
        started = time.perf_counter()
        try:
            outcome = self._run_handler(job, ctx)
        finally:
            w.running.remove(job.job_id)
        if outcome is None or ctx.handed_back:
            return None
        outcome.execution_time_seconds = time.perf_counter() - started
        outcome.progress = ctx.take_pending_progress()
        outcome.started_at = ctx.started_at
        return Finished(job.job_id, job.attempts, outcome, utcnow())

    def _run_handler(self, job: Job, ctx: JobContext) -> Outcome | None:
        w = self.worker
        handler = w.registry.get(job.job_type)
        try:  # what no retry can fix fails at once: no handler here, or parameters it cannot take
            if handler is None:
                raise UnknownHandlerError(job.job_type)
            handler.check_parameters(job.parameters)
            if self.process is not None:
                from .process import target_of

                target_of(handler)
        except (UnknownHandlerError, InvalidParameterError) as exc:
            ctx.logger.warning("job %s (%s) cannot run: %s", job.job_id, job.job_type, exc)
            return permanent_failure(exc)
        if self.process is not None:
            return self.process.run(job, handler, ctx)
        try:
            if handler.is_async:
                import asyncio  # loaded by the first async handler, not at start-up

                result = asyncio.run(handler.fn(ctx, **job.parameters))
            else:
                result = handler.fn(ctx, **job.parameters)
        except JobCancelled:
            return None
        except Exception as exc:  # noqa: BLE001 - any handler error ends the attempt, by the retry policy
            outcome = outcome_for_error(job, exc, utcnow(), w.settings.retry_backoff_cap)
            ctx.logger.warning("job %s (%s) attempt %d failed: %s -> %s", job.job_id, job.job_type,
                               job.attempts, outcome.error, outcome.status.value, exc_info=True)
            return outcome
        try:
            check_json(result, "a handler's result")
        except InvalidParameterError as exc:  # the same result would come back on every attempt
            return permanent_failure(exc)
        return Outcome(JobStatus.COMPLETED, result=result)
