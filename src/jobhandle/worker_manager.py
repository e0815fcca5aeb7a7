"""Seed 003's worker management, as its examples use it: ``create_worker_manager``, ``ScalingConfig``,
``WorkerManager``, ``WorkerPool``, and ``python -m jobhandle.worker_manager start-worker --name N --queue Q
--redis URL``. A thin layer over ``jobhandle.pool`` (one autoscaled pool of worker processes per manager) and
``jobhandle worker``.

``start_auto_scaling()`` runs the pool in a background thread that is not a daemon: a script that calls it
and ends (seed 003's ``python -c "...mgr.start_auto_scaling()"``) keeps supervising until SIGTERM or SIGINT,
which drain the workers. The handlers the workers load come from ``apps`` (default: $JOBHANDLE_WORKER_APPS,
comma-separated modules or .py files).
"""

from __future__ import annotations

import os
import signal
import sys
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from types import FrameType

from .config import Settings
from .errors import InvalidParameterError
from .pool import Pool, PoolConfig, PoolEvent, ScalingPolicy

APPS_VARIABLE = "JOBHANDLE_WORKER_APPS"


@dataclass(frozen=True, slots=True)
class ScalingConfig:
    """Seed 003's scaling settings: the pool's fewest and most workers (default $JOB_QUEUE_WORKERS_MIN/MAX)
    and the pool's scaling rule (see ``jobhandle.pool.scaling``)."""

    min_workers: int | None = None
    max_workers: int | None = None
    up_wait: float = 2.0
    up_cooldown: float = 10.0
    down_idle: float = 60.0
    down_cooldown: float = 30.0

    def policy(self, settings: Settings) -> ScalingPolicy:
        return ScalingPolicy(
            min_workers=settings.workers_min if self.min_workers is None else self.min_workers,
            max_workers=settings.workers_max if self.max_workers is None else self.max_workers,
            up_wait=self.up_wait, up_cooldown=self.up_cooldown, down_idle=self.down_idle,
            down_cooldown=self.down_cooldown, cpu_threshold=settings.cpu_threshold,
            memory_threshold=settings.memory_threshold, max_running=settings.global_max_concurrent_jobs)


class WorkerManager:
    """One autoscaled pool of worker processes on ``queues``; see the module docstring."""

    def __init__(self, worker_name_prefix: str = "worker", scaling_config: ScalingConfig | None = None, *,
                 queues: Sequence[str] = ("default",), apps: Sequence[str] | None = None,
                 concurrency: int | None = None, store: str | None = None,
                 settings: Settings | None = None) -> None:
        self.settings = settings or Settings()
        self.name = worker_name_prefix
        self.scaling_config = scaling_config or ScalingConfig()
        self.queues = list(queues)
        self.apps = list(apps) if apps is not None else [a for a in os.environ.get(APPS_VARIABLE, "").split(",")
                                                         if a.strip()]
        self.concurrency = concurrency or self.settings.worker_concurrency
        self.store = store or self.settings.store
        self._pool: Pool | None = None
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    @property
    def events(self) -> list[PoolEvent]:
        """What the pool did so far: scaled (and why), replaced a worker, gave up."""
        return list(self._pool.events) if self._pool is not None else []

    def workers(self) -> int:
        """Worker processes running now (draining ones not counted)."""
        return len(self._pool.children) if self._pool is not None else 0

    def start_auto_scaling(self) -> WorkerManager:
        """Start the pool (at its minimum) and keep it sized; does nothing when it runs already."""
        with self._lock:
            if self.running:
                return self
            config = PoolConfig(store=self.store, apps=self.apps, queues=self.queues, concurrency=self.concurrency,
                                name=self.name, grace=self.settings.shutdown_grace,
                                policy=self.scaling_config.policy(self.settings))
            self._pool = Pool(config)
            self._thread = threading.Thread(target=self._pool.run, name=f"pool-{self.name}")
            self._thread.start()
            _stop_on_signals(self)
            return self

    def stop(self, timeout: float | None = None) -> None:
        """Drain the pool's workers (running jobs get the shutdown grace) and wait for it."""
        with self._lock:
            pool, thread = self._pool, self._thread
        if pool is not None:
            pool.stop()
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout)

    def set_queues(self, queues: Sequence[str]) -> None:
        """Serve ``queues`` from now on (a running pool is drained and started again on them)."""
        if not queues:
            raise InvalidParameterError("a worker manager needs at least one queue")
        was_running = self.running
        if was_running:
            self.stop()
        self.queues = list(queues)
        if was_running:
            self.start_auto_scaling()


class WorkerPool:
    """Seed 003's multi-queue coordination: one WorkerManager per queue."""

    def __init__(self) -> None:
        self.managers: dict[str, WorkerManager] = {}

    def add_manager(self, queue: str, manager: WorkerManager) -> None:
        manager.set_queues([queue])
        self.managers[queue] = manager

    def start_all(self) -> None:
        for manager in self.managers.values():
            manager.start_auto_scaling()

    def stop_all(self) -> None:
        for manager in self.managers.values():
            manager.stop()


def create_worker_manager(worker_name_prefix: str = "worker", scaling_config: ScalingConfig | None = None,
                          **kwargs: object) -> WorkerManager:
    """A WorkerManager (not started: call ``start_auto_scaling()``)."""
    return WorkerManager(worker_name_prefix, scaling_config, **kwargs)  # type: ignore[arg-type]


_managed: list[WorkerManager] = []


def _stop_on_signals(manager: WorkerManager) -> None:
    """From the main thread: SIGTERM and SIGINT drain every started manager, then exit."""
    _managed.append(manager)
    if threading.current_thread() is not threading.main_thread() or len(_managed) > 1:
        return

    def stop_all(signum: int, frame: FrameType | None) -> None:
        for m in _managed:
            threading.Thread(target=m.stop, name="pool-stop").start()

    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, stop_all)


def main(argv: Sequence[str] | None = None) -> None:
    """``python -m jobhandle.worker_manager start-worker --name N --queue Q --redis URL``: ``jobhandle worker``."""
    from .cli import app

    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0] != "start-worker":
        print("usage: python -m jobhandle.worker_manager start-worker [jobhandle worker options] "
              "[--redis URL]", file=sys.stderr)
        raise SystemExit(2)
    app(["worker", *args[1:]], prog_name="python -m jobhandle.worker_manager start-worker")


if __name__ == "__main__":
    main()
