"""The chaos run's handler (``bench/chaos.py``), loaded by its workers: ``jobhandle worker --app bench/_chaos_app.py``.

``chaos(key, sleep)`` sleeps ``sleep`` seconds and records each run in a ledger outside the store under test:
one append-only file per worker process, ``$CHAOS_LEDGER_DIR/ledger-<pid>.log``, with one line when the
handler starts and one when it returns::

    start <job_id> <attempt> <pid> <time.time()> <key> <run>
    end   <job_id> <attempt> <pid> <time.time()> <key> <run>

``run`` is a random token per handler call, so the two lines of one call pair up even if a job ran twice with
the same attempt number in the same process. Each line is one ``os.write`` on a file opened with
``O_APPEND``: it is in the kernel's page cache when the call returns, so a SIGKILL of the worker right after
cannot lose it (only an OS crash could, and the run kills processes, not the machine; hence no fsync). The
result names the run, so the driver can tell which run's outcome the store kept.
"""

from __future__ import annotations

import os
import threading
import time
import uuid
from typing import Any

from jobhandle import JobContext, handler

_lock = threading.Lock()
_fd: int | None = None


def _ledger_fd() -> int:
    """The ledger file of this process, opened on first use (the worker may fork nothing, but be safe)."""
    global _fd
    with _lock:
        if _fd is None:
            folder = os.environ["CHAOS_LEDGER_DIR"]
            path = os.path.join(folder, f"ledger-{os.getpid()}.log")
            _fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        return _fd


def _record(event: str, ctx: JobContext, key: str, run: str) -> None:
    line = f"{event} {ctx.job_id} {ctx.attempt} {os.getpid()} {time.time():.6f} {key} {run}\n"
    os.write(_ledger_fd(), line.encode())


@handler("chaos")
def chaos(ctx: JobContext, key: str, sleep: float) -> dict[str, Any]:
    """Sleep ``sleep`` seconds between a ``start`` and an ``end`` ledger line."""
    run = uuid.uuid4().hex[:12]
    _record("start", ctx, key, run)
    time.sleep(sleep)
    _record("end", ctx, key, run)
    return {"run": run, "pid": os.getpid(), "key": key}
