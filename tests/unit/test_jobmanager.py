"""Seed 004's embedded API (``JobManager``) against real SQLite files and real in-process workers."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from jobhandle import (
    InvalidParameterError,
    JobCancelled,
    JobContext,
    JobNotFoundError,
    JobPriority,
    JobStatus,
    PermanentError,
    Settings,
    UnknownHandlerError,
)
from jobhandle.compat import JOB_KEYS, JobManager
from jobhandle.handlers.documents import process_batch, process_document


def wait_for(manager: JobManager, job_id: str, predicate: Callable[[dict[str, Any]], bool],
             timeout: float = 20) -> dict[str, Any]:
    """Wait (woken by store changes, no sleeping) until ``predicate(job dict)``; fail after ``timeout``."""
    store = manager.queue.store
    deadline = time.monotonic() + timeout
    while True:
        seen = store.change_version
        job = manager.get_job(job_id)
        assert job is not None, f"job {job_id} disappeared"
        if predicate(job):
            return job
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise AssertionError(f"job {job_id} never met the condition; last seen {job}")
        store.wait_for_change(seen, min(remaining, 1.0))


def finished(manager: JobManager, job_id: str) -> dict[str, Any]:
    manager.queue.wait(job_id, timeout=20)
    job = manager.get_job(job_id)
    assert job is not None
    return job


@pytest.fixture
def db(tmp_path: Path) -> str:
    return str(tmp_path / "jobs.db")


@pytest.fixture
def manager(db: str) -> Iterator[JobManager]:
    m = JobManager(db_path=db, max_workers=2)
    yield m
    m.close()


class Gate:
    """A handler that reports 40%, then waits until the test opens the gate (at most 10 s), then reports 90%
    (which raises JobCancelled if its job was cancelled meanwhile)."""

    def __init__(self) -> None:
        self.opened = threading.Event()
        self.cancelled: list[str] = []
        self.returned = threading.Event()  # set when a call returns or raises

    def __call__(self, job_id: str, payload: dict[str, Any], update_progress: Callable[..., None]) -> Any:
        try:
            update_progress(40, "Halfway")
            if not self.opened.wait(10):
                raise RuntimeError("the test never opened the gate")
            update_progress(90, "Almost")
        except JobCancelled:
            self.cancelled.append(job_id)
            raise
        finally:
            self.returned.set()
        return {"done": payload}


# -- seed 004 as written -------------------------------------------------------------------------------------

def test_seed_initialisation_submit_and_job_dict(manager: JobManager) -> None:
    def echo(job_id: str, payload: dict[str, Any], update_progress: Callable[..., None]) -> dict[str, Any]:
        update_progress(50, "Working")
        return {"job_id": job_id, "echo": payload}

    manager.register_handler("process_document", echo)
    assert not manager.running
    manager.start()
    assert manager.running
    job_id = manager.submit_job(job_type="process_document",
                                payload={"file_path": "input/a.txt", "file_name": "a.txt"}, priority=1)
    assert isinstance(job_id, str)
    job = finished(manager, job_id)
    assert tuple(job) == JOB_KEYS
    assert job["job_id"] == job_id and job["job_type"] == "process_document"
    assert job["status"] == "completed" and job["priority"] == 1 and job["progress"] == 100.0
    assert json.loads(job["payload"]) == {"file_path": "input/a.txt", "file_name": "a.txt"}
    assert json.loads(job["result"]) == {"job_id": job_id, "echo": {"file_path": "input/a.txt",
                                                                     "file_name": "a.txt"}}
    assert job["error"] is None
    for key in ("created_at", "started_at", "completed_at"):
        assert isinstance(job[key], str) and job[key].endswith("+00:00")
    manager.stop()
    assert not manager.running


def jobs_status_tab(manager: JobManager, status_filter: str) -> tuple[dict[str, int], list[dict[str, Any]]]:
    """The data access lines of seed 004's ``jobs_status_tab``, as written there, minus the Streamlit calls."""
    stats = manager.get_stats()
    metrics = [stats['total'], stats['pending'], stats['processing'], stats['completed'], stats['failed']]
    assert all(isinstance(m, int) for m in metrics)
    if status_filter == "All":
        jobs = manager.get_all_jobs(limit=50)
    else:
        status_enum = JobStatus[status_filter.upper()]
        jobs = manager.get_all_jobs(status=status_enum, limit=50)
    for job in jobs:
        title = f"{job['job_type']} - {job['job_id'][:8]}... ({job['status']})"
        assert title and job['priority'] is not None and job['created_at']
        if job['status'] == 'processing':
            progress = job['progress'] or 0
            assert 0 <= progress / 100 <= 1  # st.progress takes 0.0 to 1.0
        if job['payload']:
            json.loads(job['payload'])
        if job['result']:
            json.loads(job['result'])
    return stats, jobs


