"""The jobs REST contract in-process: submit, batch, status, list and cursors, cancel, restart, bulk cancel,
stats, workers, health."""

from __future__ import annotations

import base64
import json
import uuid
from datetime import timedelta

from api_helpers import TestClient
from helpers import wait_until

from jobhandle import HandlerRegistry, JobQueue, JobStatus
from jobhandle.models import utcnow
from jobhandle.stores import PoolEvent, PoolInfo

SEED_002_STATUS_FIELDS = {"job_id", "job_type", "status", "progress", "created_at", "started_at", "completed_at",
                          "error", "user_id", "metrics"}
SEED_002_METRICS = {"execution_time_seconds", "items_processed", "total_items"}
SEED_002_STATS = {"pending_jobs", "running_jobs", "scheduled_jobs", "completed_jobs", "failed_jobs", "cancelled_jobs",
                  "total_jobs", "queue_type", "cache_size", "active_workers", "cpu_usage_percent", "memory_usage_mb",
                  "global_max_concurrent_jobs", "per_user_max_concurrent_jobs", "worker_health_status",
                  "last_cleanup"}


def submit(api: TestClient, job_type: str = "echo", **body: object) -> dict:
    response = api.post("/api/v1/jobs", json={"job_type": job_type, **body})
    assert response.status_code == 201, response.text
    return response.json()


def test_submit_returns_201_with_the_stored_job(api: TestClient) -> None:
    job = submit(api, parameters={"n": 1}, priority="HIGH", user_id="carol", queue="q1", max_retries=0,
                 idempotency_key="k1")

    assert job["status"] == "pending"
    assert job["priority"] == 10 and job["user_id"] == "carol" and job["queue"] == "q1"
    assert job["parameters"] == {"n": 1} and job["max_retries"] == 0
    uuid.UUID(job["job_id"])
    assert submit(api, user_id="carol", idempotency_key="k1")["job_id"] == job["job_id"]
    assert submit(api, idempotency_key="k1")["job_id"] != job["job_id"], "another user's key is another key"


def test_submit_with_delay_or_time_is_scheduled_and_with_missing_parent_waits(api: TestClient) -> None:
    delayed = submit(api, delay_seconds=3600)
    timed = submit(api, scheduled_time="2999-01-01T00:00:00Z")
    child = submit(api, depends_on=[{"job_id": delayed["job_id"], "condition": "completion"}])

    assert delayed["status"] == "scheduled" and timed["status"] == "scheduled"
    assert timed["scheduled_time"].startswith("2999-01-01T00:00:00")
    assert child["status"] == "waiting"
    assert child["depends_on"] == [{"job_id": delayed["job_id"], "condition": "completion"}]


def test_submit_with_cron_expression_returns_the_first_fire_job(api: TestClient) -> None:
    job = submit(api, "report", cron_expression="0 9 * * *")

    assert job["status"] == "scheduled" and job["schedule_id"]
    schedule = api.get(f"/api/v1/schedules/{job['schedule_id']}").json()
    assert schedule["cron_expression"] == "0 9 * * *"


def test_batch_submits_all_jobs_atomically(api: TestClient) -> None:
    response = api.post("/api/v1/jobs/batch", json={"jobs": [{"job_type": "a"}, {"job_type": "b", "priority": 5}]})
    assert response.status_code == 201
    assert [j["job_type"] for j in response.json()["jobs"]] == ["a", "b"]

    bad = api.post("/api/v1/jobs/batch", json={"jobs": [{"job_type": "c"}, {"job_type": "d", "priority": "nope"}]})
    assert bad.status_code == 400
    assert bad.json()["error"] == "InvalidParameterError" and bad.json()["message"].startswith("job 1:")
    assert sorted(j["job_type"] for j in api.get("/api/v1/jobs").json()["jobs"]) == ["a", "b"]  # nothing of c, d


