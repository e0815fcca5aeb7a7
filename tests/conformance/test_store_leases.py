"""Conformance: worker and worker pool registrations, heartbeats, leases and the recovery of jobs whose worker
was lost."""

from __future__ import annotations

from datetime import datetime

from helpers import claim_one, get, later, submit

from jobhandle import JobStatus
from jobhandle.models import utcnow
from jobhandle.retry import lost_worker_policy
from jobhandle.stores import Outcome, PoolEvent, PoolInfo, Store, WorkerInfo
from jobhandle.stores.base import POOL_EVENTS_KEPT, AttemptKey, ClaimRequest

POLICY = lost_worker_policy(cap=3600)


def worker_info(worker_id: str, started: datetime, **fields: object) -> WorkerInfo:
    return WorkerInfo(worker_id=worker_id, name=f"name-{worker_id}", hostname="host-1", pid=4242,
                      queues=["default", "images"], concurrency=3, started_at=started, **fields)  # type: ignore[arg-type]


# -- recovering expired leases ---------------------------------------------------------------------------

def test_expired_lease_with_attempts_left_goes_to_retrying(store: Store) -> None:
    now = utcnow()
    job = submit(store, now, max_retries=2, retry_delay=10)
    claim_one(store, now, lease=1)
    [recovered] = store.recover_expired(later(now, 2), POLICY)
    stored = get(store, job.job_id)
    assert recovered.to_dict() == stored.to_dict()
    assert stored.status is JobStatus.RETRYING
    assert stored.run_at == later(now, 2), "its first lost worker: retried at once (retry.lost_worker_policy)"
    assert stored.error_type == "WorkerLostError"
    assert stored.error is not None and "WorkerLostError" in stored.error
    assert [e["attempt"] for e in stored.error_history] == [1]
    assert stored.lease_expires_at is None


def test_expired_lease_without_attempts_left_fails(store: Store) -> None:
    now = utcnow()
    job = submit(store, now, max_retries=0)
    claim_one(store, now, lease=1)
    [recovered] = store.recover_expired(later(now, 2), POLICY)
    assert recovered.status is JobStatus.FAILED
    stored = get(store, job.job_id)
    assert stored.status is JobStatus.FAILED
    assert stored.completed_at == later(now, 2)
    assert stored.error is not None and "WorkerLostError" in stored.error
    assert "w1" in stored.error


def test_unexpired_leases_are_untouched(store: Store) -> None:
    now = utcnow()
    job = submit(store, now)
    claim_one(store, now, lease=30)
    before = get(store, job.job_id).to_dict()
    assert store.recover_expired(later(now, 29), POLICY) == []
    assert get(store, job.job_id).to_dict() == before


def test_recovery_is_idempotent(store: Store) -> None:
    now = utcnow()
    expired = [submit(store, now, max_retries=1).job_id for _ in range(3)]
    store.claim(ClaimRequest("w1", ["default"], 3, 1), now)
    assert {j.job_id for j in store.recover_expired(later(now, 2), POLICY)} == set(expired)
    after_first = [get(store, job_id).to_dict() for job_id in expired]
    assert store.recover_expired(later(now, 2), POLICY) == []
    assert store.recover_expired(later(now, 3), POLICY) == []
    assert [get(store, job_id).to_dict() for job_id in expired] == after_first


def test_heartbeat_registers_the_worker(store: Store) -> None:
    now = utcnow()
    info = worker_info("w1", later(now, -10))
    assert store.heartbeat(info, 30, now) == set()
    [listed] = store.list_workers()
    assert (listed.worker_id, listed.name, listed.hostname, listed.pid) == ("w1", "name-w1", "host-1", 4242)
    assert (listed.queues, listed.concurrency, listed.state) == (["default", "images"], 3, "running")
    assert listed.started_at == later(now, -10)
    assert listed.last_seen == now
    assert listed.current_jobs == []

    info.state = "paused"
    store.heartbeat(info, 30, later(now, 1))
    [listed] = store.list_workers()
    assert (listed.state, listed.last_seen) == ("paused", later(now, 1))


def test_heartbeat_extends_the_leases_of_its_own_jobs_only(store: Store) -> None:
    now = utcnow()
    a, b, c = (submit(store, now).job_id for _ in range(3))
    store.claim(ClaimRequest("w1", ["default"], 2, 10), now)
    claim_one(store, now, worker_id="w2", lease=10)
    assert store.heartbeat(worker_info("w1", now), 10, later(now, 5)) == {a, b}
    assert get(store, a).lease_expires_at == later(now, 15)
    assert get(store, b).lease_expires_at == later(now, 15)
    assert get(store, c).lease_expires_at == later(now, 10)
    assert [j.job_id for j in store.recover_expired(later(now, 12), POLICY)] == [c]
    assert get(store, a).status is JobStatus.RUNNING


