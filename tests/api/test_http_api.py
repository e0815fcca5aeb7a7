"""The API over real HTTP (uvicorn on a loopback port): submit and status, SSE streams fed by real workers
(in this process and in another one), Last-Event-ID resumption, long-poll; on SQLite and on Redis."""

from __future__ import annotations

import asyncio
import json
import os
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from api_helpers import Event, LiveServer, read_events
from helpers import wait_until
from store_urls import STORE_URLS

from jobhandle import HandlerRegistry, JobContext, JobQueue, Settings
from jobhandle.api import create_app, sse
from jobhandle.api.events import ChangeHub

DEADLINE = 10.0


@pytest.fixture(params=["sqlite", "redis"])
def api_store_url(request: pytest.FixtureRequest) -> str:
    """Every test here runs on SQLite and on Redis: events reach clients from either store's change feed."""
    return STORE_URLS[request.param](request)


@pytest.fixture
def server(api_queue: JobQueue) -> Iterator[LiveServer]:
    with LiveServer(create_app(api_queue)) as live:
        yield live


@pytest.fixture
def client(server: LiveServer) -> Iterator[httpx.Client]:
    with server.client() as c:
        yield c


class Gate:
    """A handler that reports progress 0.5 and then waits for the test to open the gate."""

    def __init__(self, registry: HandlerRegistry) -> None:
        self.open = threading.Event()
        registry.register("gated", self.run)

    def run(self, ctx: JobContext) -> dict[str, str]:
        ctx.progress(0.5, "half way")
        if not self.open.wait(DEADLINE):
            raise TimeoutError("the test never opened the gate")
        return {"done": "yes"}


def events_of(response: httpx.Response) -> Iterator[Event]:
    return (e for e in read_events(response.iter_lines()) if isinstance(e, Event))


def test_submit_then_status_over_http(client: httpx.Client, api_queue: JobQueue, registry: HandlerRegistry) -> None:
    registry.register("add", lambda ctx, a, b: {"sum": a + b})
    job = client.post("/api/v1/jobs", json={"job_type": "add", "parameters": {"a": 2, "b": 3}}).json()

    with api_queue.worker(concurrency=1):
        api_queue.wait(job["job_id"], DEADLINE)
    status = client.get(f"/api/v1/jobs/status/{job['job_id']}")

    assert status.status_code == 200
    assert status.json()["status"] == "completed" and status.json()["result"] == {"sum": 5}


def test_stream_sends_updates_then_one_job_complete_and_ends(client: httpx.Client, api_queue: JobQueue,
                                                             registry: HandlerRegistry) -> None:
    gate = Gate(registry)
    job_id = client.post("/api/v1/jobs", json={"job_type": "gated"}).json()["job_id"]
    received: list[Event] = []

    with api_queue.worker(concurrency=1), client.stream("GET", f"/api/v1/jobs/status/{job_id}/stream") as stream:
        assert stream.status_code == 200
        assert stream.headers["content-type"].startswith("text/event-stream")
        for event in events_of(stream):
            received.append(event)
            if event.data["progress"] == 0.5:
                gate.open.set()
        # the loop ends because the server ended the stream after job_complete

    updates, last = received[:-1], received[-1]
    assert updates and all(e.event == "job_update" for e in updates)
    assert any(e.data["status"] == "running" and e.data["progress_message"] == "half way" for e in updates)
    assert last.event == "job_complete" and last.data["status"] == "completed"
    assert last.data["result"] == {"done": "yes"}
    ids = [int(e.id) for e in received if e.id]
    assert ids == sorted(ids) and len(set(ids)) == len(ids) and ids[-1] == last.data["seq"]


def test_stream_of_a_cancelled_job_completes_with_cancelled(client: httpx.Client) -> None:
    job_id = client.post("/api/v1/jobs", json={"job_type": "never_runs"}).json()["job_id"]

    with client.stream("GET", f"/api/v1/jobs/status/{job_id}/stream") as stream:
        events = events_of(stream)
        assert next(events).data["status"] == "pending"
        client.post(f"/api/v1/jobs/cancel/{job_id}")
        final = next(events)
        assert list(events) == []

    assert final.event == "job_complete" and final.data["status"] == "cancelled"


