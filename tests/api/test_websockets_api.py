"""WebSockets: a job's changes then job_complete, the all-jobs feed, resumption, and the same keys seeing the
same jobs as over SSE; in-process, and over real connections to uvicorn."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
from api_helpers import ADMIN_KEY, ALICE_KEY, BOB_KEY, KEYS, LiveServer, TestClient
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import ClientConnection, connect

from jobhandle import JobQueue, Settings
from jobhandle.api import create_app
from jobhandle.registry import HandlerRegistry

TIMEOUT = 10


def receive(ws: ClientConnection) -> dict:
    return json.loads(ws.recv(timeout=TIMEOUT))


def events_until_complete(ws: ClientConnection) -> list[dict]:
    events = []
    while True:
        message = receive(ws)
        if message["event"] == "keep-alive":
            continue
        events.append(message)
        if message["event"] == "job_complete":
            return events


@pytest.fixture
def live(api_queue: JobQueue, settings: Settings) -> Iterator[LiveServer]:
    app = create_app(api_queue, settings.replace(api_keys=KEYS, sse_keepalive_seconds=0.2))
    with LiveServer(app) as server:
        yield server


def ws_url(server: LiveServer, path: str) -> str:
    return server.url.replace("http://", "ws://") + path


def test_a_job_socket_sends_its_changes_then_job_complete_and_closes(live: LiveServer, api_queue: JobQueue,
                                                                     registry: HandlerRegistry) -> None:
    registry.register("echo", lambda ctx, n: n)
    job = api_queue.submit("echo", {"n": 7}, user_id="alice")
    with connect(ws_url(live, f"/api/v1/jobs/status/{job.job_id}/ws"),
                 additional_headers={"Authorization": f"Bearer {ALICE_KEY}"}) as ws:
        first = receive(ws)
        assert (first["event"], first["id"], first["job"]["status"]) == ("job_update", job.seq, "pending")
        with api_queue.worker(concurrency=1):
            events = events_until_complete(ws)
        assert events[-1]["job"]["status"] == "completed" and events[-1]["job"]["result"] == 7
        assert [e["id"] for e in events] == sorted(e["id"] for e in events)
        with pytest.raises(ConnectionClosed) as closed:
            ws.recv(timeout=TIMEOUT)
        assert closed.value.rcvd is not None and closed.value.rcvd.code == 1000


def test_the_key_may_come_as_a_token_for_browsers(live: LiveServer, api_queue: JobQueue) -> None:
    job = api_queue.submit("echo", user_id="alice")
    with connect(ws_url(live, f"/api/v1/jobs/status/{job.job_id}/ws?token={ALICE_KEY}")) as ws:
        assert receive(ws)["job"]["job_id"] == job.job_id


@pytest.mark.parametrize(("path", "key", "code", "error"), [
    ("/api/v1/jobs/events/ws", None, 4401, "AuthenticationError"),
    ("/api/v1/jobs/events/ws", "wrong-key", 4401, "AuthenticationError"),
    ("/api/v1/jobs/status/not-a-uuid/ws", ALICE_KEY, 4400, "InvalidParameterError"),
    ("/api/v1/jobs/events/ws?last_event_id=abc", ALICE_KEY, 4400, "InvalidParameterError"),
])
def test_a_refused_socket_says_why_and_closes_with_a_code(live: LiveServer, path: str, key: str | None, code: int,
                                                          error: str) -> None:
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    with connect(ws_url(live, path), additional_headers=headers) as ws:
        message = receive(ws)
        assert message["event"] == "error" and message["error"] == error and message["message"]
        with pytest.raises(ConnectionClosed) as closed:
            ws.recv(timeout=TIMEOUT)
        assert closed.value.rcvd is not None and closed.value.rcvd.code == code


def test_another_users_job_does_not_exist_for_a_socket(live: LiveServer, api_queue: JobQueue) -> None:
    job = api_queue.submit("echo", user_id="alice")
    with connect(ws_url(live, f"/api/v1/jobs/status/{job.job_id}/ws"),
                 additional_headers={"Authorization": f"Bearer {BOB_KEY}"}) as ws:
        assert receive(ws)["error"] == "JobNotFoundError"
        with pytest.raises(ConnectionClosed) as closed:
            ws.recv(timeout=TIMEOUT)
        assert closed.value.rcvd is not None and closed.value.rcvd.code == 4404


def test_the_feed_carries_only_the_callers_jobs_and_resumes(live: LiveServer, api_queue: JobQueue) -> None:
    with connect(ws_url(live, "/api/v1/jobs/events/ws"),
                 additional_headers={"Authorization": f"Bearer {ALICE_KEY}"}) as alice, \
            connect(ws_url(live, "/api/v1/jobs/events/ws"),
                    additional_headers={"Authorization": f"Bearer {ADMIN_KEY}"}) as admin:
        for ws in (alice, admin):  # both subscribed: the first keep-alive says so
            assert receive(ws)["event"] == "keep-alive"
        bobs = api_queue.submit("echo", user_id="bob")
        hers = api_queue.submit("echo", user_id="alice")
        seen = receive(alice)
        assert seen["job"]["job_id"] == hers.job_id, "bob's job is not alice's to see"
        admin_seen = [receive(admin)["job"]["job_id"] for _ in range(2)]
        assert admin_seen == [bobs.job_id, hers.job_id]
    later = api_queue.submit("echo", user_id="alice")
    with connect(ws_url(live, f"/api/v1/jobs/events/ws?last_event_id={seen['id']}"),
                 additional_headers={"Authorization": f"Bearer {ALICE_KEY}"}) as resumed:
        assert receive(resumed)["job"]["job_id"] == later.job_id, "replayed from after the id it had"


def test_a_client_that_leaves_ends_its_subscription(live: LiveServer, api_queue: JobQueue) -> None:
    from helpers import wait_until

    state = live.server.config.app.state.jobhandle
    before = state.hub.subscriber_count
    with connect(ws_url(live, "/api/v1/jobs/events/ws"),
                 additional_headers={"Authorization": f"Bearer {ALICE_KEY}"}) as ws:
        assert receive(ws)["event"] == "keep-alive"
        assert state.hub.subscriber_count == before + 1
    wait_until(lambda: state.hub.subscriber_count == before, TIMEOUT, "the subscription to end with the client")


def test_in_process_with_the_test_client(api: TestClient, api_queue: JobQueue, registry: HandlerRegistry) -> None:
    registry.register("echo", lambda ctx: "done")
    job = api_queue.submit("echo")
    with api.websocket_connect(f"/api/v1/jobs/status/{job.job_id}/ws") as ws:
        assert ws.receive_json()["event"] == "job_update"
        with api_queue.worker(concurrency=1):
            while (message := ws.receive_json())["event"] != "job_complete":
                pass
        assert message["job"]["result"] == "done"
