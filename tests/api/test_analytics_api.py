"""GET /api/v1/jobs/analytics: a window's figures from the store's rollups, for keys that see every user."""

from __future__ import annotations

from api_helpers import ADMIN_KEY, ALICE_KEY, KEYS, ApiFactory, bearer

from jobhandle import HandlerRegistry, JobQueue


def run_some(queue: JobQueue, registry: HandlerRegistry) -> None:
    registry.register("ok", lambda ctx: "fine")

    def broken(ctx: object) -> None:
        raise KeyError("no such row")

    registry.register("broken", broken)
    jobs = [queue.submit("ok") for _ in range(3)] + [queue.submit("broken", max_retries=0)]
    with queue.worker(concurrency=2):
        for job in jobs:
            queue.wait(job.job_id, timeout=10)


def test_the_window_has_counts_rates_times_and_errors(make_api: ApiFactory, api_queue: JobQueue,
                                                      registry: HandlerRegistry) -> None:
    run_some(api_queue, registry)
    api = make_api()
    body = api.get("/api/v1/jobs/analytics", params={"window": "1h"}).json()
    assert body["window"] == "1h" and body["step_seconds"] == 60 and len(body["slots"]) == 60
    assert body["totals"] == {"completed": 3, "failed": 1, "cancelled": 0, "retried": 0}
    assert body["success_rate"] == 0.75
    ok = body["job_types"]["ok"]
    assert ok["completed"] == 3 and ok["run"]["count"] == 3 and ok["wait"]["count"] == 3
    assert ok["run"]["p50"] is not None and ok["run"]["p50"] <= ok["run"]["p99"]
    assert body["errors"][0]["job_type"] == "broken" and body["errors"][0]["error_type"] == "KeyError"
    assert api.get("/api/v1/jobs/analytics").json()["window"] == "24h"  # the default


def test_an_unknown_window_is_refused_in_the_error_shape(make_api: ApiFactory) -> None:
    response = make_api().get("/api/v1/jobs/analytics", params={"window": "30d"})
    assert response.status_code == 422
    assert response.json()["error"] == "ValidationError" and "window" in response.json()["message"]


def test_only_keys_that_see_every_user_get_analytics(make_api: ApiFactory) -> None:
    api = make_api(api_keys=KEYS)
    assert api.get("/api/v1/jobs/analytics").status_code == 401
    refused = api.get("/api/v1/jobs/analytics", headers=bearer(ALICE_KEY))
    assert refused.status_code == 403 and refused.json()["error"] == "PermissionDeniedError"
    assert api.get("/api/v1/jobs/analytics", headers=bearer(ADMIN_KEY)).status_code == 200
