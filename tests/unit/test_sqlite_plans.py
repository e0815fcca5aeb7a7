"""The SQLite store's hot statements use the index they were written for, whatever else the schema holds.

SQLite plans without statistics (no ANALYZE), and an index added for one query can look better to it for
another: once the list indexes existed, a claim's first look read every scheduled job through the status
index instead of seeking the first due one in jobs_due. Each statement below names the index it needs, and
its plan is checked to use that index (EXPLAIN QUERY PLAN), and to sort nothing in a temporary B-tree.
"""

from __future__ import annotations

import re
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest

from jobhandle.stores import SQLiteStore
from jobhandle.stores.sqlite.sql import Q

PLANS = {
    # A claim: its read-only first look, the fair pick, promotion of due jobs.
    "claim_lookout": {"jobs_due", "jobs_ready_users"},
    "any_pending": {"jobs_ready_users"},
    "first_pending": {"jobs_ready_users"},
    "top_priority": {"jobs_ready_users"},
    "next_of_user": {"jobs_ready_users"},
    "ready_leave": {"jobs_ready_users"},
    "forget_turns": {"jobs_ready_users"},
    "due_jobs": {"jobs_due"},
    "next_due": {"jobs_due"},
    "running_per_user": {"jobs_leases"},
    # Heartbeats, lease recovery, the workers page.
    "extend_leases": {"jobs_leases"},
    "owned_jobs": {"jobs_leases"},
    "expired_leases": {"jobs_leases"},
    "list_workers": {"jobs_leases"},
    # Dependants of a finished job: through the dependency edges, not through every waiting job.
    "waiting_dependants": {"sqlite_autoindex_jobs_1"},
    "parents_with_waiting_dependants": {"sqlite_autoindex_jobs_1"},
    # Change feed, the jobs one transaction wrote, retention, aging.
    "changes_since": {"jobs_seq"},
    "jobs_by_seq": {"jobs_seq"},
    "ended_by_seq": {"jobs_seq"},
    "job_by_idempotency_key": {"jobs_idempotency"},
    "cancel_upcoming": {"jobs_idempotency"},
    "expired_terminal": {"jobs_created"},
    "agable_jobs": {"jobs_aging"},
    "count_created_before": {"jobs_status_created"},
}
ALLOWED_TEMP_BTREE = {
    "parents_with_waiting_dependants",  # DISTINCT over the parents of one batch
    "running_per_user",  # GROUP BY over the running jobs: as many as worker slots
    "list_workers",  # ORDER BY over the workers table
}


@pytest.fixture(scope="module")
def conn(tmp_path_factory: pytest.TempPathFactory) -> Iterator[sqlite3.Connection]:
    path: Path = tmp_path_factory.mktemp("plans") / "jobs.db"
    SQLiteStore(path).close()  # the schema at its newest migration
    c = sqlite3.connect(path)
    yield c
    c.close()


def plan(conn: sqlite3.Connection, sql: str) -> list[str]:
    numbered = re.findall(r"\?(\d+)", sql)
    args: object = ([None] * max(int(n) for n in numbered) if numbered else
                    {name: None for name in re.findall(r":(\w+)", sql)})
    return [row[3] for row in conn.execute("EXPLAIN QUERY PLAN " + sql, args)]


@pytest.mark.parametrize("name", sorted(PLANS))
def test_statement_uses_its_index(conn: sqlite3.Connection, name: str) -> None:
    steps = plan(conn, Q[name])
    on_jobs = [s for s in steps if re.match(r"(SEARCH|SCAN) (jobs|j|p)\b", s)]
    assert on_jobs, f"{name} reads no jobs: {steps}"
    used = {m.group(1) for s in on_jobs if (m := re.search(r"USING (?:COVERING )?INDEX (\w+)", s))}
    assert used == PLANS[name] and all("INDEX" in s or "PRIMARY KEY" in s for s in on_jobs), \
        f"{name} should use {sorted(PLANS[name])}: {steps}"
    if name not in ALLOWED_TEMP_BTREE:
        assert not [s for s in steps if "TEMP B-TREE" in s], f"{name} sorts in a temporary B-tree: {steps}"