def test_status_has_seed_002_fields_and_shapes(api: TestClient, api_queue: JobQueue,
                                                registry: HandlerRegistry) -> None:
    registry.register("count", lambda ctx: ctx.progress(1.0, "done", items_processed=3, total_items=3) or {"ok": 1})
    job = submit(api, "count")
    with api_queue.worker(concurrency=1):
        api_queue.wait(job["job_id"], timeout=10)

    status = api.get(f"/api/v1/jobs/status/{job['job_id']}").json()

    assert SEED_002_STATUS_FIELDS <= set(status)
    assert status == api_queue.get(job["job_id"]).to_dict()  # every field of the model, unchanged
    assert SEED_002_METRICS <= set(status["metrics"])
    assert status["status"] == "completed" and status["progress"] == 1.0 and status["result"] == {"ok": 1}
    assert status["metrics"]["items_processed"] == 3 and status["metrics"]["total_items"] == 3
    assert status["metrics"]["execution_time_seconds"] >= 0
    for field in ("created_at", "started_at", "completed_at"):
        assert status[field].endswith("+00:00"), field  # ISO 8601 with an offset


def test_unknown_and_malformed_job_ids(api: TestClient) -> None:
    missing = str(uuid.uuid4())
    response = api.get(f"/api/v1/jobs/status/{missing}")
    assert response.status_code == 404
    assert response.json() == {"error": "JobNotFoundError", "message": f"Job {missing} not found", "job_id": missing}

    malformed = api.get("/api/v1/jobs/status/not-a-uuid")
    assert malformed.status_code == 400 and malformed.json()["error"] == "InvalidParameterError"


def test_cancel_and_restart_bodies_are_seed_002s(api: TestClient) -> None:
    job_id = submit(api)["job_id"]

    cancelled = api.post(f"/api/v1/jobs/cancel/{job_id}")
    assert cancelled.status_code == 200
    assert cancelled.json() == {"job_id": job_id, "status": "cancelled", "message": "Job cancelled successfully"}
    restarted = api.post(f"/api/v1/jobs/restart/{job_id}")
    assert restarted.status_code == 200
    assert restarted.json() == {"job_id": job_id, "status": "pending", "message": "Job restarted and re-queued"}


def test_cancel_of_a_finished_job_is_409_with_current_status(api: TestClient) -> None:
    job_id = submit(api)["job_id"]
    api.post(f"/api/v1/jobs/cancel/{job_id}")

    again = api.post(f"/api/v1/jobs/cancel/{job_id}")

    assert again.status_code == 409
    assert again.json() == {"error": "JobAlreadyCompletedError", "job_id": job_id, "current_status": "cancelled",
                            "message": "Cannot cancel job that is already cancelled"}
    assert api.post(f"/api/v1/jobs/cancel/{uuid.uuid4()}").status_code == 404


def test_restart_of_a_pending_job_is_409(api: TestClient) -> None:
    job_id = submit(api)["job_id"]

    response = api.post(f"/api/v1/jobs/restart/{job_id}")

    assert response.status_code == 409
    assert response.json()["error"] == "InvalidTransitionError"
    assert response.json()["current_status"] == "pending"


def test_list_filters(api: TestClient) -> None:
    a = submit(api, "resize", user_id="ann")
    b = submit(api, "resize", user_id="ben")
    c = submit(api, "email", user_id="ann")
    api.post(f"/api/v1/jobs/cancel/{c['job_id']}")

    def ids(**params: object) -> list[str]:
        response = api.get("/api/v1/jobs", params=params)
        assert response.status_code == 200, response.text
        return [j["job_id"] for j in response.json()["jobs"]]

    assert ids() == [c["job_id"], b["job_id"], a["job_id"]]
    assert ids(job_type="resize", sort="created_at") == [a["job_id"], b["job_id"]]
    assert ids(user_id="ann") == [c["job_id"], a["job_id"]]
    assert ids(status="cancelled") == [c["job_id"]]
    assert set(ids(status="pending,CANCELLED")) == {a["job_id"], b["job_id"], c["job_id"]}
    assert api.get("/api/v1/jobs?status=pending&status=cancelled").json()["jobs"].__len__() == 3
    assert ids(q=b["job_id"][:8]) == [b["job_id"]]
    assert ids(q="be") == [b["job_id"]]
    assert ids(created_after=b["created_at"], sort="created_at") == [b["job_id"], c["job_id"]]
    assert ids(created_before=b["created_at"]) == [a["job_id"]]


