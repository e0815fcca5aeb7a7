"""The worker: slots that claim > run > finish (slot.py), a monitor that heartbeats, watches running jobs and
reconciles with the store (monitor.py), and a maintenance loop (scheduler.py), each in a supervised thread.

What the worker holds between the store and its slots is in buffer.py. Every loop is supervised
(supervise.py): one that raises, on an unexpected store error (named by guard.py) or a store outage, is logged
and started again after a growing pause, and the worker's state says so (``health``, and ``degraded`` in
its registration) while it fails. Only what cannot get better by waiting stops the worker loudly
(``failure``): a job process that cannot start.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
import uuid
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from ..config import Settings
from ..errors import InvalidParameterError, JobProcessStartError, StoreError, StoreUnavailableError
from ..models import Job, utcnow
from ..registry import HandlerRegistry
from ..scheduler import TICK_SECONDS, Maintenance
from ..stores.base import AttemptKey, ClaimRequest, ConcurrencyLimits, Store, WorkerInfo
from ..supervise import LoopHealth, Supervised
from .buffer import ClaimBuffer, OutcomeBatch, RunningJobs
from .guard import WorkerStore
from .load import LoadSampler
from .metrics import WorkerMetrics
from .monitor import Monitor
from .slot import IDLE_RECHECK_SECONDS, IdleWatch, Slot

if TYPE_CHECKING:
    from .process import JobProcess

log = logging.getLogger("jobhandle.worker")

MODES = ("thread", "process")
FIRST_PAUSE_SECONDS = 0.5
MAX_PAUSE_SECONDS = 5.0
"""A failing loop of a worker is started again after 0.5 s, then twice as long each time, up to this: a store
outage (a Redis restart) costs at most this long after the store is back."""


def _describe(exc: BaseException) -> str:
    if isinstance(exc, StoreUnavailableError):
        return exc.message
    return f"{type(exc).__name__}: {exc}"


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
        self.metrics = WorkerMetrics()  # served only when asked (jobhandle worker --metrics-port)
        self.store = WorkerStore(store, self.metrics.observe)
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
        self.maintenance = Maintenance(self.store, settings, holder=self.worker_id)
        self.lease = settings.worker_timeout
        self.limits = ConcurrencyLimits.from_settings(settings.global_max_concurrent_jobs,
                                                      settings.per_user_max_concurrent_jobs)
        self.cpu_threshold = settings.cpu_threshold  # percent of the machine; claiming pauses above either
        self.memory_threshold = settings.memory_threshold
        self.claiming = threading.Event()  # cleared while resources are over their thresholds
        self.claiming.set()
        self.overloaded: str | None = None  # why claiming is paused
        self.load = LoadSampler()
        self.stopping_event = threading.Event()
        self._stopped = threading.Event()
        self.running = RunningJobs()
        self.buffer = ClaimBuffer()
        self.outcomes = OutcomeBatch()
        self.idle_watch = IdleWatch()
        self.processes: list[JobProcess] = []
        self.loops: dict[str, Supervised] = {}
        self.metrics.watch(self)

    # -- lifecycle ---------------------------------------------------------------------------------------

    def start(self) -> Worker:
        self.store.heartbeat(self.info, self.lease, utcnow())  # visible in list_workers at once
        for i in range(self.concurrency):
            slot = Slot(self, i)
            self._spawn(slot.name, slot.run)
        self._spawn("maintenance", self._maintain)
        self._spawn("monitor", Monitor(self).run)  # last: its first heartbeat reports every loop running
        log.info("worker %s started: queues=%s concurrency=%d mode=%s", self.worker_id, ",".join(self.queues),
                 self.concurrency, self.mode)
        return self

    def _spawn(self, name: str, loop: Any) -> None:
        def guarded() -> None:
            try:
                loop()
            except JobProcessStartError as exc:  # waiting cannot fix it: the worker stops, loudly
                self._fail(exc)

        self.loops[name] = Supervised(name, guarded, stopping=self.stopping_event, log=log,
                                      first_pause=FIRST_PAUSE_SECONDS, max_pause=MAX_PAUSE_SECONDS,
                                      describe_error=_describe, expected=(StoreUnavailableError,))
        self.loops[name].start()  # after it is in loops: the loop reports to its own entry

    def _fail(self, exc: BaseException) -> None:
        if self._stopped.is_set():
            return
        self.stopping_event.set()  # before failure: whoever sees the failure also sees the worker stopping
        self.failure = exc
        log.critical("worker %s: %s; stopping the worker", self.worker_id, exc)
        self.store.wake_waiters()

    def stop(self, grace: float | None = None) -> None:
        """Stop claiming; let running jobs finish within ``grace`` seconds; hand back the rest."""
        if self._stopped.is_set():
            return
        grace = self.settings.shutdown_grace if grace is None else grace
        self.stopping_event.set()
        self.claiming.set()  # a slot waiting out an overload must see the stop
        if not self.loops:  # never started: nothing runs, nothing is registered
            self._stopped.set()
            return
        self.store.wake_waiters()
        deadline = time.monotonic() + grace
        for name, loop in self.loops.items():  # running jobs get the grace period
            if name.startswith("slot-"):
                loop.join(max(0.0, deadline - time.monotonic()))
        for name in ("monitor", "maintenance"):
            self.loops[name].join()  # each notices the stop within one round and must not outlive the store
        try:
            self._hand_back(grace)
        except (StoreUnavailableError, StoreError) as exc:  # stopping while the store fails: the leases run out
            log.warning("worker %s: %s; its unfinished jobs will be recovered when their leases run out",
                        self.worker_id, exc.message)
        for process in self.processes:  # their slots close them too; this covers slots still in a job
            process.close()
        self._stopped.set()
        log.info("worker %s stopped", self.worker_id)

    def _hand_back(self, grace: float) -> None:
        """Stopping: return claimed and unfinished jobs to the store (attempts not counted), unregister."""
        self.release(self.buffer.take_all())  # claimed, never started
        for ctx in self.running.now():
            # Hand back first, then tell the handler: its result, if it still returns one, is fenced out.
            ctx.handed_back = True
            if self.store.release(AttemptKey(ctx.job_id, self.worker_id, ctx.attempt), utcnow()) is not None:
                log.warning("job %s did not finish within %.1fs of shutdown: handed back", ctx.job_id, grace)
            ctx.mark_cancelled()
        self.maintenance.release_leases()
        self.store.unregister_worker(self.worker_id)

    def wait_stopped(self, timeout: float | None = None) -> bool:
        return self._stopped.wait(timeout)

    @property
    def stopping(self) -> bool:
        return self.stopping_event.is_set()

    def running_jobs(self) -> list[str]:
        return list(self.running.ids())

    def __enter__(self) -> Worker:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- health --------------------------------------------------------------------------------------------

    def health(self) -> list[LoopHealth]:
        """Each loop's state: alive, and its current run of failures (an unexpected store error, an outage)."""
        return [loop.health() for loop in self.loops.values()]

    def state(self) -> str:
        """What the registration says: stopping, paused (resources over their thresholds), degraded (a loop
        failing), or running."""
        if self.stopping:
            return "stopping"
        if self.overloaded:
            return f"paused ({self.overloaded})"
        failing = [h for h in self.health() if not h.healthy]
        if failing:
            return "degraded (" + "; ".join(h.describe() for h in failing) + ")"
        return "running"

    # -- what the parts share ------------------------------------------------------------------------------

    def write_outcomes(self, claim_size: int) -> list[Job]:
        """Write the held outcomes (and claim up to ``claim_size`` more in the same step); return the claimed."""
        ticket, done = self.outcomes.take()
        if not done and claim_size == 0:
            self.outcomes.written(ticket)
            return []
        try:
            owned, claimed = self.store.finish_many_and_claim(self.worker_id, done,
                                                              self.claim_request(claim_size) if claim_size else None,
                                                              utcnow())
        except BaseException:
            self.outcomes.unwritten(ticket)
            raise
        self.outcomes.written(ticket)
        for f, ok in zip(done, owned, strict=True):
            if not ok:
                log.info("job %s: result discarded, the job was cancelled or recovered meanwhile", f.job_id)
        return claimed

    def claim_request(self, limit: int) -> ClaimRequest:
        """A claim of up to ``limit`` jobs of this worker's queues, under its lease and limits."""
        return ClaimRequest(self.worker_id, self.queues, limit, self.lease, self.limits)

    def release(self, jobs: Sequence[Job]) -> None:
        """Hand claimed jobs that never started back to the store (attempts not counted)."""
        for job in jobs:
            self.store.release(AttemptKey(job.job_id, self.worker_id, job.attempts), utcnow())

    def idle_timeout(self) -> float:
        due = self.store.next_due_at()
        if due is None:
            return IDLE_RECHECK_SECONDS
        return min(IDLE_RECHECK_SECONDS, max(0.0, (due - utcnow()).total_seconds()))

    def _maintain(self) -> None:
        """The maintenance loop: each task when due, under its lease (see scheduler.py)."""
        loop = self.loops["maintenance"]
        while not self.stopping:
            self.maintenance.run_due()
            loop.ok()
            if self.stopping_event.wait(TICK_SECONDS):
                return
