"""Chaos run: real processes, real kills, and a ledger of every handler run kept outside the store.

    .venv/bin/python bench/chaos.py --store sqlite               # 10,000 jobs; JSON in bench/results/chaos-sqlite.json
    .venv/bin/python bench/chaos.py --store redis --jobs 2000    # a short run on a private redis-server

What runs (every process is a child of this one, started in a fresh temporary folder):

- the store: a SQLite file, or a private ``redis-server`` on a free loopback port with persistence as in
  production (``--appendonly yes --appendfsync everysec``, its folder in the temporary folder);
- ``jobhandle serve --workers 0`` (the REST API, no workers), killed (SIGKILL) and started again once mid-run;
- ``--workers`` ``jobhandle worker --app bench/_chaos_app.py`` processes. Every ``--kill-every`` seconds (a
  random interval, seeded) one of them, chosen at random, gets SIGKILL and a replacement is started. On Redis
  the server is also restarted twice mid-run: once with SIGKILL, once with SIGTERM, each time started again on
  the same port and folder, so the AOF brings the data back.

Jobs are submitted through the REST API (``POST /api/v1/jobs``) at a steady rate while the workers run, each
with an ``idempotency_key`` of its own; a POST that fails or times out is sent again with the same key until
it gets a 201, so a lost reply or a restarting server can make neither a duplicate nor a hole. Each job sleeps
a seeded random 5-200 ms (a share of them 1-2 s, so that kills land on running jobs). The handler writes a
``start`` and an ``end`` line per run to a ledger file per worker process (see ``bench/_chaos_app.py``); the
driver logs each kill (pid, time) and each server restart (when it went down, when it was back).

Once every job is submitted and the restarts are done, the killing stops and the run waits until no job is
left unfinished (no pending, running, scheduled, retrying or waiting job), giving up when nothing finished for
3x the worker timeout + 10 s. Then it reads every job from the store (``GET /api/v1/jobs``, all pages) and the
ledger, and reports:

- **lost**: submitted keys with no job in the store, or whose job did not complete (target 0);
- **duplicates**: idempotency keys with more than one job in the store (target 0);
- **re-runs**, each run of a job after its first, classified by what explains it:
  *after a kill* (the previous run's worker was SIGKILLed before that run ended, or less than 2 s after: its
  outcome may not have been written; expected with at-least-once delivery), *after a Redis restart* (a
  restart between the previous run's end, less 2 s for AOF everysec, and the re-run's start, ending at most
  3x the worker timeout before the re-run), *after a worker died on its own*, and the faults: *completed
  twice* (the previous run returned, its worker lived on for 2 s or more, and the job ran again anyway) and
  *overlapping* (the re-run started while an earlier run was still going on a worker that had not been
  killed; reported apart when a Redis restart fell in between);
- **wait after a kill**: for each run cut short by a kill, from the kill to the job's next start (max, p50;
  target: under 2x the worker timeout), split at the store's recovery of the attempt (its WorkerLostError
  entry in ``error_history``): the lease, then the retry backoff and the queue;
- **throughput**: completed jobs per second from the first submit to the last completion; kills, restarts;
- failed or unfinished jobs with their ``attempts`` and ``error_history``, workers that exited on their own,
  and error lines / tracebacks in the processes' logs (captured in the temporary folder).

Every process imports the same jobhandle: a copy of ``src/`` taken at the start (``--code worktree``, the
default) or the last commit (``--code head``), put first on their ``PYTHONPATH``, so edits to the working
tree during a run do not reach processes started later. Targets that are missed make the exit code 1. The
temporary folder (logs, ledgers, store, the code copy) is removed after a clean run and kept otherwise
(``--keep`` keeps it always).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import random
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import redis

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"
APP = ROOT / "bench" / "_chaos_app.py"
PREFIX = "chaos"
UNFINISHED = ("pending", "running", "scheduled", "retrying", "waiting")
OUTCOME_MARGIN = 2.0
"""A worker alive this long after its handler returned has had time to write the outcome."""


# -- configuration and the timeline ------------------------------------------------------------------------

@dataclass(frozen=True)
class Config:
    store: str
    jobs: int = 10_000
    workers: int = 3
    concurrency: int = 4
    kill_every: tuple[float, float] = (1.0, 3.0)
    worker_timeout: float = 10.0
    heartbeat_interval: float = 2.0
    rate: float = 50.0
    submitters: int = 4
    long_fraction: float = 0.05
    short_fraction: float = 0.0
    max_retries: int = 10
    retry_delay: float = 1.0
    redis_down_seconds: float = 1.0
    seed: int = 1
    code: str = "worktree"
    keep: bool = False

    @property
    def stall_timeout(self) -> float:
        """Waiting for the last jobs gives up when nothing finished for this long."""
        return 3 * self.worker_timeout + 10.0


class Timeline:
    """What the driver did and saw, with wall-clock times comparable with the ledger's (same machine)."""

    def __init__(self, path: Path, started: float) -> None:
        self.events: list[dict[str, Any]] = []
        self._file = open(path, "a", buffering=1)
        self._lock = threading.Lock()
        self.started = started

    def add(self, kind: str, **detail: Any) -> dict[str, Any]:
        event = {"kind": kind, "time": time.time(), **detail}
        with self._lock:
            self.events.append(event)
            self._file.write(json.dumps(event) + "\n")
        return event

    def of(self, kind: str) -> list[dict[str, Any]]:
        return [e for e in self.events if e["kind"] == kind]

    def say(self, text: str) -> None:
        print(f"[{time.time() - self.started:7.1f}s] {text}", file=sys.stderr, flush=True)

    def close(self) -> None:
        self._file.close()


# -- processes ---------------------------------------------------------------------------------------------

def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_until(check: Callable[[], bool], timeout: float, what: str, interval: float = 0.05) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise RuntimeError(f"{what}: not after {timeout:.0f}s")
        time.sleep(interval)


def spawn(argv: list[str], log_path: Path, env: dict[str, str]) -> subprocess.Popen[bytes]:
    """A child in its own session (Ctrl-C in the terminal reaches only this driver, which stops it), output
    appended to ``log_path``."""
    with open(log_path, "ab") as log:
        return subprocess.Popen(argv, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, start_new_session=True)


def kill_now(proc: subprocess.Popen[bytes]) -> float:
    """SIGKILL and reap; returns when it was dead (anything it wrote happened before that)."""
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    proc.wait()
    return time.time()


def stop_gently(proc: subprocess.Popen[bytes], grace: float, signalled: bool = False) -> int | None:
    """SIGTERM (unless ``signalled`` already: a second one means "exit at once"), SIGKILL after ``grace``
    seconds; the exit code (None if it had to be killed)."""
    if proc.poll() is not None:
        return proc.returncode
    if not signalled:
        proc.terminate()
    try:
        return proc.wait(grace)
    except subprocess.TimeoutExpired:
        kill_now(proc)
        return None