def test_cursor_pages_through_every_job_once_despite_new_submissions(api: TestClient) -> None:
    submitted = [submit(api, parameters={"i": i})["job_id"] for i in range(7)]

    seen: list[str] = []
    page = api.get("/api/v1/jobs", params={"limit": 3}).json()
    while True:
        seen += [j["job_id"] for j in page["jobs"]]
        submit(api)  # a new job between pages must not shift the pages
        if page["next_cursor"] is None:
            break
        page = api.get("/api/v1/jobs", params={"limit": 3, "cursor": page["next_cursor"]}).json()

    assert seen == list(reversed(submitted))


def test_cursor_is_refused_with_other_filters_or_when_forged(api: TestClient) -> None:
    for _ in range(3):
        submit(api)
    cursor = api.get("/api/v1/jobs", params={"limit": 1}).json()["next_cursor"]

    other = api.get("/api/v1/jobs", params={"limit": 1, "cursor": cursor, "job_type": "x"})
    forged = api.get("/api/v1/jobs", params={"cursor": "bm9wZQ"})

    assert other.status_code == 400 and "other filters" in other.json()["message"]
    assert forged.status_code == 400 and forged.json()["error"] == "InvalidParameterError"


def test_bad_list_parameters_are_4xx_in_the_error_shape(api: TestClient) -> None:
    for params, code in (({"status": "bogus"}, 400), ({"sort": "job_type"}, 400), ({"limit": 0}, 422),
                         ({"created_after": "yesterday"}, 422), ({"created_before": "0.5"}, 422),
                         ({"created_after": "0001-01-01T00:00:00+01:00"}, 400)):
        response = api.get("/api/v1/jobs", params=params)
        assert response.status_code == code, (params, response.text)
        assert {"error", "message"} <= set(response.json())


def test_bulk_cancel_by_ids_reports_each_refusal(api: TestClient) -> None:
    a, b = submit(api)["job_id"], submit(api)["job_id"]
    api.post(f"/api/v1/jobs/cancel/{b}")
    missing = str(uuid.uuid4())

    result = api.post("/api/v1/jobs/cancel", json={"job_ids": [a, b, missing], "reason": "cleanup"}).json()

    assert result["cancelled"] == [a]
    refused = {r["job_id"]: r for r in result["not_cancelled"]}
    assert refused[b]["error"] == "JobAlreadyCompletedError" and refused[b]["current_status"] == "cancelled"
    assert refused[missing]["error"] == "JobNotFoundError"
    assert api.get(f"/api/v1/jobs/status/{a}").json()["error"] == "cleanup"


def test_bulk_cancel_by_filter_cancels_only_matching_unfinished_jobs(api: TestClient) -> None:
    keep = submit(api, "keep")["job_id"]
    drop = [submit(api, "drop")["job_id"] for _ in range(3)]

    result = api.post("/api/v1/jobs/cancel", json={"filter": {"job_type": "drop"}}).json()

    assert sorted(result["cancelled"]) == sorted(drop) and result["not_cancelled"] == []
    assert result["truncated"] is False
    assert api.get(f"/api/v1/jobs/status/{keep}").json()["status"] == "pending"


def test_bulk_cancel_needs_exactly_one_criterion(api: TestClient) -> None:
    for body in ({}, {"job_ids": [str(uuid.uuid4())], "filter": {"job_type": "x"}}, {"filter": {}}):
        response = api.post("/api/v1/jobs/cancel", json=body)
        assert response.status_code == 400, body
        assert response.json()["error"] == "InvalidParameterError"


def test_queue_stats_has_seed_002_fields_from_counters(api: TestClient) -> None:
    submit(api, "a")
    job_id = submit(api, "b")["job_id"]
    api.post(f"/api/v1/jobs/cancel/{job_id}")

    stats = api.get("/api/v1/jobs/queue/stats").json()

    assert SEED_002_STATS <= set(stats)
    assert stats["pending_jobs"] == 1 and stats["cancelled_jobs"] == 1 and stats["total_jobs"] == 2
    assert stats["queue_type"] == "sqlite"
    assert stats["by_type"] == {"a": {"pending": 1}, "b": {"cancelled": 1}}


