"""The child side of process mode: a process that runs one job at a time for its parent worker slot.

It talks to its slot over a ``multiprocessing`` pipe (both ends are jobhandle's own code; job parameters and
results still travel as JSON values). Messages from the child: ``"ready"`` once, when it starts;
``("progress", fraction, message, items, total)``; ``("token", key, per_second, burst)`` (answered with the
seconds to wait); and one final message per job: ``("result", json_text, peak_mb)``, ``("failure", Failure,
peak_mb)`` or ``("unfit", message, peak_mb)``. The parent cancels a job by sending SIGTERM: the handler sees
JobCancelled raised where it runs (its ``finally`` blocks run), then the child exits; the parent sends
SIGKILL if it lingers.
"""

from __future__ import annotations

import asyncio
import ctypes
import importlib
import importlib.util
import logging
import os
import signal
import sys
import threading
import time
from collections.abc import Callable
from multiprocessing.connection import Connection
from types import FrameType
from typing import Any

from ..errors import InvalidParameterError, JobCancelled
from ..models import check_json, clamp_progress, dumps_json
from ..retry import Failure
from .context import rate_limit_args

Target = tuple[str, str, str | None]
"""Where a handler function lives: (module name, qualified name, the module's file or None)."""


class ChildContext:
    """``ctx`` inside a process-mode job: the JobContext API, over the pipe to the parent slot."""

    def __init__(self, conn: Connection, job: dict[str, Any]) -> None:
        self._conn = conn
        self._job = job
        self._rate_default: float = job["rate_per_minute"]
        self._cancelled = False
        self.logger = logging.LoggerAdapter(logging.getLogger(f"jobhandle.job.{job['job_type']}"),
                                            {"job_id": job["job_id"]})

    job_id = property(lambda self: self._job["job_id"])
    attempt = property(lambda self: self._job["attempt"])
    user_id = property(lambda self: self._job["user_id"])
    parameters = property(lambda self: self._job["parameters"])

    @property
    def cancelled(self) -> bool:
        """True once the parent asked this job to stop (it also raises JobCancelled where the handler runs)."""
        return self._cancelled

    def check_cancelled(self) -> None:
        if self._cancelled:
            raise JobCancelled(self.job_id)

    def progress(self, fraction: float | None = None, message: str | None = None, *,
                 items_processed: int | None = None, total_items: int | None = None) -> None:
        if fraction is None and items_processed is not None and total_items:
            fraction = items_processed / total_items
        fraction = None if fraction is None else clamp_progress(fraction)
        # Every report goes to the parent slot, whose JobContext throttles the store writes.
        self._conn.send(("progress", fraction, message, items_processed, total_items))

    def rate_limit(self, key: str = "api", per_minute: float | None = None, *, burst: float = 1.0) -> None:
        per_second, burst = rate_limit_args(self._rate_default if per_minute is None else per_minute, burst)
        while True:
            self._conn.send(("token", key, per_second, burst))
            wait: float = self._conn.recv()
            if wait <= 0:
                return
            time.sleep(wait)

    def stop(self, signum: int, frame: FrameType | None) -> None:
        """SIGTERM handler while the job runs."""
        self._cancelled = True
        raise JobCancelled(self.job_id)


def child_main(conn: Connection, log_level: int) -> None:
    """The child process's main loop: run each job the parent sends, answer with how it ended."""
    _die_with_parent()
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's to handle (it hands jobs back)
    logging.basicConfig(level=log_level, stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s[%(process)d]: %(message)s")
    handlers: dict[Target, Callable[..., Any]] = {}
    conn.send("ready")
    while True:
        try:
            job: dict[str, Any] = conn.recv()
        except EOFError:  # the parent closed the pipe: the worker stops
            return
        ctx = ChildContext(conn, job)
        signal.signal(signal.SIGTERM, ctx.stop)
        _reset_peak_mb()
        try:
            reply = _run(ctx, job, handlers)
            conn.send((*reply, _reset_peak_mb()))
        except JobCancelled:
            return  # the parent gave up on this job and replaces this process
        finally:
            signal.signal(signal.SIGTERM, signal.SIG_DFL)


def _run(ctx: ChildContext, job: dict[str, Any], handlers: dict[Target, Callable[..., Any]]) -> tuple[Any, ...]:
    target: Target = tuple(job["target"])  # type: ignore[assignment]
    try:
        fn = handlers.get(target) or handlers.setdefault(target, resolve(target))
    except JobCancelled:  # stopped while importing the handler's module
        raise
    except Exception as exc:  # noqa: BLE001 - the same import fails on every attempt
        return ("failure", Failure(f"cannot load handler {job['job_type']!r} in the job process: "
                                   f"{type(exc).__name__}: {exc}", "HandlerImportError", permanent=True))
    try:
        result = fn(ctx, **job["parameters"])
        if asyncio.iscoroutine(result):
            result = asyncio.run(result)
    except JobCancelled:
        raise
    except Exception as exc:  # noqa: BLE001 - any handler error ends the attempt, by the retry policy
        ctx.logger.warning("attempt %d failed: %s", ctx.attempt, exc, exc_info=True)
        return ("failure", Failure.of(exc))
    try:
        check_json(result, "a handler's result")
    except InvalidParameterError as exc:
        return ("unfit", exc.message)
    return ("result", dumps_json(result))


def resolve(target: Target) -> Callable[..., Any]:
    """Import the handler function the parent registered: by module name, else from the module's file."""
    module_name, qualname, path = target
    module = sys.modules.get(module_name)
    if module is None:
        try:
            module = importlib.import_module(module_name)
        except ImportError:
            if path is None:
                raise
            spec = importlib.util.spec_from_file_location(module_name, path)
            if spec is None or spec.loader is None:
                raise
            module = importlib.util.module_from_spec(spec)
            sys.modules[module_name] = module
            spec.loader.exec_module(module)
    obj: Any = module
    for part in qualname.split("."):
        obj = getattr(obj, part)
    if not callable(obj):
        raise TypeError(f"{module_name}.{qualname} is not callable")
    return obj  # type: ignore[no-any-return]


def _reset_peak_mb() -> float | None:
    """The peak resident memory since the last call (Linux: VmHWM, then reset), in MiB; None elsewhere."""
    try:
        with open("/proc/self/status") as status:
            peak_kb = next(int(line.split()[1]) for line in status if line.startswith("VmHWM:"))
        with open("/proc/self/clear_refs", "w") as refs:
            refs.write("5")  # resets VmHWM to the current resident size
        return peak_kb / 1024
    except (OSError, StopIteration, ValueError):
        return None


def _die_with_parent() -> None:
    """If the worker process dies (even by SIGKILL), this process must not go on running its job: the job
    will be recovered and run elsewhere. Linux: PR_SET_PDEATHSIG; elsewhere a thread watches the parent."""
    parent = os.getppid()
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        if libc.prctl(1, signal.SIGKILL) == 0:  # PR_SET_PDEATHSIG
            if os.getppid() != parent:  # the parent died before the call
                os._exit(1)
            return
    except (OSError, AttributeError):
        pass

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(0.5)
        os._exit(1)

    threading.Thread(target=watch, name="jobhandle-parent-watch", daemon=True).start()
