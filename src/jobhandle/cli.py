"""The ``jobhandle`` command line: run a worker, submit and watch jobs, inspect and manage the queue.

Every command takes ``--store URL`` (default: ``JOBHANDLE_STORE``, else ``sqlite:///./jobhandle.db``).
User errors (bad input, an unknown job, a refused transition, a store that cannot be opened, a handler module
that does not import) print one ``error: ...`` line on stderr, never a traceback, and exit non-zero: 2 for
invalid input, 1 for the rest (job state, a failed job, a dead worker). ``jobhandle --debug COMMAND`` prints
the error's full traceback as well.
"""

from __future__ import annotations

import functools
import gc
import importlib
import importlib.util
import json
import logging
import os
import signal
import sys
import sysconfig
import threading
import time
import traceback
from collections.abc import Callable, Iterator, Sequence
from contextlib import closing, contextmanager
from datetime import datetime
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Any, NoReturn

import click

from .config import Settings
from .errors import (
    InvalidParameterError,
    JobHandleError,
    JobNotFoundError,
    StoreURLError,
)
from .models import Job, JobStatus, Schedule, parse_job_id, parse_key_value, reject_json_constant
from .queue import JobQueue
from .registry import default_registry
from .stores import masked_url, open_store
from .worker import Worker

if TYPE_CHECKING:
    from rich.console import Console

# What only some commands need (rich's tables, the pools, health checks) is imported inside them: every command
# pays for what it imports, and ``jobhandle worker`` is ready to claim in well under 0.2 s.

EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_FORCED = 130

FAILURE_CHECK_SECONDS = 0.5
"""How often a foreground worker, otherwise asleep until a signal, checks that its loops are alive."""
STOP_POLL_SECONDS = 0.05
"""How often the foreground worker looks whether a stop signal came (signal handlers must not take locks)."""

MIN_ID_PREFIX = 4
PREFIX_SCAN_LIMIT = 1000

DEMO_HANDLERS = "jobhandle.handlers"
DEMO_DOCUMENTS = 3
DEMO_SUFFIXES = (".md", ".txt", ".html", ".htm")

LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")
WORKER_MODES = ("thread", "process")


class _Group(click.Group):
    """A command group whose help lists its commands in the order they were added (worker first), not sorted."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return list(self.commands)


# -- shared options ----------------------------------------------------------------------------------------

store_option = click.option(
    "--store", metavar="URL", show_default=False,
    help="Store URL: sqlite:///jobs.db, sqlite:////abs/jobs.db or memory:// "
         "(default: $JOBHANDLE_STORE, else sqlite:///./jobhandle.db).")
json_option = click.option("--json", "as_json", is_flag=True, help="Print JSON (for scripts).")
wait_for_store_option = click.option(
    "--wait-for-store", type=click.FloatRange(min=0), metavar="SECONDS", show_default=False,
    help="While the store does not answer at start-up (Redis not up yet), keep trying this long, with backoff "
         "(0.5 s doubling, at most 5 s); 0: fail at once (default: $JOBHANDLE_WAIT_FOR_STORE, else 60).")
job_id_argument = click.argument(
    "job_id", metavar="JOB_ID", help="A job id, or a unique prefix of one (4+ characters).")
log_level_option = click.option(
    "--log-level", type=click.Choice(LOG_LEVELS, case_sensitive=False), default="INFO", help="Log level (stderr).")


class _Invocation:
    """Options of the running invocation that every command's error handling reads (set by ``app``)."""

    debug = False


def command(name: str, group: click.Group | None = None) -> Callable[[Callable[..., None]], click.Command]:
    """Register a command (on ``app``, or a command group) whose errors end as one ``error:`` line on stderr
    instead of a traceback (``--debug``: after the traceback)."""

    def decorate(fn: Callable[..., None]) -> click.Command:
        @functools.wraps(fn)  # with fn's docstring (the help) and the click options stacked on it
        def run(*args: Any, **kwargs: Any) -> None:
            try:
                fn(*args, **kwargs)
            except (click.exceptions.ClickException, click.exceptions.Exit, click.exceptions.Abort):
                raise  # usage errors, exits and aborts: click reports them
            except (InvalidParameterError, StoreURLError) as exc:
                fail(_describe(exc), EXIT_USAGE, exc)
            except JobHandleError as exc:
                fail(_describe(exc), EXIT_FAILED, exc)
            except Exception as exc:
                fail(f"{one_line(exc)} (jobhandle --debug {name} ... prints the traceback)", EXIT_FAILED, exc)

        return (group or app).command(name)(run)

    return decorate


def fail(message: str, code: int = EXIT_FAILED, cause: BaseException | None = None) -> NoReturn:
    """Print ``error: message`` on stderr (with ``--debug``, the traceback of ``cause`` before it) and exit."""
    if cause is not None and _Invocation.debug:
        traceback.print_exception(cause, file=sys.stderr)
    click.echo(f"error: {message}", err=True)
    raise click.exceptions.Exit(code)


def one_line(exc: BaseException) -> str:
    """``ValueError: bad thing`` on one line, whatever line breaks the message has."""
    text = " ".join(str(exc).split())
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _describe(exc: JobHandleError) -> str:
    """The error's message, naming the job when the message itself does not."""
    job_id = exc.context.get("job_id")
    return exc.message if not job_id or job_id in exc.message else f"job {job_id}: {exc.message}"


def _console() -> Console:
    """A console on the current stdout (made per command, so redirected or captured output is honoured)."""
    from rich.console import Console

    return Console(highlight=False)


