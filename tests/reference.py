"""Pure Python references of the algorithms each store writes in its own language (SQL and Python for SQLite,
Lua for Redis): the specification the randomized differential tests (tests/conformance/test_store_differential.py)
hold every store to. Written for clarity, not speed: each one says what the answer is, not how to find it fast.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from jobhandle.models import JobStatus, dependency_met


@dataclass(frozen=True, slots=True)
class Waiting:
    """A pending job as the claim sees it: its claim level, its user, and when it became pending (seq)."""

    job_id: str
    queue: str
    level: int
    user_id: str
    seq: int


def fair_claim(pending: Iterable[Waiting], queues: Sequence[str], allowed: int, turns: dict[str, int],
               running: dict[str, int], per_user_max: int) -> list[str]:
    """The jobs a claim of up to ``allowed`` jobs from ``queues`` takes, in the order it takes them.

    Highest level first. Within a level, the users with jobs waiting there take turns, one job each per
    round, in the order of their turn (the change number of the last job claimed for them, 0 if never),
    ties by name (in byte order); each user's jobs in the order they became pending. A user with
    ``per_user_max`` jobs running (counting the ones this claim takes) is skipped. When a level has fewer jobs
    than the claim may take, the next level down goes on.
    """
    running = dict(running)
    candidates = [w for w in pending if w.queue in queues]
    picks: list[str] = []
    for level in sorted({w.level for w in candidates}, reverse=True):
        if len(picks) >= allowed:
            break
        mine: dict[str, list[Waiting]] = {}
        for w in sorted((w for w in candidates if w.level == level), key=lambda w: w.seq):
            mine.setdefault(w.user_id, []).append(w)
        ring = sorted((u for u in mine if running.get(u, 0) < per_user_max),
                      key=lambda u: (turns.get(u, 0), u.encode()))
        while ring and len(picks) < allowed:
            for user in list(ring):
                if not mine[user]:
                    ring.remove(user)
                    continue
                picks.append(mine[user].pop(0).job_id)
                running[user] = running.get(user, 0) + 1
                if running[user] >= per_user_max or not mine[user]:
                    ring.remove(user)
                if len(picks) == allowed:
                    break
    return picks


def take_token(tokens: float, updated_at: float, now: float, per_second: float, burst: float) -> tuple[float, float]:
    """One call at a token bucket: refilled at ``per_second`` since ``updated_at`` up to ``burst``, then a token
    taken if there is a whole one. Returns (tokens left, seconds until a token is free; 0 when taken)."""
    tokens = min(burst, tokens + max(0.0, now - updated_at) * per_second)
    if tokens >= 1.0:
        return tokens - 1.0, 0.0
    return tokens, (1.0 - tokens) / per_second


@dataclass(slots=True)
class DependencyModel:
    """Jobs with dependencies, as the store must resolve them: a job waits while any dependency is undecided,
    is cancelled as soon as one can no longer be met (and that cancellation is final, a parent like any other),
    and becomes pending when all are met."""

    status: dict[str, JobStatus] = field(default_factory=dict)
    parents: dict[str, list[tuple[str, str]]] = field(default_factory=dict)  # child -> [(parent, condition)]

    def add(self, job_id: str, depends_on: Sequence[tuple[str, str]]) -> JobStatus:
        """A new job: its status at submit."""
        self.parents[job_id] = list(depends_on)
        self.status[job_id] = self._verdict(job_id) or JobStatus.WAITING
        return self.status[job_id]

    def end(self, job_id: str, status: JobStatus) -> None:
        """A job reached a terminal status: decide its dependants, down the chain."""
        self.status[job_id] = status
        changed = True
        while changed:
            changed = False
            for child, current in self.status.items():
                if current is JobStatus.WAITING and (verdict := self._verdict(child)) is not None:
                    self.status[child] = verdict
                    changed = True

    def _verdict(self, job_id: str) -> JobStatus | None:
        """CANCELLED once a dependency can no longer be met, PENDING once all are, else None (undecided)."""
        undecided = False
        for parent, condition in self.parents[job_id]:
            met = dependency_met(condition, self.status[parent])
            if met is False:
                return JobStatus.CANCELLED
            undecided = undecided or met is None
        return None if undecided else JobStatus.PENDING
