"""The Redis store's Lua calls, in two forms built from the same files: lua/lib.lua (the shared definitions,
with the state machine generated from models.py: each transition's sources, and every move each status may
make) then each call's own body (lua/<call>.lua).

- ``LIBRARY``: one Redis 7 function library holding every call as a function (``FUNCTIONS[call]``). Loaded once
  per server, it does not run lib.lua's ~60 definitions again on every call, which is most of what a call that
  moves one job costs the server (a one-by-one submit: 88 us of Redis CPU instead of 153 here).
- ``SOURCES``: one script per call (EVALSHA), for servers without functions (Redis 6) or that refuse
  FUNCTION LOAD (ACLs).

Either way a call starts with ``begin`` (its prefix and arguments) and a write call ends with ``end_write``
(counters, rollups, the publish, whether it changed anything), both in lib.lua.
"""

from __future__ import annotations

import hashlib
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
return end_write(pcall(body))
"""
"""A write call's body as a script: run, then end_write (lib.lua) whether it finished or failed."""


def _parts() -> tuple[str, dict[str, str]]:
    """lib.lua with the state machine filled in, and each call's body."""
    folder = resources.files(__package__).joinpath("lua")
    lib = folder.joinpath("lib.lua").read_text().replace("{machine}", _machine_lua())
    return lib, {name: folder.joinpath(f"{name}.lua").read_text() for name in SCRIPTS}


def _script_sources(lib: str, bodies: dict[str, str]) -> dict[str, str]:
    """Each call as a script: lib.lua, begin, then its body (a write call's inside WRITE_WRAPPER)."""
    return {name: f"{lib}\nbegin(KEYS, ARGV)\n" + (body if name in READ_ONLY else WRITE_WRAPPER.format(body=body))
            for name, body in bodies.items()}


def _library(lib: str, bodies: dict[str, str]) -> tuple[str, dict[str, str]]:
    """Every call as a function of one library, and each call's function name. Names carry a hash of the code,
    so two jobhandle versions on one server (a rolling upgrade) each call their own."""
    tag = hashlib.sha1((lib + "".join(bodies[n] for n in SCRIPTS)).encode()).hexdigest()[:12]
    names = {name: f"jobhandle_{tag}_{name}" for name in SCRIPTS}
    out = [f"#!lua name=jobhandle_{tag}", lib]
    for name, body in bodies.items():
        out.append(f"local function body_{name}()\n{body}\nend")
    for name in SCRIPTS:
        if name in READ_ONLY:
            out.append(f"redis.register_function{{function_name = '{names[name]}', flags = {{'no-writes'}}, "
                       f"callback = function(keys, args) begin(keys, args) return body_{name}() end}}")
        else:
            out.append(f"redis.register_function('{names[name]}', function(keys, args) begin(keys, args) "
                       f"return end_write(pcall(body_{name})) end)")
    return "\n".join(out) + "\n", names


_LIB, _BODIES = _parts()
SOURCES = _script_sources(_LIB, _BODIES)
LIBRARY, FUNCTIONS = _library(_LIB, _BODIES)