def test_last_event_id_resumes_a_job_stream(client: httpx.Client, api_queue: JobQueue,
                                            registry: HandlerRegistry) -> None:
    gate = Gate(registry)
    job_id = client.post("/api/v1/jobs", json={"job_type": "gated"}).json()["job_id"]
    url = f"/api/v1/jobs/status/{job_id}/stream"
    with client.stream("GET", url) as stream:
        first = next(events_of(stream))
    assert first.data["status"] == "pending"

    with api_queue.worker(concurrency=1):
        wait_until(lambda: api_queue.get(job_id).progress == 0.5, DEADLINE, "progress 0.5")
        with client.stream("GET", url, headers={"Last-Event-ID": first.id or ""}) as stream:
            events = events_of(stream)
            resumed = next(events)
            assert int(resumed.id or 0) > int(first.id or 0)
            assert resumed.data["progress"] == 0.5  # the state changed since first.id: sent at once
            gate.open.set()
            final = list(events)[-1]
        assert final.event == "job_complete"

        # a client that already saw job_complete and reconnects is told to stop (204)
        done = client.get(url, headers={"Last-Event-ID": final.id or ""})
        assert done.status_code == 204


def test_events_feed_replays_after_last_event_id(client: httpx.Client) -> None:
    before = client.post("/api/v1/jobs", json={"job_type": "x"}).json()
    later = [client.post("/api/v1/jobs", json={"job_type": "x"}).json() for _ in range(3)]

    with client.stream("GET", "/api/v1/jobs/events", headers={"Last-Event-ID": str(before["seq"])}) as stream:
        events = events_of(stream)
        replayed = [next(events) for _ in range(3)]
        live_job = client.post("/api/v1/jobs", json={"job_type": "x"}).json()
        live = next(events)

    assert [e.data["job_id"] for e in replayed] == [j["job_id"] for j in later]
    assert live.data["job_id"] == live_job["job_id"] and live.event == "job_update"


def test_long_poll_returns_as_soon_as_the_status_changes(client: httpx.Client, api_queue: JobQueue,
                                                         registry: HandlerRegistry) -> None:
    registry.register("quick", lambda ctx: "ok")
    job_id = client.post("/api/v1/jobs", json={"job_type": "quick"}).json()["job_id"]
    result: dict[str, object] = {}

    def poll() -> None:
        started = time.monotonic()
        response = client.get(f"/api/v1/jobs/status/{job_id}/poll",
                              params={"current_status": "pending", "timeout": 30})
        result.update(response.json(), took=time.monotonic() - started)

    poller = threading.Thread(target=poll)
    poller.start()
    with api_queue.worker(concurrency=1):
        poller.join(DEADLINE)

    assert not poller.is_alive()
    assert result["changed"] is True and result["status"] in ("running", "completed")
    assert result["took"] < DEADLINE


def test_long_poll_answers_at_once_when_the_status_already_differs(client: httpx.Client) -> None:
    job_id = client.post("/api/v1/jobs", json={"job_type": "x"}).json()["job_id"]

    response = client.get(f"/api/v1/jobs/status/{job_id}/poll", params={"current_status": "running", "timeout": 30})

    assert response.json()["changed"] is True and response.json()["status"] == "pending"


def test_long_poll_times_out_unchanged(client: httpx.Client) -> None:
    job_id = client.post("/api/v1/jobs", json={"job_type": "x"}).json()["job_id"]

    response = client.get(f"/api/v1/jobs/status/{job_id}/poll", params={"timeout": 0.2})

    assert response.status_code == 200
    assert response.json()["changed"] is False and response.json()["status"] == "pending"


def test_long_poll_without_current_status_returns_on_the_next_change(client: httpx.Client) -> None:
    job_id = client.post("/api/v1/jobs", json={"job_type": "x"}).json()["job_id"]
    result: dict[str, object] = {}
    poller = threading.Thread(target=lambda: result.update(
        client.get(f"/api/v1/jobs/status/{job_id}/poll", params={"timeout": 30}).json()))
    poller.start()

    wait_until(lambda: client.get("/api/v1/jobs/health").json()["events"]["subscribers"] == 1, DEADLINE,
               "the poll waiting on the change hub")
    client.post(f"/api/v1/jobs/cancel/{job_id}")
    poller.join(DEADLINE)

    assert result["changed"] is True and result["status"] == "cancelled"


