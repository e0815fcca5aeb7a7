"""The SQLite store's named statements (queries.sql), loaded once, with the state machine's status lists
filled in from models.py."""

from __future__ import annotations

import re
from collections.abc import Sequence
from importlib import resources

from ...models import MACHINE, JobStatus


def status_list(statuses: Sequence[JobStatus]) -> str:
    return ", ".join(f"'{s.value}'" for s in statuses)


def _load_queries() -> dict[str, str]:
    """Parse queries.sql into {name: statement}, filling the state machine's status lists in."""
    text = resources.files(__package__).joinpath("queries.sql").read_text()
    lists = {f"{t.name}_from": status_list(t.ordered_sources()) for t in MACHINE}
    ends = {lists[f"{name}_from"] for name in ("complete", "retry", "fail")}
    if len(ends) != 1:
        raise RuntimeError("complete, retry and fail must start from the same statuses: finish_job serves all three")
    lists["finish_from"] = ends.pop()
    queries: dict[str, str] = {}
    for block in re.split(r"^-- name: ", text, flags=re.M)[1:]:
        name, _, body = block.partition("\n")
        sql = "\n".join(line for line in body.splitlines() if not line.lstrip().startswith("--")).strip()
        queries[name.strip()] = sql.format(**lists)
    return queries


Q = _load_queries()
