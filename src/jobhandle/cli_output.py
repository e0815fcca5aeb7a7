"""What the ``jobhandle`` command line prints: job details, the jobs, stats, workers and pools tables, and the
live progress bars of watched jobs (rich)."""

from __future__ import annotations

import json
import time
from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

from rich import box
from rich.console import Console
from rich.progress import (
    BarColumn,
    Progress,
    TaskProgressColumn,
    TextColumn,
    TimeElapsedColumn,
)
from rich.table import Table
from rich.text import Text

from .errors import JobTimeoutError
from .models import ALL_STATUSES, Job, JobStatus
from .queue import JobQueue

STATUS_STYLES = {
    JobStatus.WAITING: "blue", JobStatus.SCHEDULED: "blue", JobStatus.PENDING: "cyan",
    JobStatus.RUNNING: "yellow", JobStatus.RETRYING: "magenta", JobStatus.COMPLETED: "green",
    JobStatus.FAILED: "red", JobStatus.CANCELLED: "bright_black",
}

WATCH_RECHECK_SECONDS = 0.5
"""Longest wait between two looks at a watched job; changes wake the watcher sooner."""


def _status(status: JobStatus) -> Text:
    return Text(status.value, style=STATUS_STYLES[status])


def _when(value: datetime | None, fmt: str = "%Y-%m-%d %H:%M:%S") -> str:
    return "" if value is None else value.strftime(fmt)


def _percent(job: Job) -> str:
    return f"{job.progress:.0%}"


def _snippet(text: str | None, width: int = 40) -> str:
    if not text:
        return ""
    line = " ".join(text.split())
    return line if len(line) <= width else line[:width - 1] + "…"


def result_summary(result: Any, width: int = 60) -> str:
    """A result in one short line: a dict's scalar fields as ``key=value``, anything else as JSON."""
    if isinstance(result, dict):
        scalars = [f"{k}={v}" for k, v in result.items() if isinstance(v, (str, int, float, bool))]
        if scalars:
            return _snippet(" ".join(scalars), width)
    return _snippet(json.dumps(result), width)


def _error(job: Job) -> str | None:
    if not job.error:
        return None
    if not job.error_type or job.error.startswith(job.error_type):  # the message often names its type
        return job.error
    return f"{job.error_type}: {job.error}"


def job_details(job: Job) -> Table:
    """Every field of a job worth reading, one per line; empty ones are left out."""
    metrics = {k: v for k, v in job.metrics.to_dict().items() if v is not None}
    progress = f"{_percent(job)} {job.progress_message or ''}".strip()
    rows: list[tuple[str, str | Text | None]] = [
        ("id", job.job_id), ("type", job.job_type), ("status", _status(job.status)), ("queue", job.queue),
        ("priority", str(job.priority)), ("user", job.user_id), ("progress", progress),
        ("created", _when(job.created_at)), ("scheduled", _when(job.scheduled_time)),
        ("started", _when(job.started_at)), ("completed", _when(job.completed_at)),
        ("attempts", f"{job.attempts} (max retries {job.max_retries})"), ("worker", job.worker_id),
        ("error", _error(job)),
        ("result", None if job.result is None else json.dumps(job.result)),
        ("metrics", ", ".join(f"{k} {v:.3g}" if isinstance(v, float) else f"{k} {v}"
                              for k, v in metrics.items())),
        ("parameters", json.dumps(job.parameters)),
    ]
    grid = Table.grid(padding=(0, 2))
    grid.add_column(style="bold")
    grid.add_column(overflow="fold")
    for label, value in rows:
        if value:
            grid.add_row(label, value if isinstance(value, Text) else Text(value))
    return grid


def jobs_table(jobs: Iterable[Job]) -> Table:
    table = Table(box=box.SIMPLE_HEAD)
    for name in ("id", "type", "status", "progress", "user", "created (UTC)", "error"):
        table.add_column(name, justify="right" if name == "progress" else "left", no_wrap=name != "error")
    for job in jobs:
        table.add_row(job.job_id[:8], Text(job.job_type), _status(job.status), _percent(job), Text(job.user_id),
                      _when(job.created_at, "%m-%d %H:%M:%S"), Text(_snippet(_error(job)), style="red"))
    return table


def _counts(by_status: dict[str, int]) -> Text:
    """``pending 2  running 1`` with each status in its colour; statuses at zero are left out."""
    text = Text()
    for status in ALL_STATUSES:
        if by_status.get(status.value):
            text.append(f"{status.value} {by_status[status.value]}  ", style=STATUS_STYLES[status])
    return text if text.plain else Text("none")


def stats_table(stats: dict[str, Any]) -> Table:
    table = Table(box=box.SIMPLE, show_header=False)
    table.add_column(style="bold")
    table.add_column()
    table.add_row("jobs", Text(f"{stats['total_jobs']} total  ").append_text(_counts(stats["by_status"])))
    for job_type, counts in sorted(stats["by_type"].items()):
        table.add_row(Text(f"  type {job_type}"), _counts(counts))
    if set(stats["by_queue"]) - {"default"}:
        for queue, counts in sorted(stats["by_queue"].items()):
            table.add_row(Text(f"  queue {queue}"), _counts(counts))
    table.add_row("workers", f"{stats['active_workers']} active, health {stats['worker_health_status']}")
    table.add_row("limits", f"{stats['global_max_concurrent_jobs']} concurrent jobs, "
                            f"{stats['per_user_max_concurrent_jobs']} per user")
    table.add_row("host", f"cpu {stats['cpu_usage_percent']:.0f}%, memory {stats['memory_usage_mb']:.0f} MB "
                          f"({stats['memory_usage_percent']:.0f}%)")
    table.add_row("store", stats["queue_type"])
    table.add_row("last cleanup", f"{stats['last_cleanup'] or 'never'} (removed {stats['last_cleanup_removed']})")
    return table