class RedisServer:
    """A private redis-server with AOF everysec, restartable on the same port and folder."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0?prefix={PREFIX}"
        self.proc: subprocess.Popen[bytes] | None = None
        folder.mkdir(parents=True, exist_ok=True)

    def client(self) -> redis.Redis:
        return redis.Redis(host="127.0.0.1", port=self.port, socket_timeout=5)

    def start(self) -> None:
        argv = ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--dir", str(self.folder),
                "--appendonly", "yes", "--appendfsync", "everysec", "--daemonize", "no",
                "--logfile", str(self.folder / "redis.log")]
        self.proc = spawn(argv, self.folder / "redis.stdout", dict(os.environ))
        wait_until(self._answers, 60, "redis-server start")

    def _answers(self) -> bool:
        if self.proc is not None and self.proc.poll() is not None:
            raise RuntimeError(f"redis-server exited with {self.proc.returncode}: see {self.folder}/redis.log")
        client = self.client()
        try:
            return bool(client.ping())  # LOADING (the AOF is being read) is an error too
        except redis.RedisError:
            return False
        finally:
            client.close()

    def last_seq(self) -> int | None:
        """The store's change sequence number (``P:seq``): every acknowledged write advanced it."""
        client = self.client()
        try:
            value = client.get(f"{{{PREFIX}}}:seq")
            return int(value) if value is not None else None
        except redis.RedisError:
            return None
        finally:
            client.close()

    def delayed_fsyncs(self) -> int | None:
        client = self.client()
        try:
            return int(client.info("persistence").get("aof_delayed_fsync", 0))
        except redis.RedisError:
            return None
        finally:
            client.close()

    def restart(self, sig: signal.Signals, down_seconds: float) -> dict[str, Any]:
        """Stop with ``sig``, stay down ``down_seconds``, start again; what the sequence number did."""
        assert self.proc is not None
        delayed = self.delayed_fsyncs()
        seq_before = self.last_seq()
        self.proc.send_signal(sig)
        down_at = time.time()
        self.proc.wait(60)
        exited_at = time.time()
        time.sleep(down_seconds)
        self.start()
        up_at = time.time()
        seq_after = self.last_seq()
        lost = (seq_before - seq_after) if seq_before is not None and seq_after is not None else None
        return {"signal": sig.name, "down_at": down_at, "exited_at": exited_at, "up_at": up_at,
                "seq_before": seq_before, "seq_after_restart": seq_after,
                "acknowledged_changes_lost": max(0, lost) if lost is not None else None,
                "aof_delayed_fsync_before": delayed}

    def stop(self) -> None:
        if self.proc is not None:
            stop_gently(self.proc, 30)


class ApiServer:
    """``jobhandle serve --workers 0`` on a fixed port, restartable."""

    def __init__(self, store_url: str, folder: Path, env: dict[str, str]) -> None:
        self.store_url = store_url
        self.folder = folder
        self.env = env
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen[bytes] | None = None
        self.starts = 0

    def start(self) -> None:
        self.starts += 1
        argv = [sys.executable, "-m", "jobhandle", "serve", "--store", self.store_url, "--workers", "0",
                "--port", str(self.port), "--log-level", "WARNING"]
        self.proc = spawn(argv, self.folder / f"api-{self.starts}.log", self.env)
        wait_until(self._ready, 60, "jobhandle serve start")

    def _ready(self) -> bool:
        if self.proc is not None and self.proc.poll() is not None:
            raise RuntimeError(f"jobhandle serve exited with {self.proc.returncode}: see {self.folder}")
        try:
            return httpx.get(f"{self.url}/api/v1/jobs/queue/stats", timeout=2).status_code == 200
        except httpx.HTTPError:
            return False

    def restart(self) -> dict[str, Any]:
        assert self.proc is not None
        pid = self.proc.pid
        down_at = kill_now(self.proc)
        self.start()
        return {"signal": "SIGKILL", "pid": pid, "down_at": down_at, "up_at": time.time()}

    def stop(self) -> int | None:
        return stop_gently(self.proc, 30) if self.proc is not None else None


@dataclass
class WorkerProc:
    seq: int
    proc: subprocess.Popen[bytes]
    log: Path
    started_at: float


class Workers:
    """The worker processes: started, killed at random, replaced; those that exit by themselves are noticed."""

    def __init__(self, config: Config, store_url: str, folder: Path, env: dict[str, str],
                 timeline: Timeline) -> None:
        self.config = config
        self.store_url = store_url
        self.folder = folder
        self.env = env
        self.timeline = timeline
        self.live: list[WorkerProc] = []
        self.all: list[WorkerProc] = []
        self.killed: dict[int, float] = {}  # pid -> when it was dead
        self.died: dict[int, float] = {}  # pid -> when it was found gone without being killed

    def spawn(self) -> WorkerProc:
        seq = len(self.all) + 1
        log = self.folder / f"worker-{seq:03d}.log"
        argv = [sys.executable, "-m", "jobhandle", "worker", "--store", self.store_url, "--app", str(APP),
                "--concurrency", str(self.config.concurrency), "--name", f"chaos-{seq}"]
        worker = WorkerProc(seq, spawn(argv, log, self.env), log, time.time())
        self.live.append(worker)
        self.all.append(worker)
        self.timeline.add("worker_start", pid=worker.proc.pid, seq=seq)
        return worker

    def kill_random(self, rng: random.Random) -> None:
        victim = rng.choice(self.live)
        self.live.remove(victim)
        dead_at = kill_now(victim.proc)
        self.killed[victim.proc.pid] = dead_at
        self.timeline.add("kill", pid=victim.proc.pid, seq=victim.seq, age=round(dead_at - victim.started_at, 3))
        self.spawn()

    def replace_exited(self) -> None:
        """A worker that exited although nobody killed it is an anomaly: recorded, then replaced."""
        for worker in list(self.live):
            code = worker.proc.poll()
            if code is not None:
                self.live.remove(worker)
                self.died[worker.proc.pid] = time.time()
                self.timeline.add("worker_died", pid=worker.proc.pid, seq=worker.seq, code=code,
                                  log=worker.log.name)
                self.timeline.say(f"worker {worker.seq} (pid {worker.proc.pid}) exited on its own, code {code}")
                self.spawn()

    def describe(self, worker_id: str | None) -> str | None:
        """Which of the run's processes a worker id (``chaos-<seq>-<hex>``) is, and whether it is alive."""
        match = re.match(r"chaos-(\d+)-", worker_id or "")
        if not match or not 0 < int(match.group(1)) <= len(self.all):
            return None
        worker = self.all[int(match.group(1)) - 1]
        pid = worker.proc.pid
        state = "killed" if pid in self.killed else "died" if pid in self.died else \
            "alive" if worker.proc.poll() is None else "exited"
        return f"worker {worker.seq} (pid {pid}, {worker.log.name}): {state}"

    def dead_at(self, pid: int) -> float | None:
        return self.killed.get(pid, self.died.get(pid))

    def stop_all(self) -> dict[int, int | None]:
        """SIGTERM every live worker (graceful: they have no job left); their exit codes."""
        for worker in self.live:
            if worker.proc.poll() is None:
                worker.proc.terminate()
        codes = {w.proc.pid: stop_gently(w.proc, 30, signalled=True) for w in self.live}
        self.live.clear()
        return codes

    def kill_all(self) -> None:
        for worker in self.all:
            if worker.proc.poll() is None:
                kill_now(worker.proc)