def _print_json(data: Any) -> None:
    click.echo(json.dumps(data, indent=2, default=str))


# -- job ids and parameters --------------------------------------------------------------------------------

def resolve_job_id(q: JobQueue, text: str) -> str:
    """A full job id, or the one job whose id starts with ``text`` (as the tables show short ids)."""
    try:
        return parse_job_id(text)
    except InvalidParameterError:
        prefix = text.strip().lower()
        if len(prefix) < MIN_ID_PREFIX or not set(prefix) <= set("0123456789abcdef-"):
            raise InvalidParameterError(f"job id must be a UUID or a unique prefix of one ({MIN_ID_PREFIX}+ "
                                        f"hex characters), not {text!r}") from None
    matches = [job.job_id for job in q.list(search=prefix, limit=PREFIX_SCAN_LIMIT)
               if job.job_id.startswith(prefix)]
    if not matches:
        raise JobNotFoundError(text)
    if len(matches) > 1:
        raise InvalidParameterError(f"job id prefix {text!r} matches {len(matches)} jobs; give more of the id")
    return matches[0]


def build_parameters(params: Sequence[str], params_json: str | None) -> dict[str, Any]:
    """``--params-json`` (an object) first, then each ``--param`` on top of it."""
    parameters: dict[str, Any] = {}
    if params_json is not None:
        try:
            parameters = json.loads(params_json, parse_constant=reject_json_constant)
        except ValueError as exc:
            raise InvalidParameterError(f"--params-json is not valid JSON: {exc}") from None
        if not isinstance(parameters, dict):
            raise InvalidParameterError(f"--params-json must be a JSON object, not {type(parameters).__name__}")
    parameters.update(parse_key_value(item, "--param") for item in params)
    return parameters


# -- loading handlers --------------------------------------------------------------------------------------

def import_app(spec: str) -> None:
    """Import a dotted module name or a ``.py`` file, so the ``@handler`` functions in it register."""
    path = Path(spec)
    if spec.endswith(".py") or path.is_file():
        _import_file(path)
    else:
        _import_module(spec)


def _import_module(name: str) -> None:
    cwd = os.getcwd()
    if cwd not in sys.path:  # like `python -m`: modules of the project the command runs in are importable
        sys.path.insert(0, cwd)
    try:
        importlib.import_module(name)
    except ModuleNotFoundError as exc:
        if exc.name is None or not (name == exc.name or name.startswith(exc.name + ".")):
            raise import_failure(repr(name), exc) from exc  # it exists, but imports something missing
        raise InvalidParameterError(f"cannot import {name!r}: no module named {exc.name!r} "
                                    f"(give a module importable from {cwd} or a path to a .py file)") from None
    except Exception as exc:
        raise import_failure(repr(name), exc) from exc


def _import_file(path: Path) -> None:
    if not path.is_file():
        raise InvalidParameterError(f"no such file: {path}")
    path = path.resolve()
    if str(path.parent) not in sys.path:  # so the file can import its neighbours
        sys.path.insert(0, str(path.parent))
    module_name = f"_jobhandle_app_{path.stem}"
    spec = importlib.util.spec_from_file_location(module_name, path)
    if spec is None or spec.loader is None:
        raise InvalidParameterError(f"cannot load {path} as a Python module")
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module
    try:
        spec.loader.exec_module(module)
    except Exception as exc:
        del sys.modules[module_name]
        raise import_failure(str(path), exc) from exc


LIBRARY_DIRS = tuple(Path(p).resolve() for p in {*(sysconfig.get_paths()[k] for k in ("stdlib", "platstdlib",
                                                                                      "purelib", "platlib")),
                                                 str(Path(__file__).parent)})
"""Python's own modules, installed packages and jobhandle: where an app's import error is not to be shown."""


def import_failure(what: str, exc: Exception) -> InvalidParameterError:
    """``cannot import 'tasks': ZeroDivisionError: division by zero (/app/tasks.py, line 3)``: the exception
    and the line of the app's code it came from (a SyntaxError: where the syntax is wrong), on one line."""
    if isinstance(exc, SyntaxError):
        problem = f"{type(exc).__name__}: {' '.join(str(exc.msg).split())}"
        filename, lineno = exc.filename, exc.lineno
    else:
        problem = one_line(exc)
        frames = [f for f in traceback.extract_tb(exc.__traceback__) if not f.filename.startswith("<")]
        own = [f for f in frames if not any(Path(f.filename).resolve().is_relative_to(d) for d in LIBRARY_DIRS)]
        frame = (own or frames)[-1] if frames else None
        filename, lineno = (frame.filename, frame.lineno) if frame is not None else (None, None)
    where = f" ({filename}, line {lineno})" if filename else ""
    return InvalidParameterError(f"cannot import {what}: {problem}{where}")


# -- commands ----------------------------------------------------------------------------------------------

def _version(ctx: click.Context, param: click.Parameter, value: bool) -> None:
    if not value or ctx.resilient_parsing:
        return
    from importlib.metadata import PackageNotFoundError, version

    try:
        click.echo(f"jobhandle {version('jobhandle')}")
    except PackageNotFoundError:
        click.echo("jobhandle (not installed)")
    ctx.exit()


@click.group("jobhandle", cls=_Group, no_args_is_help=True,
             context_settings={"show_default": True, "max_content_width": 120})
@click.option("--version", is_flag=True, expose_value=False, is_eager=True, callback=_version,
              help="Print the version and exit.")
