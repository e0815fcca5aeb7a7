"""The Redis store's Lua scripts: lua/lib.lua (the shared definitions, with the state machine generated from
models.py: each transition's sources, and every move each status may make) in front of each script's own
body, a write script's inside WRITE_WRAPPER."""

from __future__ import annotations

from collections.abc import Sequence
from importlib import resources

from ...models import ALL_STATUSES, MACHINE, TERMINAL_STATUSES, TRANSITIONS, JobStatus

SCRIPTS = ("submit", "claim", "finish", "progress", "release", "cancel", "restart", "heartbeat", "age",
           "take_token", "lease", "cleanup", "forget", "reap", "reap_pools", "schedule", "layout", "fetch",
           "changes", "list")
READ_ONLY = frozenset({"fetch", "changes", "list"})


def _is_one_of(statuses: Sequence[JobStatus]) -> str:
    return " or ".join(f"s == '{status.value}'" for status in statuses) or "false"


def _machine_lua() -> str:
    """The state machine as Lua functions (code, not tables: a script builds its tables on every call):
    ``from_<transition>(s)`` for each transition, ``may_move(from, to)``, ``is_terminal(s)``."""
    lines = []
    for t in MACHINE:
        lines.append(f"local function from_{t.name}(s) return {_is_one_of(t.ordered_sources())} end")
    lines.append("local function may_move(from, s)")
    for status in ALL_STATUSES:
        targets = [t for t in ALL_STATUSES if t in TRANSITIONS[status]]
        lines.append(f"    if from == '{status.value}' then return {_is_one_of(targets)} end")
    lines.append("    return false")
    lines.append("end")
    terminal = [s for s in ALL_STATUSES if s in TERMINAL_STATUSES]
    lines.append(f"local function is_terminal(s) return {_is_one_of(terminal)} end")
    return "\n".join(lines)


WRITE_WRAPPER = """
local function body()
{body}
end
local answer = body()
write_rollups()
notify()
if CHANGED then return {{1, answer}} end
return {{0, answer}}
"""
"""Around every write script: write what it tallied for the analytics, publish once if it changed anything, and
tell the caller whether it did."""


def _script_sources() -> dict[str, str]:
    """Each script's source: lib.lua (with the state machine's status sets filled in) then its own body, a
    write script's inside WRITE_WRAPPER."""
    folder = resources.files(__package__).joinpath("lua")
    lib = folder.joinpath("lib.lua").read_text().replace("{machine}", _machine_lua())
    scripts = {}
    for name in SCRIPTS:
        body = folder.joinpath(f"{name}.lua").read_text()
        scripts[name] = lib + "\n" + (body if name in READ_ONLY else WRITE_WRAPPER.format(body=body))
    return scripts


SOURCES = _script_sources()
