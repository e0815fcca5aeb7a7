"""Conformance: primitives called from many threads at once stay atomic, exclusive and answer their caller."""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Callable
from datetime import datetime

from helpers import all_jobs, claim_one, later, new_job, submit

from jobhandle import JobNotFoundError, JobStatus
from jobhandle.models import Job, utcnow
from jobhandle.stores import Outcome, Store
from jobhandle.stores.base import ClaimRequest

JOIN_SECONDS = 60.0
WRITERS = 1500
"""Enough queued writers that a batching store serves them in several rounds (SQLite: 256 per batch)."""


def run_threads(count: int, target: Callable[[int], None]) -> None:
    """Start ``count`` threads on ``target(index)`` together; re-raise the first error any of them hit."""
    errors: list[BaseException] = []
    start = threading.Barrier(count)

    def body(index: int) -> None:
        try:
            start.wait()
            target(index)
        except BaseException as exc:  # noqa: BLE001 - reported to the test thread
            errors.append(exc)

    threads = [threading.Thread(target=body, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(JOIN_SECONDS)
    assert not any(t.is_alive() for t in threads), "threads did not finish"
    if errors:
        raise errors[0]


def test_no_job_is_claimed_twice_under_contention(store: Store) -> None:
    """8 threads claim from 500 jobs at once: every job is handed out exactly once."""
    now = utcnow()
    store.submit([new_job() for _ in range(500)], now)
    claimed: list[list[str]] = [[] for _ in range(8)]

    def hammer(index: int) -> None:
        while jobs := store.claim(ClaimRequest(f"w{index}", ["default"], 1 + index % 3, 30), utcnow()):
            claimed[index].extend(j.job_id for j in jobs)

    run_threads(8, hammer)
    counts = Counter(job_id for ids in claimed for job_id in ids)
    assert len(counts) == 500
    assert set(counts.values()) == {1}
    assert store.counts().by_status == {"running": 500}


def run_queued_behind_a_held_write(store: Store, count: int, target: Callable[[int], None]) -> None:
    """Hold one write primitive open (inside recover_expired's backoff) while ``count`` threads start
    ``target(index)``, so their writes queue up together; then let everything run and join it."""
    now = utcnow()
    submit(store, now, max_retries=0, queue="held")
    claim_one(store, now, queues=["held"], lease=1)
    holding, release = threading.Event(), threading.Event()
    calling = [threading.Event() for _ in range(count)]
    errors: list[BaseException] = []

    def held_backoff(job: Job, when: datetime) -> Outcome:
        holding.set()
        release.wait(JOIN_SECONDS)
        return Outcome(JobStatus.FAILED, error="WorkerLostError: lost")

    def body(index: int) -> None:
        calling[index].set()
        try:
            target(index)
        except BaseException as exc:  # noqa: BLE001 - reported to the test thread
            errors.append(exc)

    holder = threading.Thread(target=store.recover_expired, args=(later(now, 10), held_backoff))
    holder.start()
    assert holding.wait(JOIN_SECONDS)
    threads = [threading.Thread(target=body, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    for event in calling:
        assert event.wait(JOIN_SECONDS)
    release.set()
    for thread in [holder, *threads]:
        thread.join(JOIN_SECONDS)
    assert not any(t.is_alive() for t in [holder, *threads]), "threads did not finish"
    if errors:
        raise errors[0]


def test_every_queued_write_answers_its_own_caller(store: Store) -> None:
    """Every call returns its own result, computed by its own primitive before the call returned: a
    batching store must never answer a caller whose primitive has not run yet."""
    jobs = [new_job() for _ in range(WRITERS)]
    answers: dict[int, list[Job] | None] = {}

    def submit_own(index: int) -> None:
        answers[index] = store.submit([jobs[index]], utcnow())

    run_queued_behind_a_held_write(store, WRITERS, submit_own)
    wrong = {i: answer for i, answer in answers.items()
             if answer is None or [j.job_id for j in answer] != [jobs[i].job_id]}
    assert wrong == {}
    assert len(answers) == WRITERS
    assert len(all_jobs(store)) == WRITERS + 1


def test_a_refused_primitive_among_queued_writes_fails_alone(store: Store) -> None:
    """Half the queued callers cancel jobs that do not exist, half submit: each gets its own answer (a
    batching store must undo a refused primitive alone; 200 callers fit in one SQLite batch)."""
    count = 200
    jobs = [new_job() for _ in range(count)]
    answers: dict[int, object] = {}

    def write(index: int) -> None:
        if index % 2:
            try:
                store.cancel(jobs[index].job_id, utcnow())
            except JobNotFoundError as exc:
                answers[index] = exc.context["job_id"]
        else:
            answers[index] = [j.job_id for j in store.submit([jobs[index]], utcnow())]

    run_queued_behind_a_held_write(store, count, write)
    expected = {i: jobs[i].job_id if i % 2 else [jobs[i].job_id] for i in range(count)}
    assert answers == expected
    stored = {j.job_id for j in all_jobs(store)}
    assert {j.job_id for j in jobs[::2]} <= stored
    assert len(stored) == count // 2 + 1
