"""A pool of ``jobhandle worker`` processes on one machine: sized by the Scaler, each child supervised alone.

- **Scaling** (scaling.py) every ``interval`` seconds, from the store's counters (the pool's queues' pending and
  running jobs) and one index seek (the oldest pending job's wait); each decision is logged with its reason and
  kept in ``Pool.events``. Each round also writes the pool's registration to the store (``PoolInfo``: its
  size, range, load and latest events), which ``jobhandle workers``, the API and the dashboard show.
- **Shrinking drains**: the newest worker gets SIGTERM: it stops claiming, its running jobs get ``grace``
  seconds to finish, the rest are handed back (pending again, the attempt not counted). It is no longer counted
  while it drains.
- **A child that dies** (any exit the pool did not ask for) is replaced alone, after a pause that doubles from
  1 s to 30 s while children keep dying. Dramatiq stops every child when one dies (and exits 0); RQ's pool
  respawns without backoff. When children die ``CRASH_LOOP_DEATHS`` times within ``CRASH_LOOP_SECONDS``, the
  pool stops replacing them; if it is below its minimum then, it drains the rest and exits 1, so that the
  service manager sees the failure.
- **SIGTERM / SIGINT** drains the whole pool within ``grace`` (plus a margin for the hand-back), then kills
  what is left; exit 0. Fits Kubernetes' terminationGracePeriodSeconds when that is above ``grace``.
"""

from __future__ import annotations

import ctypes
import logging
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections import deque
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType

import psutil
from prometheus_client import CollectorRegistry, Counter, start_http_server
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from ..health import oldest_pending_wait, write_heartbeat_file
from ..models import utcnow
from ..queue import JobQueue
from ..stores import PoolEvent, PoolInfo, masked_url
from ..stores.base import POOL_EVENTS_KEPT
from .scaling import Decision, Load, Scaler, ScalingPolicy

log = logging.getLogger("jobhandle.pool")

CRASH_LOOP_DEATHS = 5
CRASH_LOOP_SECONDS = 60.0
FIRST_RESTART_PAUSE = 1.0
MAX_RESTART_PAUSE = 30.0
PR_SET_PDEATHSIG = 1
STOP_MARGIN = 10.0
"""Seconds a draining worker gets past ``grace`` to hand its jobs back and exit before it is killed."""


@dataclass(slots=True)
class Child:
    name: str
    proc: subprocess.Popen[bytes]
    started: float
    draining_since: float | None = None


@dataclass
class PoolConfig:
    store: str
    apps: Sequence[str] = ()
    queues: Sequence[str] = ("default",)
    concurrency: int = 4
    name: str = "pool"
    grace: float = 30.0
    interval: float = 1.0
    policy: ScalingPolicy = field(default_factory=ScalingPolicy)
    worker_args: Sequence[str] = ()  # more `jobhandle worker` options, passed as they are
    log_dir: Path | None = None  # each child's stderr to <log_dir>/<name>.log; None: the pool's own stderr
    first_restart_pause: float = FIRST_RESTART_PAUSE  # before replacing a dead child; doubles while they die
    heartbeat_file: Path | None = None  # written each round, for `jobhandle health --heartbeat-file` probes


