"""The SQLite store's named statements (queries.sql), loaded once, with the state machine's status lists
filled in from models.py."""

from __future__ import annotations

import re
from collections.abc import Sequence
from importlib import resources

from ...models import CANCELLABLE, DUE_STATUSES, RESTARTABLE, JobStatus


def status_list(statuses: Sequence[JobStatus]) -> str:
    return ", ".join(f"'{s.value}'" for s in statuses)


def _load_queries() -> dict[str, str]:
    """Parse queries.sql into {name: statement}, filling the state machine's status lists in."""
    text = resources.files(__package__).joinpath("queries.sql").read_text()
    lists = {"due": status_list(DUE_STATUSES), "cancellable": status_list(CANCELLABLE),
             "restartable": status_list(RESTARTABLE)}
    queries: dict[str, str] = {}
    for block in re.split(r"^-- name: ", text, flags=re.M)[1:]:
        name, _, body = block.partition("\n")
        sql = "\n".join(line for line in body.splitlines() if not line.lstrip().startswith("--")).strip()
        queries[name.strip()] = sql.format(**lists)
    return queries


Q = _load_queries()