# -- submitting through the REST API -----------------------------------------------------------------------

@dataclass
class Submission:
    key: str
    sleep: float
    due: float
    first_post_at: float | None = None
    acked_at: float | None = None
    job_id: str | None = None
    posts: int = 0
    gave_up: str | None = None


def job_plan(config: Config) -> list[Submission]:
    """Every job's key and sleep (seeded), and when it is due to be submitted (relative to the start)."""
    rng = random.Random(config.seed * 7919 + 1)
    plan = []
    for i in range(config.jobs):
        draw = rng.random()
        if draw < config.long_fraction:
            sleep = rng.uniform(1.0, 2.0)
        elif draw < config.long_fraction + config.short_fraction:
            sleep = rng.uniform(0.0, 0.003)  # under SHORT_JOB_SECONDS: claimed and finished in batches
        else:
            sleep = rng.uniform(0.005, 0.2)
        plan.append(Submission(f"chaos-{config.seed}-{i:05d}", round(sleep, 4), i / config.rate))
    return plan


class Submitter:
    """Threads that POST the planned jobs on schedule, each until it gets a 201."""

    GIVE_UP_SECONDS = 180.0

    def __init__(self, config: Config, api: ApiServer, plan: list[Submission]) -> None:
        self.config = config
        self.api = api
        self.plan = plan
        self.retry_reasons: Counter[str] = Counter()
        self.acked = 0
        self._next = 0
        self._lock = threading.Lock()
        self._threads: list[threading.Thread] = []
        self._stop = threading.Event()
        self.t0 = 0.0

    def start(self) -> None:
        self.t0 = time.time()
        for n in range(self.config.submitters):
            thread = threading.Thread(target=self._run, name=f"submit-{n}", daemon=True)
            thread.start()
            self._threads.append(thread)

    @property
    def done(self) -> bool:
        return all(not t.is_alive() for t in self._threads)

    def stop(self) -> None:
        self._stop.set()

    def _take(self) -> Submission | None:
        with self._lock:
            if self._next >= len(self.plan):
                return None
            self._next += 1
            return self.plan[self._next - 1]

    def _run(self) -> None:
        with httpx.Client(timeout=httpx.Timeout(5.0, connect=2.0)) as client:
            while not self._stop.is_set() and (job := self._take()) is not None:
                delay = self.t0 + job.due - time.time()
                if delay > 0:
                    time.sleep(delay)
                self._submit(client, job)

    def _submit(self, client: httpx.Client, job: Submission) -> None:
        body = {"job_type": "chaos", "parameters": {"key": job.key, "sleep": job.sleep},
                "idempotency_key": job.key, "max_retries": self.config.max_retries,
                "retry_delay": self.config.retry_delay}
        job.first_post_at = time.time()
        pause = 0.05
        while not self._stop.is_set():
            job.posts += 1
            try:
                response = client.post(f"{self.api.url}/api/v1/jobs", json=body)
            except httpx.HTTPError as exc:
                reason = type(exc).__name__
            else:
                if response.status_code == 201:
                    job.job_id = response.json()["job_id"]
                    job.acked_at = time.time()
                    with self._lock:
                        self.acked += 1
                    return
                reason = f"HTTP {response.status_code}"
                if 400 <= response.status_code < 500 and response.status_code not in (408, 429):
                    job.gave_up = f"{reason}: {response.text[:300]}"  # our request is wrong: a bug either way
                    self.retry_reasons[reason] += 1
                    return
            self.retry_reasons[reason] += 1
            if time.time() - job.first_post_at > self.GIVE_UP_SECONDS:
                job.gave_up = f"no 201 after {self.GIVE_UP_SECONDS:.0f}s (last: {reason})"
                return
            time.sleep(pause)
            pause = min(1.0, pause * 2)


# -- the run -----------------------------------------------------------------------------------------------

def get_json(url: str, timeout: float = 10.0, tries: int = 30) -> Any:
    """GET with retries (the API may be restarting, the store coming back)."""
    last: Exception | None = None
    for _ in range(tries):
        try:
            response = httpx.get(url, timeout=timeout)
            if response.status_code == 200:
                return response.json()
            last = RuntimeError(f"HTTP {response.status_code}: {response.text[:200]}")
        except httpx.HTTPError as exc:
            last = exc
        time.sleep(0.5)
    raise RuntimeError(f"GET {url}: {last}")


def stats(api: ApiServer) -> dict[str, Any] | None:
    try:
        response = httpx.get(f"{api.url}/api/v1/jobs/queue/stats", timeout=3)
        return response.json() if response.status_code == 200 else None
    except httpx.HTTPError:
        return None


def planned_disruptions(config: Config) -> list[tuple[float, str]]:
    """(fraction of jobs submitted, what): server restarts spread over the submission."""
    plan = [(0.5, "api")]
    if config.store == "redis":
        plan += [(0.3, "redis-SIGKILL"), (0.7, "redis-SIGTERM")]
    return sorted(plan)


def chaos_phase(config: Config, workers: Workers, api: ApiServer, redis_server: RedisServer | None,
                submitter: Submitter, timeline: Timeline) -> None:
    """Kill and replace workers at random intervals and restart the servers, until every job is submitted
    and every planned restart has happened."""
    rng = random.Random(config.seed)
    pending = planned_disruptions(config)
    next_kill = time.time() + rng.uniform(*config.kill_every)
    next_report = time.time() + 10
    while pending or not submitter.done:
        workers.replace_exited()
        now = time.time()
        if now >= next_kill:
            workers.kill_random(rng)
            next_kill = now + rng.uniform(*config.kill_every)
        if pending and submitter.acked >= pending[0][0] * config.jobs:
            _, what = pending.pop(0)
            if what == "api":
                event = timeline.add("api_restart", **api.restart())
                timeline.say(f"API server restarted (down {event['up_at'] - event['down_at']:.1f}s)")
            elif redis_server is not None:
                sig = signal.SIGKILL if what == "redis-SIGKILL" else signal.SIGTERM
                event = timeline.add("redis_restart", **redis_server.restart(sig, config.redis_down_seconds))
                timeline.say(f"redis-server restarted after {sig.name} (down {event['up_at'] - event['down_at']:.1f}s"
                             f", acknowledged changes lost: {event['acknowledged_changes_lost']})")
        if now >= next_report:
            next_report = now + 10
            s = stats(api) or {}
            timeline.say(f"submitted {submitter.acked}/{config.jobs}, completed {s.get('completed_jobs', '?')}, "
                         f"running {s.get('running_jobs', '?')}, kills {len(workers.killed)}")
        time.sleep(0.02)


