"""What a worker holds between the store and its slots, each with its own lock: the jobs it runs, the jobs it
claimed but has not started (ClaimBuffer), and the outcomes it has not written yet (OutcomeBatch). Together
they are everything the worker owns in the store, which is what the monitor reconciles against."""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Iterable

from ..models import Job
from ..stores.base import Finished
from .context import JobContext


class RunningJobs:
    """The jobs whose handlers run now, by id."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._jobs: dict[str, JobContext] = {}

    def add(self, ctx: JobContext) -> None:
        with self._lock:
            self._jobs[ctx.job_id] = ctx

    def remove(self, job_id: str) -> None:
        with self._lock:
            self._jobs.pop(job_id, None)

    def now(self) -> list[JobContext]:
        with self._lock:
            return list(self._jobs.values())

    def ids(self) -> set[str]:
        with self._lock:
            return set(self._jobs)


class ClaimBuffer:
    """Claimed jobs no slot has started yet, oldest first, with when each was put here. Every slot takes from
    it, so a long job never holds back the jobs claimed with it while another slot is free."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._jobs: deque[tuple[float, Job]] = deque()

    def add(self, jobs: Iterable[Job]) -> None:
        held_since = time.monotonic()
        with self._lock:
            self._jobs.extend((held_since, job) for job in jobs)

    def take(self) -> Job | None:
        with self._lock:
            return self._jobs.popleft()[1] if self._jobs else None

    def __len__(self) -> int:
        with self._lock:
            return len(self._jobs)

    def ids(self) -> set[str]:
        with self._lock:
            return {job.job_id for _, job in self._jobs}

    def drop_lost(self, looked_at: set[str], owned: set[str]) -> None:
        """Forget the jobs among ``looked_at`` that the store no longer has under this worker (cancelled or
        recovered meanwhile): they must never start. Jobs buffered after ``looked_at`` was read are kept."""
        with self._lock:
            self._jobs = deque((h, j) for h, j in self._jobs if j.job_id in owned or j.job_id not in looked_at)

    def take_older_than(self, moment: float) -> list[Job]:
        """Take out the jobs held since before ``moment`` (every slot was busy: they go back to the store)."""
        with self._lock:
            old = [job for held, job in self._jobs if held <= moment]
            self._jobs = deque((held, job) for held, job in self._jobs if held > moment)
        return old

    def take_all(self) -> list[Job]:
        with self._lock:
            jobs = [job for _, job in self._jobs]
            self._jobs.clear()
        return jobs


class OutcomeBatch:
    """Outcomes of finished attempts not written yet (written with the next claim, or by the monitor when they
    have waited too long), and those being written right now."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._held: list[Finished] = []
        self._since = 0.0
        self._writing: dict[int, list[Finished]] = {}
        self._next_write = 0

    def hold(self, finished: Finished | None) -> int:
        """Keep an attempt's outcome for the next write; return how many are held."""
        with self._lock:
            if finished is not None:
                if not self._held:
                    self._since = time.monotonic()
                self._held.append(finished)
            return len(self._held)

    def __len__(self) -> int:
        with self._lock:
            return len(self._held)

    def overdue(self, seconds: float) -> bool:
        with self._lock:
            return bool(self._held) and time.monotonic() - self._since > seconds

    def take(self) -> tuple[int, list[Finished]]:
        """The held outcomes, now being written under the returned ticket (see ``written``/``unwritten``)."""
        with self._lock:
            done, self._held = self._held, []
            ticket = self._next_write
            self._next_write += 1
            self._writing[ticket] = done
            return ticket, done

    def written(self, ticket: int) -> None:
        with self._lock:
            self._writing.pop(ticket, None)

    def unwritten(self, ticket: int) -> None:
        """The write failed: hold its outcomes again, first (written with the next write; the writes are
        fenced, so one that did land before its reply was lost is refused harmlessly the second time)."""
        with self._lock:
            done = self._writing.pop(ticket, [])
            if done and not self._held:
                self._since = time.monotonic()
            self._held[:0] = done

    def ids(self) -> set[str]:
        with self._lock:
            return {f.job_id for f in self._held} | {f.job_id for batch in self._writing.values() for f in batch}