def test_seed_jobs_tab_against_real_workers(db: str) -> None:
    gate = Gate()

    def fail(payload: dict[str, Any]) -> None:
        raise ValueError(f"cannot process {payload['name']}")

    with JobManager(db_path=db, max_workers=2, settings=Settings(max_retries=0)) as manager:
        manager.register_handler("quick", lambda payload: {"ok": True})
        manager.register_handler("fail", fail)
        manager.register_handler("block", gate)
        manager.start()
        done = manager.submit_job("quick", {"name": "done"})
        finished(manager, done)
        failed = manager.submit_job("fail", {"name": "bad.pdf"})
        finished(manager, failed)
        busy = [manager.submit_job("block", {"n": n}) for n in range(2)]
        for job_id in busy:  # both slots are taken...
            wait_for(manager, job_id, lambda j: j["status"] == "processing" and j["progress"] == 40.0)
        waiting = manager.submit_job("quick", {"name": "waiting"})  # ...so this one waits

        stats, jobs = jobs_status_tab(manager, "All")
        assert stats == {"total": 5, "waiting": 0, "scheduled": 0, "pending": 1, "processing": 2,
                         "retrying": 0, "completed": 1, "failed": 1, "cancelled": 0}
        assert [j["job_id"] for j in jobs] == [waiting, *reversed(busy), failed, done]  # newest first
        expected = {"Pending": [waiting], "Processing": sorted(busy), "Completed": [done], "Failed": [failed]}
        for status_filter, ids in expected.items():
            _, jobs = jobs_status_tab(manager, status_filter)
            assert sorted(j["job_id"] for j in jobs) == ids, status_filter
        failed_job = manager.get_job(failed)
        assert failed_job is not None and failed_job["error"] == "ValueError: cannot process bad.pdf"
        assert failed_job["result"] is None

        # The Cancel buttons, on a pending and on a processing job:
        assert manager.update_job_status(waiting, JobStatus.CANCELLED) is True
        assert manager.update_job_status(busy[0], JobStatus.CANCELLED) is True
        gate.opened.set()
        assert finished(manager, busy[1])["status"] == "completed"
        assert finished(manager, busy[0])["status"] == "cancelled"
        stats, _ = jobs_status_tab(manager, "All")
        assert (stats["cancelled"], stats["completed"], stats["processing"], stats["pending"]) == (2, 2, 0, 0)


# -- handler conventions -------------------------------------------------------------------------------------

def test_every_handler_style_runs(manager: JobManager) -> None:
    async def async_three(job_id: str, payload: dict[str, Any], update_progress: Callable[..., None]) -> str:
        update_progress(10)
        return f"async {payload['x']}"

    def native(ctx: JobContext, x: int) -> dict[str, Any]:
        ctx.progress(0.5, "native")
        return {"native": x, "attempt": ctx.attempt}

    manager.register_handler("one", lambda payload: payload["x"] + 1)
    manager.register_handler("two", lambda job_id, payload: [job_id, payload["x"]])
    manager.register_handler("three", lambda job_id, payload, update_progress: update_progress(25) or "three")
    manager.register_handler("star", lambda *args: len(args))
    manager.register_handler("async", async_three)
    manager.register_handler("native", native)
    manager.start()
    ids = {name: manager.submit_job(name, {"x": 1}) for name in
           ("one", "two", "three", "star", "async", "native")}
    results = {name: json.loads(finished(manager, job_id)["result"]) for name, job_id in ids.items()}
    assert results == {"one": 2, "two": [ids["two"], 1], "three": "three", "star": 3, "async": "async 1",
                       "native": {"native": 1, "attempt": 1}}


def test_native_handlers_keep_their_parameter_check(manager: JobManager) -> None:
    manager.register_handler("native", lambda ctx, x: x)
    with pytest.raises(InvalidParameterError, match="parameters do not fit handler 'native'"):
        manager.submit_job("native", {"y": 1})


