"""Maintenance runs on a worker thread of its own, one process per store per task (a lease in the store):
a slow cleanup delays no heartbeat, and two workers do not both scan for expired leases."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

import pytest
from helpers import wait_until

from jobhandle import HandlerRegistry, JobContext, JobQueue, JobStatus, Settings
from jobhandle.stores import Store

DEADLINE = 30.0


def count_calls(store: Store, primitive: str, before: Callable[[], None] = lambda: None) -> list[float]:
    """Record the time of each call of ``primitive`` on this store instance (``before`` runs first)."""
    calls: list[float] = []
    real = getattr(type(store), primitive)

    def counted(self: Store, *args: Any, **kwargs: Any) -> Any:
        calls.append(time.monotonic())
        before()
        return real(self, *args, **kwargs)

    store.__class__ = type(f"Counted{type(store).__name__}", (type(store),), {primitive: counted})
    return calls


def test_a_slow_cleanup_delays_no_heartbeat_and_no_running_job_is_recovered(
        queue: JobQueue, registry: HandlerRegistry) -> None:
    """Retention cleanup after downtime can take long (1.4 M rows: ~30 s on SQLite). It must not hold up the
    heartbeats: a job running meanwhile would lose its lease and run a second time elsewhere."""
    release = threading.Event()

    @registry.handler("long")
    def long(ctx: JobContext) -> str:
        release.wait(DEADLINE)  # the handler's own work: it runs until the test lets it end
        return "done"

    in_cleanup = threading.Event()

    def slow() -> None:
        in_cleanup.set()
        release.wait(DEADLINE)  # a cleanup of millions of rows, taking as long as the test needs

    count_calls(queue.store, "cleanup", slow)
    job = queue.submit("long")
    with queue.worker(concurrency=1) as worker:
        wait_until(lambda: queue.get(job.job_id).status is JobStatus.RUNNING, DEADLINE, "the job to start")
        assert in_cleanup.wait(DEADLINE), "the first cleanup runs at start"
        seen = [queue.workers()[0]["last_seen"]]
        wait_until(lambda: seen.append(queue.workers()[0]["last_seen"]) or len(set(seen)) >= 4,
                   DEADLINE, "heartbeats to go on during the cleanup")
        deadline = time.monotonic() + 3 * queue.settings.worker_timeout  # past the lease: it stays renewed
        while time.monotonic() < deadline:  # an invariant over time: checked again and again until the deadline
            assert queue.maintenance.recover() == [], "the running job's lease ran out during the cleanup"
            release.wait(0.1)
        release.set()
        done = queue.wait(job.job_id, DEADLINE)
        assert worker.failure is None
    assert done.status is JobStatus.COMPLETED and done.attempts == 1


def test_two_workers_on_one_store_do_not_both_run_a_maintenance_task(store_url: str, settings: Settings,
                                                                      registry: HandlerRegistry) -> None:
    if store_url.startswith("memory:"):
        pytest.skip("memory:// stores are private to one instance: two workers cannot share one")
    # A recovery lease of 1.5 s, renewed half-way: the holder must stall 0.75 s for the other to take it (with
    # the fast settings' 0.5 s lease, a busy CI machine stalled the holder that long and the second took over).
    settings = settings.replace(heartbeat_interval=0.5, worker_timeout=10.0)
    one, two = (JobQueue(store_url, settings=settings, registry=registry) for _ in range(2))
    try:
        calls = [count_calls(q.store, "recover_expired") for q in (one, two)]
        first = one.worker(concurrency=1).start()
        wait_until(lambda: calls[0], DEADLINE, "the first worker to recover expired leases")
        second = two.worker(concurrency=1).start()
        since = time.monotonic()
        wait_until(lambda: len([t for t in calls[0] if t > since]) >= 5, DEADLINE, "five more rounds")
        assert calls[1] == [], "the second worker waits for the lease"
        first.stop()  # gives its leases up: the other takes over at once
        wait_until(lambda: calls[1], DEADLINE, "the second worker to take the task over")
        second.stop()
    finally:
        one.close()
        two.close()