def test_workers_lists_a_running_worker_with_its_heartbeat(api: TestClient, api_queue: JobQueue) -> None:
    with api_queue.worker(concurrency=2, name="w-api"):
        workers = wait_until(lambda: api.get("/api/v1/jobs/workers").json(), 5, "a registered worker")
        [worker] = workers
        assert worker["name"] == "w-api" and worker["concurrency"] == 2 and worker["healthy"] is True
        assert worker["heartbeat_age_seconds"] >= 0 and worker["current_jobs"] == []


def test_pools_lists_each_pool_with_its_scaling_decisions(api: TestClient, api_queue: JobQueue) -> None:
    now = utcnow()
    api_queue.store.record_pool(PoolInfo(
        pool_id="p1", name="images", hostname="host-1", pid=4321, queues=["images"], concurrency=2, min_workers=1,
        max_workers=4, workers=3, draining=1, started_at=now, worker_pids=[11, 12, 13],
        load={"pending": 30, "running": 6, "oldest_wait_seconds": 4.2},
        events=[PoolEvent(now, "scale", "1 -> 3: 36 jobs for 2 slots, the oldest waiting 4.2s", 3)]), now)

    [pool] = api.get("/api/v1/jobs/workers/pools").json()

    assert (pool["name"], pool["workers"], pool["draining"], pool["min_workers"], pool["max_workers"]) == (
        "images", 3, 1, 1, 4)
    assert pool["healthy"] is True and pool["state"] == "running" and pool["load"]["pending"] == 30
    assert [(e["kind"], e["detail"], e["workers"]) for e in pool["events"]] == [
        ("scale", "1 -> 3: 36 jobs for 2 slots, the oldest waiting 4.2s", 3)]


def test_health_is_degraded_without_workers_and_healthy_with_one(api: TestClient, api_queue: JobQueue) -> None:
    idle = api.get("/api/v1/jobs/health")
    assert idle.status_code == 200
    assert idle.json()["status"] == "degraded" and idle.json()["store"]["reachable"] is True
    assert any("no workers" in issue for issue in idle.json()["issues"])

    with api_queue.worker(concurrency=1):
        health = wait_until(lambda: (h := api.get("/api/v1/jobs/health").json())["status"] == "healthy" and h, 5,
                            "healthy")
    assert health["issues"] == [] and health["events"]["running"] is True


def test_health_is_503_when_the_store_is_unreachable(api: TestClient, api_queue: JobQueue) -> None:
    api_queue.store.close()

    response = api.get("/api/v1/jobs/health")

    assert response.status_code == 503
    assert response.json()["status"] == "unhealthy" and response.json()["store"]["reachable"] is False


def test_a_forged_cursor_with_a_matching_digest_but_a_huge_offset_is_400(api: TestClient) -> None:
    for _ in range(2):
        submit(api)
    real = api.get("/api/v1/jobs", params={"limit": 1}).json()["next_cursor"]
    data = json.loads(base64.urlsafe_b64decode(real + "=" * (-len(real) % 4)))
    data["o"] = 10**30
    forged = base64.urlsafe_b64encode(json.dumps(data).encode()).decode().rstrip("=")

    response = api.get("/api/v1/jobs", params={"limit": 1, "cursor": forged})

    assert response.status_code == 400 and response.json()["error"] == "InvalidParameterError"


def test_deeply_nested_parameters_and_results_round_trip(api: TestClient, api_queue: JobQueue,
                                                         registry: HandlerRegistry) -> None:
    deep: object = "bottom"
    for _ in range(400):  # deeper than pydantic serialises (about 250 levels)
        deep = [deep]
    registry.register("echo_deep", lambda ctx, value: value)
    job = submit(api, "echo_deep", parameters={"value": deep})
    with api_queue.worker(concurrency=1):
        api_queue.wait(job["job_id"], timeout=10)

    status = api.get(f"/api/v1/jobs/status/{job['job_id']}")

    assert status.status_code == 200
    assert status.json()["result"] == deep and status.json()["parameters"] == {"value": deep}
    assert api.get("/api/v1/jobs").status_code == 200


