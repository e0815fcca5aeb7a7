"""Conformance: a running job's progress, end and hand-back, all fenced by (worker_id, attempt)."""

from __future__ import annotations

import pytest
from helpers import claim_one, get, later, submit

from jobhandle import JobStatus
from jobhandle.models import PROGRESS_HISTORY_LIMIT, utcnow
from jobhandle.retry import lost_worker_policy
from jobhandle.stores import Outcome, ProgressUpdate, Store
from jobhandle.stores.base import AttemptKey, ClaimRequest


def completed(result: object = None) -> Outcome:
    return Outcome(JobStatus.COMPLETED, result=result)


# -- progress --------------------------------------------------------------------------------------------

def test_progress_is_recorded_with_items(store: Store) -> None:
    now = utcnow()
    job = submit(store, now)
    running = claim_one(store, now)
    update = ProgressUpdate(0.25, "Analyzing chunks", items_processed=5, total_items=20, at=later(now, 1))
    assert store.report_progress(AttemptKey(job.job_id, "w1", 1), update) is True
    stored = get(store, job.job_id)
    assert (stored.progress, stored.progress_message) == (0.25, "Analyzing chunks")
    assert (stored.metrics.items_processed, stored.metrics.total_items) == (5, 20)
    assert len(stored.progress_history) == 1
    assert stored.progress_history[0]["progress"] == 0.25
    assert stored.progress_history[0]["message"] == "Analyzing chunks"
    assert stored.seq > running.seq


def test_progress_fields_left_out_keep_their_values(store: Store) -> None:
    now = utcnow()
    job = submit(store, now)
    claim_one(store, now)
    store.report_progress(AttemptKey(job.job_id, "w1", 1), ProgressUpdate(0.5, "Stage one", 1, 4, now))
    store.report_progress(AttemptKey(job.job_id, "w1", 1), ProgressUpdate(message="Stage two", at=now))
    stored = get(store, job.job_id)
    assert (stored.progress, stored.progress_message) == (0.5, "Stage two")
    assert (stored.metrics.items_processed, stored.metrics.total_items) == (1, 4)


def test_progress_history_keeps_the_newest_entries(store: Store) -> None:
    now = utcnow()
    job = submit(store, now)
    claim_one(store, now)
    reports = PROGRESS_HISTORY_LIMIT + 15
    for i in range(reports):
        assert store.report_progress(AttemptKey(job.job_id, "w1", 1), ProgressUpdate(i / reports, f"step {i}", at=now))
    history = get(store, job.job_id).progress_history
    assert len(history) == PROGRESS_HISTORY_LIMIT
    assert [h["message"] for h in history] == [f"step {i}" for i in range(15, reports)]


# -- finishing -------------------------------------------------------------------------------------------

def test_finish_completed_stores_result_and_full_progress(store: Store) -> None:
    now = utcnow()
    job = submit(store, now)
    claim_one(store, now)
    outcome = Outcome(JobStatus.COMPLETED, result={"chunks": [1, 2], "ok": True}, execution_time_seconds=0.5,
                      progress=ProgressUpdate(0.9, "Writing", items_processed=9, total_items=9))
    assert store.finish(AttemptKey(job.job_id, "w1", 1), outcome, later(now, 2)) is True
    stored = get(store, job.job_id)
    assert stored.status is JobStatus.COMPLETED
    assert stored.result == {"chunks": [1, 2], "ok": True}
    assert stored.progress == 1.0
    assert stored.completed_at == later(now, 2)
    assert stored.error is None and stored.error_history == []
    assert stored.metrics.execution_time_seconds == 0.5
    assert (stored.metrics.items_processed, stored.metrics.total_items) == (9, 9)
    assert stored.progress_message == "Writing"
    assert stored.lease_expires_at is None


def test_finish_retrying_keeps_the_error_and_sets_run_at(store: Store) -> None:
    now = utcnow()
    job = submit(store, now, max_retries=3)
    claim_one(store, now)
    outcome = Outcome(JobStatus.RETRYING, error="ValueError: boom", error_type="ValueError", run_at=later(now, 30))
    assert store.finish(AttemptKey(job.job_id, "w1", 1), outcome, later(now, 1)) is True
    stored = get(store, job.job_id)
    assert stored.status is JobStatus.RETRYING
    assert stored.run_at == later(now, 30)
    assert (stored.error, stored.error_type) == ("ValueError: boom", "ValueError")
    assert stored.completed_at is None and stored.result is None
    assert len(stored.error_history) == 1
    entry = stored.error_history[0]
    assert (entry["attempt"], entry["error"], entry["error_type"]) == (1, "ValueError: boom", "ValueError")
    assert store.next_due_at() == later(now, 30)

    assert store.claim(ClaimRequest("w1", ["default"], 1, 30), later(now, 29)) == []
    again = claim_one(store, later(now, 31))
    assert again.attempts == 2
    assert store.finish(AttemptKey(job.job_id, "w1", 2), Outcome(JobStatus.FAILED, error="KeyError: 'x'",
                                                     error_type="KeyError"), later(now, 32)) is True
    failed = get(store, job.job_id)
    assert failed.status is JobStatus.FAILED
    assert [e["attempt"] for e in failed.error_history] == [1, 2]
    assert [e["error"] for e in failed.error_history] == ["ValueError: boom", "KeyError: 'x'"]


