"""jobhandle and Huey (SqliteHuey) measured side by side, in one run.

    .venv/bin/python bench/run.py            # everything; table on stdout, raw JSON in bench/results/latest.json
    .venv/bin/python bench/run.py --profile  # only jobhandle's in-process end-to-end case, under cProfile

What is measured and why it is measured this way: bench/README.md.
"""

from __future__ import annotations

import argparse
import compileall
import cProfile
import io
import json
import os
import platform
import pstats
import signal
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path
from typing import Any, Protocol

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # `bench._huey_app` must have the same module name here and in huey_consumer

import bench._jobhandle_app  # noqa: E402,F401 - registers the handlers in jobhandle's default registry
from bench._huey_app import make_huey  # noqa: E402
from jobhandle import JobQueue  # noqa: E402

RESULTS = ROOT / "bench" / "results"
CHECK_INTERVAL = 0.05
"""Completion checks happen at most this often (20/s). Detection delay is not measured: the timings come from
the timestamps the handlers record, so a check only has to be correct, not prompt."""
STOP_GRACE = 10.0
HUEY_TUNED_ARGS = ["-d", "0.001", "-b", "1.0", "-m", "0.01", "-q"]
"""Poll every 1 ms without backoff (Huey's defaults: start at 0.1 s, x1.15 per empty poll, up to 10 s), and
log warnings only (by default Huey logs two lines per task)."""


class BenchError(RuntimeError):
    """A measurement could not be completed correctly (timeout, dead worker, failed job, missing result)."""


# -- parameters and configurations -----------------------------------------------------------------------

@dataclass(frozen=True)
class Params:
    enqueue_n: int = 5000
    bulk_n: int = 20000
    e2e_n: int = 10000
    pickup_n: int = 200
    pickup_interval_ms: float = 20.0
    concurrency: int = 2
    timeout: float = 120.0


@dataclass(frozen=True)
class Config:
    name: str
    description: str
    system: str  # "jobhandle" or "huey"
    in_process: bool = False  # jobhandle: worker threads in the submitting process
    worker_type: str = "thread"  # huey: consumer -k
    tuned: bool = False  # huey: fast polling, quiet log, synchronous=NORMAL


CONFIGS = [
    Config("jobhandle-inprocess", "jobhandle, q.worker(concurrency=2) threads in the submitting process",
           "jobhandle", in_process=True),
    Config("jobhandle-process", "jobhandle, separate worker process, --concurrency 2", "jobhandle"),
    Config("huey-thread-default", "huey_consumer -w 2 -k thread, Huey defaults", "huey"),
    Config("huey-thread-tuned", "huey_consumer -w 2 -k thread, tuned", "huey", tuned=True),
    Config("huey-process-default", "huey_consumer -w 2 -k process, Huey defaults", "huey", worker_type="process"),
    Config("huey-process-tuned", "huey_consumer -w 2 -k process, tuned", "huey", worker_type="process",
           tuned=True),
]


@dataclass
class Result:
    """One configuration's measurements; None where a measurement does not apply."""

    config: str
    description: str
    submit_per_second: float | None = None
    bulk_per_second: float | None = None
    bulk_is_one_by_one: bool = False
    e2e_jobs_per_second: float | None = None
    e2e_wall_seconds: float | None = None
    drain_jobs_per_second: float | None = None
    pickup_p50_ms: float | None = None
    pickup_p99_ms: float | None = None
    pickup_max_ms: float | None = None
    notes: list[str] = field(default_factory=list)


# -- processes and deadlines -----------------------------------------------------------------------------

def compile_jobhandle() -> None:
    """Write jobhandle's bytecode, as ``pip install`` does for every installed package (the peers' included):
    a checkout run with PYTHONDONTWRITEBYTECODE (as on these machines) would otherwise compile every module of
    jobhandle, and only of jobhandle, each time a worker starts."""
    import jobhandle

    compileall.compile_dir(Path(jobhandle.__file__).parent, quiet=1)