def test_long_poll_counts_a_change_landing_between_its_subscription_and_its_read(api_queue: JobQueue) -> None:
    """The poll subscribes, then reads the job: a cancel committed in between is already in what it read, and
    is still the change the poll was asked to wait for (the client asked before the cancel)."""
    hub = ChangeHub(api_queue.store)
    hub.start()
    job = api_queue.submit("x")

    async def poll_with_a_cancel_in_the_window() -> dict[str, object]:
        sub = hub.subscribe(job_id=job.job_id)
        try:
            since = api_queue.store.last_seq()
            api_queue.cancel(job.job_id)
            first = api_queue.get(job.job_id)
            return await sse.poll(sub, first, None, since, 3.0, lambda: api_queue.get(job.job_id))
        finally:
            hub.unsubscribe(sub)

    try:
        answer = asyncio.run(poll_with_a_cancel_in_the_window())
    finally:
        hub.stop()

    assert answer["changed"] is True and answer["status"] == "cancelled"


@pytest.mark.slow
def test_progress_from_a_worker_process_reaches_an_sse_client_within_50ms(
        client: httpx.Client, api_store_url: str, tmp_path: Path) -> None:
    env = {**os.environ, "JOBHANDLE_PROGRESS_INTERVAL": "0", "JOBHANDLE_HEARTBEAT_INTERVAL": "0.5"}
    log = (tmp_path / "worker.log").open("w")
    worker = subprocess.Popen(
        [sys.executable, "-m", "jobhandle", "worker", "--app", str(Path(__file__).with_name("sse_handlers.py")),
         "--store", api_store_url, "--concurrency", "1"],
        stdout=subprocess.PIPE, stderr=log, text=True, env=env)
    try:
        assert worker.stdout is not None and "started" in worker.stdout.readline()
        job_id = client.post("/api/v1/jobs", json={"job_type": "stepper", "parameters": {"steps": 8}}).json()["job_id"]
        delays: list[float] = []
        with client.stream("GET", f"/api/v1/jobs/status/{job_id}/stream") as stream:
            for event in events_of(stream):
                message = event.data["progress_message"]
                if event.event == "job_update" and message:
                    delays.append(time.monotonic() - float(message))
        assert event.event == "job_complete" and event.data["result"] == {"steps": 8}
    finally:
        worker.terminate()
        worker.wait(20)
        log.close()

    assert len(delays) >= 6, delays  # most reports arrive as their own event
    assert statistics.median(delays) < 0.05, delays


def test_idle_streams_get_keep_alive_comments(api_queue: JobQueue, settings: Settings) -> None:
    app = create_app(api_queue, settings.replace(sse_keepalive_seconds=0.05))
    with LiveServer(app) as live, live.client() as client:
        job_id = client.post("/api/v1/jobs", json={"job_type": "x"}).json()["job_id"]
        with client.stream("GET", f"/api/v1/jobs/status/{job_id}/stream") as stream:
            items = read_events(stream.iter_lines())
            assert isinstance(next(items), Event)  # the current state
            assert next(items) == ": keep-alive"  # then, with nothing happening, a comment


def test_subscriptions_end_when_clients_disconnect(client: httpx.Client) -> None:
    job_id = client.post("/api/v1/jobs", json={"job_type": "x"}).json()["job_id"]

    def subscribers() -> int:
        return int(client.get("/api/v1/jobs/health").json()["events"]["subscribers"])

    for path in (f"/api/v1/jobs/status/{job_id}/stream", "/api/v1/jobs/events"):
        with client.stream("GET", path) as stream:
            lines = stream.iter_lines()  # kept: dropping the iterator would close the stream
            assert next(lines) == "retry: 3000"
            assert subscribers() == 1
        wait_until(lambda: subscribers() == 0, DEADLINE, f"the {path} subscription released")


def test_a_job_id_in_another_uuid_spelling_streams_the_same_job(client: httpx.Client) -> None:
    job_id = client.post("/api/v1/jobs", json={"job_type": "x"}).json()["job_id"]

    with client.stream("GET", f"/api/v1/jobs/status/{job_id.upper()}/stream") as stream:
        events = events_of(stream)
        assert next(events).data["job_id"] == job_id
        client.post(f"/api/v1/jobs/cancel/{job_id}")
        assert next(events).event == "job_complete"


