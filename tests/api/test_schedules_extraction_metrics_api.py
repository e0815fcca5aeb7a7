"""Schedules, seed 003's extraction aliases, and the Prometheus metrics."""

from __future__ import annotations

import subprocess
import sys
import uuid
from pathlib import Path

import pytest
from api_helpers import TestClient
from helpers import wait_until
from prometheus_client.parser import text_string_to_metric_families

from jobhandle import HandlerRegistry, Job, JobQueue

# -- schedules ---------------------------------------------------------------------------------------------


def test_schedule_lifecycle(api: TestClient) -> None:
    created = api.post("/api/v1/schedules", json={"job_type": "report", "cron_expression": "0 9 * * 1-5",
                                                  "timezone": "Europe/Paris", "name": "daily",
                                                  "parameters": {"team": "ops"}})
    assert created.status_code == 201
    schedule = created.json()
    sid = schedule["schedule_id"]
    assert schedule["timezone"] == "Europe/Paris" and schedule["next_fire_at"] and not schedule["paused"]

    assert [s["schedule_id"] for s in api.get("/api/v1/schedules").json()["schedules"]] == [sid]
    assert api.get(f"/api/v1/schedules/{sid}").json()["name"] == "daily"
    assert api.post(f"/api/v1/schedules/{sid}/pause").json()["paused"] is True
    assert api.post(f"/api/v1/schedules/{sid}/resume").json()["paused"] is False
    assert api.delete(f"/api/v1/schedules/{sid}").json()["schedule_id"] == sid
    assert api.get(f"/api/v1/schedules/{sid}").status_code == 404


@pytest.mark.parametrize(("body", "status"), [
    ({"job_type": "r", "cron_expression": "61 * * * *"}, 400),
    ({"job_type": "r", "cron_expression": "* * * * *", "timezone": "Mars/Olympus"}, 400),
    ({"job_type": "r", "cron_expression": "* * * * *", "delay_seconds": 3}, 422),
    ({"job_type": "r"}, 422),
    ({"job_type": "r", "cron_expression": "0 0 31 2 *"}, 400),  # valid fields, but no such date
    ({"job_type": "r", "cron_expression": "* * * * *", "timezone": "Europe"}, 400),  # a folder of the zone database
])
def test_bad_schedules_are_refused(api: TestClient, body: dict, status: int) -> None:
    response = api.post("/api/v1/schedules", json=body)

    assert response.status_code == status
    assert {"error", "message"} <= set(response.json())


def test_unknown_schedule_is_404_and_malformed_id_400(api: TestClient) -> None:
    missing = str(uuid.uuid4())
    assert api.get(f"/api/v1/schedules/{missing}").json() == {
        "error": "ScheduleNotFoundError", "message": f"Schedule {missing} not found", "schedule_id": missing}
    assert api.post("/api/v1/schedules/nope/pause").status_code == 400


# -- extraction aliases (seed 003) -------------------------------------------------------------------------


def test_extraction_aliases(api: TestClient) -> None:
    submitted = api.post("/api/extraction/", json={"parameters": {"document_id": 123}, "priority": "high"})
    assert submitted.status_code == 201
    job = submitted.json()
    assert job["job_type"] == "extraction" and job["priority"] == 10

    assert api.get(f"/api/extraction/{job['job_id']}").json()["parameters"] == {"document_id": 123}
    assert api.delete(f"/api/extraction/{job['job_id']}").json() == {
        "job_id": job["job_id"], "status": "cancelled", "message": "Job cancelled successfully"}
    assert api.post(f"/api/extraction/{job['job_id']}/restart").json() == {
        "job_id": job["job_id"], "status": "pending", "message": "Job restarted and re-queued"}


def test_extraction_paths_do_not_show_other_job_types(api: TestClient) -> None:
    other = api.post("/api/v1/jobs", json={"job_type": "resize"}).json()["job_id"]

    assert api.get(f"/api/extraction/{other}").status_code == 404
    assert api.delete(f"/api/extraction/{other}").status_code == 404
    assert api.post("/api/extraction/", json={"job_type": "resize"}).status_code == 422


# -- metrics -----------------------------------------------------------------------------------------------


def samples(api: TestClient) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    response = api.get("/metrics")
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/plain")
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(response.text) for s in family.samples}


