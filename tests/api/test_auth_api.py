"""API keys: 401 without a valid key, users see and act on their own jobs only (others' are 404), admins on
all; user_id comes from the key; lists, stats and the event feed are scoped to the user."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
from api_helpers import ADMIN_KEY, ALICE_KEY, BOB_KEY, KEYS, ApiFactory, LiveServer, TestClient, bearer, read_events

from jobhandle import InvalidParameterError, JobQueue, Settings
from jobhandle.api import create_app
from jobhandle.api.auth import load_keys


def submit(api: TestClient, key: str, **body: object) -> dict:
    response = api.post("/api/v1/jobs", json={"job_type": "echo", **body}, headers=bearer(key))
    assert response.status_code == 201, response.text
    return response.json()


@pytest.mark.parametrize("headers", [{}, {"Authorization": "Bearer wrong"}, {"Authorization": f"Basic {ALICE_KEY}"},
                                     {"Authorization": "Bearer "}])
def test_requests_without_a_valid_key_are_401_in_the_error_shape(auth_api: TestClient,
                                                                 headers: dict[str, str]) -> None:
    for method, path in (("GET", "/api/v1/jobs"), ("POST", "/api/v1/jobs"), ("GET", "/api/v1/jobs/queue/stats"),
                         ("GET", "/api/v1/schedules"), ("GET", "/api/extraction/x"), ("GET", "/metrics"),
                         ("GET", "/api/v1/jobs/events")):
        response = auth_api.request(method, path, headers=headers, json={"job_type": "x"})
        assert response.status_code == 401, (method, path)
        assert response.json()["error"] == "AuthenticationError"
        assert response.headers["www-authenticate"] == "Bearer"


def test_health_and_docs_need_no_key(auth_api: TestClient) -> None:
    assert auth_api.get("/api/v1/jobs/health").status_code == 200
    assert auth_api.get("/docs").status_code == 200
    assert auth_api.get("/openapi.json").status_code == 200


def test_submit_takes_the_user_from_the_key(auth_api: TestClient) -> None:
    assert submit(auth_api, ALICE_KEY)["user_id"] == "alice"
    assert submit(auth_api, ALICE_KEY, user_id="alice")["user_id"] == "alice"

    refused = auth_api.post("/api/v1/jobs", json={"job_type": "x", "user_id": "bob"}, headers=bearer(ALICE_KEY))

    assert refused.status_code == 403 and refused.json()["error"] == "PermissionDeniedError"
    assert submit(auth_api, ADMIN_KEY, user_id="bob")["user_id"] == "bob"  # admins may submit for anyone
    assert submit(auth_api, ADMIN_KEY)["user_id"] == "default_user"


def test_a_user_cannot_see_or_touch_another_users_job(auth_api: TestClient) -> None:
    job_id = submit(auth_api, BOB_KEY)["job_id"]
    alice = bearer(ALICE_KEY)

    for method, path in (("GET", f"/api/v1/jobs/status/{job_id}"), ("GET", f"/api/v1/jobs/status/{job_id}/poll"),
                         ("GET", f"/api/v1/jobs/status/{job_id}/stream"), ("POST", f"/api/v1/jobs/cancel/{job_id}"),
                         ("POST", f"/api/v1/jobs/restart/{job_id}")):
        response = auth_api.request(method, path, headers=alice)
        assert response.status_code == 404, (method, path)
        assert response.json() == {"error": "JobNotFoundError", "message": f"Job {job_id} not found",
                                   "job_id": job_id}

    bulk = auth_api.post("/api/v1/jobs/cancel", json={"job_ids": [job_id]}, headers=alice).json()
    assert bulk["cancelled"] == [] and bulk["not_cancelled"][0]["error"] == "JobNotFoundError"
    assert auth_api.get(f"/api/v1/jobs/status/{job_id}", headers=bearer(BOB_KEY)).json()["status"] == "pending"
    assert auth_api.get(f"/api/v1/jobs/status/{job_id}", headers=bearer(ADMIN_KEY)).status_code == 200


def test_another_users_job_cannot_be_a_dependency_or_an_idempotency_match(auth_api: TestClient) -> None:
    bob_job = submit(auth_api, BOB_KEY, idempotency_key="shared")

    parent = auth_api.post("/api/v1/jobs", json={"job_type": "x", "depends_on": [bob_job["job_id"]]},
                           headers=bearer(ALICE_KEY))
    same_key = auth_api.post("/api/v1/jobs", json={"job_type": "x", "idempotency_key": "shared"},
                             headers=bearer(ALICE_KEY))

    assert parent.status_code == 400 and "does not exist" in parent.json()["message"]
    assert same_key.status_code == 201, "keys are per user: bob's key neither blocks alice nor shows it exists"
    assert same_key.json()["user_id"] == "alice" and same_key.json()["job_id"] != bob_job["job_id"]


def test_lists_bulk_cancel_and_stats_are_scoped_to_the_user(auth_api: TestClient) -> None:
    mine = submit(auth_api, ALICE_KEY)["job_id"]
    theirs = submit(auth_api, BOB_KEY)["job_id"]
    alice = bearer(ALICE_KEY)

    listed = [j["job_id"] for j in auth_api.get("/api/v1/jobs", headers=alice).json()["jobs"]]
    asked_for_bob = auth_api.get("/api/v1/jobs", params={"user_id": "bob"}, headers=alice).json()["jobs"]
    stats = auth_api.get("/api/v1/jobs/queue/stats", headers=alice).json()
    admin_stats = auth_api.get("/api/v1/jobs/queue/stats", headers=bearer(ADMIN_KEY)).json()
    cancelled = auth_api.post("/api/v1/jobs/cancel", json={"filter": {"status": ["pending"]}}, headers=alice).json()

    assert listed == [mine] and asked_for_bob == []
    assert stats["pending_jobs"] == 1 and stats["total_jobs"] == 1 and stats["by_type"] == {}
    assert admin_stats["pending_jobs"] == 2
    assert cancelled["cancelled"] == [mine]
    assert auth_api.get(f"/api/v1/jobs/status/{theirs}", headers=bearer(BOB_KEY)).json()["status"] == "pending"


def test_workers_and_pools_need_an_admin_key(auth_api: TestClient) -> None:
    for path in ("/api/v1/jobs/workers", "/api/v1/jobs/workers/pools"):
        assert auth_api.get(path, headers=bearer(ALICE_KEY)).status_code == 403
        assert auth_api.get(path, headers=bearer(ADMIN_KEY)).status_code == 200


def test_schedules_are_scoped_to_the_user(auth_api: TestClient) -> None:
    created = auth_api.post("/api/v1/schedules", json={"job_type": "r", "cron_expression": "0 9 * * *"},
                            headers=bearer(BOB_KEY)).json()
    assert created["user_id"] == "bob"
    alice = bearer(ALICE_KEY)

    assert auth_api.get("/api/v1/schedules", headers=alice).json() == {"schedules": []}
    assert auth_api.get(f"/api/v1/schedules/{created['schedule_id']}", headers=alice).status_code == 404
    assert auth_api.delete(f"/api/v1/schedules/{created['schedule_id']}", headers=alice).status_code == 404
    assert len(auth_api.get("/api/v1/schedules", headers=bearer(ADMIN_KEY)).json()["schedules"]) == 1


def test_the_event_feed_carries_only_the_users_jobs(api_queue: JobQueue, settings: Settings) -> None:
    app = create_app(api_queue, settings.replace(api_keys=KEYS))
    with LiveServer(app) as server, server.client() as client:
        with client.stream("GET", "/api/v1/jobs/events", headers=bearer(ALICE_KEY)) as stream:
            assert stream.status_code == 200
            bob = client.post("/api/v1/jobs", json={"job_type": "x"}, headers=bearer(BOB_KEY)).json()
            mine = client.post("/api/v1/jobs", json={"job_type": "x"}, headers=bearer(ALICE_KEY)).json()
            events = (e for e in read_events(stream.iter_lines()) if not isinstance(e, str))
            first = next(events)
        assert first.data["job_id"] == mine["job_id"] != bob["job_id"]


def test_keys_file_and_environment_entries_are_parsed(tmp_path: Path) -> None:
    keys_file = tmp_path / "keys"
    keys_file.write_text("# ops keys\nk1:ops:admin\n\nk2:dev  # a comment\n")

    keys = load_keys(Settings(api_keys="k3:carol:USER", api_keys_file=keys_file))

    assert [(k.secret, k.principal.user_id, k.principal.admin) for k in keys] == [
        (b"k3", "carol", False), (b"k1", "ops", True), (b"k2", "dev", False)]


@pytest.mark.parametrize("entries", ["justakey", "k::admin", "k:u:root", "k:u,k:v"])
def test_bad_key_entries_are_refused_before_serving(api_queue: JobQueue, entries: str) -> None:
    with pytest.raises(InvalidParameterError):
        create_app(api_queue, Settings(api_keys=entries))


def test_no_keys_means_no_authentication(api: TestClient) -> None:
    assert api.get("/api/v1/jobs").status_code == 200
    assert api.get("/api/v1/jobs", headers={"Authorization": "Bearer anything"}).status_code == 200


def test_bob_key_works_over_http(api_queue: JobQueue, settings: Settings) -> None:
    app = create_app(api_queue, settings.replace(api_keys=KEYS))
    with LiveServer(app) as server:
        response = httpx.get(f"{server.url}/api/v1/jobs", headers=bearer(BOB_KEY))
    assert response.status_code == 200


VIEWER_KEY = "viewer-key-0123456789"


def test_a_viewer_key_sees_every_job_and_changes_nothing(make_api: ApiFactory) -> None:
    api = make_api(api_keys=f"{KEYS},{VIEWER_KEY}:ops:viewer")
    job_id = submit(api, BOB_KEY)["job_id"]
    viewer = bearer(VIEWER_KEY)
    assert api.get(f"/api/v1/jobs/status/{job_id}", headers=viewer).json()["user_id"] == "bob"
    assert [j["job_id"] for j in api.get("/api/v1/jobs", headers=viewer).json()["jobs"]] == [job_id]
    assert api.get("/api/v1/jobs/workers", headers=viewer).status_code == 200
    for method, path, body in (("POST", "/api/v1/jobs", {"job_type": "echo"}),
                               ("POST", f"/api/v1/jobs/cancel/{job_id}", None),
                               ("POST", "/api/v1/jobs/cancel", {"job_ids": [job_id]}),
                               ("POST", "/api/v1/schedules", {"job_type": "echo", "cron_expression": "* * * * *"}),
                               ("DELETE", f"/api/extraction/{job_id}", None)):
        response = api.request(method, path, headers=viewer, json=body)
        assert response.status_code == 403, (method, path, response.text)
        assert response.json()["error"] == "PermissionDeniedError" and "read-only" in response.json()["message"]
    assert api.get(f"/api/v1/jobs/status/{job_id}", headers=viewer).json()["status"] == "pending"


def test_an_unknown_role_names_the_three_roles() -> None:
    with pytest.raises(InvalidParameterError, match="use user, admin or viewer"):
        load_keys(Settings(api_keys="k:alice:owner"))