class WorkerProcess:
    """A worker subprocess in its own process group, with its output in a log file."""

    def __init__(self, name: str, argv: list[str], log_path: Path, env: dict[str, str] | None = None) -> None:
        self.name = name
        self.log_path = log_path
        with open(log_path, "wb") as log:
            self.proc = subprocess.Popen(argv, cwd=ROOT, env={**os.environ, **(env or {})}, stdout=log,
                                         stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                         start_new_session=True)

    def check_alive(self) -> None:
        code = self.proc.poll()
        if code is not None:
            raise BenchError(f"{self.name} exited with code {code}:\n{self.log_tail()}")

    def log_tail(self, lines: int = 20) -> str:
        text = self.log_path.read_text(errors="replace").splitlines()
        return "\n".join(text[-lines:])

    def stop(self) -> None:
        """SIGTERM, then SIGKILL after STOP_GRACE; then kill whatever is left in its process group (Huey's
        forked workers)."""
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(STOP_GRACE)
            except subprocess.TimeoutExpired:
                print(f"  {self.name} ignored SIGTERM for {STOP_GRACE:.0f}s: killing it", file=sys.stderr)
                self.proc.kill()
                self.proc.wait(STOP_GRACE)
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


@contextmanager
def time_limit(seconds: float, what: str) -> Iterator[float]:
    """Yield a soft deadline (time.monotonic) for the waits; SIGALRM a few seconds later is the hard stop for
    anything else that might block."""

    def expired(signum: int, frame: object) -> None:
        raise BenchError(f"{what}: still running after {seconds + 5:.0f}s")

    previous = signal.signal(signal.SIGALRM, expired)
    signal.setitimer(signal.ITIMER_REAL, seconds + 5)
    try:
        yield time.monotonic() + seconds
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def remaining(deadline: float, what: str) -> float:
    left = deadline - time.monotonic()
    if left <= 0:
        raise BenchError(f"{what}: deadline passed")
    return left


# -- the two systems behind one interface ----------------------------------------------------------------

class System(Protocol):
    """What the measurements need from a system, on one fresh database."""

    def submit_noop(self) -> None: ...
    def submit_bulk(self, n: int) -> bool: ...  # False: no bulk API, nothing submitted
    def prepare_noops(self, n: int) -> None: ...  # fastest way to enqueue n no-ops (not timed)
    def submit_latency(self) -> Any: ...  # returns a handle for latencies()
    def start_worker(self) -> None: ...
    def wait_completed(self, n: int, deadline: float) -> None: ...
    def noop_times(self) -> list[float]: ...
    def latencies(self, handles: list[Any]) -> list[float]: ...
    def close(self) -> None: ...


class JobhandleSystem:
    def __init__(self, workdir: Path, config: Config, params: Params, worker_argv: WorkerArgv) -> None:
        self.workdir = workdir
        self.url = f"sqlite:///{workdir / 'jh.db'}"
        self.config = config
        self.params = params
        self.worker_argv = worker_argv
        self.queue = JobQueue(self.url)
        self.process: WorkerProcess | None = None

    def submit_noop(self) -> None:
        self.queue.submit("noop")

    def submit_bulk(self, n: int) -> bool:
        self.queue.submit_many([{"job_type": "noop"}] * n)
        return True

    def prepare_noops(self, n: int) -> None:
        self.submit_bulk(n)

    def submit_latency(self) -> str:
        return self.queue.submit("latency", {"submitted": time.time()}).job_id

    def start_worker(self) -> None:
        if self.config.in_process:
            self.queue.worker(concurrency=self.params.concurrency).start()
        else:
            argv = self.worker_argv(self.url, self.params.concurrency)
            self.process = WorkerProcess("jobhandle worker", argv, self.workdir / "worker.log")

    def wait_completed(self, n: int, deadline: float) -> None:
        """Block on the store's change signal between counter reads, at most 20 reads a second."""
        store = self.queue.store
        while True:
            seen = store.change_version
            by_status = store.counts().by_status
            if by_status.get("failed") or by_status.get("cancelled"):
                raise BenchError(f"jobs did not complete: {by_status}")
            done = by_status.get("completed", 0)
            if done >= n:
                return
            if self.process is not None:
                self.process.check_alive()
            checked = time.monotonic()
            left = remaining(deadline, f"{done} of {n} jobhandle jobs completed (by status: {by_status})")
            store.wait_for_change(seen, min(1.0, left))
            time.sleep(max(0.0, checked + CHECK_INTERVAL - time.monotonic()))  # throttle, not a wait for work

    def noop_times(self) -> list[float]:
        jobs, page = [], 10000
        while batch := self.queue.list("completed", job_type="noop", limit=page, offset=len(jobs)):
            jobs.extend(batch)
        return [job.result for job in jobs]

    def latencies(self, handles: list[str]) -> list[float]:
        return [self.queue.get(job_id).result for job_id in handles]

    def close(self) -> None:
        try:
            if self.process is not None:
                self.process.stop()
        finally:
            self.queue.close()


