"""Conformance: maintenance leases. One holder at a time per lease name; its holder renews it; once it runs
out (or is given up) another holder takes it."""

from __future__ import annotations

from helpers import later

from jobhandle.models import utcnow
from jobhandle.stores import Store


def test_one_holder_at_a_time_renewed_by_its_holder(store: Store) -> None:
    now = utcnow()
    assert store.hold_lease("recover", "w1", 30, now)
    assert not store.hold_lease("recover", "w2", 30, now), "another holder's lease runs"
    assert store.hold_lease("recover", "w1", 30, later(now, 1)), "its holder renews it"
    assert store.hold_lease("cleanup", "w2", 30, now), "leases of other names are apart"


def test_a_lease_given_up_is_free_at_once(store: Store) -> None:
    now = utcnow()
    assert store.hold_lease("recover", "w1", 30, now)
    store.release_lease("recover", "w2")  # not its holder: nothing happens
    assert not store.hold_lease("recover", "w2", 30, now)
    store.release_lease("recover", "w1")
    assert store.hold_lease("recover", "w2", 30, now)


def test_a_lease_that_ran_out_goes_to_the_next_holder(store: Store) -> None:
    import time

    now = utcnow()
    assert store.hold_lease("recover", "w1", 0.05, now)
    time.sleep(0.06)  # the lease's own time passing (Redis expires keys by its clock), not a wait for work
    assert store.hold_lease("recover", "w2", 30, later(now, 0.06))
    assert not store.hold_lease("recover", "w1", 30, later(now, 0.07))
