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
    one bulk submit share their creation time, and pages of 10 still see each exactly once, in job id order,
    even when jobs change between pages (a change does not move a job in the list)."""
    from helpers import new_job

    now = utcnow()
    older = submit(store, later(now, -5))
    batch = store.submit([new_job("echo") for _ in range(25)], now)
    newer = submit(store, later(now, 5))
    descending = sort.startswith("-")
    ties = sorted(batch, key=lambda j: j.job_id, reverse=descending)
    expected = [newer, *ties, older] if descending else [older, *ties, newer]
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
    assert seen == [j.job_id for j in expected]


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