class HueySystem:
    def __init__(self, workdir: Path, config: Config, params: Params) -> None:
        self.workdir = workdir
        self.config = config
        self.params = params
        self.db = str(workdir / "huey.db")
        self.sync = "normal" if config.tuned else "default"
        self.huey, self.noop, self.latency = make_huey(self.db, self.sync)
        self.process: WorkerProcess | None = None

    def submit_noop(self) -> None:
        self.noop()

    def submit_bulk(self, n: int) -> bool:
        return False

    def prepare_noops(self, n: int) -> None:
        for _ in range(n):
            self.noop()

    def submit_latency(self) -> Any:
        return self.latency(time.time())

    def start_worker(self) -> None:
        argv = [sys.executable, "-m", "huey.bin.huey_consumer", "bench._huey_app.huey",
                "-w", str(self.params.concurrency), "-k", self.config.worker_type]
        if self.config.tuned:
            argv += HUEY_TUNED_ARGS
        env = {"BENCH_HUEY_DB": self.db, "BENCH_HUEY_SYNC": self.sync}
        self.process = WorkerProcess("huey_consumer", argv, self.workdir / "consumer.log", env)

    def wait_completed(self, n: int, deadline: float) -> None:
        """Huey has no change notification: read the result-store size 20 times a second. Every task returns
        a value, so each finished task leaves exactly one result (a failed one leaves an error result, which
        noop_times / latencies then report)."""
        while (done := self.huey.result_count()) < n:
            if self.process is not None:
                self.process.check_alive()
            remaining(deadline, f"{done} of {n} Huey tasks completed")
            time.sleep(CHECK_INTERVAL)

    def noop_times(self) -> list[float]:
        values = [self.huey.serializer.deserialize(v) for v in self.huey.all_results().values()]
        bad = [v for v in values if not isinstance(v, float)]
        if bad:
            raise BenchError(f"{len(bad)} Huey tasks did not complete normally, e.g. {bad[0]!r}")
        return values

    def latencies(self, handles: list[Any]) -> list[float]:
        values = [handle.get() for handle in handles]  # a failed task raises TaskException here
        if any(v is None for v in values):
            raise BenchError("a Huey latency task has no result")
        return values

    def close(self) -> None:
        if self.process is not None:
            self.process.stop()
        self.huey.storage.close()


WorkerArgv = Callable[[str, int], list[str]]


def jobhandle_worker_argv(mode: str) -> tuple[WorkerArgv, str]:
    """How to start a separate jobhandle worker: the ``jobhandle worker`` CLI when it works (``auto``/``cli``),
    else ``bench/_jobhandle_worker.py``, its stand-in. Returns the argv builder and a description."""
    cli = Path(sys.executable).with_name("jobhandle")
    app = str(ROOT / "bench" / "_jobhandle_app.py")
    if mode in ("auto", "cli"):
        probe = subprocess.run([str(cli), "worker", "--help"], capture_output=True, text=True, timeout=60,
                               cwd=ROOT) if cli.exists() else None
        if probe is not None and probe.returncode == 0 and "--app" in probe.stdout:
            return (lambda url, n: [str(cli), "worker", "--app", app, "--store", url, "--concurrency", str(n)],
                    "jobhandle worker (CLI)")
        if mode == "cli":
            detail = "not installed" if probe is None else (probe.stderr or probe.stdout).strip()[-500:]
            raise BenchError(f"--jobhandle-worker cli: `jobhandle worker --help` does not work: {detail}")
    script = str(ROOT / "bench" / "_jobhandle_worker.py")
    return (lambda url, n: [sys.executable, script, "--store", url, "--concurrency", str(n)],
            "bench/_jobhandle_worker.py (stand-in for the jobhandle worker CLI)")


# -- measurements ----------------------------------------------------------------------------------------

SystemFactory = Callable[[Path], System]