@click.option("--debug", is_flag=True, help="On an error, print its full traceback too, not only its one line.")
def app(debug: bool) -> None:
    """Background jobs: run workers, submit and watch jobs, inspect and manage the queue.

    Every command takes --store URL (default: $JOBHANDLE_STORE, else sqlite:///./jobhandle.db).
    """
    _Invocation.debug = debug


class StopRequest:
    """The first SIGTERM/SIGINT is recorded in ``signum``; later ones get their default behaviour (an immediate
    exit).

    The handler takes no lock: Python runs it in the main thread between two bytecodes, possibly inside
    ``threading.Event.wait`` while that holds its condition's lock, and ``Event.set`` there would wait for that
    lock forever (a SIGTERMed worker that never stopped). The main thread polls ``signum`` instead.
    """

    SIGNALS = (signal.SIGTERM, signal.SIGINT)

    def __init__(self) -> None:
        self.signum: int | None = None
        self._previous: dict[int, Any] = {}

    def wait(self, timeout: float) -> bool:
        """Whether a stop was requested, waiting up to ``timeout`` seconds for one."""
        deadline = time.monotonic() + timeout
        while self.signum is None and time.monotonic() < deadline:
            time.sleep(STOP_POLL_SECONDS)  # a signal interrupts the sleep; its handler runs; we look again
        return self.signum is not None

    def install(self) -> None:
        self._previous = {s: signal.signal(s, self._on_signal) for s in self.SIGNALS}

    def restore(self) -> None:
        for signum, previous in self._previous.items():
            signal.signal(signum, previous)

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        self.signum = signum
        # A second signal, either one, ends the graceful stop wherever the main thread is: exit at once.
        signal.signal(signal.SIGTERM, _force_exit)
        signal.signal(signal.SIGINT, _force_exit)


def _force_exit(signum: int, frame: FrameType | None) -> None:
    """A second SIGTERM/SIGINT: exit now with EXIT_FORCED, as a kill would (no clean-up that could block
    again; the jobs still running go back to the queue when their lease expires). A raw write: the handler may
    run while the main thread holds stdout's lock."""
    os.write(1, b"forced exit: jobs still running go back to the queue when their lease expires\n")
    os._exit(EXIT_FORCED)


def _serve_until_stopped(worker: Worker, request: StopRequest, grace: float) -> None:
    """Sleep until a signal or a dead worker loop; then stop, giving running jobs ``grace`` seconds."""
    while not request.wait(FAILURE_CHECK_SECONDS):
        if worker.stopping:  # set by a supervised loop that died
            break
    if worker.failure is not None:
        worker.stop(grace)
        fail(f"worker {worker.worker_id} stopped: a background loop died: {worker.failure!r}", cause=worker.failure)
    name = signal.Signals(request.signum).name if request.signum else "stop request"
    _print_flushed(f"{name} received: claiming no more jobs, running ones have {grace:g}s to finish "
                   "(signal again to exit at once)")
    _stop_interruptibly(worker, grace)
    _print_flushed(f"worker {worker.worker_id} stopped")


def _stop_interruptibly(worker: Worker, grace: float) -> None:
    """``worker.stop(grace)`` on a helper thread while the main thread waits in short timed steps.

    A signal may be delivered to any thread; Python runs its handler on the main thread at the next bytecode,
    which an untimed join (the stop's wait for its threads) would hold off until the join ends. Waiting in steps
    keeps a second signal's forced exit (_force_exit) within STOP_POLL_SECONDS."""
    failure: list[BaseException] = []

    def stop() -> None:
        try:
            worker.stop(grace)
        except BaseException as exc:  # re-raised on the main thread
            failure.append(exc)

    stopper = threading.Thread(target=stop, name="jobhandle-stop", daemon=True)
    stopper.start()
    while stopper.is_alive():
        stopper.join(STOP_POLL_SECONDS)
    if failure:
        raise failure[0]


@contextmanager
def queue_waiting_for_store(store: str | None, wait_for_store: float | None,
                            settings: Settings | None = None) -> Iterator[JobQueue]:
    """A JobQueue on ``store`` (default: the settings'), opened once the store answers (see ``--wait-for-store``);
    the queue and then the store are closed on exit."""
    settings = settings or Settings()
    opened = open_store(store or settings.store, sqlite_poll_interval=settings.sqlite_poll_interval,
                        wait_seconds=settings.wait_for_store if wait_for_store is None else wait_for_store)
    with closing(opened), JobQueue(opened, settings=settings) as q:
        yield q


def _print_flushed(line: str) -> None:
    """Print and flush: a supervisor or a test reading the worker's piped stdout sees each line at once."""
    click.echo(line)
    sys.stdout.flush()


@command("worker")
@click.option("--app", "-a", "apps", metavar="MODULE_OR_FILE", multiple=True,
              help="Module (dotted name) or .py file whose @handler functions to load; repeatable.")
@click.option("--queue", "-q", "queues", multiple=True, help="Queue to take jobs from; repeatable (default: default).")
@click.option("--name", help="Worker name (default: HOST-PID).")
@click.option("--concurrency", type=click.IntRange(min=1), show_default=False,
              help="Jobs run at once (default: $JOBHANDLE_WORKER_CONCURRENCY, else 4).")
@click.option("--mode", type=click.Choice(WORKER_MODES, case_sensitive=False), show_default=False,
              help="thread: handlers run in the worker's threads; process: each slot runs its jobs in a child "
                   "process, killed for real on cancel and timeout and held to $JOB_MAX_MEMORY_MB "
                   "(default: $JOBHANDLE_WORKER_MODE, else thread).")
