"""The health probes: /health/live (no store call), /health/ready, /health (seed 003's status and issues), with
no API key, in-process and over real HTTP."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from api_helpers import LiveServer
from fastapi.testclient import TestClient
from helpers import wait_until
from store_urls import private_redis_server

from jobhandle import JobQueue
from jobhandle.api import create_app


def test_probes_need_no_key(auth_api: TestClient) -> None:
    for path in ("/health/live", "/health/ready", "/health", "/api/v1/jobs/health"):
        assert auth_api.get(path).status_code == 200, path


def test_live_lists_the_servers_loops(api: TestClient) -> None:
    body = api.get("/health/live").json()
    assert body["status"] == "alive" and body["issues"] == []
    assert body["loops"] and all(loop["alive"] for loop in body["loops"]), body["loops"]


def test_ready_and_full_health_fail_when_the_store_is_gone(api: TestClient, api_queue: JobQueue) -> None:
    api_queue.store.close()
    ready = api.get("/health/ready")
    assert ready.status_code == 503
    assert ready.json()["status"] == "not_ready" and ready.json()["issues"][0].startswith("store unreachable")
    full = api.get("/health")
    assert full.status_code == 503 and full.json()["status"] == "unhealthy"


def test_live_stays_alive_through_a_store_outage_that_ready_reports(tmp_path: Path) -> None:
    """Redis stops under a running server: its loops keep retrying (alive), the store does not answer (not
    ready). An orchestrator then stops sending traffic instead of restarting every server."""
    binary = shutil.which("redis-server")
    if binary is None:
        pytest.skip("redis-server is not installed")
    with private_redis_server(binary, tmp_path) as (url, _, server):
        queue = JobQueue(url)
        try:
            with TestClient(create_app(queue)) as client:
                assert client.get("/health/ready").status_code == 200
                server.terminate()
                server.wait(10)
                assert client.get("/health/ready").status_code == 503
                live = client.get("/health/live")
                assert (live.status_code, live.json()["status"]) == (200, "alive"), live.json()
        finally:
            queue.close()


def test_health_at_the_root_is_the_full_report(api: TestClient, api_queue: JobQueue) -> None:
    root, versioned = api.get("/health").json(), api.get("/api/v1/jobs/health").json()
    assert root["status"] == versioned["status"] == "degraded"
    assert root["issues"] == versioned["issues"] and "no workers registered" in root["issues"][0]
    assert {"pending_jobs", "oldest_pending_wait_seconds", "failure_rate_1h", "events"} <= root.keys()
    with api_queue.worker(concurrency=1):
        wait_until(lambda: api.get("/health").json()["status"] == "healthy", 5, "healthy with a worker")


def test_probes_over_http(api_queue: JobQueue) -> None:
    with LiveServer(create_app(api_queue)) as server, server.client() as client:
        live, ready = client.get("/health/live"), client.get("/health/ready")
    assert (live.status_code, live.json()["status"]) == (200, "alive")
    assert (ready.status_code, ready.json()["status"]) == (200, "ready")
