"""Every bad request gets a 4xx in the error shape ``{"error", "message", ...}``; none gets a 5xx."""

from __future__ import annotations

import uuid

import pytest
from api_helpers import ApiFactory, TestClient


def assert_error(response, status: int, error: str) -> dict:  # type: ignore[no-untyped-def]
    assert response.status_code == status, response.text
    body = response.json()
    assert body["error"] == error and isinstance(body["message"], str) and body["message"]
    return body


def test_malformed_json_is_422_validation_error(api: TestClient) -> None:
    response = api.post("/api/v1/jobs", content=b'{"job_type": ', headers={"content-type": "application/json"})

    body = assert_error(response, 422, "ValidationError")
    assert body["details"] and body["details"][0]["type"] == "json_invalid"
    assert body["message"].startswith("body: not valid JSON: ") and "(at character" in body["message"], body


def test_a_missing_field_names_the_field(api: TestClient) -> None:
    body = assert_error(api.post("/api/v1/jobs", json={"parameters": {}}), 422, "ValidationError")

    assert body["message"] == "job_type: Field required"
    assert body["details"] == [{"field": "job_type", "problem": "Field required", "type": "missing"}]


@pytest.mark.parametrize("body", [
    {"job_type": "x", "parameters": [1, 2]},
    {"job_type": "x", "parameters": "text"},
    {"job_type": ""},
    {"job_type": "   "},
    {"job_type": "x", "unknown_option": 1},
    {"job_type": "x", "delay_seconds": -1},
    {"job_type": "x", "delay_seconds": 1e300},
    {"job_type": "x", "timeout_seconds": 0},
    {"job_type": "x", "max_retries": 1.5},
    {"job_type": "x", "priority": 1.5},
    {"job_type": "x", "priority": 2**40},
    {"job_type": "x", "priority": True},
    {"job_type": "x", "max_retries": "3"},
    {"job_type": "x", "delay_seconds": False},
    {"job_type": "x", "scheduled_time": "not a time"},
    {"job_type": "x", "depends_on": "abc"},
    {"job_type": "x", "depends_on": [{"job_id": "a", "condition": "sometimes"}]},
    [1, 2, 3],
])
def test_bodies_that_do_not_fit_the_schema_are_422(api: TestClient, body: object) -> None:
    assert_error(api.post("/api/v1/jobs", json=body), 422, "ValidationError")


@pytest.mark.parametrize("raw", [b'{"job_type": "\\ud800"}', b'{"job_type": "x", "parameters": {"\\udfff": 1}}'])
def test_lone_surrogates_in_json_text_are_422(api: TestClient, raw: bytes) -> None:
    response = api.post("/api/v1/jobs", content=raw, headers={"content-type": "application/json"})

    assert_error(response, 422, "ValidationError")


def test_nan_in_parameters_is_refused(api: TestClient) -> None:
    response = api.post("/api/v1/jobs", content=b'{"job_type": "x", "parameters": {"v": NaN}}',
                        headers={"content-type": "application/json"})

    assert response.status_code in (400, 422)
    assert {"error", "message"} <= set(response.json())


@pytest.mark.parametrize(("body", "fragment"), [
    ({"job_type": "x", "priority": "sometimes"}, "unknown priority"),
    ({"job_type": "x", "priority": "99999999999999999999"}, "priority must lie"),
    ({"job_type": "x", "cron_expression": "not cron"}, "cron"),
    ({"job_type": "x", "cron_expression": "* * * * *", "delay_seconds": 5}, "cannot be combined"),
    ({"job_type": "x", "depends_on": [str(uuid.UUID(int=7))]}, "does not exist"),
    ({"job_type": "x", "depends_on": ["not-a-uuid"]}, "UUID"),
    ({"job_type": "x", "scheduled_time": "0001-01-01T00:00:00+05:00"}, "out of range"),
    ({"job_type": "x", "scheduled_time": "2030-01-01T00:00:00Z", "delay_seconds": 1}, "not both"),
])
def test_input_only_jobhandle_can_judge_is_400_invalid_parameter(api: TestClient, body: dict,
                                                                 fragment: str) -> None:
    error = assert_error(api.post("/api/v1/jobs", json=body), 400, "InvalidParameterError")

    assert fragment in error["message"]


def test_unknown_dependency_is_named(api: TestClient) -> None:
    parent = str(uuid.uuid4())

    error = assert_error(api.post("/api/v1/jobs", json={"job_type": "x", "depends_on": [parent]}), 400,
                         "InvalidParameterError")

    assert error["job_id"] == parent


def test_oversize_body_is_413_by_content_length(make_api: ApiFactory) -> None:
    api = make_api(max_body_bytes=1000)

    response = api.post("/api/v1/jobs", json={"job_type": "x", "parameters": {"blob": "a" * 2000}})

    body = assert_error(response, 413, "PayloadTooLargeError")
    assert body["max_body_bytes"] == 1000


def test_oversize_body_is_413_when_streamed_without_length(make_api: ApiFactory) -> None:
    api = make_api(max_body_bytes=1000)

    def chunks():  # type: ignore[no-untyped-def]
        yield b'{"job_type": "x", "parameters": {"blob": "'
        for _ in range(20):
            yield b"a" * 100
        yield b'"}}'

    response = api.post("/api/v1/jobs", content=chunks(), headers={"content-type": "application/json"})

    assert_error(response, 413, "PayloadTooLargeError")


def test_a_body_under_the_limit_is_accepted(make_api: ApiFactory) -> None:
    api = make_api(max_body_bytes=1000)

    assert api.post("/api/v1/jobs", json={"job_type": "x", "parameters": {"blob": "a" * 500}}).status_code == 201


def test_unknown_routes_and_methods_use_the_error_shape(api: TestClient) -> None:
    assert_error(api.get("/api/v1/nothing"), 404, "NotFound")
    assert_error(api.delete("/api/v1/jobs"), 405, "MethodNotAllowed")


def test_bad_poll_and_stream_parameters(api: TestClient) -> None:
    job_id = api.post("/api/v1/jobs", json={"job_type": "x"}).json()["job_id"]

    assert_error(api.get(f"/api/v1/jobs/status/{job_id}/poll", params={"current_status": "dreaming"}), 400,
                 "InvalidParameterError")
    assert_error(api.get(f"/api/v1/jobs/status/{job_id}/poll", params={"timeout": -1}), 422, "ValidationError")
    assert_error(api.get(f"/api/v1/jobs/status/{job_id}/stream", headers={"Last-Event-ID": "abc"}), 400,
                 "InvalidParameterError")
    assert_error(api.get("/api/v1/jobs/status/xyz/stream"), 400, "InvalidParameterError")
    assert_error(api.get(f"/api/v1/jobs/status/{uuid.uuid4()}/poll"), 404, "JobNotFoundError")


@pytest.mark.parametrize("query", ["status=", "status=pending,", "status=,running"])
def test_an_empty_status_filter_is_refused_naming_it(api: TestClient, query: str) -> None:
    body = assert_error(api.get(f"/api/v1/jobs?{query}"), 400, "InvalidParameterError")
    assert "status has an empty value" in body["message"]