def test_finish_failed_is_terminal(store: Store) -> None:
    now = utcnow()
    job = submit(store, now)
    claim_one(store, now)
    failure = Outcome(JobStatus.FAILED, error="PermanentError: no", error_type="PermanentError")
    assert store.finish(AttemptKey(job.job_id, "w1", 1), failure, later(now, 1)) is True
    stored = get(store, job.job_id)
    assert stored.status is JobStatus.FAILED
    assert stored.completed_at == later(now, 1)
    assert stored.error == "PermanentError: no"
    assert stored.result is None
    assert store.claim(ClaimRequest("w1", ["default"], 1, 30), later(now, 100)) == []


# -- fencing ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize(("worker_id", "attempt"), [("w2", 1), ("w1", 2), ("w1", 0)],
                         ids=["other-worker", "later-attempt", "earlier-attempt"])
def test_wrong_owner_changes_nothing(store: Store, worker_id: str, attempt: int) -> None:
    now = utcnow()
    job = submit(store, now)
    claim_one(store, now, worker_id="w1")
    before = get(store, job.job_id).to_dict()
    assert store.report_progress(AttemptKey(job.job_id, worker_id, attempt), ProgressUpdate(0.5, "x", at=now)) is False
    assert store.finish(AttemptKey(job.job_id, worker_id, attempt), completed("stolen"), now) is False
    assert store.finish(AttemptKey(job.job_id, worker_id, attempt), Outcome(JobStatus.FAILED, error="x"), now) is False
    assert store.release(AttemptKey(job.job_id, worker_id, attempt), now) is None
    assert get(store, job.job_id).to_dict() == before
    assert [j.job_id for j in store.changes_since(before["seq"])] == []


def test_fenced_calls_on_a_job_that_is_not_running_change_nothing(store: Store) -> None:
    now = utcnow()
    pending = submit(store, now)
    before = get(store, pending.job_id).to_dict()
    assert store.report_progress(AttemptKey(pending.job_id, "w1", 0), ProgressUpdate(0.5, at=now)) is False
    assert store.finish(AttemptKey(pending.job_id, "w1", 0), completed(), now) is False
    assert store.release(AttemptKey(pending.job_id, "w1", 0), now) is None
    assert get(store, pending.job_id).to_dict() == before
    missing = "00000000-0000-4000-8000-000000000000"
    assert store.report_progress(AttemptKey(missing, "w1", 1), ProgressUpdate(0.5, at=now)) is False
    assert store.finish(AttemptKey(missing, "w1", 1), completed(), now) is False
    assert store.release(AttemptKey(missing, "w1", 1), now) is None


def test_late_finish_of_a_cancelled_running_job_is_discarded(store: Store) -> None:
    now = utcnow()
    job = submit(store, now)
    claim_one(store, now)
    store.cancel(job.job_id, later(now, 1))
    assert store.report_progress(AttemptKey(job.job_id, "w1", 1), ProgressUpdate(0.9, at=now)) is False
    assert store.finish(AttemptKey(job.job_id, "w1", 1), completed({"late": True}), later(now, 2)) is False
    stored = get(store, job.job_id)
    assert stored.status is JobStatus.CANCELLED
    assert stored.result is None
    assert stored.completed_at == later(now, 1)


def test_previous_owner_cannot_touch_a_recovered_and_reclaimed_job(store: Store) -> None:
    now = utcnow()
    job = submit(store, now, max_retries=3, retry_delay=0)
    claim_one(store, now, worker_id="w1", lease=1)
    [recovered] = store.recover_expired(later(now, 2), lost_worker_policy(cap=0))
    assert recovered.status is JobStatus.RETRYING
    claim_one(store, later(now, 3), worker_id="w2")
    assert store.finish(AttemptKey(job.job_id, "w1", 1), completed("old owner"), later(now, 4)) is False
    assert store.report_progress(AttemptKey(job.job_id, "w1", 1), ProgressUpdate(0.1, at=now)) is False
    assert store.release(AttemptKey(job.job_id, "w1", 1), later(now, 4)) is None
    assert store.finish(AttemptKey(job.job_id, "w2", 2), completed("new owner"), later(now, 4)) is True
    assert get(store, job.job_id).result == "new owner"


# -- release ---------------------------------------------------------------------------------------------

