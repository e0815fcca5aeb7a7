"""The worker: slot threads that claim > run > finish, and a monitor thread that heartbeats, flushes
throttled progress, notices cancellations and runs maintenance.

Every loop is supervised: an unexpected exception stops the whole worker loudly (``failure`` says why)
instead of leaving it half alive.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import os
import socket
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable, Sequence

from ..config import Settings
from ..errors import (
    InvalidParameterError,
    JobCancelled,
    StoreUnavailableError,
    TimeLimitExceeded,
    UnknownHandlerError,
)
from ..models import Job, JobStatus, check_json, utcnow
from ..registry import HandlerRegistry
from ..retry import outcome_for_error, permanent_failure
from ..scheduler import Maintenance
from ..stores.base import ConcurrencyLimits, Finished, Outcome, Store, WorkerInfo
from .context import JobContext
from .load import LoadSampler
from .process import JobProcess, target_of

log = logging.getLogger("jobhandle.worker")
job_log = logging.getLogger("jobhandle.job")

RESOURCE_CHECK_SECONDS = 1.0
"""How often a worker compares system CPU and memory use with its thresholds."""
SHORT_JOB_SECONDS = 0.005
"""Jobs quicker than this are claimed and acknowledged in batches (see Worker._slot_loop)."""
BATCH_LIMIT = 64
RESULT_HOLD_SECONDS = 0.1
"""Outcomes of finished jobs wait at most about this long to be written with a batch."""
BUFFER_HOLD_SECONDS = 0.5
"""A claimed job waiting this long for a free slot of its worker goes back to the store for other workers."""
IDLE_RECHECK_SECONDS = 5.0
"""A safety net only: idle slots wake on store changes and on the next due time, not on this."""
STORE_RETRY_SECONDS = 1.0
"""While the store's server does not answer (a Redis restart or failover), each loop tries again this often."""
OUTAGE_LOG_SECONDS = 10.0


MODES = ("thread", "process")


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


