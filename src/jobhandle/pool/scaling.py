"""When a worker pool grows or shrinks: a pure decision from what the store says, so it can be tested alone.

The signals (``Load``) count the work a pool's queues hold *including* what is already claimed and running:
KEDA's list-length scaler and Celery's reserved-only autoscaler miss one or the other (a backlog hoarded by
prefetch looks like no backlog; a full pool with an empty list looks idle). Growth needs both a backlog beyond
the slots there are *and* a wait: jobs that drain within ``up_wait`` seconds do not need another process, however
many there are. Shrinking needs the pool to have had a whole worker's slots to spare, with nothing pending,
for ``down_idle`` seconds; it then goes down to the most workers the work needed at any look in the last
``down_idle`` seconds (a sliding stabilization window, as Kubernetes' autoscaler keeps), never below the
minimum, and on from there once per ``down_cooldown`` as the window slides. Each direction has
its own cooldown, counted from the last change in either direction (Celery keys its scale-down timer to the
last scale-up only, and shrinks while work still arrives).
Nothing grows while the machine's CPU or memory is above its threshold, nor past the slots the store's global
concurrency limit lets run. Jobs that wait beside idle slots at two looks in a row are held back by something
workers cannot change (one user's backlog under the per-user limit, a paused worker): they grow nothing, and a
pool grown past what they let run shrinks back to the slots that run.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass

from ..errors import InvalidParameterError


@dataclass(frozen=True, slots=True)
class ScalingPolicy:
    min_workers: int = 2
    max_workers: int = 10
    up_wait: float = 2.0  # seconds the oldest pending job must have waited before the pool grows
    up_cooldown: float = 10.0  # seconds after any change before the pool grows again
    down_idle: float = 60.0  # seconds a whole worker's slots must have been spare before one goes
    down_cooldown: float = 30.0  # seconds after any change before the pool shrinks again
    cpu_threshold: float = 80.0  # percent: no growth above
    memory_threshold: float = 85.0
    max_running: int = 0  # the store's limit on jobs running at once in all (0: none): slots past it would idle

    def __post_init__(self) -> None:
        if self.min_workers < 0 or self.max_workers < 1 or self.min_workers > self.max_workers:
            raise InvalidParameterError(f"a pool needs 0 <= min <= max and max >= 1, not min {self.min_workers}, "
                                        f"max {self.max_workers}")


@dataclass(frozen=True, slots=True)
class Load:
    """What the pool's queues hold now."""

    pending: int  # jobs due and waiting for a worker
    running: int  # jobs claimed: running, or buffered by a worker
    oldest_wait: float | None  # seconds the oldest pending job has waited since it was due
    cpu_percent: float = 0.0
    memory_percent: float = 0.0


@dataclass(frozen=True, slots=True)
class Decision:
    target: int
    reason: str


class Scaler:
    """Keeps the times a decision depends on (last change, since when the pool has had spare slots)."""

    def __init__(self, policy: ScalingPolicy, concurrency: int) -> None:
        self.policy = policy
        self.concurrency = concurrency
        self.last_change = -math.inf
        self.spare_since: float | None = None  # since when a worker's worth of slots has been spare
        self.needs: deque[tuple[float, int]] = deque()  # (when, workers the work needed) over down_idle seconds
        self.starved_since: float | None = None  # since when jobs have waited beside idle slots, look after look

    def decide(self, workers: int, load: Load, now: float) -> Decision | None:
        """A new size for a pool of ``workers`` at time ``now`` (monotonic seconds), or None to stay."""
        p = self.policy
        if workers < p.min_workers:
            return self._to(p.min_workers, f"below the minimum of {p.min_workers}", now)
        if workers > p.max_workers:
            return self._to(p.max_workers, f"above the maximum of {p.max_workers}", now)
        slots = workers * self.concurrency
        waited = load.oldest_wait or 0.0
        idle = slots - load.running
        # Jobs that waited beside idle slots are held back by something other than workers: the concurrency
        # limits (one user's backlog under the per-user limit), a paused worker. Seen at two looks in a row
        # (the first may catch a slot between two jobs), they are not work more workers could take.
        starved = load.pending > 0 and idle > 0 and waited >= p.up_wait
        held = starved and self.starved_since is not None
        first_look = starved and not held
        self.starved_since = (now if self.starved_since is None else self.starved_since) if starved else None
        if first_look:
            return None
        work = load.running if held else load.pending + load.running
        runnable = min(work, p.max_running) if p.max_running else work
        needed = min(p.max_workers, max(p.min_workers, math.ceil(runnable / self.concurrency)))
        spare = slots - work
        self.needs.append((now, needed))
        while self.needs and self.needs[0][0] < now - p.down_idle:
            self.needs.popleft()
        if spare >= self.concurrency and (load.pending == 0 or held):
            since = self.starved_since if held and self.starved_since is not None else now
            self.spare_since = since if self.spare_since is None else self.spare_since
        else:
            self.spare_since = None
        if needed > workers and load.pending and waited >= p.up_wait:
            if now - self.last_change < p.up_cooldown:
                return None
            if load.cpu_percent > p.cpu_threshold or load.memory_percent > p.memory_threshold:
                return None  # the machine is busy: more processes would only compete for it
            return self._to(needed, f"{work} jobs for {slots} slots, the oldest waiting {waited:.1f}s", now)
        peak = max(n for _, n in self.needs)  # the most workers needed over the last down_idle seconds
        if self.spare_since is not None and workers > peak and now - self.spare_since >= p.down_idle \
                and now - self.last_change >= p.down_cooldown:
            self.last_change = now
            spell = now - self.spare_since
            why = (f"{idle} of {slots} slots idle for {spell:.0f}s while {load.pending} jobs wait (held back by "
                   f"concurrency limits, not by workers)" if held
                   else f"{spare} of {slots} slots spare for {spell:.0f}s")
            return Decision(peak, f"{why}, {peak} needed at most in the last {p.down_idle:g}s")
        return None

    def _to(self, target: int, reason: str, now: float) -> Decision:
        self.last_change = now
        self.spare_since = None
        return Decision(target, reason)