def test_release_hands_the_job_back_without_counting_the_attempt(store: Store) -> None:
    now = utcnow()
    job = submit(store, now)
    claim_one(store, now)
    released = store.release(AttemptKey(job.job_id, "w1", 1), later(now, 1))
    assert released is not None
    stored = get(store, job.job_id)
    assert stored.status is JobStatus.PENDING
    assert stored.attempts == 0
    assert stored.worker_id is None and stored.lease_expires_at is None
    assert stored.error_history == []
    assert claim_one(store, later(now, 2), worker_id="w2").attempts == 1


def test_times_are_in_order_whatever_the_callers_clocks_say(store: Store) -> None:
    """created <= started <= completed, even when the claimer's or finisher's clock runs behind the
    submitter's (another host, or a 'now' taken before a commit that landed after another's)."""
    now = utcnow()
    job = submit(store, now)
    [claimed] = store.claim(ClaimRequest("w1", ["default"], 1, 30), later(now, -0.5))
    assert claimed.started_at is not None and claimed.started_at >= job.created_at
    key = AttemptKey(claimed.job_id, "w1", claimed.attempts)
    assert store.finish(key, Outcome(JobStatus.COMPLETED), later(now, -1))
    done = get(store, job.job_id)
    assert done.created_at <= done.started_at <= done.completed_at  # type: ignore[operator]


def test_the_start_time_is_when_the_handler_began(store: Store) -> None:
    """A job claimed into a worker's buffer starts later than it was claimed: the first progress report or the
    outcome carries the handler's real start, and the store keeps that."""
    now = utcnow()
    first, second = submit(store, now), submit(store, now)
    a, b = store.claim(ClaimRequest("w1", ["default"], 2, 30), now)
    began = later(now, 2)
    key_a, key_b = AttemptKey(a.job_id, "w1", a.attempts), AttemptKey(b.job_id, "w1", b.attempts)
    assert store.report_progress(key_a, ProgressUpdate(0.5, at=began, started_at=began))
    assert get(store, first.job_id).started_at == began
    assert store.finish(key_b, Outcome(JobStatus.COMPLETED, started_at=later(now, 3)), later(now, 4))
    done = get(store, second.job_id)
    assert (done.started_at, done.completed_at) == (later(now, 3), later(now, 4))


@pytest.mark.parametrize("status", [JobStatus.COMPLETED, JobStatus.FAILED, JobStatus.RETRYING])
def test_the_progress_an_outcome_carries_joins_the_history(store: Store, status: JobStatus) -> None:
    """A handler's last report, made less than progress_interval before it returned, travels with the outcome:
    it is a milestone of the timeline like any other report (before, the timeline lost it)."""
    now = utcnow()
    submit(store, now)
    job = claim_one(store, now)
    key = AttemptKey(job.job_id, "w1", job.attempts)
    assert store.report_progress(key, ProgressUpdate(0.5, "stage 1", at=later(now, 1)))
    last = ProgressUpdate(1.0, "stage 2", 7, 7, at=later(now, 2))
    error = None if status is JobStatus.COMPLETED else "E: x"
    assert store.finish(key, Outcome(status, error=error, run_at=later(now, 60), progress=last), later(now, 3))
    history = get(store, job.job_id).progress_history
    assert [(h["message"], h["progress"]) for h in history] == [("stage 1", 0.5), ("stage 2", 1.0)]
    assert history[-1]["items_processed"] == 7 and history[-1]["at"] == later(now, 2).isoformat()


def test_an_outcome_without_progress_adds_no_history_entry(store: Store) -> None:
    now = utcnow()
    submit(store, now)
    job = claim_one(store, now)
    assert store.finish(AttemptKey(job.job_id, "w1", job.attempts), Outcome(JobStatus.COMPLETED), now)
    assert get(store, job.job_id).progress_history == []


def test_each_failed_attempt_keeps_its_traceback_and_worker(store: Store) -> None:
    """The error history is the per-attempt record a failure page shows: what was raised, where (the
    traceback), on which worker."""
    now = utcnow()
    submit(store, now, max_retries=1)
    first = claim_one(store, now, worker_id="w1")
    trace = 'Traceback (most recent call last):\n  File "tasks.py", line 3, in parse\nValueError: bad page'
    assert store.finish(AttemptKey(first.job_id, "w1", first.attempts),
                        Outcome(JobStatus.RETRYING, error="ValueError: bad page", error_type="ValueError",
                                traceback=trace, run_at=now), now)
    second = claim_one(store, later(now, 1), worker_id="w2")
    assert store.finish(AttemptKey(second.job_id, "w2", second.attempts),
                        Outcome(JobStatus.FAILED, error="ValueError: again", error_type="ValueError"), later(now, 2))
    history = get(store, first.job_id).error_history
    assert [(h["attempt"], h["worker_id"], h.get("traceback")) for h in history] == [(1, "w1", trace), (2, "w2", None)]