@pytest.mark.parametrize("fn, problem", [
    (lambda: None, "takes 0 positional parameters"),
    (lambda a, b, c, d: None, "takes 4 positional parameters"),
    ("not a function", "is not callable"),
])
def test_register_handler_rejects_unknown_shapes(manager: JobManager, fn: Any, problem: str) -> None:
    with pytest.raises(InvalidParameterError, match=problem):
        manager.register_handler("bad", fn)


def test_update_progress_rejects_non_numbers(manager: JobManager) -> None:
    manager.register_handler("bad_progress", lambda job_id, payload, update_progress: update_progress("50%"))
    manager.start()
    job = wait_for(manager, manager.submit_job("bad_progress", {}), lambda j: j["error"] is not None)
    assert job["status"] == "retrying"  # a bug in the handler: retried like any other error
    assert "update_progress takes a percentage from 0 to 100, not '50%'" in job["error"]


def test_cancel_reaches_a_seed_style_handler_through_update_progress(db: str) -> None:
    gate = Gate()
    with JobManager(db_path=db, max_workers=1, settings=Settings(progress_interval=0)) as manager:
        manager.register_handler("block", gate)
        manager.start()
        job_id = manager.submit_job("block", {"n": 1})
        wait_for(manager, job_id, lambda j: j["progress"] == 40.0)
        assert manager.update_job_status(job_id, JobStatus.CANCELLED) is True
        gate.opened.set()
        manager.stop()  # waits for the handler to return
        assert gate.cancelled == [job_id]
        job = manager.get_job(job_id)
        assert job is not None and job["status"] == "cancelled" and job["result"] is None


# -- submit, priorities, status changes ----------------------------------------------------------------------

def test_priorities_higher_first(db: str) -> None:
    order: list[str] = []
    with JobManager(db_path=db, max_workers=1) as manager:
        manager.register_handler("record", lambda payload: order.append(payload["name"]))
        ids = [manager.submit_job("record", {"name": name}, priority=priority) for name, priority in
               [("normal", 0), ("ten", 10), ("upload", 1), ("named_high", "high"), ("low", JobPriority.LOW)]]
        manager.start()
        for job_id in ids:
            finished(manager, job_id)
    assert order == ["ten", "named_high", "upload", "normal", "low"]


def test_submit_rejects_unknown_types_and_bad_input(manager: JobManager) -> None:
    with pytest.raises(UnknownHandlerError, match="No handler registered for job type 'nope'"):
        manager.submit_job("nope", {})
    manager.register_handler("ok", lambda payload: None)
    with pytest.raises(InvalidParameterError, match="unknown priority 'very'"):
        manager.submit_job("ok", {}, priority="very")
    with pytest.raises(InvalidParameterError, match="must be JSON-serialisable"):
        manager.submit_job("ok", {"when": object()})


def test_update_job_status_restart_refusals_and_bad_targets(manager: JobManager) -> None:
    attempts: list[str] = []

    def flaky(job_id: str, payload: dict[str, Any]) -> str:
        attempts.append(job_id)
        if len(attempts) == 1:
            raise PermanentError("first run fails")
        return "second run works"

    manager.register_handler("flaky", flaky)
    manager.start()
    job_id = manager.submit_job("flaky", {})
    assert finished(manager, job_id)["status"] == "failed"
    assert manager.update_job_status(job_id, JobStatus.PENDING) is True  # restart
    job = finished(manager, job_id)
    assert job["status"] == "completed" and json.loads(job["result"]) == "second run works"
    assert manager.update_job_status(job_id, JobStatus.CANCELLED) is False  # too late: it completed
    with pytest.raises(InvalidParameterError, match="supports CANCELLED .* and PENDING .*, not RUNNING"):
        manager.update_job_status(job_id, JobStatus.PROCESSING)
    with pytest.raises(JobNotFoundError):
        manager.update_job_status("00000000-0000-4000-8000-000000000000", JobStatus.CANCELLED)
    assert manager.get_job("00000000-0000-4000-8000-000000000000") is None


