"""Conformance: list_jobs filters, sorting and paging (through the store and through JobQueue.list)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import pytest
from helpers import claim_one, later, submit

from jobhandle import InvalidParameterError, JobQueue, JobStatus
from jobhandle.models import Job, utcnow
from jobhandle.stores import JobQuery, Outcome, ProgressUpdate, Store
from jobhandle.stores.base import AttemptKey, ClaimRequest, JobPosition


@dataclass
class Dataset:
    """Six jobs, one per status the store can produce, with distinct creation times (``t`` is now)."""

    t: datetime
    ids: dict[str, str]

    def names(self, jobs: list[Job]) -> list[str]:
        by_id = {v: k for k, v in self.ids.items()}
        return [by_id[j.job_id] for j in jobs]


@pytest.fixture
def data(store: Store) -> Dataset:
    t = utcnow()
    specs: list[tuple[str, str, str, str, int, float]] = [
        # name, job_type, user_id, queue, priority, created seconds before t
        ("pending", "parse", "alice", "default", 0, 50),
        ("running", "parse", "bob", "docs", 10, 40),
        ("completed", "chunk", "alice", "docs", -10, 30),
        ("failed", "chunk", "carol", "default", 20, 20),
        ("cancelled", "parse", "malice", "default", 5, 10),
        ("scheduled", "chunk", "bob", "default", 1, 5),
    ]
    ids = {}
    for name, job_type, user, queue, priority, ago in specs:
        run_at = later(t, 60) if name == "scheduled" else None
        ids[name] = submit(store, later(t, -ago), job_type, user_id=user, queue=queue, priority=priority,
                           created_at=later(t, -ago), scheduled_time=run_at, run_at=run_at).job_id
    assert claim_one(store, later(t, -12), queues=["default"]).job_id == ids["failed"]
    store.finish(AttemptKey(ids["failed"], "w1", 1), Outcome(JobStatus.FAILED, error="E: x"), later(t, -9))
    assert claim_one(store, later(t, -8), queues=["docs"]).job_id == ids["running"]
    store.report_progress(AttemptKey(ids["running"], "w1", 1), ProgressUpdate(0.3, at=later(t, -8)))
    assert claim_one(store, later(t, -7), queues=["docs"]).job_id == ids["completed"]
    store.finish(AttemptKey(ids["completed"], "w1", 1), Outcome(JobStatus.COMPLETED), later(t, -5))
    store.cancel(ids["cancelled"], later(t, -3))
    return Dataset(t, ids)


def listed(store: Store, **query: Any) -> list[Job]:
    return store.list_jobs(JobQuery(**query))


def names(store: Store, data: Dataset, **query: Any) -> set[str]:
    return set(data.names(listed(store, **query)))


def test_default_listing_is_newest_first(store: Store, data: Dataset) -> None:
    jobs = listed(store)
    assert data.names(jobs) == ["scheduled", "cancelled", "failed", "completed", "running", "pending"]
    assert [j.status.value for j in jobs] == data.names(jobs)  # each job is in the status it is named after


@pytest.mark.parametrize(("query", "expected"), [
    ({"statuses": [JobStatus.PENDING, JobStatus.SCHEDULED]}, {"pending", "scheduled"}),
    ({"statuses": [JobStatus.RUNNING]}, {"running"}),
    ({"job_type": "chunk"}, {"completed", "failed", "scheduled"}),
    ({"user_id": "bob"}, {"running", "scheduled"}),
    ({"queue": "docs"}, {"running", "completed"}),
    ({"user_id": "alice", "job_type": "chunk"}, {"completed"}),
    ({"statuses": [JobStatus.FAILED], "queue": "docs"}, set()),
    ({"search": "ali"}, {"pending", "completed"}),  # the start of a user id: not malice's
    ({"search": "mal"}, {"cancelled"}),
    ({"search": "nobody"}, set()),
], ids=["statuses", "one-status", "type", "user", "queue", "user-and-type", "no-match", "user-prefix",
        "user-prefix-2", "search-none"])
def test_filters(store: Store, data: Dataset, query: dict[str, Any], expected: set[str]) -> None:
    assert names(store, data, **query) == expected


def test_search_by_job_id_prefix(store: Store, data: Dataset) -> None:
    job_id = data.ids["running"]
    assert names(store, data, search=job_id[:8]) == {"running"}
    assert names(store, data, search=job_id[:8].upper()) == {"running"}
    assert names(store, data, search=job_id) == {"running"}


def test_created_after_and_before(store: Store, data: Dataset) -> None:
    t = data.t
    assert names(store, data, created_after=later(t, -35)) == {"completed", "failed", "cancelled", "scheduled"}
    assert names(store, data, created_before=later(t, -15)) == {"pending", "running", "completed", "failed"}
    assert names(store, data, created_after=later(t, -35), created_before=later(t, -15)) == {"completed", "failed"}


SORT_CASES = [
    ("created_at", None), ("status", None), ("progress", None), ("priority", None),
    ("started_at", [JobStatus.RUNNING, JobStatus.COMPLETED, JobStatus.FAILED]),
    ("completed_at", [JobStatus.COMPLETED, JobStatus.FAILED, JobStatus.CANCELLED]),
]
"""Each sort key, with a status filter where the key is only set for some statuses."""


def sort_value(job: Job, key: str) -> Any:
    value = getattr(job, key)
    return value.value if isinstance(value, JobStatus) else value


@pytest.mark.parametrize("descending", [False, True], ids=["asc", "desc"])
@pytest.mark.parametrize(("key", "statuses"), SORT_CASES, ids=[k for k, _ in SORT_CASES])
def test_every_sort_key_in_both_directions(store: Store, data: Dataset, key: str,
                                          statuses: list[JobStatus] | None, descending: bool) -> None:
    assert key in JobQuery.SORTABLE
    jobs = listed(store, statuses=statuses, sort=("-" if descending else "") + key)
    assert len(jobs) == (len(statuses) if statuses else 6)
    values = [sort_value(j, key) for j in jobs]
    assert None not in values
    assert values == sorted(values, reverse=descending)
    assert len(set(values)) > 1, "the dataset must make the order observable"


def test_sort_keys_cover_the_contract() -> None:
    assert {k for k, _ in SORT_CASES} == set(JobQuery.SORTABLE)


def test_limit_and_offset_page_through_a_stable_order(store: Store, data: Dataset) -> None:
    full = [j.job_id for j in listed(store, sort="created_at")]
    pages = [[j.job_id for j in listed(store, sort="created_at", limit=4, offset=o)] for o in (0, 4, 8)]
    assert [len(p) for p in pages] == [4, 2, 0]
    assert pages[0] + pages[1] == full
    assert len(listed(store, limit=1)) == 1


def test_queue_list_translates_its_arguments(queue: JobQueue, data: Dataset) -> None:
    assert data.names(queue.list(status="processing")) == ["running"]
    assert set(data.names(queue.list(status=["PENDING", JobStatus.SCHEDULED]))) == {"pending", "scheduled"}
    after = later(data.t, -35).isoformat()
    assert set(data.names(queue.list(created_after=after, user_id="alice"))) == {"completed"}
    assert data.names(queue.list(sort="priority", limit=2)) == ["completed", "pending"]
    assert data.names(queue.list(search=data.ids["failed"][:6], job_type="chunk")) == ["failed"]


@pytest.mark.parametrize("sort", ["-created_at", "created_at"])
def test_keyset_pages_walk_every_job_once_even_with_equal_creation_times(store: Store, sort: str) -> None:
    """A page after a position (the last row's created_at and job id) starts right after that row: 25 jobs of
    one bulk submit share their creation time, and pages of 10 still see each exactly once, in the order the
    store keeps them in (the unpaged list's), even when jobs change between pages (a change does not move a
    job in the list)."""
    from helpers import new_job

    now = utcnow()
    older = submit(store, later(now, -5))
    batch = store.submit([new_job("echo") for _ in range(25)], now)
    newer = submit(store, later(now, 5))
    descending = sort.startswith("-")
    unpaged = [j.job_id for j in store.list_jobs(JobQuery(sort=sort, limit=100))]
    assert set(unpaged[1:-1]) == {j.job_id for j in batch}
    assert unpaged == [j.job_id for j in store.list_jobs(JobQuery(sort=sort, limit=100))], "one order, kept"
    expected = [(newer if descending else older).job_id, *unpaged[1:-1], (older if descending else newer).job_id]
    seen: list[str] = []
    after: JobPosition | None = None
    while True:
        page = store.list_jobs(JobQuery(sort=sort, limit=10, after=after))
        seen += [j.job_id for j in page]
        if len(page) < 10:
            break
        for job in batch[::3]:  # every third job of the batch changes between two pages
            store.report_progress(AttemptKey(job.job_id, "nobody", 1), ProgressUpdate(0.5))  # fenced: no-op
        assert store.claim(ClaimRequest("w1", ("default",), 2, 30.0), now)  # these do change
        after = JobPosition(page[-1].created_at, page[-1].job_id)
    assert seen == expected


@pytest.mark.parametrize("sort", ["-created_at", "created_at"])
def test_a_page_after_a_deleted_job_skips_nothing(store: Store, sort: str) -> None:
    """The job a position names is deleted before the next page is read: that page still holds every job
    after it (a store may repeat jobs created in the same instant, and skips none)."""
    from helpers import new_job

    now = utcnow()
    older = submit(store, later(now, -5))
    store.submit([new_job("echo") for _ in range(12)], now)
    newer = submit(store, later(now, 5))
    walk = [j.job_id for j in store.list_jobs(JobQuery(sort=sort, limit=100))]
    assert len(walk) == 14 and {walk[0], walk[-1]} == {older.job_id, newer.job_id}
    for cut in (3, 7, 12):  # the page ends inside the batch, or at its last job
        first = store.list_jobs(JobQuery(sort=sort, limit=cut))
        anchor = first[-1]
        store.cancel(anchor.job_id, now)  # the only cancelled job: cleanup removes it alone
        assert store.cleanup({JobStatus.CANCELLED: later(now, 60)}, later(now, 60)) == 1
        rest = [j.job_id for j in store.list_jobs(JobQuery(sort=sort, limit=100,
                                                           after=JobPosition(anchor.created_at, anchor.job_id)))]
        remaining = [j for j in walk if j != anchor.job_id]
        after_anchor = walk[walk.index(anchor.job_id) + 1:]
        assert rest[-len(after_anchor):] == after_anchor, f"cut {cut}: a job after the deleted one was skipped"
        assert set(rest) <= set(remaining) and len(set(rest)) == len(rest)
        walk = remaining


def test_a_keyset_position_combines_with_filters(store: Store) -> None:
    now = utcnow()
    mine = [submit(store, later(now, n), user_id="alice" if n % 2 else "bob") for n in range(10)]
    alice = [j for j in mine if j.user_id == "alice"]
    page = store.list_jobs(JobQuery(user_id="alice", sort="-created_at", limit=2,
                                    after=JobPosition(alice[-2].created_at, alice[-2].job_id)))
    assert [j.job_id for j in page] == [alice[-3].job_id, alice[-4].job_id]
    statuses = store.list_jobs(JobQuery(statuses=[JobStatus.PENDING], sort="created_at", limit=3,
                                        after=JobPosition(mine[6].created_at, mine[6].job_id)))
    assert [j.job_id for j in statuses] == [j.job_id for j in mine[7:10]]


def test_a_keyset_position_needs_a_sort_by_creation_time(store: Store) -> None:
    with pytest.raises(InvalidParameterError, match="sort by created_at"):
        store.list_jobs(JobQuery(sort="-progress", after=JobPosition(utcnow(), "00000000-0000-4000-8000-000000000000")))


# -- filters no index serves: error text and parameter values ------------------------------------------------

def failed_with(store: Store, now: datetime, error: str, **fields: Any) -> Job:
    job = submit(store, now, **fields)
    claim_one(store, now)
    assert store.finish(AttemptKey(job.job_id, "w1", 1), Outcome(JobStatus.FAILED, error=error,
                                                                 error_type="RuntimeError"), now)
    return job


def test_error_text_matches_anywhere_in_any_case(store: Store) -> None:
    now = utcnow()
    disk = failed_with(store, now, "Write failed: No space left on DEVICE /dev/sda1")
    failed_with(store, later(now, 1), "connection refused")
    submit(store, later(now, 2))  # no error at all
    for needle in ("space left", "ON DEVICE", "/dev/sda"):
        assert [j.job_id for j in store.list_jobs(JobQuery(error_contains=needle))] == [disk.job_id], needle
    assert store.list_jobs(JobQuery(error_contains="timeout")) == []
    both = store.list_jobs(JobQuery(error_contains="e", statuses=[JobStatus.FAILED], sort="created_at"))
    assert len(both) == 2


def test_parameter_values_match_by_json_value(store: Store) -> None:
    now = utcnow()
    a = submit(store, now, parameters={"customer": 42, "name": "report.pdf", "draft": True, "note": None})
    b = submit(store, later(now, 1), parameters={"customer": "42", "name": "report.pdf", "draft": False})
    c = submit(store, later(now, 2), parameters={"customer": 42.0, "nested": {"customer": 7}})

    def ids(**params: Any) -> set[str]:
        return {j.job_id for j in store.list_jobs(JobQuery(parameters=params))}

    assert ids(customer=42) == {a.job_id, c.job_id}  # 42 and 42.0 are the same number; "42" is a string
    assert ids(customer="42") == {b.job_id}
    assert ids(name="report.pdf") == {a.job_id, b.job_id}
    assert ids(name="report.pdf", draft=False) == {b.job_id}
    assert ids(draft=True) == {a.job_id}
    assert ids(note=None) == {a.job_id}  # present and null; absent is not null
    assert ids(customer=7) == set()  # top-level only
    assert ids(missing="x") == set()


def test_scan_filters_combine_with_pages_and_positions(store: Store) -> None:
    now = utcnow()
    jobs = [submit(store, later(now, n), parameters={"batch": n % 2}) for n in range(9)]
    odd = [j.job_id for j in reversed(jobs) if j.parameters["batch"] == 1]
    first = store.list_jobs(JobQuery(parameters={"batch": 1}, limit=2))
    assert [j.job_id for j in first] == odd[:2]
    rest = store.list_jobs(JobQuery(parameters={"batch": 1}, limit=10,
                                    after=JobPosition(first[-1].created_at, first[-1].job_id)))
    assert [j.job_id for j in rest] == odd[2:]
    offset = store.list_jobs(JobQuery(parameters={"batch": 1}, sort="-priority", limit=10, offset=1))
    assert len(offset) == len(odd) - 1


@pytest.mark.parametrize("bad", [{"": 1}, {'a"b': 1}, {"x": [1, 2]}, {"x": {"y": 1}}, {"x": float("nan")}])
def test_unusable_parameter_filters_are_refused(store: Store, bad: dict[str, Any]) -> None:
    with pytest.raises(InvalidParameterError, match="parameter"):
        store.list_jobs(JobQuery(parameters=bad))


def test_a_scan_past_the_limit_without_a_full_page_is_refused(store: Store,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    import jobhandle.stores.redis.store as redis_store
    import jobhandle.stores.sqlite.store as sqlite_store

    monkeypatch.setattr(sqlite_store, "SCAN_LIMIT", 5)
    monkeypatch.setattr(redis_store, "SORT_SCAN_LIMIT", 5)
    now = utcnow()
    wanted = submit(store, now, parameters={"k": "needle"})
    for n in range(12):
        submit(store, later(now, n + 1), parameters={"k": "hay"})
    with pytest.raises(InvalidParameterError, match="narrow"):
        store.list_jobs(JobQuery(parameters={"k": "needle"}, limit=5))
    found = store.list_jobs(JobQuery(parameters={"k": "needle"}, created_before=later(now, 1)))
    assert [j.job_id for j in found] == [wanted.job_id]  # narrowed by time: found
    assert len(store.list_jobs(JobQuery(parameters={"k": "hay"}, limit=3))) == 3  # a full page: fine