def test_keyset_pages_skip_nothing_when_jobs_are_removed_between_pages(api: TestClient,
                                                                        api_queue: JobQueue) -> None:
    """Sorted by creation time the next page starts after the last job shown (not at an offset), so jobs of
    one bulk submit (one creation time, in the order the store keeps them) are all seen once, even when
    earlier ones vanish between pages."""
    ids = [j["job_id"] for j in api.post("/api/v1/jobs/batch", json={"jobs": [{"job_type": "echo"}] * 12}).json()
           ["jobs"]]
    unpaged = [j["job_id"] for j in api.get("/api/v1/jobs", params={"limit": 50, "sort": "created_at"}).json()["jobs"]]
    assert sorted(unpaged) == sorted(ids)
    seen: list[str] = []
    page = api.get("/api/v1/jobs", params={"limit": 5, "sort": "created_at"}).json()
    while True:
        seen += [j["job_id"] for j in page["jobs"]]
        if page["jobs"]:
            api_queue.cancel(page["jobs"][0]["job_id"])  # removed below: an offset would now skip a job
            api_queue.store.cleanup({JobStatus.CANCELLED: utcnow() + timedelta(days=1)}, utcnow())
        if page["next_cursor"] is None:
            break
        page = api.get("/api/v1/jobs", params={"limit": 5, "sort": "created_at",
                                               "cursor": page["next_cursor"]}).json()
    assert seen == unpaged


def test_a_forged_keyset_position_is_400(api: TestClient) -> None:
    for _ in range(2):
        submit(api)
    real = api.get("/api/v1/jobs", params={"limit": 1}).json()["next_cursor"]
    data = json.loads(base64.urlsafe_b64decode(real + "=" * (-len(real) % 4)))
    assert "a" in data, "a list by creation time pages by position"
    for bad in (["not a time", 1], [data["a"][0], -1], [data["a"][0], "1"], "x", [data["a"][0]]):
        forged = base64.urlsafe_b64encode(json.dumps({**data, "a": bad}).encode()).decode().rstrip("=")
        response = api.get("/api/v1/jobs", params={"limit": 1, "cursor": forged})
        assert response.status_code == 400 and response.json()["error"] == "InvalidParameterError", bad


def test_lists_filter_by_error_text_and_parameter_values(api: TestClient, api_queue: JobQueue,
                                                         registry: HandlerRegistry) -> None:
    def fail(ctx: object, reason: str = "", **others: object) -> None:
        raise RuntimeError(reason)

    registry.register("fail", fail)
    wanted = api.post("/api/v1/jobs", json={"job_type": "fail", "parameters": {"reason": "Quota exceeded",
                                                                             "customer": 42}}).json()["job_id"]
    other = api.post("/api/v1/jobs", json={"job_type": "fail", "parameters": {"reason": "no route",
                                                                            "customer": 7}}).json()["job_id"]
    with api_queue.worker(concurrency=1):
        for job_id in (wanted, other):
            api_queue.wait(job_id, timeout=10)

    def ids(**params: object) -> list[str]:
        response = api.get("/api/v1/jobs", params=params)
        assert response.status_code == 200, response.text
        return [j["job_id"] for j in response.json()["jobs"]]

    assert ids(error="QUOTA") == [wanted]
    assert ids(param="customer=42") == [wanted]
    assert ids(param=["customer=42", "reason=no route"]) == []
    assert ids(param="customer=7", error="route") == [other]
    bad = api.get("/api/v1/jobs", params={"param": "customer"})
    assert bad.status_code == 400 and "KEY=VALUE" in bad.json()["message"]
    page = api.get("/api/v1/jobs", params={"error": "o", "limit": 1}).json()
    rest = api.get("/api/v1/jobs", params={"error": "o", "limit": 1, "cursor": page["next_cursor"]}).json()
    assert {page["jobs"][0]["job_id"], rest["jobs"][0]["job_id"]} == {wanted, other}
    moved = api.get("/api/v1/jobs", params={"error": "x", "limit": 1, "cursor": page["next_cursor"]})
    assert moved.status_code == 400  # a cursor belongs to its filters
