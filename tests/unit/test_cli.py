"""The ``jobhandle`` command line: in-process with click's CliRunner against a SQLite file, and as real
processes (a foreground worker stopped by SIGTERM, ``submit --wait`` from another process, the demo)."""

from __future__ import annotations

import ctypes
import json
import os
import platform
import queue as queue_module
import re
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO

import pytest
from click.testing import CliRunner, Result
from helpers import wait_until

from jobhandle import HandlerRegistry, JobQueue, JobStatus, Settings
from jobhandle.cli import app
from jobhandle.models import utcnow
from jobhandle.stores import PoolEvent, PoolInfo

JOBHANDLE = Path(sys.executable).parent / "jobhandle"
PROCESS_TIMEOUT = 30.0

HANDLERS_APP = '''
import time
from pathlib import Path

from jobhandle import handler


@handler("echo")
def echo(ctx, text: str = "hi"):
    ctx.progress(0.5, "echoing")
    return {"echo": text}


@handler("boom")
def boom(ctx):
    raise ValueError("boom on purpose")


@handler("wait_for_file")
def wait_for_file(ctx, path: str):
    """Runs until ``path`` exists (the test controls when), or until the worker gives the job up."""
    ctx.progress(0.1, "waiting for the release file")
    while not Path(path).exists():
        ctx.check_cancelled()
        time.sleep(0.01)
    return {"released": True}
'''

DEMO_HANDLERS = '''
from pathlib import Path

from jobhandle import handler


@handler("process_document")
def process_document(ctx, file_path: str, chunk_size: int = 100):
    text = Path(file_path).read_text()
    ctx.progress(1.0, "Chunked")
    return {"file": Path(file_path).name, "chunks": len(text) // chunk_size + 1}


@handler("process_batch")
def process_batch(ctx, input_dir: str, pattern: str = "*.md"):
    files = sorted(Path(input_dir).glob(pattern))
    for index, path in enumerate(files, 1):
        ctx.progress(items_processed=index, total_items=len(files))
    return {"files": len(files)}
'''


# -- fixtures and helpers ----------------------------------------------------------------------------------

@pytest.fixture
def db_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path}/jobs.db"


@pytest.fixture
def registry() -> HandlerRegistry:
    reg = HandlerRegistry()

    @reg.handler("echo")
    def echo(ctx: object, text: str = "hi") -> dict[str, str]:
        return {"echo": text}

    @reg.handler("boom")
    def boom(ctx: object) -> None:
        raise ValueError("boom on purpose")

    return reg


@pytest.fixture
def q(db_url: str, registry: HandlerRegistry) -> Iterator[JobQueue]:
    """The test's own view of the CLI's store (a separate connection, as another process would have)."""
    queue = JobQueue(db_url, registry=registry, settings=Settings(heartbeat_interval=0.2, retry_delay=0))
    try:
        yield queue
    finally:
        queue.close()


def cli(*args: str) -> Result:
    return CliRunner().invoke(app, list(args))


def run_jobhandle(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(JOBHANDLE), *args], capture_output=True, text=True, timeout=PROCESS_TIMEOUT)


