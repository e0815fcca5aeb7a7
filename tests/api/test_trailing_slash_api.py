"""A path with a trailing slash is the same path: the same answer, never a bodyless redirect (in-process and
over real HTTP), and the OpenAPI schema lists each path once."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest
from api_helpers import LiveServer, TestClient

from jobhandle import JobQueue
from jobhandle.api import create_app


@pytest.fixture(params=["in-process", "http"])
def client(request: pytest.FixtureRequest, api: TestClient, api_queue: JobQueue) -> Iterator[httpx.Client]:
    """A client that does not follow redirects: the in-process TestClient, or httpx against uvicorn."""
    if request.param == "in-process":
        api.follow_redirects = False
        yield api
        return
    with LiveServer(create_app(api_queue)) as live, httpx.Client(base_url=live.url, timeout=10) as http:
        yield http


@pytest.mark.parametrize("path", ["/api/v1/jobs", "/api/v1/jobs/"])
def test_submit_and_list_with_or_without_the_slash(client: httpx.Client, path: str) -> None:
    created = client.post(path, json={"job_type": "echo", "parameters": {"n": 1}})
    assert created.status_code == 201, (created.status_code, created.headers, created.text)
    job = created.json()
    assert job["job_type"] == "echo" and job["status"] == "pending"

    listed = client.get(path, params={"status": "pending"})
    assert listed.status_code == 200, (listed.status_code, listed.headers, listed.text)
    assert [j["job_id"] for j in listed.json()["jobs"]] == [job["job_id"]]


def test_paths_with_parameters_and_other_routers_accept_the_slash(client: httpx.Client) -> None:
    job_id = client.post("/api/v1/jobs/", json={"job_type": "echo"}).json()["job_id"]

    assert client.get(f"/api/v1/jobs/status/{job_id}/").json()["job_id"] == job_id
    assert client.post(f"/api/v1/jobs/cancel/{job_id}/").json()["status"] == "cancelled"
    assert client.get("/api/v1/jobs/queue/stats/").json()["cancelled_jobs"] == 1
    assert client.get("/api/v1/schedules/").json() == {"schedules": []}
    assert client.get("/metrics/").status_code == 200


def test_unknown_paths_and_wrong_methods_keep_their_errors(client: httpx.Client) -> None:
    missing = client.get("/api/v1/jobs/no-such-thing/")
    assert missing.status_code == 404 and missing.json()["error"] == "NotFound"

    wrong = client.delete("/api/v1/jobs/")
    assert wrong.status_code == 405 and wrong.json()["error"] == "MethodNotAllowed"
    assert set(wrong.headers["allow"].split(", ")) == {"GET", "POST"}


@pytest.mark.parametrize("path", ["/api/extraction/", "/api/extraction"])
def test_seed_003_extraction_alias_with_or_without_the_slash(client: httpx.Client, path: str) -> None:
    created = client.post(path, json={"parameters": {"doc": "a.pdf"}})
    assert created.status_code == 201, (created.status_code, created.headers, created.text)
    job_id = created.json()["job_id"]

    assert client.get(f"/api/extraction/{job_id}/").json()["job_type"] == "extraction"
    assert client.delete(f"/api/extraction/{job_id}/").json()["status"] == "cancelled"
    assert client.post(f"/api/extraction/{job_id}/restart/").json()["status"] == "pending"


def test_a_client_with_a_base_url_sends_the_slash_and_is_served(api_queue: JobQueue) -> None:
    with LiveServer(create_app(api_queue)) as live, \
            httpx.Client(base_url=f"{live.url}/api/v1/jobs", timeout=10) as jobs:
        created = jobs.post("", json={"job_type": "echo"})
        assert created.request.url.path == "/api/v1/jobs/"
        assert created.status_code == 201
        assert jobs.get("").json()["jobs"][0]["job_id"] == created.json()["job_id"]


def test_the_schema_lists_each_path_once(api: TestClient) -> None:
    paths = list(api.get("/openapi.json").json()["paths"])

    assert "/api/v1/jobs" in paths and "/api/v1/jobs/" not in paths
    assert "/api/extraction/" in paths and "/api/extraction" not in paths
    assert len({p.rstrip("/") for p in paths}) == len(paths)