def wait_for_the_end(config: Config, workers: Workers, api: ApiServer, timeline: Timeline) -> dict[str, Any]:
    """Until no job is unfinished; gives up when no job finished for ``stall_timeout`` seconds."""
    last_finished, last_change = -1, time.time()
    while True:
        workers.replace_exited()
        s = stats(api)
        if s is not None:
            counts = s.get("by_status", {})
            unfinished = sum(int(counts.get(status, 0)) for status in UNFINISHED)
            finished = sum(int(counts.get(status, 0)) for status in ("completed", "failed", "cancelled"))
            if unfinished == 0:
                return {"all_finished": True, "counts": counts, "at": time.time()}
            if finished != last_finished:
                last_finished, last_change = finished, time.time()
            elif time.time() - last_change > config.stall_timeout:
                timeline.say(f"nothing finished for {config.stall_timeout:.0f}s: {unfinished} jobs unfinished")
                return {"all_finished": False, "counts": counts, "at": time.time()}
        time.sleep(0.5)


# -- reading the results -----------------------------------------------------------------------------------

@dataclass
class Run:
    job_id: str
    attempt: int
    pid: int
    start: float
    key: str
    token: str
    end: float | None = None


def read_ledger(folder: Path) -> tuple[list[Run], int]:
    """Every handler run, and how many lines did not parse."""
    runs: dict[str, Run] = {}
    bad = 0
    for path in sorted(folder.glob("ledger-*.log")):
        for line in path.read_text().splitlines():
            parts = line.split()
            if len(parts) != 7 or parts[0] not in ("start", "end"):
                bad += 1
                continue
            event, job_id, attempt, pid, at, key, token = parts
            if event == "start":
                runs[token] = Run(job_id, int(attempt), int(pid), float(at), key, token)
            elif token in runs:
                runs[token].end = float(at)
            else:
                bad += 1
    return list(runs.values()), bad


def all_jobs(api: ApiServer) -> list[dict[str, Any]]:
    jobs: list[dict[str, Any]] = []
    cursor: str | None = None
    while True:
        query = "limit=1000&sort=created_at" + (f"&cursor={cursor}" if cursor else "")
        page = get_json(f"{api.url}/api/v1/jobs?{query}", timeout=60)
        jobs.extend(page["jobs"])
        cursor = page.get("next_cursor")
        if not cursor:
            return jobs


def percentile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def restart_windows(timeline: Timeline) -> list[dict[str, Any]]:
    return [{"signal": e["signal"], "from": e["down_at"], "to": e["up_at"]} for e in timeline.of("redis_restart")]


def restart_in(windows: list[dict[str, Any]], start: float, end: float, max_lag: float) -> str | None:
    """The Redis restart (its signal) whose down time overlaps [start, end] and ended at most ``max_lag``
    seconds before ``end``, if any: a write the restart lost shows within a lease or two."""
    for window in windows:
        if window["from"] <= end and window["to"] >= start and end - window["to"] <= max_lag:
            return str(window["signal"])
    return None


def classify_reruns(runs_by_job: dict[str, list[Run]], workers: Workers, windows: list[dict[str, Any]],
                    max_lag: float) -> tuple[Counter[str], dict[str, list[dict[str, Any]]]]:
    """Each run after a job's first, by what explains it (see the module docstring); a Redis restart explains
    a re-run that starts within ``max_lag`` seconds of the server being back."""
    counts: Counter[str] = Counter()
    examples: dict[str, list[dict[str, Any]]] = defaultdict(list)

    def effective_end(run: Run) -> float:
        if run.end is not None:
            return run.end
        dead = workers.dead_at(run.pid)
        return dead if dead is not None else float("inf")

    def note(category: str, job_id: str, earlier: Run, rerun: Run) -> None:
        counts[category] += 1
        if len(examples[category]) < 10:
            examples[category].append({"job_id": job_id, "earlier": asdict(earlier), "rerun": asdict(rerun),
                                       "earlier_worker_dead_at": workers.dead_at(earlier.pid)})

    for job_id, runs in runs_by_job.items():
        runs.sort(key=lambda r: r.start)
        for i, rerun in enumerate(runs[1:], 1):
            earlier = runs[:i]
            overlapping = [q for q in earlier if rerun.start < effective_end(q)]
            if overlapping:
                q = overlapping[0]
                restart = restart_in(windows, q.start, rerun.start, max_lag)
                note(f"overlapping, Redis {restart} restart between" if restart else "overlapping", job_id, q, rerun)
                continue
            prev = max(earlier, key=effective_end)
            dead = workers.dead_at(prev.pid)
            by_kill = prev.pid in workers.killed
            if prev.end is None or (dead is not None and dead < prev.end + OUTCOME_MARGIN):
                if by_kill:
                    note("after a kill (mid-run)" if prev.end is None else "after a kill (outcome not written)",
                         job_id, prev, rerun)
                elif dead is not None:
                    note("after the worker died on its own", job_id, prev, rerun)
                else:
                    note("unexplained: earlier run never ended, its worker alive", job_id, prev, rerun)
                continue
            restart = restart_in(windows, prev.end - OUTCOME_MARGIN, rerun.start, max_lag)
            note(f"after a Redis {restart} restart" if restart else "completed twice", job_id, prev, rerun)
    return counts, dict(examples)


def recovered_at(job: dict[str, Any] | None, attempt: int) -> float | None:
    """When the store recovered ``attempt`` of a job from its lost worker (its WorkerLostError entry)."""
    for entry in (job or {}).get("error_history") or []:
        if entry.get("attempt") == attempt and entry.get("error_type") == "WorkerLostError" and entry.get("at"):
            return parse_time(entry["at"])
    return None