def assert_one_line_error(result: Result | subprocess.CompletedProcess[str], code: int, text: str) -> None:
    exit_code = result.returncode if isinstance(result, subprocess.CompletedProcess) else result.exit_code
    assert exit_code == code, (exit_code, result.stdout, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and text in lines[0], result.stderr
    assert "Traceback" not in result.stdout + result.stderr


def wait_for(q: JobQueue, predicate: Callable[[], bool], what: str, timeout: float = PROCESS_TIMEOUT) -> None:
    """Wait, woken by store changes (other processes' commits included), until ``predicate()`` holds."""
    deadline = time.monotonic() + timeout
    while True:
        seen = q.store.change_version
        if predicate():
            return
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise AssertionError(f"timed out after {timeout}s waiting for: {what}")
        q.store.wait_for_change(seen, remaining)


class WorkerProcess:
    """``jobhandle worker ...`` as a real process; its stdout lines are read as they come."""

    def __init__(self, args: list[str], log: Path) -> None:
        self.log = log
        self._stderr: IO[str] = log.open("w")
        self.proc = subprocess.Popen([str(JOBHANDLE), "worker", *args], stdout=subprocess.PIPE,
                                     stderr=self._stderr, text=True)
        self.lines: queue_module.Queue[str] = queue_module.Queue()
        self.seen: list[str] = []
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.put(line)

    def expect(self, text: str, timeout: float = PROCESS_TIMEOUT) -> str:
        """The next stdout line containing ``text``; fails at the deadline with what was printed."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                line = self.lines.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue_module.Empty:
                raise AssertionError(f"worker never printed {text!r}; stdout: {self.seen}; "
                                     f"stderr: {self.log.read_text()}") from None
            self.seen.append(line)
            if text in line:
                return line

    def exit_code(self) -> int:
        try:
            return self.proc.wait(timeout=PROCESS_TIMEOUT)
        except subprocess.TimeoutExpired:
            raise AssertionError(f"worker did not exit; stderr: {self.log.read_text()}") from None

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(timeout=PROCESS_TIMEOUT)
        self._stderr.close()


@pytest.fixture
def start_worker(tmp_path: Path, db_url: str) -> Iterator[Callable[..., WorkerProcess]]:
    """Start ``jobhandle worker --app <test handlers> --store <db> ARGS`` and wait for its startup line."""
    app_file = tmp_path / "handlers_app.py"
    app_file.write_text(HANDLERS_APP)
    started: list[WorkerProcess] = []

    def start(*args: str, with_app: bool = True) -> WorkerProcess:
        app_args = ["--app", str(app_file)] if with_app else []
        worker = WorkerProcess([*app_args, "--store", db_url, *args], tmp_path / f"worker{len(started)}.log")
        started.append(worker)
        worker.expect("started")
        return worker

    yield start
    for worker in started:
        worker.close()


# -- help, parameters, submit ------------------------------------------------------------------------------

COMMANDS = ["worker", "pool", "submit", "status", "list", "cancel", "restart", "stats", "workers", "health",
            "cleanup", "demo"]


@pytest.mark.parametrize("command", [[], *[[c] for c in COMMANDS]], ids=["jobhandle", *COMMANDS])
def test_every_command_has_help_with_the_store_option(command: list[str]) -> None:
    result = cli(*command, "--help")
    assert result.exit_code == 0, result.output
    assert "Usage" in result.output
    if command:
        assert "--store" in result.output


def test_submit_parses_params_as_json_when_they_parse(q: JobQueue, db_url: str) -> None:
    result = cli("submit", "echo", "--store", db_url, "--params-json", '{"text": "base", "keep": 1}',
                 "-p", "n=3", "-p", "flag=true", "-p", 'tags=["a"]', "-p", "text=hello world", "-p", "nan=NaN",
                 "-p", "eq=a=b", "--priority", "high", "--user", "alice", "--queue", "q2", "--max-retries", "1",
                 "--timeout", "9", "--idempotency-key", "k1")
    assert result.exit_code == 0, result.output
    job = q.get(result.stdout.strip())
    assert job.parameters == {"text": "hello world", "keep": 1, "n": 3, "flag": True, "tags": ["a"],
                              "nan": "NaN", "eq": "a=b"}
    assert (job.priority, job.user_id, job.queue, job.max_retries, job.timeout_seconds, job.idempotency_key) == \
        (10, "alice", "q2", 1, 9.0, "k1")
    again = cli("submit", "echo", "--store", db_url, "--user", "alice", "--idempotency-key", "k1")
    assert again.stdout.strip() == job.job_id, "the same user's key finds its job"


def test_submit_json_and_delay(q: JobQueue, db_url: str) -> None:
    result = cli("submit", "echo", "--store", db_url, "--delay", "3600", "--json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["status"] == "scheduled" and data["job_type"] == "echo"
    assert q.get(data["job_id"]).status is JobStatus.SCHEDULED


@pytest.mark.parametrize(("args", "message"), [
    (["-p", "novalue"], "--param expects KEY=VALUE, not 'novalue'"),
    (["-p", "=3"], "--param expects KEY=VALUE"),
    (["--params-json", "{oops"], "--params-json is not valid JSON"),
    (["--params-json", "[1, 2]"], "--params-json must be a JSON object, not list"),
    (["--priority", "sky-high"], "unknown priority 'sky-high'"),
    (["--delay", "-1"], "delay_seconds must be at least 0"),
])
def test_submit_rejects_bad_input_with_one_clear_line(db_url: str, args: list[str], message: str) -> None:
    assert_one_line_error(cli("submit", "echo", "--store", db_url, *args), 2, message)


def test_submit_wait_shows_progress_and_the_outcome(q: JobQueue, db_url: str) -> None:
    with q.worker(2):
        ok = cli("submit", "echo", "-p", "text=yo", "--wait", "--timeout-wait", "20", "--store", db_url)
        failed = cli("submit", "boom", "--max-retries", "0", "--wait", "--timeout-wait", "20", "--store", db_url)
        as_json = cli("submit", "echo", "--wait", "--json", "--timeout-wait", "20", "--store", db_url)
    assert ok.exit_code == 0, ok.output
    assert "100%" in ok.stdout and "completed" in ok.stdout and 'result: {"echo": "yo"}' in ok.stdout
    assert failed.exit_code == 1, failed.output
    assert "failed" in failed.stdout and "ValueError: boom on purpose" in failed.stdout
    assert as_json.exit_code == 0 and json.loads(as_json.stdout)["result"] == {"echo": "hi"}


def test_submit_wait_gives_up_after_timeout_wait(db_url: str) -> None:
    result = cli("submit", "echo", "--wait", "--timeout-wait", "0.2", "--store", db_url)
    assert_one_line_error(result, 1, "not finished after 0.2s")


# -- reading jobs ------------------------------------------------------------------------------------------

def test_status_shows_the_job_by_id_or_unique_prefix(q: JobQueue, db_url: str) -> None:
    job = q.submit("echo", {"text": "x"}, user_id="bob")
    with q.worker(1):
        q.wait(job.job_id, timeout=10)
    full = cli("status", job.job_id, "--store", db_url)
    assert full.exit_code == 0, full.output
    for text in (job.job_id, "completed", "100%", "bob", '{"echo": "x"}', "execution_time_seconds"):
        assert text in full.stdout
    by_prefix = cli("status", job.job_id[:8], "--json", "--store", db_url)
    assert json.loads(by_prefix.stdout)["job_id"] == job.job_id


def test_unknown_or_malformed_job_ids_are_one_line_errors(db_url: str) -> None:
    missing = "00000000-0000-4000-8000-000000000000"
    assert_one_line_error(cli("status", missing, "--store", db_url), 1, f"Job {missing} not found")
    assert_one_line_error(cli("status", "abcd", "--store", db_url), 1, "Job abcd not found")
    assert_one_line_error(cli("status", "not-an-id!", "--store", db_url), 2,
                          "job id must be a UUID or a unique prefix")


def test_list_filters_and_formats(q: JobQueue, db_url: str) -> None:
    a = q.submit("echo", user_id="alice")
    b = q.submit("boom", user_id="bob", queue="other")
    q.cancel(b.job_id, "not needed")
    table = cli("list", "--store", db_url)
    assert table.exit_code == 0, table.output
    assert a.job_id[:8] in table.stdout and b.job_id[:8] in table.stdout
    assert "not needed" in table.stdout

    def ids(*args: str) -> list[str]:
        result = cli("list", "--json", "--store", db_url, *args)
        assert result.exit_code == 0, result.output
        return [job["job_id"] for job in json.loads(result.stdout)]

    assert ids() == [b.job_id, a.job_id]
    assert ids("--status", "cancelled") == [b.job_id]
    assert ids("--status", "pending", "--status", "cancelled", "--sort", "created_at") == [a.job_id, b.job_id]
    assert ids("--type", "echo") == [a.job_id]
    assert ids("--user", "bob") == ids("--queue", "other") == ids("--search", b.job_id[:6]) == [b.job_id]
    assert ids("--limit", "1") == [b.job_id]
    assert cli("list", "--status", "done", "--store", db_url).exit_code == 2
    assert "no jobs" in cli("list", "--user", "nobody", "--store", db_url).stdout


def test_store_defaults_to_the_environment(q: JobQueue, db_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    job = q.submit("echo")
    monkeypatch.setenv("JOBHANDLE_STORE", db_url)
    result = cli("list", "--json")
    assert [j["job_id"] for j in json.loads(result.stdout)] == [job.job_id]


def test_bad_store_url_and_bad_settings_are_clear_errors(db_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    assert_one_line_error(cli("list", "--store", "foo://x"), 2, "unknown store URL 'foo://x'")
    assert_one_line_error(cli("stats", "--store", "sqlite:///"), 2, "SQLite URLs look like")
    monkeypatch.setenv("JOBHANDLE_WORKER_CONCURRENCY", "many")
    assert_one_line_error(cli("stats", "--store", db_url), 2, "invalid configuration: worker_concurrency")


# -- changing jobs -----------------------------------------------------------------------------------------

def test_cancel_and_restart(q: JobQueue, db_url: str) -> None:
    job = q.submit("echo")
    cancelled = cli("cancel", job.job_id, "--reason", "changed my mind", "--store", db_url)
    assert cancelled.exit_code == 0 and cancelled.stdout.strip() == f"{job.job_id} cancelled"
    assert q.get(job.job_id).error == "changed my mind"
    assert_one_line_error(cli("cancel", job.job_id, "--store", db_url), 1, "already cancelled")
    restarted = cli("restart", job.job_id[:8], "--store", db_url)
    assert restarted.exit_code == 0 and restarted.stdout.strip() == f"{job.job_id} pending"
    assert_one_line_error(cli("restart", job.job_id, "--store", db_url), 1, "Cannot restart job in status pending")


def test_cancel_of_a_completed_job_fails(q: JobQueue, db_url: str) -> None:
    job = q.submit("echo")
    with q.worker(1):
        q.wait(job.job_id, timeout=10)
    assert_one_line_error(cli("cancel", job.job_id, "--store", db_url), 1,
                          f"job {job.job_id}: Cannot cancel job that is already completed")
    assert q.get(job.job_id).status is JobStatus.COMPLETED


def test_cleanup_by_retention_and_by_age(q: JobQueue, db_url: str) -> None:
    done = [q.submit("echo"), q.submit("echo")]
    with q.worker(1):
        for job in done:
            q.wait(job.job_id, timeout=10)
    waiting = q.submit("echo")
    assert cli("cleanup", "--store", db_url).stdout.strip() == "removed 0 jobs"  # within retention
    result = cli("cleanup", "--days-old", "0", "--store", db_url)
    assert result.exit_code == 0 and result.stdout.strip() == "removed 2 jobs"
    assert [job.job_id for job in q.list()] == [waiting.job_id]


# -- stats and workers -------------------------------------------------------------------------------------

def test_stats_and_workers(q: JobQueue, db_url: str) -> None:
    q.submit("echo", queue="elsewhere")
    with q.worker(3, name="stats-test"):
        stats = json.loads(cli("stats", "--json", "--store", db_url).stdout)
        table = cli("stats", "--store", db_url)
        workers = json.loads(cli("workers", "--json", "--store", db_url).stdout)
        workers_table = cli("workers", "--store", db_url)
    assert stats["pending_jobs"] == 1 and stats["active_workers"] == 1 and stats["worker_health_status"] == "healthy"
    assert table.exit_code == 0
    for text in ("1 total", "pending 1", "type echo", "queue elsewhere", "1 active, health healthy"):
        assert text in table.stdout
    assert [(w["name"], w["concurrency"]) for w in workers] == [("stats-test", 3)]
    assert "stats-test" in workers_table.stdout
    assert cli("workers", "--store", db_url).stdout.strip() == "no workers"


def registered_pool(q: JobQueue, worker_pids: list[int]) -> PoolInfo:
    now = utcnow()
    pool = PoolInfo(pool_id="p1", name="images", hostname=socket.gethostname(), pid=4321, queues=["default"],
                    concurrency=2, min_workers=1, max_workers=4, workers=2, draining=0, started_at=now,
                    worker_pids=worker_pids, load={"pending": 12, "running": 4, "oldest_wait_seconds": 3.5},
                    events=[PoolEvent(now, "scale", "0 -> 1: starting", 1),
                            PoolEvent(now, "scale", "1 -> 2: 16 jobs for 2 slots, the oldest waiting 3.5s", 2)])
    q.store.record_pool(pool, now)
    return pool


def test_workers_shows_the_pools_and_why_they_last_scaled(q: JobQueue, db_url: str) -> None:
    with q.worker(1, name="pooled"):
        registered_pool(q, [os.getpid()])
        table = cli("workers", "--store", db_url)
        workers = json.loads(cli("workers", "--json", "--store", db_url).stdout)
        pools = json.loads(cli("pools", "--json", "--store", db_url).stdout)
        events = cli("pools", "--store", db_url)
    assert table.exit_code == 0
    for text in ("pooled", "images", "2 of 1-4", "12 pending,",
                 "scale: 1 -> 2: 16 jobs for 2 slots, the oldest waiting 3.5s"):
        assert text in " ".join(table.stdout.split()), table.stdout
    assert [w["pool"] for w in workers] == ["images"], "the worker is linked to the pool that runs it"
    assert [(p["name"], p["workers"], p["healthy"]) for p in pools] == [("images", 2, True)]
    assert [e["detail"] for e in pools[0]["events"]] == ["0 -> 1: starting",
                                                         "1 -> 2: 16 jobs for 2 slots, the oldest waiting 3.5s"]
    assert events.exit_code == 0 and "0 -> 1: starting" in events.stdout
    q.store.unregister_pool("p1")
    assert cli("pools", "--store", db_url).stdout.strip() == "no pools"


# -- real processes ----------------------------------------------------------------------------------------

@pytest.mark.slow
def test_worker_process_runs_jobs_submitted_with_wait_from_another_process(
        start_worker: Callable[..., WorkerProcess], db_url: str) -> None:
    worker = start_worker("--concurrency", "2")
    assert "concurrency 2" in worker.seen[-1] and "handlers boom, echo, wait_for_file" in worker.seen[-1]
    ok = run_jobhandle("submit", "echo", "-p", "text=from another process", "--wait", "--timeout-wait", "20",
                       "--store", db_url)
    assert ok.returncode == 0, ok.stderr
    assert "completed" in ok.stdout and 'result: {"echo": "from another process"}' in ok.stdout
    failed = run_jobhandle("submit", "boom", "--max-retries", "0", "--wait", "--timeout-wait", "20",
                           "--store", db_url)
    assert failed.returncode == 1 and "ValueError: boom on purpose" in failed.stdout
    worker.proc.send_signal(signal.SIGTERM)
    assert worker.exit_code() == 0


def test_process_mode_worker_runs_handlers_of_an_app_file_in_a_child_process(
        start_worker: Callable[..., WorkerProcess], q: JobQueue) -> None:
    worker = start_worker("--concurrency", "1", "--mode", "process")
    assert "mode process" in worker.seen[-1]
    done = q.wait(q.submit("echo", {"text": "in a child"}).job_id, timeout=PROCESS_TIMEOUT)
    assert done.status is JobStatus.COMPLETED and done.result == {"echo": "in a child"}
    assert done.metrics.cpu_seconds is not None and done.metrics.peak_memory_mb, "measured in its own process"
    worker.proc.send_signal(signal.SIGTERM)
    assert worker.exit_code() == 0


@pytest.mark.slow
def test_sigterm_lets_the_running_job_finish_within_the_grace(
        start_worker: Callable[..., WorkerProcess], q: JobQueue, tmp_path: Path) -> None:
    worker = start_worker("--concurrency", "2", "--grace", "20")
    release = tmp_path / "release"
    job = q.submit("wait_for_file", {"path": str(release)})
    wait_for(q, lambda: q.get(job.job_id).status is JobStatus.RUNNING, "the job to run")
    worker.proc.send_signal(signal.SIGTERM)
    worker.expect("SIGTERM received")
    assert q.get(job.job_id).status is JobStatus.RUNNING
    release.touch()
    assert worker.exit_code() == 0
    done = q.get(job.job_id)
    assert done.status is JobStatus.COMPLETED and done.result == {"released": True}
    assert q.workers() == []


@pytest.mark.slow
def test_a_job_still_running_after_the_grace_is_handed_back(
        start_worker: Callable[..., WorkerProcess], q: JobQueue, tmp_path: Path) -> None:
    worker = start_worker("--grace", "0.5")
    job = q.submit("wait_for_file", {"path": str(tmp_path / "never")})
    wait_for(q, lambda: q.get(job.job_id).status is JobStatus.RUNNING, "the job to run")
    worker.proc.send_signal(signal.SIGTERM)
    assert worker.exit_code() == 0
    handed_back = q.get(job.job_id)
    assert (handed_back.status, handed_back.attempts, handed_back.worker_id) == (JobStatus.PENDING, 0, None)
    assert "handed back" in worker.log.read_text()


@pytest.mark.slow
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_a_second_signal_exits_at_once_with_130_and_the_job_goes_back_later(
        start_worker: Callable[..., WorkerProcess], q: JobQueue, tmp_path: Path, sig: signal.Signals) -> None:
    worker = start_worker("--grace", "60")
    job = q.submit("wait_for_file", {"path": str(tmp_path / "never")})
    wait_for(q, lambda: q.get(job.job_id).status is JobStatus.RUNNING, "the job to run")
    worker.proc.send_signal(sig)
    worker.expect("received: claiming no more jobs")
    worker.proc.send_signal(sig)
    worker.expect("forced exit")
    assert worker.exit_code() == 130


TGKILL = {"x86_64": 234, "aarch64": 131}.get(platform.machine())
"""Linux's tgkill syscall number: a signal sent to one chosen thread of a process."""


@pytest.mark.slow
@pytest.mark.skipif(sys.platform != "linux" or TGKILL is None, reason="tgkill: Linux on x86_64 or aarch64 only")
def test_a_second_signal_delivered_to_another_thread_still_exits_at_once(
        start_worker: Callable[..., WorkerProcess], q: JobQueue, tmp_path: Path) -> None:
    """The kernel hands a process's signal to any of its threads; one that lands on a worker thread while the
    main thread waits for the stop must end the process as promptly as one the main thread receives."""
    worker = start_worker("--grace", "60")
    job = q.submit("wait_for_file", {"path": str(tmp_path / "never")})
    wait_for(q, lambda: q.get(job.job_id).status is JobStatus.RUNNING, "the job to run")
    worker.proc.send_signal(signal.SIGTERM)
    worker.expect("received: claiming no more jobs")
    pid = worker.proc.pid
    [tid, *_] = [int(t) for t in os.listdir(f"/proc/{pid}/task") if int(t) != pid]
    libc = ctypes.CDLL(None, use_errno=True)
    assert libc.syscall(TGKILL, pid, tid, signal.SIGTERM) == 0, os.strerror(ctypes.get_errno())
    worker.expect("forced exit", timeout=5)
    assert worker.exit_code() == 130


@pytest.mark.slow
def test_worker_without_handlers_warns_and_stops_on_sigint(start_worker: Callable[..., WorkerProcess]) -> None:
    worker = start_worker(with_app=False)
    assert "handlers (none)" in worker.seen[-1]
    assert "warning: no handlers registered" in worker.log.read_text()
    worker.proc.send_signal(signal.SIGINT)
    worker.expect("SIGINT received")
    assert worker.exit_code() == 0


@pytest.mark.slow
def test_a_worker_whose_store_fails_keeps_going_and_names_the_failing_call(
        start_worker: Callable[..., WorkerProcess], tmp_path: Path) -> None:
    """A store error the store does not document (here a real one: its table is gone) is logged naming the
    primitive and retried; the worker stays up (the fault may be fixed: a restored table, a Redis failover)."""
    worker = start_worker()
    with sqlite3.connect(tmp_path / "jobs.db") as conn:
        conn.execute("DROP TABLE jobs")
    wait_until(lambda: "failed: OperationalError: no such table: jobs" in worker.log.read_text(), PROCESS_TIMEOUT,
               "the worker to log the failing call")
    assert re.search(r"store\.\w+ failed: OperationalError: no such table: jobs", worker.log.read_text())
    assert worker.proc.poll() is None, "the worker is still running"
    worker.proc.send_signal(signal.SIGTERM)
    assert worker.exit_code() == 0


@pytest.mark.slow
def test_worker_rejects_an_app_it_cannot_import(db_url: str, tmp_path: Path) -> None:
    assert_one_line_error(run_jobhandle("worker", "--app", "no_such_module_here", "--store", db_url), 2,
                          "cannot import 'no_such_module_here'")
    assert_one_line_error(run_jobhandle("worker", "--app", str(tmp_path / "missing.py"), "--store", db_url), 2,
                          "no such file")


@pytest.mark.slow
def test_demo_processes_a_folder_with_live_progress(tmp_path: Path, db_url: str) -> None:
    handlers = tmp_path / "demo_handlers.py"
    handlers.write_text(DEMO_HANDLERS)
    docs = tmp_path / "docs"
    docs.mkdir()
    for name in ("a.md", "b.md"):
        (docs / name).write_text("# Title\n\n" + "words " * 100)
    result = run_jobhandle("demo", "--handlers", str(handlers), "--input-dir", str(docs), "--store", db_url)
    assert result.returncode == 0, result.stderr
    assert result.stdout.count("completed") >= 3 and "process_batch" in result.stdout
    assert "process_batch: files=2" in result.stdout and "3 total" in result.stdout
    with JobQueue(db_url, registry=HandlerRegistry()) as q:
        assert sorted(job.status.value for job in q.list()) == ["completed"] * 3


@pytest.mark.slow
def test_demo_runs_the_bundled_document_handlers(tmp_path: Path, db_url: str) -> None:
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "guide.md").write_text("# Guide\n\n" + "A sentence about jobs. " * 200)
    (docs / "page.html").write_text("<html><body><h1>Page</h1><p>Hello from HTML.</p></body></html>")
    result = run_jobhandle("demo", "--input-dir", str(docs), "--store", db_url)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "process_batch: files=2 succeeded=2 failed=0" in result.stdout
    with JobQueue(db_url, registry=HandlerRegistry()) as q:
        jobs = q.list()
    assert sorted((job.job_type, job.status.value) for job in jobs) == \
        [("process_batch", "completed"), ("process_document", "completed"), ("process_document", "completed")]
    assert sorted(job.result["file_name"] for job in jobs if job.job_type == "process_document") == \
        ["guide.md", "page.html"]