def workers_table(workers: list[dict[str, Any]]) -> Table:
    table = Table(box=box.SIMPLE_HEAD)
    pooled = any(w.get("pool") for w in workers)
    for name in ("worker", "pid", "queues", "slots", "state", "heartbeat", "jobs") + (("pool",) if pooled else ()):
        table.add_column(name, justify="right" if name in ("pid", "slots", "heartbeat") else "left",
                         overflow="fold")
    for w in workers:
        age = w["heartbeat_age_seconds"]
        heartbeat = Text("never" if age is None else f"{age:.0f}s ago", style="" if w["healthy"] else "red")
        cells = [Text(w["worker_id"]), str(w["pid"]), Text(",".join(w["queues"])), str(w["concurrency"]), w["state"],
                 heartbeat, " ".join(job_id[:8] for job_id in w["current_jobs"])]
        table.add_row(*cells, *([Text(w.get("pool") or "")] if pooled else []))
    return table


def pools_table(pools: list[dict[str, Any]]) -> Table:
    """The worker pools: size within range, the load each last read, state, and the age of its registration."""
    table = Table(box=box.SIMPLE_HEAD)
    for name in ("pool", "host:pid", "queues", "workers", "load", "state", "seen"):
        table.add_column(name, justify="right" if name == "seen" else "left", overflow="fold")
    for p in pools:
        age = p["heartbeat_age_seconds"]
        seen = Text("never" if age is None else f"{age:.0f}s ago", style="" if p["healthy"] else "red")
        workers = f"{p['workers']} of {p['min_workers']}-{p['max_workers']}" + (
            f", {p['draining']} draining" if p["draining"] else "")
        load = p["load"]
        oldest = load.get("oldest_wait_seconds")
        load_text = (f"{load['pending']} pending, {load['running']} running"
                     + (f", oldest {oldest:.1f}s" if oldest else "")) if load else ""
        table.add_row(Text(p["name"]), Text(f"{p['hostname']}:{p['pid']}"), Text(",".join(p["queues"])), workers,
                      Text(load_text), p["state"], seen)
    return table


def pool_event_line(pool: dict[str, Any], event: dict[str, Any]) -> Text:
    """``images 18:25:32 scale: 1 -> 2: 16 jobs for 2 slots, ...``: one thing a pool did, and why."""
    at = _when(datetime.fromisoformat(event["at"]), "%H:%M:%S")
    return Text(f"{pool['name']} {at} {event['kind']}: {event['detail']}")


def pool_events_table(events: list[dict[str, Any]]) -> Table:
    """A pool's latest events, oldest first: when, what, why, and its size after it."""
    table = Table(box=box.SIMPLE_HEAD)
    for name in ("at (UTC)", "event", "workers", "why"):
        table.add_column(name, justify="right" if name == "workers" else "left", overflow="fold")
    for e in events:
        table.add_row(_when(datetime.fromisoformat(e["at"]), "%m-%d %H:%M:%S"), e["kind"], str(e["workers"]),
                      Text(e["detail"]))
    return table


def print_outcome(console: Console, job: Job) -> None:
    """The final line of a watched job: its status and its result or error."""
    took = job.metrics.execution_time_seconds
    line = Text(f"job {job.job_id} ").append_text(_status(job.status))
    if took is not None:
        line.append(f" in {took:.2f}s")
    console.print(line)
    if job.status is JobStatus.COMPLETED:
        console.print(Text(f"result: {json.dumps(job.result)}"))
    elif job.error:
        console.print(Text(f"error: {_error(job)}", style="red"))


def watch(q: JobQueue, job_ids: Sequence[str], timeout: float | None, console: Console) -> list[Job]:
    """Show a live progress bar per job until all are terminal; return them. Woken by store changes."""
    deadline = None if timeout is None else time.monotonic() + timeout
    columns = (TextColumn("{task.description}"), BarColumn(), TaskProgressColumn(),
               TextColumn("{task.fields[status]}"), TextColumn("{task.fields[message]}", markup=False),
               TimeElapsedColumn())
    with Progress(*columns, console=console) as bars:
        tasks = {job_id: bars.add_task(job_id[:8], total=1.0, status="", message="") for job_id in job_ids}
        while True:
            seen = q.store.change_version
            jobs = [q.get(job_id) for job_id in job_ids]
            for job in jobs:
                style = STATUS_STYLES[job.status]
                bars.update(tasks[job.job_id], description=f"{job.job_id[:8]} {job.job_type}",
                            completed=1.0 if job.status is JobStatus.COMPLETED else job.progress,
                            status=f"[{style}]{job.status.value}[/]", message=job.progress_message or "")
            if all(job.is_terminal for job in jobs):
                return jobs
            remaining = None if deadline is None else deadline - time.monotonic()
            if remaining is not None and remaining <= 0:
                waiting = [job.job_id for job in jobs if not job.is_terminal]
                raise JobTimeoutError(f"{len(waiting)} job(s) not finished after {timeout}s: {', '.join(waiting)}")
            q.store.wait_for_change(seen, WATCH_RECHECK_SECONDS if remaining is None
                                    else min(remaining, WATCH_RECHECK_SECONDS))