def test_metrics_count_jobs_finished_by_this_process(api: TestClient, api_queue: JobQueue,
                                                     registry: HandlerRegistry) -> None:
    registry.register("ok", lambda ctx: "fine")
    registry.register("bad", lambda ctx: 1 / 0)
    jobs = [api.post("/api/v1/jobs", json={"job_type": t, "max_retries": 0}).json()["job_id"]
            for t in ("ok", "ok", "bad")]
    with api_queue.worker(concurrency=2):
        for job_id in jobs:
            api_queue.wait(job_id, 10)

    got = wait_until(lambda: (m := samples(api)).get(
        ("jobhandle_jobs_finished_total", (("job_type", "bad"), ("queue", "default"), ("status", "failed"))))
        and m, 5, "metrics")

    assert got[("jobhandle_jobs_submitted_total", (("job_type", "ok"), ("queue", "default")))] == 2
    finished = ("jobhandle_jobs_finished_total", (("job_type", "ok"), ("queue", "default"), ("status", "completed")))
    assert got[finished] == 2
    assert got[("jobhandle_job_duration_seconds_count", (("job_type", "ok"), ("status", "completed")))] == 2
    assert got[("jobhandle_queue_depth", (("status", "completed"),))] == 2
    assert got[("jobhandle_queue_depth", (("status", "failed"),))] == 1
    assert got[("jobhandle_jobs", (("job_type", "bad"), ("status", "failed")))] == 1
    assert got[("jobhandle_queue_jobs", (("queue", "default"), ("status", "completed")))] == 2
    assert got[("jobhandle_job_wait_seconds_count", (("job_type", "ok"), ("queue", "default")))] == 2
    assert got[("jobhandle_oldest_pending_age_seconds", (("queue", "default"),))] == 0
    assert got[("jobhandle_worker_slots_busy", ())] == 0


def test_metrics_give_the_oldest_pending_jobs_age_and_count_retries(api: TestClient, api_queue: JobQueue,
                                                                   registry: HandlerRegistry) -> None:
    from datetime import timedelta

    from jobhandle.models import utcnow

    api_queue.store.submit([Job("slow", queue="reports")], utcnow() - timedelta(seconds=90))
    got = samples(api)
    assert 89 < got[("jobhandle_oldest_pending_age_seconds", (("queue", "reports"),))] < 120
    assert got[("jobhandle_queue_jobs", (("queue", "reports"), ("status", "pending")))] == 1
    registry.register("flaky", lambda ctx: 1 / 0)
    job = api_queue.submit("flaky", max_retries=1, retry_delay=3600)
    with api_queue.worker(concurrency=1):
        wait_until(lambda: api_queue.get(job.job_id).status.value == "retrying", 10, "the first attempt to fail")
    got = wait_until(lambda: (m := samples(api)).get(
        ("jobhandle_jobs_retried_total", (("job_type", "flaky"), ("queue", "default")))) and m, 5, "the retry")
    assert got[("jobhandle_jobs_retried_total", (("job_type", "flaky"), ("queue", "default")))] == 1


def test_metrics_count_jobs_run_by_another_process(api: TestClient, api_queue: JobQueue) -> None:
    handlers = Path(__file__).with_name("sse_handlers.py")
    url = f"sqlite:///{api_queue.store.path}"  # type: ignore[attr-defined]
    job = api.post("/api/v1/jobs", json={"job_type": "stepper", "parameters": {"steps": 1, "pause": 0}}).json()
    script = ("from jobhandle import JobQueue\nfrom jobhandle.cli import import_app\n"
              f"import_app({str(handlers)!r})\n"
              f"with JobQueue({url!r}) as q, q.worker(1):\n    q.wait({job['job_id']!r}, 20)\n")
    subprocess.run([sys.executable, "-c", script], check=True, timeout=60)

    got = wait_until(lambda: (m := samples(api)).get(
        ("jobhandle_jobs_finished_total", (("job_type", "stepper"), ("queue", "default"), ("status", "completed"))))
        and m, 5,
        "the other process's completion in the metrics")

    assert got[("jobhandle_jobs_submitted_total", (("job_type", "stepper"), ("queue", "default")))] == 1
    assert got[("jobhandle_active_workers", ())] == 0  # that worker unregistered when it stopped