class Worker:
    """Runs jobs of ``queues`` from ``store`` with ``concurrency`` slots.

    ``mode`` "thread" runs handlers in the slot threads; "process" gives each slot a child process that runs
    its jobs (see process.py): jobs are killed for real on cancel and timeout, held to JOB_MAX_MEMORY_MB, and
    their CPU seconds and peak memory are recorded.
    """

    def __init__(self, store: Store, registry: HandlerRegistry, settings: Settings, *,
                 queues: Sequence[str] = ("default",), concurrency: int | None = None,
                 name: str | None = None, mode: str | None = None) -> None:
        if not queues:
            raise InvalidParameterError("a worker needs at least one queue")
        self.mode = settings.worker_mode if mode is None else mode
        if self.mode not in MODES:
            raise InvalidParameterError(f"worker mode must be one of {', '.join(MODES)}, not {self.mode!r}")
        self.store = store
        self.registry = registry
        self.settings = settings
        self.queues = list(dict.fromkeys(queues))
        self.concurrency = settings.worker_concurrency if concurrency is None else concurrency
        if isinstance(self.concurrency, bool) or not isinstance(self.concurrency, int) or self.concurrency < 1:
            raise InvalidParameterError(f"concurrency must be at least 1, not {self.concurrency}")
        host = socket.gethostname()
        self.name = name or f"{host}-{os.getpid()}"
        self.worker_id = f"{self.name}-{uuid.uuid4().hex[:8]}"
        self.info = WorkerInfo(worker_id=self.worker_id, name=self.name, hostname=host, pid=os.getpid(),
                               queues=self.queues, concurrency=self.concurrency, started_at=utcnow())
        self.failure: BaseException | None = None
        self.maintenance = Maintenance(store, settings)
        self._lease = settings.worker_timeout
        self._limits = ConcurrencyLimits.from_settings(settings.global_max_concurrent_jobs,
                                                       settings.per_user_max_concurrent_jobs)
        self._stopping = threading.Event()
        self._stopped = threading.Event()
        self._running: dict[str, JobContext] = {}
        self.cpu_threshold = settings.cpu_threshold  # percent of the machine; claiming pauses above either
        self.memory_threshold = settings.memory_threshold
        self._claiming = threading.Event()  # cleared while resources are over their thresholds
        self._claiming.set()
        self._load = LoadSampler()
        self._buffer: deque[tuple[float, Job]] = deque()  # claimed, not started yet: (held since, job)
        self._held: list[Finished] = []  # outcomes not written yet (batched with the next claim)
        self._held_since = 0.0
        self._outage_logged_at = float("-inf")  # when a store outage was last logged (once per OUTAGE_LOG_SECONDS)
        self._running_lock = threading.Lock()
        self._idle_watch = IdleWatch()
        self._threads: list[threading.Thread] = []
        self._processes: list[JobProcess] = []

    # -- lifecycle ---------------------------------------------------------------------------------------

    def start(self) -> Worker:
        self.store.heartbeat(self.info, self._lease, utcnow())  # visible in list_workers at once
        self._spawn("monitor", lambda: self._through_outages(self._monitor_loop))
        for i in range(self.concurrency):
            self._spawn(f"slot-{i}", self._slot_loop)
        log.info("worker %s started: queues=%s concurrency=%d mode=%s", self.worker_id, ",".join(self.queues),
                 self.concurrency, self.mode)
        return self

    def stop(self, grace: float | None = None) -> None:
        """Stop claiming; let running jobs finish within ``grace`` seconds; hand back the rest."""
        if self._stopped.is_set():
            return
        grace = self.settings.shutdown_grace if grace is None else grace
        self._stopping.set()
        self._claiming.set()  # a slot waiting out an overload must see the stop
        if not self._threads:  # never started: nothing runs, nothing is registered
            self._stopped.set()
            return
        self.store.wake_waiters()
        deadline = time.monotonic() + grace
        monitor, *slots = self._threads
        for thread in slots:  # running jobs get the grace period
            if thread is not threading.current_thread():
                thread.join(max(0.0, deadline - time.monotonic()))
        if monitor is not threading.current_thread():
            monitor.join()  # it notices _stopping within one loop (~50 ms) and must not outlive the store
        try:
            self._hand_back(grace)
        except StoreUnavailableError as exc:  # stopping during an outage: the leases run out instead
            log.warning("worker %s: %s; its unfinished jobs will be recovered when their leases run out",
                        self.worker_id, exc.message)
        for process in self._processes:  # their slots close them too; this covers slots still in a job
            process.close()
        self._stopped.set()
        log.info("worker %s stopped", self.worker_id)

    def _hand_back(self, grace: float) -> None:
        """Stopping: return claimed and unfinished jobs to the store (attempts not counted), unregister."""
        self._release_buffered(held_since_after(float("inf")))  # claimed, never started
        for ctx in self._running_now():
            # Hand back first, then tell the handler: its result, if it still returns one, is fenced out.
            ctx.handed_back = True
            if self.store.release(ctx.job_id, self.worker_id, ctx.attempt, utcnow()) is not None:
                log.warning("job %s did not finish within %.1fs of shutdown: handed back", ctx.job_id, grace)
            ctx.mark_cancelled()
        self.store.unregister_worker(self.worker_id)

    def wait_stopped(self, timeout: float | None = None) -> bool:
        return self._stopped.wait(timeout)

    @property
    def stopping(self) -> bool:
        return self._stopping.is_set()

    def running_jobs(self) -> list[str]:
        with self._running_lock:
            return list(self._running)

    def __enter__(self) -> Worker:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _spawn(self, role: str, loop: Callable[[], None]) -> None:
        thread = threading.Thread(target=self._supervised, args=(loop,), name=f"jobhandle-{role}", daemon=True)
        self._threads.append(thread)
        thread.start()

    def _supervised(self, loop: Callable[[], None]) -> None:
        try:
            loop()
        except BaseException as exc:  # noqa: BLE001 - a dead loop must take the worker down with it
            if self._stopped.is_set():
                return  # a handler that outlived stop(): its job was handed back, nothing is lost
            self._stopping.set()  # before failure: whoever sees the failure also sees the worker stopping
            self.failure = exc
            log.critical("worker %s: %s died (%r); stopping the worker", self.worker_id,
                         threading.current_thread().name, exc, exc_info=True)
            self.store.wake_waiters()

    def _through_outages(self, loop: Callable[[], None]) -> None:
        """Run ``loop``, and again each STORE_RETRY_SECONDS while the store's server does not answer: a Redis
        restart or failover pauses the worker instead of stopping it. Nothing is lost meanwhile: unwritten
        outcomes stay held (``_flush``) and progress stays pending; if the outage outlasts the leases, other
        workers recover the jobs and this worker's late writes are fenced out."""
        while True:
            try:
                loop()
                return
            except StoreUnavailableError as exc:
                now = time.monotonic()
                with self._running_lock:
                    quiet = now - self._outage_logged_at < OUTAGE_LOG_SECONDS
                    if not quiet:
                        self._outage_logged_at = now
                if not quiet:
                    log.warning("worker %s: %s; trying again every %.0fs", self.worker_id, exc.message,
                                STORE_RETRY_SECONDS)
                if self._stopping.wait(STORE_RETRY_SECONDS):
                    return

    # -- slots -------------------------------------------------------------------------------------------

    def _slot_loop(self) -> None:
        process = None
        if self.mode == "process":
            process = JobProcess(self.settings.max_memory_mb, self.settings.retry_backoff_cap)
            with self._running_lock:
                self._processes.append(process)
            process.start()  # before the first claim: a claimed job should not wait for Python to start
        try:
            self._through_outages(lambda: self._run_slot(process))
        finally:
            self._idle_watch.hand_over()
            if process is not None:
                process.close()

    def _run_slot(self, process: JobProcess | None) -> None:
        """Claim > run > finish, adaptively batched.

        While jobs are short (under SHORT_JOB_SECONDS) a slot claims up to BATCH_LIMIT at once and writes their
        outcomes together with its next claim: one transaction for many jobs. The claimed jobs it does not
        start at once go to the worker's buffer, which every slot takes from, so a long job never holds back
        the jobs claimed with it while another slot is free; the monitor hands back to the store any job held
        there longer than BUFFER_HOLD_SECONDS (all slots busy). A long job also drops the batch size back to
        one. Outcomes are held for the next batch at most RESULT_HOLD_SECONDS (the monitor writes them when a
        slot has gone on to a longer job); they are lost only if the process dies, and then the jobs run
        again (at-least-once, as with any crash). Of the idle slots, only the one with the worker's watch
        (IdleWatch) claims and waits for the store to change.
        """
        claim_size = 1
        while True:
            if self._stopping.is_set():  # buffered jobs are handed back by stop()
                self._flush(0)
                return
            job = self._take_buffered()
            if job is None:
                if not self._claiming.is_set():  # the machine is overloaded: claim nothing new for now
                    self._flush(0)
                    self._claiming.wait(IDLE_RECHECK_SECONDS)
                    continue
                if self._held_count():
                    claimed = self._flush(claim_size)
                    if not claimed:
                        continue  # nothing more now: the next round claims, or waits for work
                else:
                    if not self._idle_watch.mine():
                        self._idle_watch.take(IDLE_RECHECK_SECONDS)
                        continue  # look again (stop, buffer) once the watch is ours, or after the timeout
                    seen = self.store.change_version
                    if self._stopping.is_set():  # stop() sets this, then wakes waiters: seen before, heard after
                        continue
                    claimed = self.store.claim(self.worker_id, self.queues, claim_size, self._lease, utcnow(),
                                               self._limits)
                    if not claimed:
                        claim_size = 1
                        self.store.wait_for_change(seen, self._idle_timeout())
                        continue
                job = claimed[0]  # a claimed job shows as running: it runs, even if a stop began meanwhile
                self._buffer_jobs(claimed[1:])
            self._idle_watch.hand_over()  # busy now: the next idle slot watches, and claims at once
            started = time.perf_counter()
            finished = self._execute(job, process)
            short = time.perf_counter() - started < SHORT_JOB_SECONDS
            claim_size = BATCH_LIMIT if short else 1
            held = self._hold(finished)
            if self._stopping.is_set():
                self._flush(0)
                return
            if held and (not short or held >= BATCH_LIMIT):
                self._buffer_jobs(self._flush(0 if self._buffered_count() else claim_size))

    def _buffer_jobs(self, jobs: list[Job]) -> None:
        if jobs:
            held_since = time.monotonic()
            with self._running_lock:
                self._buffer.extend((held_since, job) for job in jobs)

    def _take_buffered(self) -> Job | None:
        with self._running_lock:
            return self._buffer.popleft()[1] if self._buffer else None

    def _buffered_count(self) -> int:
        with self._running_lock:
            return len(self._buffer)

    def _release_buffered(self, keep: Callable[[float, Job], bool]) -> None:
        """Hand back to the store (attempts not counted) the buffered jobs ``keep`` says no to."""
        with self._running_lock:
            given_back = [job for held, job in self._buffer if not keep(held, job)]
            self._buffer = deque((held, job) for held, job in self._buffer if keep(held, job))
        for job in given_back:
            self.store.release(job.job_id, self.worker_id, job.attempts, utcnow())

    def _hold(self, finished: Finished | None) -> int:
        """Keep an attempt's outcome to write with the next flush; return how many are held."""
        with self._running_lock:
            if finished is not None:
                if not self._held:
                    self._held_since = time.monotonic()
                self._held.append(finished)
            return len(self._held)

    def _held_count(self) -> int:
        with self._running_lock:
            return len(self._held)

    def _flush(self, claim_size: int) -> list[Job]:
        """Write the held outcomes (and claim more in the same step)."""
        with self._running_lock:
            done, self._held = self._held, []
        if not done and claim_size == 0:
            return []
        try:
            owned, claimed = self.store.finish_many_and_claim(self.worker_id, done, self.queues, claim_size,
                                                              self._lease, utcnow(), self._limits)
        except StoreUnavailableError:
            with self._running_lock:  # written with the next flush (fenced, so writing twice is harmless)
                self._held[:0] = done
            raise
        for f, ok in zip(done, owned, strict=True):
            if not ok:
                log.info("job %s: result discarded, the job was cancelled or recovered meanwhile", f.job_id)
        return claimed

    def _idle_timeout(self) -> float:
        due = self.store.next_due_at()
        if due is None:
            return IDLE_RECHECK_SECONDS
        return min(IDLE_RECHECK_SECONDS, max(0.0, (due - utcnow()).total_seconds()))

    def _execute(self, job: Job, process: JobProcess | None) -> Finished | None:
        """Run one job; return how it ended (None: nothing to write, e.g. it was cancelled or handed back)."""
        ctx = JobContext(job, self.store, self.worker_id, self.settings.progress_interval,
                         _job_logger(job.job_type), self.settings.max_api_calls_per_minute)
        with self._running_lock:
            self._running[job.job_id] = ctx
        started = time.perf_counter()
        try:
            outcome = self._run_handler(job, ctx, process)
        finally:
            with self._running_lock:
                self._running.pop(job.job_id, None)
        if outcome is None or ctx.handed_back:
            return None
        outcome.execution_time_seconds = time.perf_counter() - started
        outcome.progress = ctx.take_pending_progress()
        return Finished(job.job_id, job.attempts, outcome, utcnow())

    def _run_handler(self, job: Job, ctx: JobContext, process: JobProcess | None) -> Outcome | None:
        handler = self.registry.get(job.job_type)
        try:  # what no retry can fix fails at once: no handler here, or parameters it cannot take
            if handler is None:
                raise UnknownHandlerError(job.job_type)
            handler.check_parameters(job.parameters)
            if process is not None:
                target_of(handler)
        except (UnknownHandlerError, InvalidParameterError) as exc:
            job_log.warning("job %s (%s) cannot run: %s", job.job_id, job.job_type, exc)
            return permanent_failure(exc)
        if process is not None:
            return process.run(job, handler, ctx)
        try:
            if handler.is_async:
                result = asyncio.run(handler.fn(ctx, **job.parameters))
            else:
                result = handler.fn(ctx, **job.parameters)
        except JobCancelled:
            return None
        except Exception as exc:  # noqa: BLE001 - any handler error ends the attempt, by the retry policy
            outcome = outcome_for_error(job, exc, utcnow(), self.settings.retry_backoff_cap)
            job_log.warning("job %s (%s) attempt %d failed: %s -> %s", job.job_id, job.job_type,
                            job.attempts, outcome.error, outcome.status.value, exc_info=True)
            return outcome
        try:
            check_json(result, "a handler's result")
        except InvalidParameterError as exc:  # the same result would come back on every attempt
            return permanent_failure(exc)
        return Outcome(JobStatus.COMPLETED, result=result)

    # -- monitor -----------------------------------------------------------------------------------------

    def _monitor_loop(self) -> None:
        next_heartbeat = time.monotonic() + self.settings.heartbeat_interval
        next_resource_check = 0.0
        while not self._stopping.is_set():
            seen = self.store.change_version
            if time.monotonic() >= next_resource_check:
                next_resource_check = time.monotonic() + min(RESOURCE_CHECK_SECONDS, self.settings.heartbeat_interval)
                if self._check_resources():
                    next_heartbeat = 0.0  # a new state is reported at once
            if time.monotonic() >= next_heartbeat:
                next_heartbeat = time.monotonic() + self.settings.heartbeat_interval
                running = self._running_now()
                self._mark_lost(running, self.store.heartbeat(self.info, self._lease, utcnow()))
            running = self._running_now()
            with self._running_lock:
                buffered = {job.job_id for _, job in self._buffer}
            if running or buffered:
                for ctx in running:
                    ctx.flush_progress(force=False)
                self._enforce_time_limits(running)
                owned = self.store.owned_jobs(self.worker_id)
                self._mark_lost(running, owned)
                with self._running_lock:  # buffered jobs cancelled (or recovered) meanwhile: never start them
                    self._buffer = deque((h, j) for h, j in self._buffer if j.job_id in owned or
                                         j.job_id not in buffered)
                self._release_buffered(held_since_after(time.monotonic() - BUFFER_HOLD_SECONDS))
            with self._running_lock:
                overdue = bool(self._held) and time.monotonic() - self._held_since > RESULT_HOLD_SECONDS
            if overdue:  # a slot went on to a longer job: its finished jobs' outcomes must not wait for it
                self._flush(0)
            self.maintenance.run_due()
            if self._stopping.wait(0.05):  # at most 20 checks a second, however busy the store is
                break
            wait = min(self.settings.progress_interval or 0.2, max(0.0, next_heartbeat - time.monotonic()))
            self.store.wait_for_change(seen, wait)

    def _check_resources(self) -> bool:
        """Pause claiming while the CPU other work uses, or the machine's memory use, is above its threshold;
        resume below. Returns whether the state changed; the state (with the reason) shows in list_workers
        and stats. Running jobs go on."""
        cpu, memory = self._load.sample()
        over = []
        if cpu > self.cpu_threshold:
            over.append(f"cpu used by other work {cpu:.0f}% > {self.cpu_threshold:g}%")
        if memory > self.memory_threshold:
            over.append(f"memory {memory:.0f}% > {self.memory_threshold:g}%")
        state = f"paused ({', '.join(over)})" if over else "running"
        if state == self.info.state:
            return False
        if over:
            self._claiming.clear()
            log.warning("worker %s stops claiming: %s", self.worker_id, ", ".join(over))
        else:
            self._claiming.set()
            log.info("worker %s claims again: resources back under their thresholds", self.worker_id)
        self.info.state = state
        return True

    def _enforce_time_limits(self, running: list[JobContext]) -> None:
        """End attempts that ran past their job's ``timeout_seconds`` and tell their handlers to stop.

        The attempt ends now, as a failure with TimeLimitExceeded under the retry policy, and the job is told
        to stop: in process mode its slot kills its process; a thread cannot be killed, so a thread-mode
        handler is asked to stop (``ctx.cancelled``) and whatever it returns later is fenced out.
        """
        now = utcnow()
        for ctx in running:
            job = ctx.job
            if job.started_at is None or ctx.cancelled:
                continue
            overrun = (now - job.started_at).total_seconds() - job.timeout_seconds
            if overrun < 0:
                continue
            exc = TimeLimitExceeded(f"the job ran longer than its timeout of {job.timeout_seconds:g}s")
            outcome = outcome_for_error(job, exc, now, self.settings.retry_backoff_cap)
            outcome.progress = ctx.take_pending_progress()
            if self.store.finish(job.job_id, self.worker_id, job.attempts, outcome, now):
                job_log.warning("job %s (%s) attempt %d: %s -> %s", job.job_id, job.job_type, job.attempts,
                                outcome.error, outcome.status.value)
            ctx.mark_cancelled()

    def _running_now(self) -> list[JobContext]:
        with self._running_lock:
            return list(self._running.values())

    @staticmethod
    def _mark_lost(running: list[JobContext], owned: set[str]) -> None:
        """Tell handlers whose job this worker no longer owns (cancelled, recovered) to stop.

        ``running`` must be read before ``owned``: a job claimed after the owned set was read is not in it.
        """
        for ctx in running:
            if ctx.job_id not in owned:
                ctx.mark_cancelled()


@functools.lru_cache(maxsize=1024)
def _job_logger(job_type: str) -> logging.Logger:
    """``jobhandle.job.<type>``: looked up once per type, not once per job."""
    return job_log.getChild(job_type)


def held_since_after(moment: float) -> Callable[[float, Job], bool]:
    """Keep buffered jobs held since after ``moment``; the others go back to the store (every slot was busy
    for BUFFER_HOLD_SECONDS, or the worker stops)."""

    def keep(held_since: float, job: Job) -> bool:
        return held_since > moment

    return keep

