"""The Redis store's Lua scripts: lua/lib.lua (the shared definitions, with the state machine filled in from
models.py: each transition's sources, and every move each status may make) in front of each script's own
body, a write script's inside WRITE_WRAPPER."""

from __future__ import annotations

from collections.abc import Sequence
from importlib import resources

from ...models import ALL_STATUSES, MACHINE, TERMINAL_STATUSES, TRANSITIONS, JobStatus

SCRIPTS = ("submit", "claim", "finish", "progress", "release", "cancel", "restart", "heartbeat", "age",
           "take_token", "lease", "cleanup", "forget", "reap", "schedule", "layout", "fetch", "changes", "list")
READ_ONLY = frozenset({"fetch", "changes", "list"})


def _lua_set(statuses: Sequence[JobStatus]) -> str:
    return "{" + ", ".join(f"['{s.value}'] = true" for s in statuses) + "}"


WRITE_WRAPPER = """
local function body()
{body}
end
local answer = body()
notify()
if CHANGED then return {{1, answer}} end
return {{0, answer}}
"""
"""Around every write script: publish once if it changed anything, and tell the caller whether it did."""


def _script_sources() -> dict[str, str]:
    """Each script's source: lib.lua (with the state machine's status sets filled in) then its own body, a
    write script's inside WRITE_WRAPPER."""
    folder = resources.files(__package__).joinpath("lua")
    lib = folder.joinpath("lib.lua").read_text()
    sources = "{" + ", ".join(f"{t.name} = {_lua_set(t.ordered_sources())}" for t in MACHINE) + "}"
    moves = "{" + ", ".join(f"['{s.value}'] = {_lua_set([t for t in ALL_STATUSES if t in TRANSITIONS[s]])}"
                            for s in ALL_STATUSES) + "}"
    terminal = _lua_set([s for s in ALL_STATUSES if s in TERMINAL_STATUSES])
    for name, value in (("sources", sources), ("moves", moves), ("terminal", terminal)):
        lib = lib.replace("{" + name + "}", value)
    scripts = {}
    for name in SCRIPTS:
        body = folder.joinpath(f"{name}.lua").read_text()
        scripts[name] = lib + "\n" + (body if name in READ_ONLY else WRITE_WRAPPER.format(body=body))
    return scripts


SOURCES = _script_sources()