def test_get_all_jobs_limit_and_string_status(manager: JobManager) -> None:
    manager.register_handler("noop", lambda payload: None)
    ids = [manager.submit_job("noop", {"i": i}) for i in range(5)]
    assert [j["job_id"] for j in manager.get_all_jobs(limit=2)] == ids[::-1][:2]
    assert len(manager.get_all_jobs(status="processing")) == 0
    assert len(manager.get_all_jobs(status=JobStatus.PENDING)) == 5
    with pytest.raises(InvalidParameterError, match="limit must be an integer"):
        manager.get_all_jobs(limit=0)


# -- workers and lifetime ------------------------------------------------------------------------------------

def test_start_is_idempotent_and_restartable(manager: JobManager) -> None:
    manager.register_handler("noop", lambda payload: "ran")
    manager.start()
    manager.start()
    assert len(manager.queue.workers()) == 1
    manager.stop()
    assert not manager.running and manager.queue.workers() == []
    job_id = manager.submit_job("noop", {})
    assert manager.get_job(job_id)["status"] == "pending"  # type: ignore[index]
    manager.start()  # the seed's troubleshooting step: start again when not running
    assert finished(manager, job_id)["status"] == "completed"


@pytest.mark.parametrize("max_workers", [0, -1, 1.5, True])
def test_max_workers_must_be_a_positive_integer(tmp_path: Path, max_workers: Any) -> None:
    with pytest.raises(InvalidParameterError, match="max_workers must be an integer of at least 1"):
        JobManager(db_path=str(tmp_path / "x.db"), max_workers=max_workers)


def test_jobs_survive_a_restart(db: str) -> None:
    gate = Gate()
    first = JobManager(db_path=db, max_workers=1)
    first.register_handler("block", gate)
    first.start()
    running = first.submit_job("block", {"n": "running at shutdown"})
    wait_for(first, running, lambda j: j["status"] == "processing")
    queued = first.submit_job("block", {"n": "never started"})
    first.stop(grace=0.5)  # the handler does not finish in time: its job is handed back
    assert first.get_job(running)["status"] == "pending"  # type: ignore[index]
    gate.opened.set()  # the old handler sees its cancellation at its next report and returns
    assert gate.returned.wait(10), "the old handler never returned"
    assert gate.cancelled == [running]
    first.close()

    with JobManager(db_path=db, max_workers=2) as second:
        assert {j["job_id"] for j in second.get_all_jobs(status=JobStatus.PENDING)} == {running, queued}
        second.register_handler("block", gate)
        second.start()
        results = {}
        for job_id in (running, queued):
            job = finished(second, job_id)
            assert job["status"] == "completed", job
            results[job_id] = json.loads(job["result"])
        assert results == {running: {"done": {"n": "running at shutdown"}},
                           queued: {"done": {"n": "never started"}}}


def test_cleanup_old_jobs(manager: JobManager) -> None:
    manager.register_handler("noop", lambda payload: None)
    manager.start()
    job_id = manager.submit_job("noop", {})
    finished(manager, job_id)
    assert manager.cleanup_old_jobs(days_old=7) == 0
    assert manager.cleanup_old_jobs(days_old=0) == 1
    assert manager.get_job(job_id) is None
    with pytest.raises(InvalidParameterError, match="days_old must be a number"):
        manager.cleanup_old_jobs(days_old="week")  # type: ignore[arg-type]


# -- the bundled handlers, registered as the seed registers its own ------------------------------------------

def test_bundled_document_handlers_with_seed_payloads(manager: JobManager, tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("JOBHANDLE_DOCUMENTS_INPUT_ROOTS", str(tmp_path))  # the handlers read only in there
    inputs = tmp_path / "input"
    inputs.mkdir()
    (inputs / "upload.md").write_text("# Upload\n\nSome text.")
    (inputs / "other.txt").write_text("Other text.")
    manager.register_handler("process_document", process_document)
    manager.register_handler("process_batch", process_batch)
    manager.start()
    upload = manager.submit_job(job_type="process_document", priority=1, payload={
        "file_path": str(inputs / "upload.md"), "file_name": "upload.md", "document_id": "doc-7"})
    batch = manager.submit_job(job_type="process_batch", payload={"input_dir": str(inputs)}, priority=0)
    document = finished(manager, upload)
    assert document["status"] == "completed", document["error"]
    assert json.loads(document["result"])["document_id"] == "doc-7"
    result = json.loads(finished(manager, batch)["result"])
    assert (result["files"], result["succeeded"]) == (2, 2)