@click.option("--grace", type=click.FloatRange(min=0), show_default=False,
              help="Seconds running jobs may still finish after SIGTERM/SIGINT; the rest are handed back "
                   "(default: $JOBHANDLE_SHUTDOWN_GRACE, else 30).")
@log_level_option
@click.option("--heartbeat-file", type=click.Path(path_type=Path), metavar="PATH", show_default=False,
              help="Write each heartbeat here (JSON), for `jobhandle health --heartbeat-file` probes that do not "
                   "reach the store (default: $JOBHANDLE_HEARTBEAT_FILE, else none).")
@click.option("--metrics-port", type=click.IntRange(1, 65535), show_default=False,
              help="Serve this worker's own metrics (store call latency and errors, slots) on "
                   "http://HOST:PORT/metrics.")
@click.option("--metrics-host", default="127.0.0.1",
              help="The interface --metrics-port listens on (0.0.0.0 for a scraper outside the machine or "
                   "container).")
@wait_for_store_option
@click.option("--redis", metavar="URL", show_default=False, help="Seed 003's name for --store.")
@store_option
def worker_command(apps: tuple[str, ...], queues: tuple[str, ...], name: str | None, concurrency: int | None,
                   mode: str | None, grace: float | None, log_level: str, heartbeat_file: Path | None,
                   metrics_port: int | None, metrics_host: str, wait_for_store: float | None, redis: str | None,
                   store: str | None) -> None:
    """Run a worker in the foreground until SIGTERM or SIGINT (Ctrl-C).

    Example: jobhandle worker --app myapp.tasks --concurrency 4 --store sqlite:///jobs.db
    """
    logging.basicConfig(level=log_level, stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    for spec in apps:
        import_app(spec)
    handlers = default_registry.names()
    if not handlers:
        click.echo("warning: no handlers registered (load them with --app MODULE_OR_FILE); "
                   "jobs this worker claims will fail with UnknownHandlerError", err=True)
    if redis is not None and store is not None and redis != store:
        raise InvalidParameterError("--redis is another name for --store: give one of them")
    store = store or redis
    # The store is opened before the stop handler is installed: a signal while waiting for it ends the process.
    settings = Settings() if heartbeat_file is None else Settings(heartbeat_file=heartbeat_file)
    with queue_waiting_for_store(store, wait_for_store, settings) as q:
        request = StopRequest()
        request.install()
        try:
            worker = q.worker(concurrency, queues=queues or ("default",), name=name, mode=mode)
            if metrics_port is not None:
                worker.metrics.serve(metrics_port, metrics_host)
            worker.start()
            _print_flushed(f"worker {worker.worker_id} started: store {masked_url(store or q.settings.store)}, "
                           f"queues {','.join(worker.queues)}, concurrency {worker.concurrency}, "
                           f"mode {worker.mode}, "
                           f"handlers {', '.join(handlers) or '(none)'}")
            _serve_until_stopped(worker, request, q.settings.shutdown_grace if grace is None else grace)
        finally:
            request.restore()


@command("pool")
@click.option("--app", "-a", "apps", metavar="MODULE_OR_FILE", multiple=True,
              help="Passed to each worker; repeatable.")
@click.option("--queue", "-q", "queues", multiple=True,
              help="Queue the workers take jobs from; repeatable (default: default).")
@click.option("--min", "min_workers", type=click.IntRange(min=0), show_default=False,
              help="Fewest workers (default: $JOB_QUEUE_WORKERS_MIN, else 2).")
@click.option("--max", "max_workers", type=click.IntRange(min=1), show_default=False,
              help="Most workers (default: $JOB_QUEUE_WORKERS_MAX, else 10).")
@click.option("--concurrency", type=click.IntRange(min=1), show_default=False,
              help="Slots of each worker (default: $JOBHANDLE_WORKER_CONCURRENCY, else 4).")
@click.option("--name", default="pool", help="The pool's name; its workers are NAME-1, NAME-2...")
@click.option("--grace", type=click.FloatRange(min=0), show_default=False,
              help="Seconds a worker leaving the pool (scaled down, or the pool stopping) lets its running jobs "
                   "finish (default: $JOBHANDLE_SHUTDOWN_GRACE, else 30).")
@click.option("--up-wait", type=click.FloatRange(min=0), default=2.0,
              help="Grow only once the oldest pending job has waited this long (seconds).")
@click.option("--up-cooldown", type=click.FloatRange(min=0), default=10.0,
              help="Seconds after a change before growing again.")
@click.option("--down-idle", type=click.FloatRange(min=0), default=60.0,
              help="Shrink by one worker once a worker's worth of slots has been spare this long.")
@click.option("--down-cooldown", type=click.FloatRange(min=0), default=30.0,
              help="Seconds after a change before shrinking again.")
@click.option("--interval", type=click.FloatRange(min=0.05), default=1.0, help="Seconds between looks at the queues.")
@click.option("--heartbeat-file", type=click.Path(path_type=Path), metavar="PATH", show_default=False,
              help="Write the pool's state here (JSON) every round, for `jobhandle health --heartbeat-file` probes.")
@click.option("--metrics-port", type=click.IntRange(1, 65535), show_default=False,
              help="Serve the pool's metrics (workers, draining, what it did) on http://HOST:PORT/metrics.")
@click.option("--metrics-host", default="127.0.0.1", help="The interface --metrics-port listens on.")
@log_level_option
@store_option
def pool_command(apps: tuple[str, ...], queues: tuple[str, ...], min_workers: int | None, max_workers: int | None,
                 concurrency: int | None, name: str, grace: float | None, up_wait: float, up_cooldown: float,
                 down_idle: float, down_cooldown: float, interval: float, heartbeat_file: Path | None,
                 metrics_port: int | None, metrics_host: str, log_level: str, store: str | None) -> None:
    """Run a pool of worker processes that grows with the backlog and shrinks when idle, until SIGTERM.

    It grows when more jobs wait (pending, plus claimed and running) than its workers have slots and the oldest
    has waited --up-wait seconds; it shrinks one worker at a time, draining it (no job is killed); a worker
    that dies is replaced alone, with backoff. Example: jobhandle pool --app tasks.py --min 1 --max 8
    """
    from .pool import Pool, PoolConfig, ScalingPolicy

    logging.basicConfig(level=log_level, stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    settings = Settings()
    policy = ScalingPolicy(
        min_workers=settings.workers_min if min_workers is None else min_workers,
        max_workers=settings.workers_max if max_workers is None else max_workers,
        up_wait=up_wait, up_cooldown=up_cooldown, down_idle=down_idle, down_cooldown=down_cooldown,
        cpu_threshold=settings.cpu_threshold, memory_threshold=settings.memory_threshold,
        max_running=settings.global_max_concurrent_jobs)
    config = PoolConfig(store=store or settings.store, apps=[str(Path(a).resolve()) if a.endswith(".py") else a
                                                             for a in apps],
                        queues=queues or ("default",),
                        concurrency=settings.worker_concurrency if concurrency is None else concurrency,
                        name=name, grace=settings.shutdown_grace if grace is None else grace,
                        interval=interval, policy=policy, heartbeat_file=heartbeat_file)
    with queue_waiting_for_store(config.store, None, settings) as q:
        pool = Pool(config, queue=q)
        if metrics_port is not None:
            pool.metrics.serve(metrics_port, metrics_host)
        code = pool.run()
    raise click.exceptions.Exit(code)


@command("submit")
@click.argument("job_type", metavar="TYPE", help="The job type (a handler's name).")
@click.option("--param", "-p", "params", metavar="KEY=VALUE", multiple=True,
              help="A parameter; the value is JSON if it parses (n=3, flag=true, tags='[\"a\"]'), else text. "
                   "Repeatable.")
@click.option("--params-json", metavar="JSON",
              help="All parameters as one JSON object; --param values override its keys.")
@click.option("--priority", help="low, normal, high, urgent or an integer (higher runs first).")
@click.option("--user", help="User the job belongs to (default: default_user).")
@click.option("--queue", default="default", help="Queue to put the job on.")
@click.option("--delay", type=float, metavar="SECONDS", help="Run no sooner than this.")
@click.option("--max-retries", type=int, help="Retries after a failed attempt (default: $JOB_MAX_RETRIES, else 3).")
@click.option("--timeout", type=float, metavar="SECONDS",
              help="Fail an attempt running longer (default: $JOB_DEFAULT_TIMEOUT).")
@click.option("--idempotency-key", help="Submitting the same key again returns the existing job.")
@click.option("--wait", is_flag=True, help="Show live progress until the job ends; exit 1 unless it completed.")
@click.option("--timeout-wait", type=float, metavar="SECONDS",
              help="With --wait: give up waiting after this long (exit 1).")
@json_option
@store_option
def submit_command(job_type: str, params: tuple[str, ...], params_json: str | None, priority: str | None,
                   user: str | None, queue: str, delay: float | None, max_retries: int | None,
                   timeout: float | None, idempotency_key: str | None, wait: bool, timeout_wait: float | None,
                   as_json: bool, store: str | None) -> None:
    """Submit a job and print its id.

    Example: jobhandle submit resize --param path=a.png --param width=200 --priority high --wait
    """
    from .cli_output import print_outcome, watch

    parameters = build_parameters(params, params_json)
    with JobQueue(store) as q:
        job = q.submit(job_type, parameters, priority=priority, user_id=user, queue=queue, delay_seconds=delay,
                       max_retries=max_retries, timeout_seconds=timeout, idempotency_key=idempotency_key)
        if not wait:
            if as_json:
                _print_json(job.to_dict())
            else:
                click.echo(job.job_id)
            return
        if as_json:
            final = q.wait(job.job_id, timeout_wait)
            _print_json(final.to_dict())
        else:
            click.echo(job.job_id)
            console = _console()
            [final] = watch(q, [job.job_id], timeout_wait, console)
            print_outcome(console, final)
    if final.status is not JobStatus.COMPLETED:
        raise click.exceptions.Exit(EXIT_FAILED)


@command("status")
@job_id_argument
@json_option
@store_option
def status_command(job_id: str, as_json: bool, store: str | None) -> None:
    """Show one job: status, progress, times, attempts, error, result, metrics.

    Example: jobhandle status 3f2c9a1e
    """
    from .cli_output import job_details

    with JobQueue(store) as q:
        job = q.get(resolve_job_id(q, job_id))
    if as_json:
        _print_json(job.to_dict())
    else:
        _console().print(job_details(job))


@command("list")
@click.option("--status", "-s", multiple=True, help="Only jobs in this status; repeatable.")
@click.option("--type", "-t", "job_type", help="Only jobs of this type.")
@click.option("--user", help="Only this user's jobs.")
@click.option("--queue", help="Only jobs of this queue.")
@click.option("--search", help="The start of a job id or of a user id.")
@click.option("--sort", default="-created_at",
              help="created_at, status, progress, priority, started_at or completed_at; - for descending.")
@click.option("--limit", type=int, default=50, help="At most this many jobs (1-10000).")
@json_option
@store_option
def list_command(status: tuple[str, ...], job_type: str | None, user: str | None, queue: str | None,
                 search: str | None, sort: str, limit: int, as_json: bool, store: str | None) -> None:
    """List jobs, newest first.

    Example: jobhandle list --status failed --status cancelled --type resize --limit 20
    """
    from .cli_output import jobs_table

    with JobQueue(store) as q:
        jobs = q.list(status or None, job_type=job_type, user_id=user, queue=queue, search=search, sort=sort,
                      limit=limit)
    if as_json:
        _print_json([job.to_dict() for job in jobs])
    elif not jobs:
        click.echo("no jobs")
    else:
        _console().print(jobs_table(jobs))


@command("cancel")
@job_id_argument
@click.option("--reason", help="Kept as the job's error message.")
@store_option
def cancel_command(job_id: str, reason: str | None, store: str | None) -> None:
    """Cancel a job that has not finished (a running handler is told to stop).

    Example: jobhandle cancel 3f2c9a1e --reason "wrong input"
    """
    with JobQueue(store) as q:
        job = q.cancel(resolve_job_id(q, job_id), reason)
    click.echo(f"{job.job_id} {job.status.value}")


@command("restart")
@job_id_argument
@store_option
def restart_command(job_id: str, store: str | None) -> None:
    """Run a failed or cancelled job again (same id, attempts reset).

    Example: jobhandle restart 3f2c9a1e
    """
    with JobQueue(store) as q:
        job = q.restart(resolve_job_id(q, job_id))
    click.echo(f"{job.job_id} {job.status.value}")


@command("stats")
@json_option
@store_option
def stats_command(as_json: bool, store: str | None) -> None:
    """Queue statistics: jobs by status and type, workers, health, last cleanup.

    Example: jobhandle stats
    """
    from .cli_output import stats_table

    with JobQueue(store) as q:
        stats = q.stats()
    if as_json:
        _print_json(stats)
    else:
        _console().print(stats_table(stats))


@command("workers")
@json_option
@store_option
def workers_command(as_json: bool, store: str | None) -> None:
    """Registered workers with their heartbeat age and running jobs, then the worker pools with their size,
    range, load and latest scaling decision (``jobhandle pools`` shows every decision).

    Example: jobhandle workers
    """
    from .cli_output import pool_event_line, pools_table, workers_table

    with JobQueue(store) as q:
        workers = q.workers()
        pools = [] if as_json else q.pools()
    if as_json:
        _print_json(workers)
        return
    console = _console()
    if workers:
        console.print(workers_table(workers))
    else:
        click.echo("no workers")
    if pools:
        console.print(pools_table(pools))
        for p in pools:
            if p["events"]:
                console.print(pool_event_line(p, p["events"][-1]))


@command("pools")
@json_option
@store_option
def pools_command(as_json: bool, store: str | None) -> None:
    """Worker pools (`jobhandle pool`) and what each did lately: scaled (from, to, why), replaced a worker.

    Example: jobhandle pools
    """
    from rich.text import Text

    from .cli_output import pool_events_table, pools_table

    with JobQueue(store) as q:
        pools = q.pools()
    if as_json:
        _print_json(pools)
        return
    if not pools:
        click.echo("no pools")
        return
    console = _console()
    console.print(pools_table(pools))
    for p in pools:
        console.print(Text(f"{p['name']} on {p['hostname']} (pid {p['pid']}):", style="bold"))
        console.print(pool_events_table(p["events"]))


@command("health")
@click.option("--worker", metavar="NAME_OR_ID", show_default=False,
              help="Check one worker instead: registered, with a heartbeat within $JOBHANDLE_WORKER_TIMEOUT.")
@click.option("--heartbeat-file", type=click.Path(path_type=Path), metavar="PATH", show_default=False,
              help="Check a worker's heartbeat file instead (`jobhandle worker --heartbeat-file`), without reaching "
                   "the store.")
@click.option("--max-age", type=click.FloatRange(min=0), show_default=False,
              help="With --heartbeat-file: the oldest heartbeat that counts (default: 3 heartbeat intervals).")
@click.option("--need-store", is_flag=True,
              help="With --heartbeat-file: also fail when the last heartbeat did not reach the store.")
@click.option("--strict", is_flag=True, help="Exit 1 when degraded too (default: only when unhealthy).")
@json_option
@store_option
def health_command(worker: str | None, heartbeat_file: Path | None, max_age: float | None, need_store: bool,
                   strict: bool, as_json: bool, store: str | None) -> None:
    """Health of the store and its workers: healthy, degraded (with the issues) or unhealthy (the store does not
    answer); exit 1 when unhealthy. Fast enough for a container HEALTHCHECK.

    Examples: jobhandle health --strict; jobhandle health --worker w1;
    jobhandle health --heartbeat-file /run/jobhandle/worker.json
    """
    from . import health

    if heartbeat_file is not None:
        settings = Settings()
        report = health.heartbeat_file_report(heartbeat_file, 3 * settings.heartbeat_interval if max_age is None
                                              else max_age, need_store=need_store)
    else:
        with JobQueue(store) as q:
            report = health.store_report(q) if worker is None else health.worker_report(q, worker)
    if as_json:
        _print_json(report.to_dict())
    else:
        click.echo(report.status + "".join(f"\n- {issue}" for issue in report.issues))
    if not report.ok and (strict or report.status in ("unhealthy", "dead")):
        raise click.exceptions.Exit(EXIT_FAILED)


@command("cleanup")
@click.option("--days-old", type=click.FloatRange(min=0),
              help="Remove finished jobs older than this many days, instead of applying the retention settings "
                   "(JOBHANDLE_RETENTION_*_HOURS).")
@store_option
def cleanup_command(days_old: float | None, store: str | None) -> None:
    """Remove finished (completed, failed, cancelled) jobs past their retention.

    Example: jobhandle cleanup --days-old 7
    """
    with JobQueue(store) as q:
        removed = q.cleanup() if days_old is None else q.cleanup_old_jobs(days_old)
    click.echo(f"removed {removed} job{'' if removed == 1 else 's'}")


@command("serve")
@click.option("--host", default="127.0.0.1", help="Interface to listen on.")
@click.option("--port", type=click.IntRange(1, 65535), default=8000, help="Port to listen on.")
@click.option("--workers", type=click.IntRange(min=0), default=0,
              help="Worker slots (threads) run in this process; 0: API only (run `jobhandle worker` apart).")
@click.option("--app", "-a", "apps", metavar="MODULE_OR_FILE", multiple=True,
              help="Module (dotted name) or .py file whose @handler functions to load; repeatable.")
@log_level_option
@wait_for_store_option
@store_option
def serve_command(host: str, port: int, workers: int, apps: tuple[str, ...], log_level: str,
                  wait_for_store: float | None, store: str | None) -> None:
    """Run the web dashboard (at /) and the REST API (docs at /docs) until SIGTERM or SIGINT, optionally with
    an in-process worker.

    API keys: $JOBHANDLE_API_KEYS or $JOBHANDLE_API_KEYS_FILE (see docs/api.md); none: no authentication.

    Example: jobhandle serve --app tasks.py --workers 4 --store sqlite:///jobs.db
    """
    import uvicorn  # imported here: the other commands should not pay for loading the web stack

    from .api import create_app

    logging.basicConfig(level=log_level, stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    for spec in apps:
        import_app(spec)
    # uvicorn shuts down gracefully on SIGTERM/SIGINT and then raises the signal again; caught here, it lets
    # the queue below stop its worker (running jobs get the shutdown grace) instead of killing the process.
    with queue_waiting_for_store(store, wait_for_store) as q:  # before the stop handler, as for the worker
        request = StopRequest()
        request.install()
        try:
            app = create_app(q)  # refuses bad API key entries before anything listens
            if workers:
                q.start(workers)
            base = f"http://{host}:{port}"
            _print_flushed(f"jobhandle dashboard {base}/, API {base}/api/v1/jobs (docs {base}/docs), "
                           f"store {masked_url(store or q.settings.store)}, "
                           f"{workers or 'no'} in-process worker slot{'' if workers == 1 else 's'}, "
                           f"authentication {'on' if app.state.jobhandle.auth.enabled else 'off'}")
            # The web stack leaves a few hundred thousand long-lived objects that every full garbage collection
            # would walk again (80-190 ms pauses, the tail of request latency under load): set them aside.
            gc.collect()
            gc.freeze()
            uvicorn.run(app, host=host, port=port, log_level=log_level.lower())
        finally:
            request.restore()


def _default_demo_dir() -> Path:
    """The repository's docs/ folder when running from a source checkout, else the current directory."""
    docs = Path(__file__).resolve().parents[2] / "docs"
    return docs if docs.is_dir() else Path.cwd()


def _import_demo_handlers(module: str) -> None:
    try:
        import_app(module)
    except InvalidParameterError as exc:
        if module != DEMO_HANDLERS:
            raise
        raise JobHandleError(f"the demo needs the bundled document handlers ({DEMO_HANDLERS}), which do not "
                             f"import here: {exc.message}") from exc
    missing = [name for name in ("process_batch", "process_document") if name not in default_registry]
    if missing:
        raise JobHandleError(f"{module} did not register the demo's job type(s): {', '.join(missing)}")


def _submit_demo_jobs(q: JobQueue, directory: Path) -> list[Job]:
    documents = sorted(p for p in directory.iterdir() if p.is_file() and p.suffix.lower() in DEMO_SUFFIXES)
    specs = [{"job_type": "process_batch", "parameters": {"input_dir": str(directory)}, "user_id": "demo"}]
    specs += [{"job_type": "process_document", "parameters": {"file_path": str(path)}, "user_id": "demo"}
              for path in documents[:DEMO_DOCUMENTS]]
    return q.submit_many(specs)


@command("demo")
@click.option("--input-dir", type=click.Path(path_type=Path), show_default=False,
              help="Folder of documents to process (default: the docs/ folder of a source checkout, else the "
                   "current directory).")
@click.option("--handlers", metavar="MODULE_OR_FILE", default=DEMO_HANDLERS,
              help="Where process_document and process_batch come from.")
@click.option("--concurrency", type=click.IntRange(min=1), default=4, help="Worker slots.")
@click.option("--timeout", type=click.FloatRange(min=0), default=300.0, help="Give up after this many seconds.")
@store_option
def demo_command(input_dir: Path | None, handlers: str, concurrency: int, timeout: float, store: str | None) -> None:
    """A first run: process a folder of documents with an in-process worker, with live progress.

    Example: jobhandle demo --input-dir ./docs
    """
    from .cli_output import jobs_table, result_summary, stats_table, watch

    _import_demo_handlers(handlers)
    directory = input_dir or _default_demo_dir()
    if not directory.is_dir():
        raise InvalidParameterError(f"--input-dir {directory}: not a directory")
    # The document handlers read only inside their configured roots; unless those are set, the folder the user
    # named here is the one they may read (this process only: the demo's worker runs in it).
    os.environ.setdefault("JOBHANDLE_DOCUMENTS_INPUT_ROOTS", str(directory.resolve()))
    console = _console()
    with JobQueue(store) as q:
        click.echo(f"demo: processing {directory.resolve()} with {concurrency} worker slots, "
                   f"store {store or q.settings.store}")
        with q.worker(concurrency, name="demo"):
            jobs = _submit_demo_jobs(q, directory)
            finished = watch(q, [job.job_id for job in jobs], timeout, console)
            console.print(jobs_table(finished))
            for job in finished:
                click.echo(f"{job.job_id[:8]} {job.job_type}: {result_summary(job.result)}")
            console.print(stats_table(q.stats()))
    click.echo("next: jobhandle list, jobhandle status ID, jobhandle worker --app YOUR_MODULE")
    if any(job.status is not JobStatus.COMPLETED for job in finished):
        raise click.exceptions.Exit(EXIT_FAILED)


# -- schedules ---------------------------------------------------------------------------------------------

schedule_app = _Group("schedule", help="Recurring jobs: add, list, pause, resume, delete.", no_args_is_help=True)
app.add_command(schedule_app)
schedule_id_argument = click.argument(
    "schedule_id", metavar="SCHEDULE_ID", help="The schedule's id (see: jobhandle schedule list).")


def schedule_line(s: Schedule) -> str:
    """One schedule on one line (the id whole, to paste into pause/resume/delete)."""
    name = f"  {s.name}" if s.name else ""
    state = "paused" if s.paused else f"next {_short_time(s.next_fire_at)} UTC"
    return f"{s.schedule_id}  {s.job_type}  \"{s.cron_expression}\" {s.timezone}  {state}{name}"


def _short_time(when: datetime | None) -> str:
    return "" if when is None else when.strftime("%Y-%m-%d %H:%M")


@command("add", schedule_app)
@click.argument("job_type", metavar="TYPE", help="The job type (handler name) to run.")
@click.argument("cron_expression", metavar="CRON", help='5-field cron expression, e.g. "0 9 * * 1-5" (quote it).')
@click.option("--param", "-p", "params", metavar="KEY=VALUE", multiple=True,
              help="A job parameter; VALUE is JSON when it parses. Repeatable.")
@click.option("--params-json", metavar="JSON", help="All parameters as one JSON object.")
@click.option("--tz", help="IANA time zone of the expression (default UTC).")
@click.option("--name", help="A name to recognise the schedule by.")
@click.option("--priority", help="Integer or LOW/NORMAL/HIGH/URGENT.")
@click.option("--user", help="The user the jobs run for.")
@click.option("--queue", default="default", help="The queue the jobs go to.")
@json_option
@store_option
def schedule_add_command(job_type: str, cron_expression: str, params: tuple[str, ...], params_json: str | None,
                         tz: str | None, name: str | None, priority: str | None, user: str | None, queue: str,
                         as_json: bool, store: str | None) -> None:
    """Run a job type on a cron schedule: one job per fire time, however many workers run.

    Example: jobhandle schedule add report "0 9 * * 1-5" --tz Europe/Paris --param team=ops
    """
    with JobQueue(store) as q:
        schedule = q.schedule(job_type, cron_expression, build_parameters(params, params_json),
                              timezone=tz, name=name, priority=priority, user_id=user, queue=queue)
    if as_json:
        _print_json(schedule.to_dict())
    else:
        click.echo(f"{schedule.schedule_id} next fire {_short_time(schedule.next_fire_at)} UTC")


@command("list", schedule_app)
@json_option
@store_option
def schedule_list_command(as_json: bool, store: str | None) -> None:
    """Every schedule with its next and last fire times.

    Example: jobhandle schedule list
    """
    with JobQueue(store) as q:
        schedules = q.schedules()
    if as_json:
        _print_json([s.to_dict() for s in schedules])
    elif not schedules:
        click.echo("no schedules")
    else:
        for schedule in schedules:
            click.echo(schedule_line(schedule))


def _change_schedule(action: str, schedule_id: str, store: str | None) -> None:
    with JobQueue(store) as q:
        change = {"pause": q.pause_schedule, "resume": q.resume_schedule, "delete": q.delete_schedule}[action]
        schedule = change(schedule_id)
    state = "deleted" if action == "delete" else ("paused" if schedule.paused else "active")
    click.echo(f"{schedule.schedule_id} {state}")


@command("pause", schedule_app)
@schedule_id_argument
@store_option
def schedule_pause_command(schedule_id: str, store: str | None) -> None:
    """Stop firing (the job of the coming fire is cancelled).

    Example: jobhandle schedule pause 0b6f...
    """
    _change_schedule("pause", schedule_id, store)


@command("resume", schedule_app)
@schedule_id_argument
@store_option
def schedule_resume_command(schedule_id: str, store: str | None) -> None:
    """Fire again, from the next fire time after now.

    Example: jobhandle schedule resume 0b6f...
    """
    _change_schedule("resume", schedule_id, store)


@command("delete", schedule_app)
@schedule_id_argument
@store_option
def schedule_delete_command(schedule_id: str, store: str | None) -> None:
    """Remove the schedule (jobs it already ran are kept).

    Example: jobhandle schedule delete 0b6f...
    """
    _change_schedule("delete", schedule_id, store)


def main() -> None:
    """The ``jobhandle`` console script."""
    app(prog_name="jobhandle")