def waits_after_kills(runs_by_job: dict[str, list[Run]], workers: Workers,
                      jobs: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """For each run a kill cut short: kill -> the job's next start, split at the moment the store recovered
    the attempt (its ``error_history`` entry): kill -> recovered is the lease running out plus the next
    recovery pass; recovered -> start is the retry backoff plus the wait behind other pending jobs.
    ``skipped`` counts the attempts between the two runs that never reached the handler (claimed by a worker
    killed before starting it, or while the claim waited in its buffer): each costs another lease."""
    waits: list[tuple[float, int, float | None, Run]] = []
    never: list[dict[str, Any]] = []
    for runs in runs_by_job.values():
        for run in runs:
            dead = workers.killed.get(run.pid)
            if dead is None or run.end is not None or run.start > dead:
                continue
            later = [r for r in runs if r.start > dead]
            if not later:
                never.append(asdict(run))
                continue
            following = min(later, key=lambda r: r.start)
            recovered = recovered_at(jobs.get(run.job_id), run.attempt)
            waits.append((following.start - dead, following.attempt - run.attempt - 1,
                          None if recovered is None else recovered - dead, run))
    values = [w for w, _, _, _ in waits]
    direct = [w for w, skipped, _, _ in waits if skipped <= 0]
    to_recovery = [r for _, _, r, _ in waits if r is not None]
    after_recovery = [w - r for w, skipped, r, _ in waits if r is not None and skipped <= 0]
    worst = sorted(waits, key=lambda w: -w[0])[:5]
    hitting = {r.pid for _, _, _, r in waits} | {r["pid"] for r in never}
    return {"runs_cut_by_kills": len(values) + len(never), "kills_that_cut_runs": len(hitting),
            "max_s": max(values) if values else None, "p50_s": percentile(values, 0.5),
            "p90_s": percentile(values, 0.9),
            "kill_to_recovered": {"max_s": max(to_recovery) if to_recovery else None,
                                  "p50_s": percentile(to_recovery, 0.5), "count": len(to_recovery)},
            "recovered_to_start": {"max_s": max(after_recovery) if after_recovery else None,
                                   "p50_s": percentile(after_recovery, 0.5)},
            "with_skipped_attempts": len(values) - len(direct), "never_restarted": never,
            "worst": [{"wait_s": round(w, 3), "skipped_attempts": k,
                       "kill_to_recovered_s": None if r is None else round(r, 3), **asdict(run)}
                      for w, k, r, run in worst]}


LOG_LINE = re.compile(r"^\S+ \S+ (ERROR|CRITICAL|WARNING) (\S+): (.*)")
CLI_ERROR = re.compile(r"^error: (.*)")  # the CLI's one-line errors
REDIS_NOTABLE = re.compile(r"(?i)short read|truncat|corrupt|bad file format|unrecoverable|error|!!!")


def shape(message: str) -> str:
    """A log message with ids and numbers blanked, so that one kind of message counts once."""
    message = re.sub(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}", "<id>", message)
    message = re.sub(r"chaos-\d+-[0-9a-f]{8}", "<worker>", message)
    return re.sub(r"\d+(\.\d+)?", "<n>", message)[:300]


def traceback_ends(lines: list[str]) -> list[str]:
    """The exception line that ends each traceback (a chain of "During handling..." counts once, by its last)."""
    ends: list[str] = []
    in_traceback, last = False, None
    for line in lines:
        if line.startswith("Traceback"):
            in_traceback, last = True, None
        elif in_traceback and (not line or line.startswith(" ")):
            continue
        elif in_traceback:
            in_traceback, last = False, line
        elif last is not None and line.startswith(("During handling", "The above exception")):
            last = None  # chained: the next traceback's end is the one that counts
        elif last is not None and line:
            ends.append(last)
            last = None
    if last is not None:
        ends.append(last)
    return ends


def scan_logs(folder: Path) -> dict[str, Any]:
    """Error lines, tracebacks (by their last line) and warnings in the processes' logs; notable redis lines."""
    errors: Counter[str] = Counter()
    warnings: Counter[str] = Counter()
    tracebacks: Counter[str] = Counter()
    files_with_errors: dict[str, int] = {}
    for path in sorted(folder.glob("*.log")):
        lines = path.read_text(errors="replace").splitlines()
        n_errors = 0
        for line in lines:
            if level := LOG_LINE.match(line):
                target = warnings if level.group(1) == "WARNING" else errors
                target[f"{level.group(2)}: {shape(level.group(3))}"] += 1
                n_errors += target is errors
            elif cli := CLI_ERROR.match(line):
                errors[f"cli: {shape(cli.group(1))}"] += 1
                n_errors += 1
        ends = traceback_ends(lines)
        tracebacks.update(shape(line) for line in ends)
        if n_errors or ends:
            files_with_errors[path.name] = n_errors + len(ends)
    redis_log = folder / "redis" / "redis.log"
    redis_lines = redis_log.read_text(errors="replace").splitlines() if redis_log.exists() else []
    return {"errors": dict(errors.most_common()), "tracebacks": dict(tracebacks.most_common()),
            "warnings": dict(warnings.most_common()), "files_with_errors": files_with_errors,
            "redis_notable": [line for line in redis_lines if REDIS_NOTABLE.search(line)][:50],
            "redis_aof_loads": [line for line in redis_lines if "DB loaded from append only file" in line]}


def analyse(config: Config, plan: list[Submission], submitter: Submitter, workers: Workers, api: ApiServer,
            timeline: Timeline, ledger_dir: Path, end: dict[str, Any]) -> dict[str, Any]:
    jobs = all_jobs(api)
    by_key: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for job in jobs:
        by_key[str(job.get("idempotency_key"))].append(job)
    by_id = {job["job_id"]: job for job in jobs}
    runs, bad_lines = read_ledger(ledger_dir)
    runs_by_job: dict[str, list[Run]] = defaultdict(list)
    for run in runs:
        runs_by_job[run.job_id].append(run)

    not_acked = [asdict(s) for s in plan if s.job_id is None]
    missing = [s.key for s in plan if s.job_id is not None and not by_key.get(s.key)]
    acked_id_gone = [s.key for s in plan if s.job_id is not None and s.job_id not in by_id]
    not_completed = {s.key: [j["status"] for j in by_key[s.key]] for s in plan
                     if by_key.get(s.key) and not any(j["status"] == "completed" for j in by_key[s.key])}
    duplicates = {key: [j["job_id"] for j in group] for key, group in by_key.items() if len(group) > 1}

    windows = restart_windows(timeline)
    rerun_counts, rerun_examples = classify_reruns(runs_by_job, workers, windows, 3 * config.worker_timeout)
    faults = {k: v for k, v in rerun_counts.items() if k.startswith(("completed twice", "overlapping", "unexplained"))}
    kill_waits = waits_after_kills(runs_by_job, workers, by_id)

    # The store against the ledger.
    completed = [j for j in jobs if j["status"] == "completed"]
    completed_without_run = [j["job_id"] for j in completed if j["job_id"] not in runs_by_job]
    ran_not_in_store = sorted(set(runs_by_job) - set(by_id))
    tokens_ended = {r.token for r in runs if r.end is not None}
    last_ended = {jid: max((r for r in rs if r.end is not None), key=lambda r: r.start, default=None)
                  for jid, rs in runs_by_job.items()}
    result_from: Counter[str] = Counter()
    for job in completed:
        token = (job.get("result") or {}).get("run")
        last = last_ended.get(job["job_id"])
        if token not in tokens_ended:
            result_from["a run the ledger does not have"] += 1
        elif last is not None and token == last.token:
            result_from["its last run"] += 1
        else:
            result_from["an earlier run (a later run's outcome was discarded)"] += 1
    same_attempt_twice = sum(1 for rs in runs_by_job.values()
                             if len({r.attempt for r in rs}) < len(rs))
    never_ended_alive = [asdict(r) for r in runs if r.end is None and workers.dead_at(r.pid) is None]

    problem_jobs = [j for j in jobs if j["status"] != "completed"]
    details = []
    for job in problem_jobs[:50]:
        full = get_json(f"{api.url}/api/v1/jobs/status/{job['job_id']}")
        detail = {k: full.get(k) for k in ("job_id", "idempotency_key", "status", "attempts", "max_retries",
                                           "error", "error_type", "error_history", "worker_id",
                                           "lease_expires_at", "run_at")}
        detail["ledger_runs"] = [asdict(r) for r in runs_by_job.get(job["job_id"], [])]
        detail["worker_process"] = workers.describe(full.get("worker_id"))
        details.append(detail)

    first_post = min((s.first_post_at for s in plan if s.first_post_at), default=submitter.t0)
    last_done = max((parse_time(j["completed_at"]) for j in completed if j.get("completed_at")), default=None)
    span = (last_done - first_post) if last_done else None
    attempts = Counter(int(j.get("attempts") or 0) for j in jobs)
    lost = sorted(set(missing) | set(not_completed) | {s["key"] for s in not_acked})
    return {
        "all_finished": end["all_finished"], "final_counts": end["counts"],
        "jobs_in_store": len(jobs), "submitted": len(plan), "acknowledged": len(plan) - len(not_acked),
        "lost": {"count": len(lost), "keys": lost[:100], "never_acknowledged": not_acked[:20],
                 "acknowledged_but_missing": missing[:100], "acknowledged_job_id_missing": acked_id_gone[:100],
                 "not_completed": dict(list(not_completed.items())[:100])},
        "duplicates": {"count": len(duplicates), "keys": dict(list(duplicates.items())[:50])},
        "reruns": {"total": sum(rerun_counts.values()), "by_cause": dict(rerun_counts),
                   "faults": faults, "examples": rerun_examples},
        "wait_after_kill": kill_waits,
        "ledger": {"runs": len(runs), "jobs_run": len(runs_by_job), "unparsed_lines": bad_lines,
                   "jobs_that_ran_more_than_once": sum(1 for rs in runs_by_job.values() if len(rs) > 1),
                   "jobs_with_an_attempt_number_run_twice": same_attempt_twice,
                   "runs_never_ended_on_a_live_worker": never_ended_alive[:20],
                   "completed_without_a_run": completed_without_run[:20],
                   "ran_but_not_in_store": ran_not_in_store[:20],
                   "stored_result_from": dict(result_from)},
        "attempts_histogram": {str(k): v for k, v in sorted(attempts.items())},
        "problem_jobs": details,
        "throughput": {"completed": len(completed), "seconds_first_submit_to_last_completion":
                       round(span, 2) if span else None,
                       "completed_per_second": round(len(completed) / span, 1) if span else None,
                       "submit_seconds": round(max((s.acked_at or 0) for s in plan) - first_post, 2),
                       "post_retries": dict(submitter.retry_reasons),
                       "posts": sum(s.posts for s in plan)},
    }


def parse_time(text: str) -> float:
    return datetime.fromisoformat(text).timestamp()


# -- report ------------------------------------------------------------------------------------------------

def targets(config: Config, report: dict[str, Any]) -> list[tuple[str, str, str, bool]]:
    """(figure, value, target, met)."""
    a = report["analysis"]
    wait = a["wait_after_kill"]
    fault_count = sum(a["reruns"]["faults"].values())
    max_wait = wait["max_s"]
    return [
        ("lost jobs", str(a["lost"]["count"]), "0", a["lost"]["count"] == 0),
        ("duplicates in the store", str(a["duplicates"]["count"]), "0", a["duplicates"]["count"] == 0),
        ("completed twice / overlapping (unexplained)", str(fault_count), "0", fault_count == 0),
        ("wait after a kill, max", f"{max_wait:.2f} s" if max_wait is not None else "-",
         f"< {2 * config.worker_timeout:.0f} s",
         (max_wait is None or max_wait < 2 * config.worker_timeout) and not wait["never_restarted"]),
        ("all jobs finished", str(a["all_finished"]), "True", bool(a["all_finished"])),
        ("workers that died on their own", str(len(report["workers_died"])), "0", not report["workers_died"]),
    ]


def render(config: Config, report: dict[str, Any]) -> str:
    a = report["analysis"]
    wait = a["wait_after_kill"]
    t = a["throughput"]
    rows = [("figure", "value", "target", "")]
    rows += [(f, v, tgt, "ok" if ok else "MISSED") for f, v, tgt, ok in targets(config, report)]
    rows += [
        ("wait after a kill, p50 / p90", f"{fmt(wait['p50_s'])} / {fmt(wait['p90_s'])} s", "", ""),
        ("  of which kill -> recovered: max / p50", f"{fmt(wait['kill_to_recovered']['max_s'])} / "
                                                   f"{fmt(wait['kill_to_recovered']['p50_s'])} s", "", ""),
        ("  and recovered -> next start: max / p50", f"{fmt(wait['recovered_to_start']['max_s'])} / "
                                                    f"{fmt(wait['recovered_to_start']['p50_s'])} s", "", ""),
        ("  next start after claims lost to kills", str(wait["with_skipped_attempts"]), "", ""),
        ("runs cut short by kills (by kills)", f"{wait['runs_cut_by_kills']} ({wait['kills_that_cut_runs']})",
         "", ""),
        ("re-runs, all", str(a["reruns"]["total"]), "", ""),
    ]
    rows += [(f"  {cause}", str(n), "", "") for cause, n in sorted(a["reruns"]["by_cause"].items())]
    rows += [
        ("throughput", f"{t['completed_per_second']} completed/s ({t['completed']} in "
                       f"{t['seconds_first_submit_to_last_completion']} s)", "", ""),
        ("kills / worker processes", f"{len(report['kills'])} / {report['worker_processes']}", "", ""),
        ("API restarts / Redis restarts", f"{len(report['api_restarts'])} / {len(report['redis_restarts'])}", "", ""),
        ("POST retries", ", ".join(f"{k} {v}" for k, v in t["post_retries"].items()) or "0", "", ""),
        ("failed / unfinished jobs", str(len(a["problem_jobs"])), "", ""),
        ("handler runs / jobs run more than once", f"{a['ledger']['runs']} / "
                                                   f"{a['ledger']['jobs_that_ran_more_than_once']}", "", ""),
        ("jobs with one attempt number run twice", str(a["ledger"]["jobs_with_an_attempt_number_run_twice"]),
         "", ""),
        ("stored result from", ", ".join(f"{k} {v}" for k, v in a["ledger"]["stored_result_from"].items()),
         "", ""),
        ("error lines / tracebacks in logs", f"{sum(report['logs']['errors'].values())} / "
                                              f"{sum(report['logs']['tracebacks'].values())}", "", ""),
    ]
    for r in report["redis_restarts"]:
        rows.append((f"Redis {r['signal']} restart", f"down {r['up_at'] - r['down_at']:.2f} s, acknowledged "
                     f"changes lost {r['acknowledged_changes_lost']} (seq {r['seq_before']} -> "
                     f"{r['seq_after_restart']})", "", ""))
    widths = [max(len(row[i]) for row in rows) for i in range(4)]
    lines = [" | ".join(cell.ljust(widths[i]) for i, cell in enumerate(row)).rstrip() for row in rows]
    lines.insert(1, "-+-".join("-" * w for w in widths))
    logs = report["logs"]
    for title, found in (("error lines", logs["errors"]), ("tracebacks (last line)", logs["tracebacks"])):
        if found:
            lines += ["", f"{title}, by message (in {', '.join(sorted(logs['files_with_errors']))}):"]
            lines += [f"  {n:5d}  {message}" for message, n in list(found.items())[:10]]
    for job in a["problem_jobs"][:10]:
        history = "; ".join(str(e.get("error", e))[:80] for e in job.get("error_history") or [])
        lines.append(f"job {job['job_id']} ({job['idempotency_key']}): {job['status']}, attempts "
                     f"{job['attempts']}, {len(job['ledger_runs'])} handler runs, on {job['worker_process']}, "
                     f"error {job['error']!r}; history: {history}")
    for died in report["workers_died"]:
        lines.append(f"worker {died['seq']} (pid {died['pid']}) exited on its own with {died['code']}: {died['log']}")
    return "\n".join(lines)


def fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


def machine_info() -> dict[str, Any]:
    def git(*args: str) -> str:
        try:
            return subprocess.run(["git", *args], capture_output=True, text=True, cwd=ROOT, timeout=10).stdout
        except (OSError, subprocess.SubprocessError):
            return ""

    changed = git("status", "--porcelain", "--", "src")
    try:
        redis_version = subprocess.run(["redis-server", "--version"], capture_output=True, text=True).stdout.strip()
    except OSError:
        redis_version = None
    return {"date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "cpu_count": os.cpu_count(),
            "load_average_at_start": os.getloadavg(), "platform": platform.platform(),
            "python": platform.python_version(), "redis_server": redis_version,
            "git_commit": git("rev-parse", "--short", "HEAD").strip() or None,
            "src_uncommitted_changes": sorted(line[3:] for line in changed.splitlines())}


def snapshot_code(which: str, folder: Path) -> dict[str, Any]:
    """A copy of ``src/`` that every process of the run imports (``PYTHONPATH``), so that edits made to the
    working tree during the run do not give processes started at different times different code.
    ``worktree``: the working tree as it is now; ``head``: the last commit (``git archive HEAD``)."""
    target = folder / "code"
    if which == "head":
        target.mkdir()
        archive = subprocess.run(["git", "archive", "HEAD", "src"], cwd=ROOT, capture_output=True, check=True)
        subprocess.run(["tar", "-x", "-C", str(target)], input=archive.stdout, check=True)
    else:
        shutil.copytree(ROOT / "src", target / "src", ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    digest = hashlib.sha256()
    for path in sorted((target / "src").rglob("*")):
        if path.is_file():
            digest.update(str(path.relative_to(target)).encode() + b"\0" + path.read_bytes())
    src = target / "src"
    check = subprocess.run([sys.executable, "-c", "import jobhandle, jobhandle.cli, jobhandle.api.app, "
                            "jobhandle.stores.sqlite.store, jobhandle.stores.redis.store; print(jobhandle.__file__)"],
                           env={**os.environ, "PYTHONPATH": str(src)}, capture_output=True, text=True, cwd=ROOT)
    if check.returncode != 0 or not check.stdout.strip().startswith(str(src)):
        raise RuntimeError(f"the {which} code does not import from {src}:\n{check.stderr.strip()[-2000:]}")
    return {"code": which, "path": str(src), "sha256": digest.hexdigest()[:16]}


# -- main --------------------------------------------------------------------------------------------------

def child_env(config: Config, folder: Path, ledger_dir: Path, code: Path) -> dict[str, str]:
    """Settings for every child: short leases, no concurrency caps (a killed worker's jobs count as running
    until recovered: with the default caps of 10 in all and 3 per user they would starve the run), resource
    protection off (this run itself keeps the 2 cores busy), a temp folder of the run's own (SQLite wake-up
    sockets)."""
    tmp = folder / "tmp"
    tmp.mkdir(exist_ok=True)
    return {**os.environ, "JOBHANDLE_WORKER_TIMEOUT": str(config.worker_timeout),
            "JOBHANDLE_HEARTBEAT_INTERVAL": str(config.heartbeat_interval),
            "JOBHANDLE_GLOBAL_MAX_CONCURRENT_JOBS": "0", "JOBHANDLE_PER_USER_MAX_CONCURRENT_JOBS": "0",
            "JOB_QUEUE_CPU_THRESHOLD": "100", "JOB_QUEUE_MEMORY_THRESHOLD": "100",
            "TMPDIR": str(tmp), "CHAOS_LEDGER_DIR": str(ledger_dir), "PYTHONUNBUFFERED": "1",
            "PYTHONPATH": str(code)}


def run(config: Config, output: Path) -> int:
    folder = Path(tempfile.mkdtemp(prefix=f"jh-chaos-{config.store}-"))
    ledger_dir = folder / "ledger"
    ledger_dir.mkdir()
    started = time.time()
    timeline = Timeline(folder / "timeline.jsonl", started)
    timeline.say(f"run folder {folder}")
    info = machine_info()
    info["code"] = snapshot_code(config.code, folder)
    redis_server: RedisServer | None = None
    api: ApiServer | None = None
    workers: Workers | None = None
    submitter: Submitter | None = None
    clean = False
    try:
        if config.store == "redis":
            redis_server = RedisServer(folder / "redis")
            redis_server.start()
            store_url = redis_server.url
        else:
            store_url = f"sqlite:///{folder / 'store.db'}"
        env = child_env(config, folder, ledger_dir, Path(info["code"]["path"]))
        api = ApiServer(store_url, folder, env)
        api.start()
        timeline.say(f"store {store_url}, API {api.url}")
        workers = Workers(config, store_url, folder, env, timeline)
        for _ in range(config.workers):
            workers.spawn()
        plan = job_plan(config)
        submitter = Submitter(config, api, plan)
        submitter.start()
        chaos_phase(config, workers, api, redis_server, submitter, timeline)
        timeline.add("chaos_end")
        timeline.say(f"all {submitter.acked} jobs submitted, {len(workers.killed)} kills: waiting for the last jobs")
        end = wait_for_the_end(config, workers, api, timeline)
        timeline.say("reading the store and the ledger")
        analysis = analyse(config, plan, submitter, workers, api, timeline, ledger_dir, end)
        exit_codes = workers.stop_all()
        api_code = api.stop()
        if redis_server is not None:
            redis_server.stop()
        info["load_average_at_end"] = os.getloadavg()
        report: dict[str, Any] = {
            "machine": info, "config": {**asdict(config), "store_url": store_url},
            "run_seconds": round(time.time() - started, 1), "folder": str(folder),
            "analysis": analysis, "kills": timeline.of("kill"), "worker_processes": len(workers.all),
            "workers_died": timeline.of("worker_died"), "api_restarts": timeline.of("api_restart"),
            "redis_restarts": timeline.of("redis_restart"),
            "final_exit_codes": {"workers": exit_codes, "api": api_code}, "logs": scan_logs(folder),
        }
        met = all(ok for *_, ok in targets(config, report))
        bad_exits = [code for code in exit_codes.values() if code != 0] + ([api_code] if api_code not in (0,) else [])
        report["targets_met"] = met
        report["unclean_exits"] = bad_exits
        output.parent.mkdir(parents=True, exist_ok=True)
        output.write_text(json.dumps(report, indent=2, default=str) + "\n")
        print(f"\njobhandle chaos run on {config.store}: {config.jobs} jobs, {config.workers} workers x "
              f"{config.concurrency} slots, kill every {config.kill_every[0]:g}-{config.kill_every[1]:g} s, "
              f"worker timeout {config.worker_timeout:g} s (heartbeat {config.heartbeat_interval:g} s), "
              f"seed {config.seed}; {report['run_seconds']} s; load {info['load_average_at_start'][0]:.2f} -> "
              f"{info['load_average_at_end'][0]:.2f}\n")
        print(render(config, report))
        print(f"\nraw results: {output}")
        clean = met and not bad_exits and not report["logs"]["errors"] and not report["logs"]["tracebacks"]
        return 0 if met else 1
    finally:
        if submitter is not None:
            submitter.stop()
        if workers is not None:
            workers.kill_all()
        if api is not None and api.proc is not None and api.proc.poll() is None:
            kill_now(api.proc)
        if redis_server is not None and redis_server.proc is not None and redis_server.proc.poll() is None:
            kill_now(redis_server.proc)
        timeline.close()
        if clean and not config.keep:
            shutil.rmtree(folder, ignore_errors=True)
        else:
            print(f"run folder kept: {folder}", file=sys.stderr)


def parse_range(text: str) -> tuple[float, float]:
    low, _, high = text.partition("-")
    lo, hi = float(low), float(high or low)
    if not 0 < lo <= hi:
        raise argparse.ArgumentTypeError(f"expected MIN-MAX seconds, such as 1-3, not {text!r}")
    return lo, hi


def parse_args(argv: list[str] | None) -> tuple[Config, Path]:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--store", choices=("sqlite", "redis"), required=True)
    p.add_argument("--jobs", type=int, default=10_000)
    p.add_argument("--workers", type=int, default=3, help="worker processes running at once")
    p.add_argument("--concurrency", type=int, default=4, help="slots per worker")
    p.add_argument("--kill-every", type=parse_range, default=(1.0, 3.0), metavar="MIN-MAX",
                   help="seconds between kills, drawn uniformly (default 1-3)")
    p.add_argument("--worker-timeout", type=float, default=10.0, help="JOBHANDLE_WORKER_TIMEOUT (lease), s")
    p.add_argument("--heartbeat-interval", type=float, default=None,
                   help="JOBHANDLE_HEARTBEAT_INTERVAL, s (default: a fifth of the worker timeout)")
    p.add_argument("--rate", type=float, default=50.0, help="jobs submitted per second")
    p.add_argument("--submitters", type=int, default=4, help="threads POSTing jobs")
    p.add_argument("--long-fraction", type=float, default=0.05, help="share of 1-2 s jobs (the rest: 5-200 ms)")
    p.add_argument("--short-fraction", type=float, default=0.0,
                   help="share of 0-3 ms jobs, which workers claim and finish in batches (default 0)")
    p.add_argument("--max-retries", type=int, default=10, help="each job's max_retries")
    p.add_argument("--retry-delay", type=float, default=1.0, help="each job's retry_delay, s")
    p.add_argument("--redis-down", type=float, default=1.0, help="seconds redis-server stays down per restart")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--code", choices=("worktree", "head"), default="worktree",
                   help="the jobhandle every process runs: a copy of src/ as it is now (default), or as of the "
                        "last commit")
    p.add_argument("--keep", action="store_true", help="keep the run folder even after a clean run")
    p.add_argument("--output", type=Path, default=None, help="default bench/results/chaos-<store>.json")
    args = p.parse_args(argv)
    if not (0 <= args.long_fraction and 0 <= args.short_fraction and args.long_fraction + args.short_fraction <= 1):
        p.error("--long-fraction and --short-fraction must be shares that add up to 1 at most")
    if args.jobs < 1 or args.workers < 1 or args.concurrency < 1 or args.rate <= 0 or args.submitters < 1:
        p.error("--jobs, --workers, --concurrency, --submitters and --rate must be positive")
    heartbeat = args.heartbeat_interval or args.worker_timeout / 5
    if not 0 < heartbeat < args.worker_timeout:
        p.error("the heartbeat interval must be shorter than the worker timeout")
    config = Config(store=args.store, jobs=args.jobs, workers=args.workers, concurrency=args.concurrency,
                    kill_every=args.kill_every, worker_timeout=args.worker_timeout, heartbeat_interval=heartbeat,
                    rate=args.rate, submitters=args.submitters, long_fraction=args.long_fraction,
                    short_fraction=args.short_fraction,
                    max_retries=args.max_retries, retry_delay=args.retry_delay, redis_down_seconds=args.redis_down,
                    seed=args.seed, code=args.code, keep=args.keep)
    return config, args.output or RESULTS / f"chaos-{args.store}.json"


def main(argv: list[str] | None = None) -> int:
    config, output = parse_args(argv)
    if config.store == "redis" and shutil.which("redis-server") is None:
        print("error: redis-server not found on PATH", file=sys.stderr)
        return 2

    def terminate(signum: int, frame: object) -> None:
        raise KeyboardInterrupt(f"signal {signum}")

    signal.signal(signal.SIGTERM, terminate)
    try:
        return run(config, output)
    except KeyboardInterrupt:
        print("interrupted: every process of the run was stopped", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
