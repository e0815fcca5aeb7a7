"""The retry policy: backoff with jitter, Retry(delay), PermanentError, exhausted attempts, lost workers."""

from __future__ import annotations

import random
from datetime import timedelta

import pytest

from jobhandle import Job, JobStatus, PermanentError, Retry
from jobhandle.models import utcnow
from jobhandle.retry import WorkerLostError, backoff_seconds, describe, lost_worker_policy, outcome_for_error


def capped(base: float, attempt: int, cap: float) -> float:
    return min(cap, base * 2 ** (attempt - 1))


@pytest.mark.parametrize("attempt", range(1, 12))
def test_backoff_is_between_half_and_all_of_the_capped_exponential(attempt: int) -> None:
    base, cap = 2.0, 300.0
    top = capped(base, attempt, cap)
    assert backoff_seconds(base, attempt, cap, rand=lambda: 0.0) == pytest.approx(0.5 * top)
    assert backoff_seconds(base, attempt, cap, rand=lambda: 1.0) == pytest.approx(top)
    rng = random.Random(attempt)
    for _ in range(200):
        assert 0.5 * top <= backoff_seconds(base, attempt, cap, rand=rng.random) <= top


def test_backoff_doubles_until_the_cap() -> None:
    tops = [backoff_seconds(10, attempt, 100, rand=lambda: 1.0) for attempt in range(1, 7)]
    assert tops == [10, 20, 40, 80, 100, 100]


def test_backoff_of_a_zero_delay_is_zero() -> None:
    assert backoff_seconds(0, 5, 3600) == 0


def job_on_attempt(attempt: int, max_retries: int = 3, retry_delay: float = 4.0) -> Job:
    return Job("x", status=JobStatus.RUNNING, attempts=attempt, max_retries=max_retries, retry_delay=retry_delay,
               worker_id="w1")


def test_an_error_with_attempts_left_retries_after_the_backoff() -> None:
    now = utcnow()
    outcome = outcome_for_error(job_on_attempt(2), ValueError("boom"), now, cap=3600)
    assert outcome.status is JobStatus.RETRYING
    assert (outcome.error, outcome.error_type) == ("ValueError: boom", "ValueError")
    assert outcome.run_at is not None
    assert now + timedelta(seconds=4) <= outcome.run_at <= now + timedelta(seconds=8)


def test_max_retries_counts_retries_after_the_first_attempt() -> None:
    now = utcnow()
    assert outcome_for_error(job_on_attempt(3, max_retries=3), ValueError(), now, 60).status is JobStatus.RETRYING
    assert outcome_for_error(job_on_attempt(4, max_retries=3), ValueError(), now, 60).status is JobStatus.FAILED
    assert outcome_for_error(job_on_attempt(1, max_retries=0), ValueError(), now, 60).status is JobStatus.FAILED


def test_exhausted_attempts_fail_with_the_last_error() -> None:
    outcome = outcome_for_error(job_on_attempt(4), KeyError("missing"), utcnow(), 60)
    assert outcome.status is JobStatus.FAILED
    assert (outcome.error, outcome.error_type) == ("KeyError: 'missing'", "KeyError")
    assert outcome.run_at is None


def test_retry_delay_is_honoured_over_the_backoff() -> None:
    now = utcnow()
    outcome = outcome_for_error(job_on_attempt(1, retry_delay=1000), Retry(delay=2.5), now, cap=3600)
    assert outcome.status is JobStatus.RETRYING
    assert outcome.run_at == now + timedelta(seconds=2.5)
    assert outcome.error_type == "Retry"
    assert outcome_for_error(job_on_attempt(1), Retry(delay=0), now, 60).run_at == now
    assert outcome_for_error(job_on_attempt(1), Retry(delay=-5), now, 60).run_at == now


def test_retry_without_delay_uses_the_backoff() -> None:
    now = utcnow()
    outcome = outcome_for_error(job_on_attempt(1, retry_delay=10), Retry(), now, cap=3600)
    assert outcome.run_at is not None
    assert now + timedelta(seconds=5) <= outcome.run_at <= now + timedelta(seconds=10)


def test_retry_with_no_attempts_left_fails_with_its_message() -> None:
    outcome = outcome_for_error(job_on_attempt(4), Retry(1, "rate limited"), utcnow(), 60)
    assert outcome.status is JobStatus.FAILED
    assert outcome.error == "Retry: rate limited"


def test_permanent_errors_fail_at_once() -> None:
    class BadInput(PermanentError):
        pass

    for exc in (PermanentError("no such file"), BadInput("unreadable")):
        outcome = outcome_for_error(job_on_attempt(1, max_retries=10), exc, utcnow(), 60)
        assert outcome.status is JobStatus.FAILED
        assert outcome.error == describe(exc)
        assert outcome.error_type == type(exc).__name__


def test_describe() -> None:
    assert describe(ValueError("x")) == "ValueError: x"
    assert describe(ValueError()) == "ValueError"


def test_lost_worker_policy() -> None:
    now = utcnow()
    decide = lost_worker_policy(cap=0)
    retrying = decide(job_on_attempt(1), now)
    assert retrying.status is JobStatus.RETRYING
    assert retrying.run_at == now
    assert retrying.error_type == WorkerLostError.__name__
    assert retrying.error is not None and "w1" in retrying.error
    assert decide(job_on_attempt(4), now).status is JobStatus.FAILED


def test_a_first_lost_worker_retries_at_once_and_repeated_losses_back_off_within_a_cap() -> None:
    """Losing its worker is rarely the job's fault: retried at once. A job whose workers keep dying backs off
    by its losses, at most ``max_delay`` (the worker timeout's half), so it is never parked for long."""
    now = utcnow()
    decide = lost_worker_policy(cap=3600, max_delay=15)
    job = job_on_attempt(2)
    job.retry_delay, job.max_retries = 10.0, 9
    assert decide(job, now).run_at == now, "the first loss: at once"
    job.error_history = [{"attempt": 1, "error_type": "WorkerLostError", "error": "lost"}]
    once = decide(job, now).run_at
    assert once is not None and 5 <= (once - now).total_seconds() <= 10, "then the backoff of one loss"
    job.error_history *= 4
    assert decide(job, now).run_at == now + timedelta(seconds=15), "capped"