@contextmanager
def fresh(make: SystemFactory, what: str) -> Iterator[System]:
    """A system on a new temporary directory, always closed; on failure, its worker log is shown."""
    with tempfile.TemporaryDirectory(prefix="jhbench-") as tmp:
        system = make(Path(tmp))
        try:
            yield system
        except BaseException:
            process = getattr(system, "process", None)
            if process is not None:
                print(f"  {what} failed; worker log tail:\n{process.log_tail()}", file=sys.stderr)
            raise
        finally:
            system.close()


def measure_submit(make: SystemFactory, params: Params) -> float:
    with fresh(make, "submit") as system, time_limit(params.timeout, "submit"):
        started = time.perf_counter()
        for _ in range(params.enqueue_n):
            system.submit_noop()
        return params.enqueue_n / (time.perf_counter() - started)


def measure_bulk(make: SystemFactory, params: Params) -> float | None:
    with fresh(make, "bulk submit") as system, time_limit(params.timeout, "bulk submit"):
        started = time.perf_counter()
        if not system.submit_bulk(params.bulk_n):
            return None
        return params.bulk_n / (time.perf_counter() - started)


def measure_e2e(make: SystemFactory, params: Params) -> dict[str, float]:
    """Enqueue N no-ops (not timed), start the worker, wait until all N completed. Wall time runs from just
    before the worker is started to the last handler's own timestamp; the drain window from the first
    handler's timestamp to the last one (it leaves out worker start-up)."""
    n = params.e2e_n
    with fresh(make, "end-to-end") as system, time_limit(params.timeout * 2, "end-to-end") as deadline:
        system.prepare_noops(n)
        started = time.time()
        system.start_worker()
        system.wait_completed(n, deadline)
        times = system.noop_times()
    if len(times) != n:
        raise BenchError(f"end-to-end: expected {n} handler timestamps, got {len(times)}")
    first, last = min(times), max(times)
    return {"e2e_wall_seconds": last - started, "e2e_jobs_per_second": n / (last - started),
            "drain_jobs_per_second": (n - 1) / (last - first)}


def measure_pickup(make: SystemFactory, params: Params) -> dict[str, float]:
    """Start the worker, wait until it ran one warm-up job (so it is up and idle), then submit N jobs
    ``pickup_interval_ms`` apart; each handler returns its start time minus the submit timestamp it carries."""
    n, interval = params.pickup_n, params.pickup_interval_ms / 1000
    with fresh(make, "pickup latency") as system, time_limit(params.timeout, "pickup latency") as deadline:
        system.start_worker()
        system.prepare_noops(1)
        system.wait_completed(1, deadline)
        handles = []
        begin = time.monotonic()
        for i in range(n):
            time.sleep(max(0.0, begin + i * interval - time.monotonic()))  # pacing the load, not waiting for work
            handles.append(system.submit_latency())
        system.wait_completed(n + 1, deadline)
        latencies_ms = sorted(1000 * v for v in system.latencies(handles))
    return {"pickup_p50_ms": statistics.median(latencies_ms),
            "pickup_p99_ms": statistics.quantiles(latencies_ms, n=100)[98],
            "pickup_max_ms": latencies_ms[-1]}


def run_config(config: Config, params: Params, worker_argv: WorkerArgv) -> Result:
    if config.system == "jobhandle":
        make: SystemFactory = lambda d: JobhandleSystem(d, config, params, worker_argv)  # noqa: E731
    else:
        make = lambda d: HueySystem(d, config, params)  # noqa: E731
    result = Result(config.name, config.description)
    log(f"{config.name}: submit x{params.enqueue_n}")
    result.submit_per_second = measure_submit(make, params)
    log(f"{config.name}: bulk submit x{params.bulk_n}")
    result.bulk_per_second = measure_bulk(make, params)
    if result.bulk_per_second is None:
        result.bulk_per_second, result.bulk_is_one_by_one = result.submit_per_second, True
        result.notes.append("no bulk enqueue API: the bulk column repeats the one-by-one rate")
    log(f"{config.name}: end-to-end x{params.e2e_n}")
    for key, value in measure_e2e(make, params).items():
        setattr(result, key, value)
    log(f"{config.name}: pickup latency x{params.pickup_n}")
    for key, value in measure_pickup(make, params).items():
        setattr(result, key, value)
    log(f"{config.name}: done")
    return result