@pytest.mark.slow
def test_many_idle_streams_each_get_their_jobs_completion(client: httpx.Client, server: LiveServer) -> None:
    """200 open job streams: the server holds 200 subscriptions, each stream gets its own job's job_complete,
    and every subscription is released once the clients are gone."""
    count = 200
    jobs = client.post("/api/v1/jobs/batch", json={"jobs": [{"job_type": "idle"}] * count}).json()["jobs"]
    port = int(server.url.rsplit(":", 1)[1])

    async def watch_all() -> dict[str, dict]:
        opened = asyncio.Event()
        ready = 0
        finals: dict[str, dict] = {}

        async def watch(job_id: str) -> None:  # raw sockets: 200 httpx streams would be slow to drive
            nonlocal ready
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(f"GET /api/v1/jobs/status/{job_id}/stream HTTP/1.1\r\nHost: t\r\n\r\n".encode())
            while line := await reader.readline():
                if line.startswith(b"event: job_update"):
                    ready += 1
                    if ready == count:
                        opened.set()
                elif line.startswith(b"event: job_complete"):
                    finals[job_id] = json.loads((await reader.readline()).removeprefix(b"data:"))
                    break
            writer.close()

        tasks = [asyncio.create_task(watch(job["job_id"])) for job in jobs]
        await asyncio.wait_for(opened.wait(), DEADLINE)
        health = await asyncio.to_thread(client.get, "/api/v1/jobs/health")
        assert health.json()["events"]["subscribers"] == count
        await asyncio.to_thread(client.post, "/api/v1/jobs/cancel", json={"filter": {"job_type": "idle"}})
        await asyncio.wait_for(asyncio.gather(*tasks), DEADLINE * 3)
        return finals

    finals = asyncio.run(watch_all())

    assert sorted(finals) == sorted(job["job_id"] for job in jobs)
    assert all(final["job_id"] == job_id and final["status"] == "cancelled" for job_id, final in finals.items())
    wait_until(lambda: client.get("/api/v1/jobs/health").json()["events"]["subscribers"] == 0, DEADLINE,
               "every subscription released")


def test_a_dashboard_stream_carries_only_what_its_page_shows(server: LiveServer, api_queue: JobQueue) -> None:
    """/ui/events?watch=A: changes of other jobs (priority aging, say, on thousands) are not sent; the page's
    job is; a `changed` event tells that something changed (the overview refreshes on it)."""
    shown, other = api_queue.submit("echo"), api_queue.submit("echo")
    with server.client() as client:
        client.get("/")  # the session cookie
        with client.stream("GET", "/ui/events", params={"watch": shown.job_id}) as response:
            assert response.status_code == 200
            events = (e for e in read_events(response.iter_lines()) if isinstance(e, Event))
            for _ in range(20):
                api_queue.cancel(api_queue.submit("echo").job_id)  # noise: jobs this page does not show
            api_queue.cancel(other.job_id)
            api_queue.cancel(shown.job_id)
            received = []
            for event in events:
                received.append(event)
                if event.event == "job_complete":
                    break
            jobs = [e.data["job_id"] for e in received if e.event.startswith("job_")]
            assert jobs == [shown.job_id], "only the watched job's change is sent"
            assert any(e.event == "changed" for e in received) or next(events).event == "changed"


def test_a_dashboard_stream_with_new_takes_in_jobs_created_after_it_opened(server: LiveServer,
                                                                           api_queue: JobQueue) -> None:
    before = api_queue.submit("echo")
    with server.client() as client:
        client.get("/")
        with client.stream("GET", "/ui/events", params={"new": "1", "since": f"{time.time():.6f}"}) as response:
            events = (e for e in read_events(response.iter_lines()) if isinstance(e, Event)
                      and e.event.startswith("job_"))
            api_queue.cancel(before.job_id)  # existed before: not new
            fresh = api_queue.submit("echo")
            assert next(events).data["job_id"] == fresh.job_id
            api_queue.cancel(fresh.job_id)  # and watched from then on
            assert next(events).data == api_queue.get(fresh.job_id).to_dict()
