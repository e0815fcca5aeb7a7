"""The pool's scaling decisions, alone: growth needs a backlog beyond the slots and a wait; shrinking needs a
worker's worth of spare slots for a while and goes one at a time; cooldowns count from any change."""

from __future__ import annotations

import pytest

from jobhandle.errors import InvalidParameterError
from jobhandle.pool import Load, Scaler, ScalingPolicy

POLICY = ScalingPolicy(min_workers=1, max_workers=5, up_wait=2, up_cooldown=10, down_idle=60, down_cooldown=30)


def scaler() -> Scaler:
    return Scaler(POLICY, concurrency=4)


def test_a_backlog_that_waits_grows_the_pool_to_what_it_needs() -> None:
    s = scaler()
    decision = s.decide(1, Load(pending=10, running=4, oldest_wait=3.0), now=100)
    assert decision is not None and decision.target == 4  # ceil(14 / 4)
    assert "14 jobs for 4 slots, the oldest waiting 3.0s" == decision.reason


def test_growth_stops_at_the_maximum() -> None:
    decision = scaler().decide(1, Load(pending=1000, running=4, oldest_wait=30.0), now=0)
    assert decision is not None and decision.target == 5


def test_a_backlog_that_drains_fast_does_not_grow_the_pool() -> None:
    assert scaler().decide(1, Load(pending=500, running=4, oldest_wait=0.5), now=0) is None


def test_jobs_already_claimed_count_as_work() -> None:
    """The slots are all busy with claimed jobs and a few more wait: KEDA's list length would see 2."""
    decision = scaler().decide(2, Load(pending=2, running=8, oldest_wait=5.0), now=0)
    assert decision is not None and decision.target == 3


def test_growth_waits_for_its_cooldown_after_any_change() -> None:
    s = scaler()
    assert s.decide(1, Load(10, 4, 3.0), now=0) is not None
    assert s.decide(4, Load(40, 16, 3.0), now=5) is None
    decision = s.decide(4, Load(40, 16, 3.0), now=10)
    assert decision is not None and decision.target == 5


def test_no_growth_while_the_machine_is_busy() -> None:
    assert scaler().decide(1, Load(10, 4, 3.0, cpu_percent=95), now=0) is None
    assert scaler().decide(1, Load(10, 4, 3.0, memory_percent=90), now=0) is None


def test_spare_slots_shrink_the_pool_after_a_while_to_what_the_work_needed() -> None:
    s = scaler()
    idle = Load(pending=0, running=1, oldest_wait=None)
    assert s.decide(4, idle, now=0) is None  # spare since 0
    assert s.decide(4, idle, now=59) is None
    decision = s.decide(4, idle, now=60)
    assert decision is not None
    assert (decision.target, decision.reason) == (1, "15 of 16 slots spare for 60s, 1 needed at most in the last 60s")


def test_the_most_the_work_needed_in_the_last_idle_period_stays() -> None:
    s = scaler()
    s.decide(5, Load(0, 1, None), now=0)
    s.decide(5, Load(0, 9, None), now=30)  # 9 running: 3 workers needed, 8 slots still spare
    decision = s.decide(5, Load(0, 1, None), now=60)
    assert decision is not None and decision.target == 3
    assert s.decide(3, Load(0, 1, None), now=89) is None  # still in the window, and the down cooldown
    decision = s.decide(3, Load(0, 1, None), now=91)  # the need of 3 (at 30) has left the window
    assert decision is not None and decision.target == 1


def test_work_arriving_resets_the_idle_period() -> None:
    s = scaler()
    s.decide(3, Load(0, 0, None), now=0)
    s.decide(3, Load(pending=3, running=8, oldest_wait=0.1), now=30)  # busy again
    assert s.decide(3, Load(0, 0, None), now=61) is None
    assert s.decide(3, Load(0, 0, None), now=120) is None  # idle since 61
    assert s.decide(3, Load(0, 0, None), now=121) is not None


def test_never_below_the_minimum_nor_above_the_maximum() -> None:
    s = scaler()
    assert s.decide(0, Load(0, 0, None), now=0).target == 1  # type: ignore[union-attr]
    assert s.decide(7, Load(0, 0, None), now=0).target == 5  # type: ignore[union-attr]
    idle = Scaler(POLICY, 4)
    assert idle.decide(1, Load(0, 0, None), now=0) is None
    assert idle.decide(1, Load(0, 0, None), now=1000) is None  # at the minimum already


def test_a_policy_with_min_above_max_is_refused() -> None:
    with pytest.raises(InvalidParameterError, match="min <= max"):
        ScalingPolicy(min_workers=4, max_workers=2)


def test_no_growth_past_what_the_global_concurrency_limit_lets_run() -> None:
    capped = Scaler(ScalingPolicy(min_workers=1, max_workers=10, up_wait=0, max_running=10), concurrency=4)
    decision = capped.decide(1, Load(pending=500, running=4, oldest_wait=1.0), now=0)
    assert decision is not None and decision.target == 3  # 10 running at most: 3 workers of 4 slots


def test_jobs_left_waiting_beside_idle_slots_do_not_grow_the_pool() -> None:
    """One user's backlog under the per-user limit of 3: 3 of 4 slots run, 30 jobs wait for the limit, not for
    a worker. Seen at two looks in a row, more workers would idle too (the first look may be a slot between
    two jobs)."""
    s = scaler()
    held = Load(pending=30, running=3, oldest_wait=5.0)
    assert s.decide(1, held, now=0) is None
    assert s.decide(1, held, now=1) is None
    assert s.decide(1, Load(pending=30, running=3, oldest_wait=50.0), now=40) is None


def test_a_slot_idle_at_one_look_only_delays_growth_by_a_look() -> None:
    s = scaler()
    assert s.decide(1, Load(pending=30, running=3, oldest_wait=5.0), now=0) is None
    decision = s.decide(1, Load(pending=30, running=4, oldest_wait=6.0), now=1)
    assert decision is not None and decision.target == 5


def test_a_pool_grown_past_what_the_limits_let_run_shrinks_to_it() -> None:
    """Grown for a backlog that turned out to be one user's: 3 run, 12 slots, the rest wait for the limit."""
    s = scaler()
    held = Load(pending=30, running=3, oldest_wait=9.0)
    assert s.decide(3, held, now=0) is None
    assert s.decide(3, held, now=59) is None
    decision = s.decide(3, held, now=61)
    assert decision is not None and decision.target == 1
    assert decision.reason == ("9 of 12 slots idle for 61s while 30 jobs wait (held back by concurrency limits, "
                               "not by workers), 1 needed at most in the last 60s")