# -- comparison and report -------------------------------------------------------------------------------

HIGHER_IS_BETTER = {"submit_per_second": True, "bulk_per_second": True, "e2e_jobs_per_second": True,
                    "drain_jobs_per_second": True, "pickup_p50_ms": False, "pickup_p99_ms": False}
LABELS = {"submit_per_second": "submit", "bulk_per_second": "bulk", "e2e_jobs_per_second": "e2e",
          "drain_jobs_per_second": "drain", "pickup_p50_ms": "pickup p50", "pickup_p99_ms": "pickup p99"}


def comparisons(results: list[Result]) -> dict[str, dict[str, Any]]:
    """For each jobhandle configuration and metric: how many times better than the best Huey configuration
    (rates: jobhandle / Huey; latencies: Huey / jobhandle; so > 1 always means jobhandle is better)."""
    huey = [r for r in results if r.config.startswith("huey")]
    out: dict[str, dict[str, Any]] = {}
    for jh in (r for r in results if r.config.startswith("jobhandle")):
        row: dict[str, Any] = {}
        for metric, higher in HIGHER_IS_BETTER.items():
            values = [(getattr(h, metric), h.config) for h in huey if getattr(h, metric) is not None]
            mine = getattr(jh, metric)
            if not values or mine is None:
                continue
            best, best_config = max(values) if higher else min(values)
            row[metric] = {"factor": mine / best if higher else best / mine, "huey_best": best,
                           "huey_best_config": best_config}
        out[jh.config] = row
    return out


def targets(results: list[Result], compared: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    """The issue's targets, checked against this run."""
    by_name = {r.config: r for r in results}
    checks = []
    # The peer is Huey as `huey_consumer -w 2` runs it (its defaults, thread and process); the tuned
    # rows are our own addition, compared in the table above.
    peer = [r.e2e_jobs_per_second for r in results if r.config.startswith("huey") and r.config.endswith("default")
            and r.e2e_jobs_per_second]
    for name in ("jobhandle-inprocess", "jobhandle-process"):
        mine = by_name[name].e2e_jobs_per_second if name in by_name else None
        if peer and mine:
            factor = mine / max(peer)
            checks.append({"target": f"end-to-end >= 5x Huey -w 2, its defaults, best of thread/process ({name})",
                           "value": f"{factor:.2f}x", "met": factor >= 5})
    for name, limit in (("jobhandle-inprocess", 2.0), ("jobhandle-process", 10.0)):
        p50 = by_name[name].pickup_p50_ms if name in by_name else None
        if p50 is not None:
            checks.append({"target": f"pickup p50 < {limit:g} ms ({name})", "value": f"{p50:.2f} ms",
                           "met": p50 < limit})
    bulk = [r.bulk_per_second for r in results if r.config.startswith("jobhandle") and r.bulk_per_second]
    if bulk:
        checks.append({"target": "bulk submit >= 50,000 jobs/s", "value": f"{max(bulk):,.0f}/s",
                       "met": max(bulk) >= 50000})
    return checks


def machine_info() -> dict[str, Any]:
    try:
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                                cwd=ROOT, timeout=10).stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        commit = None
    return {
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "cpu_count": os.cpu_count(), "cpus_usable": len(os.sched_getaffinity(0)),
        "load_average_at_start": os.getloadavg(), "platform": platform.platform(),
        "python": platform.python_version(), "sqlite": sqlite3.sqlite_version,
        "jobhandle": metadata.version("jobhandle"), "huey": metadata.version("huey"), "git_commit": commit,
    }


def fmt(value: float | None, digits: int = 0) -> str:
    return "-" if value is None else f"{value:,.{digits}f}"


