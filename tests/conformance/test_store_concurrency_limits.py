"""Concurrency limits at claim: a global and a per-user maximum of running jobs; jobs over a limit wait
without holding back other users' jobs; users waiting at the same priority take turns."""

from __future__ import annotations

import threading
import time
from datetime import datetime

from helpers import submit, wait_until

from jobhandle import HandlerRegistry, JobContext, JobQueue, JobStatus, Settings
from jobhandle.models import Job, utcnow
from jobhandle.stores import Outcome, Store
from jobhandle.stores.base import AttemptKey, ClaimRequest, ConcurrencyLimits

LIMITS = ConcurrencyLimits(global_max=4, per_user_max=2)


def claim(store: Store, now: datetime, n: int, limits: ConcurrencyLimits | None = LIMITS) -> list[Job]:
    return store.claim(ClaimRequest("w1", ["default"], n, 30, limits), now)


def users(jobs: list[Job]) -> list[str]:
    return [j.user_id for j in jobs]


def test_no_user_runs_more_than_its_limit(store: Store) -> None:
    now = utcnow()
    for _ in range(5):
        submit(store, now, user_id="alice")
    assert users(claim(store, now, 10)) == ["alice", "alice"]
    assert claim(store, now, 10) == [], "alice is at her limit; her other jobs wait"


def test_a_user_at_the_limit_does_not_hold_back_others(store: Store) -> None:
    now = utcnow()
    for _ in range(50):
        submit(store, now, user_id="alice")
    submit(store, now, user_id="bob")  # behind 50 of alice's jobs
    assert users(claim(store, now, 2, ConcurrencyLimits(10, 2))) == ["alice", "bob"]
    later = claim(store, now, 10, ConcurrencyLimits(10, 2))
    assert users(later) == ["alice"], "alice's second slot; bob has no more work"


def test_the_global_limit_counts_every_running_job(store: Store) -> None:
    now = utcnow()
    for user in ("a", "b", "c"):
        for _ in range(3):
            submit(store, now, user_id=user)
    first = claim(store, now, 10)
    assert len(first) == 4
    assert claim(store, now, 10) == []
    done = first[0]
    assert store.finish(AttemptKey(done.job_id, "w1", done.attempts), Outcome(JobStatus.COMPLETED), now)
    assert len(claim(store, now, 10)) == 1, "one slot freed, one job more"


def test_users_waiting_at_one_priority_take_turns(store: Store) -> None:
    now = utcnow()
    for _ in range(10):
        submit(store, now, user_id="alice")
    for _ in range(10):
        submit(store, now, user_id="bob")
    submit(store, now, user_id="carol")
    order = []
    for _ in range(7):  # one at a time, finishing each: a worker with one slot
        [job] = claim(store, now, 1, None)
        order.append(job.user_id)
        assert store.finish(AttemptKey(job.job_id, "w1", job.attempts), Outcome(JobStatus.COMPLETED), now)
    assert order[:3] == ["alice", "bob", "carol"], order  # never served yet: by name
    assert order[3:] == ["alice", "bob", "alice", "bob"], order  # then the least recently served first


def test_higher_priority_first_and_lower_when_the_top_is_blocked(store: Store) -> None:
    now = utcnow()
    for _ in range(3):
        submit(store, now, user_id="alice", priority=10)
    submit(store, now, user_id="bob", priority=0)
    first = claim(store, now, 10)
    assert [(j.user_id, j.priority) for j in first] == [("alice", 10), ("alice", 10), ("bob", 0)]


def test_each_users_jobs_stay_in_order(store: Store) -> None:
    now = utcnow()
    mine = [submit(store, now, user_id="alice") for _ in range(4)]
    submit(store, now, user_id="bob")
    claimed = claim(store, now, 10, ConcurrencyLimits(100, 100))
    assert [j.job_id for j in claimed if j.user_id == "alice"] == [j.job_id for j in mine]