class Pool:
    """``run()`` supervises until stopped (``stop()``, SIGTERM, SIGINT); returns the exit code."""

    def __init__(self, config: PoolConfig, *, queue: JobQueue | None = None) -> None:
        self.config = config
        self.queue = queue or JobQueue(config.store)
        self._owns_queue = queue is None
        self.scaler = Scaler(config.policy, config.concurrency)
        self.children: list[Child] = []
        self.draining: list[Child] = []
        self.events: deque[PoolEvent] = deque(maxlen=1000)
        self._deaths: deque[float] = deque()
        self._restart_pause = config.first_restart_pause
        self._restart_at = 0.0
        self._owed = 0  # replacements due for children that died
        self._given_up = False
        self._serial = 0
        self._stopping = threading.Event()
        self.metrics = PoolMetrics(self)
        self.pool_id = f"{config.name}-{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:6]}"
        self.started_at = utcnow()
        self.state = "running"
        self.last_load: Load | None = None

    # -- the loop ------------------------------------------------------------------------------------------

    def run(self) -> int:
        previous = {s: signal.signal(s, self._on_signal) for s in (signal.SIGTERM, signal.SIGINT)} \
            if threading.current_thread() is threading.main_thread() else {}
        try:
            log.info("pool %s: store %s, queues %s, %d-%d workers of %d slots", self.config.name,
                     masked_url(self.config.store), ",".join(self.config.queues), self.config.policy.min_workers,
                     self.config.policy.max_workers, self.config.concurrency)
            self._resize(self.config.policy.min_workers, "starting")
            self._event("scale", f"0 -> {len(self.children)}: starting")
            self._register(None)
            code = 0
            while not self._stopping.wait(self.config.interval):
                code = self.step()
                if code:
                    break
            self.state = "stopping"
            self._register(None)
            self._drain_all()
            return code
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)
            self._unregister()
            if self._owns_queue:
                self.queue.close()

    def step(self, now: float | None = None) -> int:
        """One round: reap children, replace the dead, scale. Returns an exit code to stop with, or 0."""
        now = time.monotonic() if now is None else now
        self._reap(now)
        if self._given_up and len(self.children) < self.config.policy.min_workers:
            self._event("stop", f"below its minimum of {self.config.policy.min_workers} after a crash loop")
            log.error("pool %s: workers keep dying (%d in %.0fs); below its minimum, it stops", self.config.name,
                      CRASH_LOOP_DEATHS, CRASH_LOOP_SECONDS)
            return 1
        try:
            load = self.load()
        except Exception as exc:  # noqa: BLE001 - the store is down: keep the workers, decide later
            log.warning("pool %s: cannot read the store's load: %s", self.config.name, exc)
            error = f"{type(exc).__name__}: {exc}"
            self._beat(error)
            self._register(error)  # a store that fails one read may still take the write: then it shows
            return 0
        self.last_load = load
        self._beat(None)
        if not self._owed:  # replacements first, after their pause: growing now would skip the backoff
            decision = self.scaler.decide(len(self.children), load, now)
            if decision is not None and not (self._given_up and decision.target > len(self.children)):
                self._apply(decision)
        self._register(None)
        return 0

    def load(self) -> Load:
        """The pool's queues' pending and running jobs, the oldest pending job's wait, the machine's load."""
        counts = self.queue.store.counts()
        pending = sum(counts.by_queue.get(q, {}).get("pending", 0) for q in self.config.queues)
        running = sum(counts.by_queue.get(q, {}).get("running", 0) for q in self.config.queues)
        oldest = None
        if pending:
            now = utcnow()
            waits = [w for q in self.config.queues if (w := oldest_pending_wait(self.queue, now, q)) is not None]
            oldest = max(waits, default=None)
        return Load(pending, running, oldest, psutil.cpu_percent(interval=None), psutil.virtual_memory().percent)

    def info(self, store_error: str | None = None) -> PoolInfo:
        """The pool's registration as it stands (written to the store each round)."""
        load = self.last_load
        p = self.config.policy
        return PoolInfo(
            pool_id=self.pool_id, name=self.config.name, hostname=socket.gethostname(), pid=os.getpid(),
            queues=list(self.config.queues), concurrency=self.config.concurrency, min_workers=p.min_workers,
            max_workers=p.max_workers, workers=len(self.children), draining=len(self.draining),
            started_at=self.started_at, state=self.state,
            worker_pids=[c.proc.pid for c in (*self.children, *self.draining)],
            load={} if load is None else {"pending": load.pending, "running": load.running,
                                          "oldest_wait_seconds": load.oldest_wait,
                                          "cpu_percent": load.cpu_percent, "memory_percent": load.memory_percent},
            store_error=store_error, events=list(self.events)[-POOL_EVENTS_KEPT:])

    def _register(self, store_error: str | None) -> None:
        """Write the registration (``jobhandle workers``, the API and the dashboard read it); a store that
        fails here is only logged: the pool goes on without it."""
        try:
            self.queue.store.record_pool(self.info(store_error), utcnow())
        except Exception as exc:  # noqa: BLE001 - the registration is for people: never stop the pool for it
            log.warning("pool %s: cannot write its registration: %s", self.config.name, exc)

    def _unregister(self) -> None:
        try:
            self.queue.store.unregister_pool(self.pool_id)
        except Exception as exc:  # noqa: BLE001 - it is reaped when its registration goes stale
            log.warning("pool %s: cannot remove its registration: %s", self.config.name, exc)

    def _beat(self, store_error: str | None) -> None:
        if self.config.heartbeat_file is None:
            return
        try:
            write_heartbeat_file(self.config.heartbeat_file, self.config.name,
                                 f"{len(self.children)} workers, {len(self.draining)} draining", store_error)
        except OSError as exc:
            log.warning("pool %s: cannot write its heartbeat file: %s", self.config.name, exc)

    # -- children ------------------------------------------------------------------------------------------

    def _apply(self, decision: Decision) -> None:
        before = len(self.children)
        self._resize(decision.target, decision.reason)
        if len(self.children) != before:
            self._event("scale", f"{before} -> {len(self.children)}: {decision.reason}")

    def _resize(self, target: int, reason: str) -> None:
        while len(self.children) < target:
            self._spawn()
        while len(self.children) > target:
            child = max(self.children, key=lambda c: c.started)  # the newest: the least warmed up
            self._drain(child)
        log.info("pool %s: %d workers (%s)", self.config.name, len(self.children), reason)

    def _spawn(self) -> Child:
        self._serial += 1
        name = f"{self.config.name}-{self._serial}"
        # The store goes in the environment, not the command line: a Redis URL may hold a password, and every
        # user of the machine can read a process's arguments.
        argv = [sys.executable, "-m", "jobhandle", "worker", "--name", name,
                "--concurrency", str(self.config.concurrency), "--grace", str(self.config.grace)]
        for app in self.config.apps:
            argv += ["--app", app]
        for q in self.config.queues:
            argv += ["--queue", q]
        argv += list(self.config.worker_args)
        stderr = None
        if self.config.log_dir is not None:
            stderr = (self.config.log_dir / f"{name}.log").open("ab")
        proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=stderr, preexec_fn=_stop_with_parent,
                                env={**os.environ, "JOBHANDLE_STORE": self.config.store})
        if stderr is not None:
            stderr.close()  # the child has its own copy
        child = Child(name, proc, time.monotonic())
        self.children.append(child)
        return child

    def _drain(self, child: Child) -> None:
        self.children.remove(child)
        child.draining_since = time.monotonic()
        if child.proc.poll() is None:
            child.proc.send_signal(signal.SIGTERM)
        self.draining.append(child)

    def _reap(self, now: float) -> None:
        """Forget drained children, kill those past their grace; note the dead and replace them after a
        pause that doubles while they keep dying, unless they die in a loop."""
        for child in list(self.draining):
            if child.proc.poll() is not None:
                self.draining.remove(child)
            elif child.draining_since is not None and now - child.draining_since > self.config.grace + STOP_MARGIN:
                log.warning("pool %s: %s did not stop within its grace: killed", self.config.name, child.name)
                child.proc.kill()
        dead = [c for c in self.children if c.proc.poll() is not None]
        for child in dead:
            self.children.remove(child)
            self._deaths.append(now)
            self._owed += 1
            log.warning("pool %s: %s exited with %s", self.config.name, child.name, child.proc.returncode)
        while self._deaths and now - self._deaths[0] > CRASH_LOOP_SECONDS:
            self._deaths.popleft()
        if len(self._deaths) >= CRASH_LOOP_DEATHS and not self._given_up:
            self._given_up, self._owed = True, 0
            self.state = "crash_loop"
            self._event("crash_loop", f"{len(self._deaths)} workers died within {CRASH_LOOP_SECONDS:.0f}s: "
                                      "no more replacements")
        if dead and not self._given_up:
            self._restart_at = now + self._restart_pause
            self._restart_pause = min(MAX_RESTART_PAUSE, self._restart_pause * 2)
        elif not self._deaths:
            self._restart_pause = self.config.first_restart_pause
        if self._owed and now >= self._restart_at:
            for _ in range(min(self._owed, self.config.policy.max_workers - len(self.children))):
                child = self._spawn()
                self._event("replace", f"started {child.name} for a worker that died")
            self._owed = 0

    def _drain_all(self) -> None:
        for child in list(self.children):
            self._drain(child)
        deadline = time.monotonic() + self.config.grace + STOP_MARGIN
        for child in self.draining:
            try:
                child.proc.wait(max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                log.warning("pool %s: %s did not stop within its grace: killed", self.config.name, child.name)
                child.proc.kill()
                child.proc.wait()
        self.draining.clear()
        log.info("pool %s: stopped", self.config.name)

    # -- stopping, events ----------------------------------------------------------------------------------

    def stop(self) -> None:
        self._stopping.set()

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        log.info("pool %s: %s received: draining every worker (grace %gs)", self.config.name,
                 signal.Signals(signum).name, self.config.grace)
        self.stop()

    def _event(self, kind: str, detail: str) -> None:
        self.events.append(PoolEvent(utcnow(), kind, detail, len(self.children)))
        self.metrics.events.labels(kind).inc()
        log.info("pool %s: %s: %s", self.config.name, kind, detail)


def _stop_with_parent() -> None:
    """In the child, before exec (Linux): SIGTERM when the pool dies, even by SIGKILL, so that no worker
    outlives its supervisor unwatched. It then drains as on any SIGTERM. (Linux sends it when the *thread* that
    started the child ends: children are started from the pool's loop, whose thread lives as long as the pool.)"""
    if sys.platform.startswith("linux"):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


class PoolMetrics(Collector):
    """The pool's Prometheus metrics (``jobhandle pool --metrics-port``): its workers, draining ones, its size
    range, and what it did (``jobhandle_pool_events_total{kind}``: scale, replace, crash_loop, stop)."""

    def __init__(self, pool: Pool) -> None:
        self.pool = pool
        self.registry = CollectorRegistry(auto_describe=True)
        self.events = Counter("jobhandle_pool_events", "What the pool did", ["kind"], registry=self.registry)
        self.registry.register(self)

    def collect(self) -> Iterator[GaugeMetricFamily]:
        p = self.pool
        yield GaugeMetricFamily("jobhandle_pool_workers", "Worker processes running", value=len(p.children))
        yield GaugeMetricFamily("jobhandle_pool_draining", "Worker processes finishing before they exit",
                                value=len(p.draining))
        yield GaugeMetricFamily("jobhandle_pool_min_workers", "The pool's fewest workers",
                                value=p.config.policy.min_workers)
        yield GaugeMetricFamily("jobhandle_pool_max_workers", "The pool's most workers",
                                value=p.config.policy.max_workers)

    def serve(self, port: int, host: str = "127.0.0.1") -> None:
        start_http_server(port, addr=host, registry=self.registry)