def render(report: dict[str, Any]) -> str:
    lines = ["| configuration | submit/s | bulk submit/s | e2e jobs/s | e2e wall s | drain jobs/s | pickup p50 ms"
             " | pickup p99 ms |", "|---|---:|---:|---:|---:|---:|---:|---:|"]
    for r in report["results"]:
        bulk = fmt(r["bulk_per_second"]) + (" *" if r["bulk_is_one_by_one"] else "")
        lines.append(f"| {r['config']} | {fmt(r['submit_per_second'])} | {bulk} | "
                     f"{fmt(r['e2e_jobs_per_second'])} | {fmt(r['e2e_wall_seconds'], 2)} | "
                     f"{fmt(r['drain_jobs_per_second'])} | {fmt(r['pickup_p50_ms'], 2)} | "
                     f"{fmt(r['pickup_p99_ms'], 2)} |")
    lines.append("")
    lines.append("\\* Huey has no bulk enqueue: its bulk column is its one-by-one enqueue rate.")
    lines.append("")
    lines.append("x times better than the best Huey configuration per metric (rates jobhandle/Huey, "
                 "latencies Huey/jobhandle):")
    lines.append("")
    metrics = list(HIGHER_IS_BETTER)
    lines.append("| jobhandle vs best Huey | " + " | ".join(LABELS[m] for m in metrics) + " |")
    lines.append("|---|" + "---:|" * len(metrics))
    for name, row in report["comparison"].items():
        cells = [f"{row[m]['factor']:.2f}x" if m in row else "-" for m in metrics]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    lines.append("")
    lines.append("Targets:")
    for check in report["targets"]:
        lines.append(f"- [{'x' if check['met'] else ' '}] {check['target']}: {check['value']}")
    return "\n".join(lines)


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


# -- profile ---------------------------------------------------------------------------------------------

def run_profile(params: Params, top: int = 40) -> Path:
    """jobhandle's in-process end-to-end case under cProfile (wall-clock timer), in every thread the measured
    queue starts: the store's own threads and the worker's slots and monitor. The jobs are enqueued first
    through a separate queue on the same file, so the profile holds only the draining. Top functions go to
    bench/results/profile.txt."""
    profiles: list[cProfile.Profile] = []
    lock = threading.Lock()

    def profile_this_thread(*_: object) -> None:  # threading.setprofile: runs first thing in each new thread
        profiler = cProfile.Profile()
        with lock:
            profiles.append(profiler)
        profiler.enable()

    config = next(c for c in CONFIGS if c.name == "jobhandle-inprocess")
    with tempfile.TemporaryDirectory(prefix="jhbench-") as tmp:
        with JobQueue(f"sqlite:///{Path(tmp) / 'jh.db'}") as setup:
            setup.submit_many([{"job_type": "noop"}] * params.e2e_n)
        threading.setprofile(profile_this_thread)
        try:
            system = JobhandleSystem(Path(tmp), config, params, lambda url, n: [])
            try:
                with time_limit(params.timeout * 2, "profile") as deadline:
                    started = time.perf_counter()
                    system.start_worker()
                    system.wait_completed(params.e2e_n, deadline)
                    elapsed = time.perf_counter() - started
            finally:
                system.close()  # joins the threads before their profiles are read
        finally:
            threading.setprofile(None)  # type: ignore[arg-type]
    return write_profile(profiles, params, elapsed, top)


def write_profile(profiles: list[cProfile.Profile], params: Params, elapsed: float, top: int) -> Path:
    out = io.StringIO()
    stats = pstats.Stats(*profiles, stream=out)
    stats.strip_dirs()
    out.write(f"jobhandle in-process end-to-end, {params.e2e_n} no-op jobs, concurrency {params.concurrency}: "
              f"{elapsed:.2f}s under cProfile ({params.e2e_n / elapsed:,.0f} jobs/s; profiling slows it down), "
              f"{len(profiles)} threads profiled, wall-clock timer (time blocked on locks and I/O counts).\n\n"
              f"== top {top} by own time (tottime) ==\n")
    stats.sort_stats("tottime").print_stats(top)
    out.write(f"\n== top {top} by cumulative time ==\n")
    stats.sort_stats("cumulative").print_stats(top)
    path = RESULTS / "profile.txt"
    path.write_text(out.getvalue())
    return path


# -- main ------------------------------------------------------------------------------------------------