def test_list_workers_shows_current_jobs(store: Store) -> None:
    now = utcnow()
    store.heartbeat(worker_info("w1", now), 30, now)
    store.heartbeat(worker_info("w2", now), 30, now)
    a, b, c = (submit(store, now).job_id for _ in range(3))
    store.claim(ClaimRequest("w1", ["default"], 2, 30), now)
    claim_one(store, now, worker_id="w2")
    current = {w.worker_id: sorted(w.current_jobs) for w in store.list_workers()}
    assert current == {"w1": sorted([a, b]), "w2": [c]}
    assert store.owned_jobs("w1") == {a, b}
    store.finish(AttemptKey(a, "w1", 1), Outcome(JobStatus.COMPLETED), now)
    store.cancel(c, now)
    current = {w.worker_id: sorted(w.current_jobs) for w in store.list_workers()}
    assert current == {"w1": [b], "w2": []}
    assert store.owned_jobs("w1") == {b}
    assert store.owned_jobs("w2") == set()


def test_reap_workers_removes_the_silent_ones(store: Store) -> None:
    now = utcnow()
    store.heartbeat(worker_info("old", now), 30, later(now, -60))
    store.heartbeat(worker_info("fresh", now), 30, now)
    assert store.reap_workers(later(now, -30)) == ["old"]
    assert [w.worker_id for w in store.list_workers()] == ["fresh"]
    assert store.reap_workers(later(now, -30)) == []


def test_unregister_worker(store: Store) -> None:
    now = utcnow()
    store.heartbeat(worker_info("w1", now), 30, now)
    store.heartbeat(worker_info("w2", now), 30, now)
    store.unregister_worker("w1")
    assert [w.worker_id for w in store.list_workers()] == ["w2"]
    store.unregister_worker("never-registered")
    assert [w.worker_id for w in store.list_workers()] == ["w2"]


# -- worker pools' registrations ---------------------------------------------------------------------------

def pool_info(pool_id: str, started: datetime, **fields: object) -> PoolInfo:
    return PoolInfo(pool_id=pool_id, name=f"pool-{pool_id}", hostname="host-1", pid=777, queues=["default", "io"],
                    concurrency=4, min_workers=1, max_workers=8, workers=2, draining=1, started_at=started,
                    **fields)  # type: ignore[arg-type]


def test_a_pool_registration_keeps_what_the_pool_wrote(store: Store) -> None:
    now = utcnow()
    events = [PoolEvent(later(now, -5), "scale", "1 -> 2: the oldest job waited 12s", 2),
              PoolEvent(later(now, -1), "replace", "started pool-p1-3 for a worker that died", 2)]
    store.record_pool(pool_info("p1", later(now, -10), worker_pids=[11, 12], events=events,
                                load={"pending": 40, "running": 8, "oldest_wait_seconds": 12.5},
                                store_error=None, state="running"), now)
    [listed] = store.list_pools()
    assert (listed.pool_id, listed.name, listed.hostname, listed.pid) == ("p1", "pool-p1", "host-1", 777)
    assert (listed.queues, listed.concurrency, listed.min_workers, listed.max_workers) == (["default", "io"], 4, 1, 8)
    assert (listed.workers, listed.draining, listed.worker_pids, listed.state) == (2, 1, [11, 12], "running")
    assert listed.load == {"pending": 40, "running": 8, "oldest_wait_seconds": 12.5}
    assert listed.events == events
    assert listed.started_at == later(now, -10) and listed.last_seen == now

    store.record_pool(pool_info("p1", later(now, -10), state="crash_loop", store_error="store unreachable"),
                      later(now, 1))
    [listed] = store.list_pools()
    assert (listed.state, listed.store_error, listed.events, listed.last_seen) == (
        "crash_loop", "store unreachable", [], later(now, 1))


def test_a_pool_registration_keeps_its_latest_events_only(store: Store) -> None:
    now = utcnow()
    events = [PoolEvent(later(now, i), "scale", f"event {i}", i) for i in range(POOL_EVENTS_KEPT + 5)]
    store.record_pool(pool_info("p1", now, events=events), now)
    [listed] = store.list_pools()
    assert listed.events == events[-POOL_EVENTS_KEPT:]


def test_pools_are_listed_by_start_and_removed(store: Store) -> None:
    now = utcnow()
    store.record_pool(pool_info("late", later(now, -1)), now)
    store.record_pool(pool_info("early", later(now, -9)), now)
    assert [p.pool_id for p in store.list_pools()] == ["early", "late"]
    store.unregister_pool("early")
    store.unregister_pool("never-registered")
    assert [p.pool_id for p in store.list_pools()] == ["late"]
    assert store.list_workers() == [], "a pool is not a worker"


def test_reap_pools_removes_the_silent_ones(store: Store) -> None:
    now = utcnow()
    store.record_pool(pool_info("old", now), later(now, -60))
    store.record_pool(pool_info("fresh", now), now)
    assert store.reap_pools(later(now, -30)) == ["old"]
    assert [p.pool_id for p in store.list_pools()] == ["fresh"]
    assert store.reap_pools(later(now, -30)) == []