@pytest.mark.slow
def test_demo_names_missing_handlers(db_url: str) -> None:
    assert_one_line_error(run_jobhandle("demo", "--handlers", "no_such_handlers_module", "--store", db_url), 2,
                          "cannot import 'no_such_handlers_module'")


def test_python_dash_m_runs_the_cli() -> None:
    result = subprocess.run([sys.executable, "-m", "jobhandle", "--version"], capture_output=True, text=True,
                            timeout=PROCESS_TIMEOUT)
    assert result.returncode == 0 and result.stdout.startswith("jobhandle ")


# -- health ------------------------------------------------------------------------------------------------

def test_health_is_degraded_without_workers_exit_0_and_1_with_strict(q: JobQueue, db_url: str) -> None:
    result = cli("health", "--store", db_url)
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines() == ["degraded", "- no workers registered: jobs wait until one starts"]
    assert cli("health", "--strict", "--store", db_url).exit_code == 1
    body = json.loads(cli("health", "--json", "--store", db_url).stdout)
    assert body["status"] == "degraded" and body["store"]["reachable"] is True


def test_health_of_one_worker_and_of_its_heartbeat_file(start_worker: Callable[..., WorkerProcess], db_url: str,
                                                        tmp_path: Path) -> None:
    beat = tmp_path / "beat.json"
    missing = cli("health", "--heartbeat-file", str(beat))
    assert missing.exit_code == 1 and missing.stdout.startswith("dead\n- no heartbeat file")
    worker = start_worker("--name", "w-probe", "--heartbeat-file", str(beat))
    wait_until(beat.exists, PROCESS_TIMEOUT, "the worker's heartbeat file")
    alive = run_jobhandle("health", "--heartbeat-file", str(beat), "--need-store")
    assert alive.returncode == 0 and alive.stdout == "alive\n", alive.stderr
    assert cli("health", "--worker", "w-probe", "--store", db_url).exit_code == 0
    unknown = cli("health", "--worker", "w-nobody", "--store", db_url)
    assert unknown.exit_code == 1 and "no worker 'w-nobody' is registered" in unknown.stdout
    worker.proc.send_signal(signal.SIGSTOP)  # frozen: its file stops being written
    try:
        stale = wait_until(lambda: (r := run_jobhandle("health", "--heartbeat-file", str(beat), "--max-age",
                                                       "0.5")).returncode == 1 and r, PROCESS_TIMEOUT,
                           "the probe to see the heartbeat go stale")
        assert "last heartbeat" in stale.stdout
    finally:
        worker.proc.send_signal(signal.SIGCONT)