def parse_args(argv: list[str] | None) -> tuple[argparse.Namespace, Params]:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    defaults = Params()
    p.add_argument("--enqueue-n", type=int, default=defaults.enqueue_n, help="jobs for the one-by-one rate")
    p.add_argument("--bulk-n", type=int, default=defaults.bulk_n, help="jobs in the one submit_many call")
    p.add_argument("--e2e-n", type=int, default=defaults.e2e_n, help="no-op jobs for end-to-end throughput")
    p.add_argument("--pickup-n", type=int, default=defaults.pickup_n, help="jobs for pickup latency")
    p.add_argument("--pickup-interval-ms", type=float, default=defaults.pickup_interval_ms)
    p.add_argument("--timeout", type=float, default=defaults.timeout,
                   help="seconds each measurement may take (end-to-end: twice this) before the run fails")
    p.add_argument("--configs", default=",".join(c.name for c in CONFIGS),
                   help="comma-separated subset of: " + ", ".join(c.name for c in CONFIGS))
    p.add_argument("--jobhandle-worker", choices=("auto", "cli", "script"), default="auto",
                   help="separate jobhandle worker: the `jobhandle worker` CLI, bench/_jobhandle_worker.py, "
                        "or the CLI when it works (default)")
    p.add_argument("--output", type=Path, default=RESULTS / "latest.json")
    p.add_argument("--profile", action="store_true",
                   help="only profile jobhandle's in-process end-to-end case -> bench/results/profile.txt")
    args = p.parse_args(argv)
    return args, checked_params(p, args, {c.name for c in CONFIGS})


def checked_params(p: argparse.ArgumentParser, args: argparse.Namespace, known: set[str]) -> Params:
    """The measurement sizes of parsed arguments, refused with a usage error when they make no sense (also
    used by redis_bench.py, whose options are these plus its own)."""
    for name in ("enqueue_n", "bulk_n", "e2e_n", "pickup_n"):
        if getattr(args, name) < 2:
            p.error(f"--{name.replace('_', '-')} must be at least 2")
    if args.pickup_interval_ms < 0 or args.timeout <= 0:
        p.error("--pickup-interval-ms must be >= 0 and --timeout > 0")
    unknown = set(args.configs.split(",")) - known
    if unknown:
        p.error(f"unknown configuration(s) {', '.join(sorted(unknown))}; choose from {', '.join(sorted(known))}")
    return Params(args.enqueue_n, args.bulk_n, args.e2e_n, args.pickup_n, args.pickup_interval_ms,
                  timeout=args.timeout)


NO_CONCURRENCY_LIMITS = {"JOBHANDLE_GLOBAL_MAX_CONCURRENT_JOBS": "0", "JOBHANDLE_PER_USER_MAX_CONCURRENT_JOBS": "0"}
"""jobhandle caps running jobs (10 in all, 3 per user, by default); Huey has no such limits, so the comparison
lifts them, here and in the worker subprocesses (which inherit the environment)."""


def main(argv: list[str] | None = None) -> int:
    args, params = parse_args(argv)
    compile_jobhandle()
    for name, value in NO_CONCURRENCY_LIMITS.items():
        os.environ.setdefault(name, value)
    RESULTS.mkdir(parents=True, exist_ok=True)
    if args.profile:
        log(f"profiling jobhandle in-process end-to-end x{params.e2e_n}")
        print(f"wrote {run_profile(params).relative_to(ROOT)}")
        return 0
    selected = [c for c in CONFIGS if c.name in args.configs.split(",")]
    worker_argv, worker_mode = jobhandle_worker_argv(args.jobhandle_worker)
    info = {**machine_info(), "jobhandle_worker": worker_mode}
    log(f"separate jobhandle worker: {worker_mode}")
    started = time.monotonic()
    results = [run_config(config, params, worker_argv) for config in selected]
    info["load_average_at_end"] = os.getloadavg()
    info["run_seconds"] = round(time.monotonic() - started, 1)
    compared = comparisons(results)
    report = {"machine": info, "params": asdict(params), "configs": [asdict(c) for c in selected],
              "results": [asdict(r) for r in results], "comparison": compared,
              "targets": targets(results, compared)}
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(report, indent=2) + "\n")
    print(f"jobhandle {info['jobhandle']} ({info['git_commit']}) vs huey {info['huey']}; {info['date']}; "
          f"{info['cpu_count']} CPUs; Python {info['python']}; SQLite {info['sqlite']}; "
          f"load {info['load_average_at_start'][0]:.2f} -> {info['load_average_at_end'][0]:.2f}; "
          f"{info['run_seconds']}s\n")
    print(render(report))
    print(f"\nraw results: {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
