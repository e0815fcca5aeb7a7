"""The SQLite store's schema, versioned: numbered migrations (``migrations/NNNN_name.sql``) applied in order
when a store opens, with the database's version kept in its header (``PRAGMA user_version``).

A database at the latest version opens without a write. Otherwise one opener upgrades it inside one
``BEGIN IMMEDIATE`` transaction (others wait for the write lock, then find it done); a failed migration leaves
it as it was. A database written by a newer release is refused rather than guessed at. Version 0 is a new
file or one of the releases before versions; migration 1 is written to bring both to the same schema.
"""

from __future__ import annotations

import re
import sqlite3
from dataclasses import dataclass
from importlib import resources

from ...errors import StoreSchemaError
from .codec import JOB_COLUMNS


@dataclass(frozen=True, slots=True)
class Migration:
    number: int
    name: str
    sql: str


def _load() -> tuple[Migration, ...]:
    folder = resources.files(__package__).joinpath("migrations")
    found = []
    for entry in folder.iterdir():
        match = re.fullmatch(r"(\d{4})_(\w+)\.sql", entry.name)
        if match:
            found.append(Migration(int(match[1]), match[2], entry.read_text()))
    found.sort(key=lambda m: m.number)
    if [m.number for m in found] != list(range(1, len(found) + 1)):
        raise RuntimeError(f"SQLite migrations must be numbered 1..n without gaps: {[m.number for m in found]}")
    return tuple(found)


MIGRATIONS = _load()
LATEST = len(MIGRATIONS)

LEGACY_COLUMNS = {"aged": "ALTER TABLE jobs ADD COLUMN aged INTEGER NOT NULL DEFAULT 0"}
"""Columns that releases before schema versions added to ``jobs`` as they went: migration 1 adds the missing."""


def statements(sql: str) -> list[str]:
    """The statements of a script, whole (a trigger's body keeps its semicolons)."""
    out: list[str] = []
    pending = ""
    for line in sql.splitlines(keepends=True):
        if not pending and (not line.strip() or line.lstrip().startswith("--")):
            continue
        pending += line
        if sqlite3.complete_statement(pending):
            out.append(pending.strip())
            pending = ""
    if pending.strip():
        raise RuntimeError(f"incomplete SQL statement in a migration: {pending.strip()[:80]!r}")
    return out


def schema_version(conn: sqlite3.Connection) -> int:
    return int(conn.execute("PRAGMA user_version").fetchone()[0])


def migrate(conn: sqlite3.Connection, path: str) -> None:
    """Bring the database to the latest schema (see the module docstring); check the jobs table's layout."""
    if schema_version(conn) != LATEST:
        conn.execute("BEGIN IMMEDIATE")
        try:
            current = schema_version(conn)
            if current > LATEST:
                raise StoreSchemaError(
                    f"the database {path} has schema version {current}, written by a newer jobhandle; this one "
                    f"knows versions up to {LATEST}: upgrade jobhandle to open it", schema_version=current)
            for migration in MIGRATIONS[current:]:
                for statement in statements(migration.sql):
                    conn.execute(statement)
                if migration.number == 1:
                    have = {row[1] for row in conn.execute("PRAGMA table_info(jobs)")}
                    for column, ddl in LEGACY_COLUMNS.items():
                        if column not in have:
                            conn.execute(ddl)
            conn.execute(f"PRAGMA user_version = {LATEST}")
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise
    layout = tuple(row[1] for row in conn.execute("PRAGMA table_info(jobs)"))
    if layout != JOB_COLUMNS:
        raise StoreSchemaError(f"the jobs table of {path} has columns {layout}, expected {JOB_COLUMNS}")
