"""No store call runs on the server's event loop: a slow store (Redis over a network) must stall only the
request that waits for it, never the other requests and streams the same server handles meanwhile."""

from __future__ import annotations

import asyncio
import functools
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from api_helpers import Event, LiveServer, read_events

from jobhandle import HandlerRegistry, JobQueue, Settings
from jobhandle.api import create_app
from jobhandle.stores import SQLiteStore, Store

DEADLINE = 10.0
PROBE_TIMEOUT = 5.0
"""How long a request that must not be held up by the slow one may take (generous: a busy test machine)."""

LOCAL_ONLY = {"change_version", "wake_waiters", "kind"}
"""Store members that never leave the process (a counter, a local wake-up): cheap anywhere."""
STORE_CALLS = sorted(name for name, value in vars(Store).items()
                     if callable(value) and not name.startswith("_") and name not in LOCAL_ONLY)


def on_event_loop() -> bool:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return False
    return True


class LoopWatchingStore(SQLiteStore):
    """A SQLite store that records every store call made from a thread running an asyncio event loop."""

    def __init__(self, path: Path) -> None:
        super().__init__(path)
        self.on_loop: list[str] = []
        for name in STORE_CALLS:
            setattr(self, name, self._watched(name, getattr(self, name)))

    def _watched(self, name: str, method: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(method)
        def call(*args: Any, **kwargs: Any) -> Any:
            if on_event_loop():
                self.on_loop.append(name)
            return method(*args, **kwargs)
        return call


class SlowGetStore(SQLiteStore):
    """``get`` of one chosen job blocks until the test releases it, like a Redis round trip that hangs."""

    def __init__(self, path: Path) -> None:
        super().__init__(path)
        self.slow_job: str | None = None
        self.entered = threading.Event()
        self.release = threading.Event()

    def get(self, job_id: str) -> Any:
        if job_id == self.slow_job:
            self.entered.set()
            self.release.wait(DEADLINE)
        return super().get(job_id)


def events_of(response: httpx.Response) -> Iterator[Event]:
    return (e for e in read_events(response.iter_lines()) if isinstance(e, Event))


@pytest.fixture
def serve(tmp_path: Path, settings: Settings) -> Iterator[Callable[[Store], LiveServer]]:
    """``serve(store)``: the API on a JobQueue over ``store``, served by uvicorn on a loopback port."""
    opened: list[tuple[JobQueue, LiveServer]] = []

    def start(store: Store) -> LiveServer:
        q = JobQueue(store, registry=HandlerRegistry(), settings=settings)
        live = LiveServer(create_app(q)).__enter__()
        opened.append((q, live))
        return live

    yield start
    for q, live in reversed(opened):
        live.__exit__(None, None, None)
        q.close()
        q.store.close()


def test_a_slow_store_read_holds_up_neither_other_requests_nor_streams(
        serve: Callable[[Store], LiveServer], tmp_path: Path) -> None:
    store = SlowGetStore(tmp_path / "jobs.db")
    live = serve(store)
    with live.client() as client:
        slow, other = (client.post("/api/v1/jobs", json={"job_type": "x"}).json()["job_id"] for _ in range(2))
    store.slow_job = slow
    answers: list[httpx.Response] = []

    def read_slow_job() -> None:
        with httpx.Client(base_url=live.url, timeout=DEADLINE * 2) as slow_client:
            answers.append(slow_client.get(f"/api/v1/jobs/status/{slow}"))

    reader = threading.Thread(target=read_slow_job)
    reader.start()
    try:
        assert store.entered.wait(DEADLINE), "the status request never reached the store"
        with httpx.Client(base_url=live.url, timeout=PROBE_TIMEOUT) as probe:
            status = probe.get(f"/api/v1/jobs/status/{other}")
            assert status.status_code == 200 and status.json()["job_id"] == other
            with probe.stream("GET", f"/api/v1/jobs/status/{other}/stream") as stream:
                events = events_of(stream)
                assert next(events).data["status"] == "pending"
                assert probe.post(f"/api/v1/jobs/cancel/{other}").status_code == 200
                final = next(events)
            assert final.event == "job_complete" and final.data["status"] == "cancelled"
            assert not store.release.is_set()  # all of that while the slow read was still waiting
    finally:
        store.release.set()
        reader.join(DEADLINE * 2)
    assert answers and answers[0].status_code == 200 and answers[0].json()["job_id"] == slow


def test_no_route_calls_the_store_on_the_event_loop(serve: Callable[[Store], LiveServer], tmp_path: Path) -> None:
    store = LoopWatchingStore(tmp_path / "jobs.db")
    live = serve(store)
    with live.client() as client:
        job = client.post("/api/v1/jobs", json={"job_type": "x"}).json()
        job_id = job["job_id"]
        client.post("/api/v1/jobs/batch", json={"jobs": [{"job_type": "x"}, {"job_type": "y"}]})
        client.get("/api/v1/jobs", params={"status": "pending"})
        assert client.get(f"/api/v1/jobs/status/{job_id}").status_code == 200
        assert client.get(f"/api/v1/jobs/status/{job_id}/poll",
                          params={"current_status": "running", "timeout": 5}).json()["changed"] is True
        assert client.get(f"/api/v1/jobs/status/{job_id}/poll", params={"timeout": 0.05}).json()["changed"] is False
        with client.stream("GET", f"/api/v1/jobs/status/{job_id}/stream") as stream:
            events = events_of(stream)
            assert next(events).event == "job_update"
            client.post(f"/api/v1/jobs/cancel/{job_id}")
            final = next(events)
        assert final.event == "job_complete"
        assert client.get(f"/api/v1/jobs/status/{job_id}/stream",
                          headers={"Last-Event-ID": final.id or ""}).status_code == 204
        with client.stream("GET", "/api/v1/jobs/events", headers={"Last-Event-ID": "0"}) as stream:
            replayed = events_of(stream)
            assert next(replayed).event in ("job_update", "job_complete")
        client.post(f"/api/v1/jobs/restart/{job_id}")
        client.post("/api/v1/jobs/cancel", json={"filter": {"job_type": "y"}})
        for path in ("/api/v1/jobs/queue/stats", "/api/v1/jobs/workers", "/api/v1/jobs/health", "/metrics"):
            assert client.get(path).status_code == 200, path
        schedule = client.post("/api/v1/schedules", json={"job_type": "r", "cron_expression": "0 9 * * *"}).json()
        sid = schedule["schedule_id"]
        client.get("/api/v1/schedules")
        client.get(f"/api/v1/schedules/{sid}")
        client.post(f"/api/v1/schedules/{sid}/pause")
        client.post(f"/api/v1/schedules/{sid}/resume")
        client.delete(f"/api/v1/schedules/{sid}")
        extraction = client.post("/api/extraction/", json={"parameters": {"doc": "a"}}).json()["job_id"]
        client.get(f"/api/extraction/{extraction}")
        client.delete(f"/api/extraction/{extraction}")
        client.post(f"/api/extraction/{extraction}/restart")
    live.__exit__(None, None, None)  # the lifespan's shutdown too

    assert store.on_loop == []