def test_workers_keep_to_the_limits(store_url: str, registry: HandlerRegistry) -> None:
    running: dict[str, int] = {}
    peak: dict[str, int] = {}
    in_all = [0, 0]  # now, peak
    lock = threading.Lock()

    @registry.handler("busy")
    def busy(ctx: JobContext) -> None:
        with lock:
            running[ctx.user_id] = running.get(ctx.user_id, 0) + 1
            peak[ctx.user_id] = max(peak.get(ctx.user_id, 0), running[ctx.user_id])
            in_all[0] += 1
            in_all[1] = max(in_all[1], in_all[0])
        time.sleep(0.02)  # the handler's own work
        with lock:
            running[ctx.user_id] -= 1
            in_all[0] -= 1

    settings = Settings(heartbeat_interval=0.2, worker_timeout=5, global_max_concurrent_jobs=3,
                        per_user_max_concurrent_jobs=2)
    with JobQueue(store_url, registry=registry, settings=settings) as queue:
        jobs = [queue.submit("busy", user_id=user) for user in ["alice"] * 8 + ["bob"] * 8 + ["carol"] * 2]
        with queue.worker(6):
            wait_until(lambda: all(queue.get(j.job_id).status is JobStatus.COMPLETED for j in jobs), 30,
                       "every job to finish")
    assert max(peak.values()) <= 2 and in_all[1] <= 3, (peak, in_all)


def test_a_lone_pending_job_waits_while_a_limit_is_reached(store: Store) -> None:
    """One job pending is a case of its own for a store (no order to decide): the limits still hold."""
    now = utcnow()
    for _ in range(2):
        submit(store, now, user_id="alice")
    alices = claim(store, now, 10)
    lone = submit(store, now, user_id="alice")
    assert claim(store, now, 10) == [], "alice is at her limit"
    for _ in range(2):
        submit(store, now, user_id="bob")
    assert users(claim(store, now, 10)) == ["bob", "bob"], "the global limit (4) is reached"
    done = alices[0]
    assert store.finish(AttemptKey(done.job_id, "w1", done.attempts), Outcome(JobStatus.COMPLETED), now)
    assert [j.job_id for j in claim(store, now, 10)] == [lone.job_id]


MANY_USERS = 10_000
"""More distinct users waiting at one level than a Lua ``unpack`` can take (about 8,000)."""


def test_ten_thousand_users_waiting_at_one_level_take_turns(store: Store) -> None:
    now = utcnow()
    names = [f"user-{i:05d}" for i in range(MANY_USERS)]
    store.submit([Job(job_type="echo", user_id=name) for name in reversed(names)], now)
    first = claim(store, now, 5, ConcurrencyLimits(100, 3))
    assert users(first) == names[:5], "never served yet: by name, one job each"
    assert users(claim(store, now, 3, None)) == names[5:8]
    for job in first:
        assert store.finish(AttemptKey(job.job_id, "w1", job.attempts), Outcome(JobStatus.COMPLETED), now)
    assert users(claim(store, now, 2, None)) == names[8:10], "the users served just now wait their turn"


def test_a_user_submitting_again_after_being_served_waits_behind_the_others(store: Store) -> None:
    """The round robin remembers who was served: a user whose jobs all ran, submitting again, does not jump
    ahead of users who have been waiting (the turn outlives the user's last pending job)."""
    now = utcnow()
    submit(store, now, user_id="alice")
    [served] = claim(store, now, 1, None)
    assert served.user_id == "alice"
    submit(store, now, user_id="bob")
    submit(store, now, user_id="carol")
    submit(store, now, user_id="alice")
    assert users(claim(store, now, 3, None)) == ["bob", "carol", "alice"]


def test_turns_are_per_user_across_levels_and_queues(store: Store) -> None:
    """A user served at one level (or queue) waits its turn at the others too."""
    now = utcnow()
    submit(store, now, user_id="alice", priority=10)
    submit(store, now, user_id="alice", priority=0, queue="other")
    submit(store, now, user_id="bob", priority=0, queue="other")
    assert users(store.claim(ClaimRequest("w1", ["default", "other"], 1, 30), now)) == ["alice"]
    assert users(store.claim(ClaimRequest("w1", ["default", "other"], 2, 30), now)) == ["bob", "alice"]
