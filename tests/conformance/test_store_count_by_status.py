"""Conformance: count_by_status gives one user's jobs by status, and nobody else's."""

from __future__ import annotations

from helpers import claim_one, submit

from jobhandle.models import utcnow
from jobhandle.stores import Store


def test_count_by_status_counts_only_that_users_jobs(store: Store) -> None:
    now = utcnow()
    submit(store, now, user_id="alice")
    submit(store, now, user_id="alice")
    submit(store, now, user_id="bob")
    running = claim_one(store, now)  # claims one of the pending jobs (any user)
    store.cancel(submit(store, now, user_id="alice").job_id, now)

    alice = store.count_by_status("alice")
    bob = store.count_by_status("bob")

    expected_alice = {"pending": 2, "cancelled": 1}
    expected_bob = {"pending": 1}
    owner = expected_alice if running.user_id == "alice" else expected_bob
    owner["pending"] -= 1
    owner["running"] = 1
    assert {k: v for k, v in alice.items() if v} == {k: v for k, v in expected_alice.items() if v}
    assert {k: v for k, v in bob.items() if v} == {k: v for k, v in expected_bob.items() if v}
    assert store.count_by_status("nobody") == {}
