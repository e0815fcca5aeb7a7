"""The dashboard in a real browser (headless Chromium through Playwright) against a live server over HTTP."""

from __future__ import annotations

import os
import re
import socket
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from conftest import Dashboard
from helpers import wait_until
from playwright.sync_api import expect

from jobhandle import JobStatus
from jobhandle.models import utcnow
from jobhandle.stores import PoolEvent, PoolInfo

MakeDashboard = Callable[..., Dashboard]
NewPage = Callable[..., Any]

PAYLOADS = ['<script>window.__pwned=1</script>', '<img src=x onerror="window.__pwned=2">',
            'javascript:window.__pwned=3', '"><svg onload="window.__pwned=4">']


def submit(d: Dashboard, job_type: str, parameters: dict[str, Any] | None = None, **options: Any) -> str:
    """Submit through the REST API, as a user's program would; the job's id."""
    response = httpx.post(f"{d.url}/api/v1/jobs", json={"job_type": job_type, "parameters": parameters or {},
                                                         **options}, timeout=10)
    assert response.status_code == 201, response.text
    job_id: str = response.json()["job_id"]
    return job_id


def row(page: Any, job_id: str) -> Any:
    return page.locator(f'#jobs tr[data-job="{job_id}"]')


def test_submitted_jobs_appear_and_their_progress_moves_without_a_reload(
        make_dashboard: MakeDashboard, new_page: NewPage) -> None:
    d = make_dashboard()
    page = new_page()
    page.goto(f"{d.url}/jobs")
    expect(page.locator("#live")).to_have_attribute("data-state", "open")
    page.evaluate("window.__notReloaded = true")
    job_id = submit(d, "steps", {"steps": 4})
    expect(row(page, job_id)).to_be_visible()
    d.stepper.step()
    expect(row(page, job_id).locator(".pct")).to_have_text("25%")
    expect(row(page, job_id).locator('[data-f="status"]')).to_have_text("running")
    d.stepper.step(2)
    expect(row(page, job_id).locator(".pct")).to_have_text("75%")
    d.stepper.step()
    expect(row(page, job_id).locator('[data-f="status"]')).to_have_text("completed")
    assert page.evaluate("window.__notReloaded") is True, "the page was reloaded"
    assert page.console_errors == []


def test_the_overview_counts_change_live(make_dashboard: MakeDashboard, new_page: NewPage) -> None:
    d = make_dashboard(worker=False)
    page = new_page()
    page.goto(f"{d.url}/")
    expect(page.locator('[data-stat="pending_jobs"]')).to_have_text("0")
    expect(page.locator("#live")).to_have_attribute("data-state", "open")
    for _ in range(3):
        submit(d, "echo")
    expect(page.locator('[data-stat="pending_jobs"]')).to_have_text("3")
    expect(page.locator('[data-stat="total_jobs"]')).to_have_text("3")
    expect(page.locator("#alerts")).to_contain_text("no live worker")
    expect(page.locator('#queues tr[data-queue="default"]')).to_contain_text("3")


def test_cancel_through_the_dialog_says_what_happens_and_cancels(
        make_dashboard: MakeDashboard, new_page: NewPage) -> None:
    d = make_dashboard()
    job_id = submit(d, "steps", {"steps": 4})
    wait_until(lambda: d.queue.get(job_id).status is JobStatus.RUNNING, 10, "the job to run")
    page = new_page()
    page.goto(f"{d.url}/jobs/{job_id}")
    page.locator('.job-head button[data-action="cancel"]').click()
    dialog = page.locator("#confirm")
    expect(dialog).to_be_visible()
    expect(dialog).to_contain_text(f"Job {job_id} is running")
    expect(dialog).to_contain_text("handler is told to stop")
    dialog.get_by_role("button", name="Keep as is").click()
    assert d.queue.get(job_id).status is JobStatus.RUNNING, "declining the dialog changed nothing"
    page.locator('.job-head button[data-action="cancel"]').click()
    dialog.get_by_role("button", name="Cancel the job").click()
    expect(page.locator('.job-head [data-f="status"]')).to_have_text("cancelled")
    wait_until(lambda: d.queue.get(job_id).status is JobStatus.CANCELLED, 10, "the job to be cancelled")
    expect(page.locator('.job-head button[data-action="restart"]')).to_be_visible()


def test_restart_a_failed_job(make_dashboard: MakeDashboard, new_page: NewPage) -> None:
    d = make_dashboard()
    job_id = submit(d, "boom", {"message": "disk full"})
    wait_until(lambda: d.queue.get(job_id).status is JobStatus.FAILED, 10, "the job to fail")
    page = new_page()
    page.goto(f"{d.url}/jobs?status=failed")
    expect(row(page, job_id).locator('td[data-f="error"]')).to_contain_text("disk full")
    row(page, job_id).locator('button[data-action="restart"]').click()
    expect(page.locator("#confirm")).to_contain_text("attempts reset to 0")
    page.get_by_role("button", name="Restart the job").click()
    wait_until(lambda: d.queue.get(job_id).attempts >= 1 and d.queue.get(job_id).status is JobStatus.FAILED
               and len(d.queue.get(job_id).error_history) >= 2, 10, "the restarted job to run (and fail) again")
    expect(page.locator(".toast", has_text="failed")).to_have_count(1)
    page.goto(f"{d.url}/jobs/{job_id}")
    attempts = page.locator('[data-f="error_history"] li')
    expect(attempts).to_have_count(2)
    expect(attempts.first).to_contain_text("on browser-worker")
    expect(attempts.first.locator("pre")).to_contain_text('in boom\n    raise RuntimeError(message)')


def test_bulk_cancel_by_filter_shows_the_count_first(make_dashboard: MakeDashboard, new_page: NewPage) -> None:
    d = make_dashboard(worker=False)
    targets = [submit(d, "echo", {"n": n}) for n in range(30)]
    others = [submit(d, "steps") for _ in range(5)]
    page = new_page()
    page.goto(f"{d.url}/jobs?job_type=echo&limit=25")
    expect(page.locator("#jobs tbody tr[data-job]")).to_have_count(25)
    page.get_by_role("button", name="Cancel all matching…").click()
    dialog = page.locator("#confirm")
    expect(dialog).to_contain_text("30 jobs matching this filter (job_type=echo")
    dialog.get_by_role("button", name="Cancel 30 jobs").click()
    expect(page.locator(".toast").first).to_contain_text("30 jobs cancelled")
    assert {d.queue.get(j).status for j in targets} == {JobStatus.CANCELLED}
    assert {d.queue.get(j).status for j in others} == {JobStatus.PENDING}
    expect(page.locator('#jobs tbody [data-f="status"]', has_text="cancelled")).to_have_count(25)


def test_bulk_restart_of_selected_jobs(make_dashboard: MakeDashboard, new_page: NewPage) -> None:
    d = make_dashboard(worker=False)
    ids = [submit(d, "echo") for _ in range(4)]
    for job_id in ids:
        d.queue.cancel(job_id)
    page = new_page()
    page.goto(f"{d.url}/jobs?status=cancelled")
    for job_id in ids[:2]:
        row(page, job_id).locator("input.select").check()
    expect(page.locator("#selected-count")).to_have_text("2")
    page.get_by_role("button", name="Restart selected").click()
    page.get_by_role("button", name="Restart 2 jobs").click()
    expect(page.locator(".toast").first).to_contain_text("2 jobs restarted")
    assert [d.queue.get(j).status for j in ids] == [JobStatus.PENDING] * 2 + [JobStatus.CANCELLED] * 2


def test_filter_search_sort_and_page(make_dashboard: MakeDashboard, new_page: NewPage) -> None:
    d = make_dashboard(worker=False)
    ids = [submit(d, "echo", {"n": n}, user_id="alice" if n % 3 == 0 else "bob", priority=n) for n in range(60)]
    page = new_page()
    page.goto(f"{d.url}/jobs?limit=25")
    expect(page.locator("#jobs tbody tr[data-job]")).to_have_count(25)
    assert page.locator("#jobs tbody tr[data-job]").first.get_attribute("data-job") == ids[-1], "newest first"
    page.get_by_role("link", name="next page").click()
    expect(page.locator("#jobs tbody tr[data-job]")).to_have_count(25)
    assert page.locator("#jobs tbody tr[data-job]").first.get_attribute("data-job") == ids[-26]
    page.get_by_role("link", name="next page").click()
    expect(page.locator("#jobs tbody tr[data-job]")).to_have_count(10)
    expect(page.get_by_role("link", name="next page")).to_have_count(0)
    page.goto(f"{d.url}/jobs")
    page.keyboard.press("/")
    expect(page.locator("#search")).to_be_focused()
    page.keyboard.type(ids[7][:8])
    page.keyboard.press("Enter")
    expect(page.locator("#jobs tbody tr[data-job]")).to_have_count(1)
    assert "q=" + ids[7][:8] in page.url, "the search is in the page's URL"
    page.goto(f"{d.url}/jobs?user_id=alice&sort=-priority&limit=200")
    expect(page.locator("#jobs tbody tr[data-job]")).to_have_count(20)
    assert page.locator("#jobs tbody tr[data-job]").first.get_attribute("data-job") == ids[57]
    page.goto(f"{d.url}/jobs?status=bogus")
    expect(page.locator(".alert.error")).to_contain_text("bogus")
    page.goto(f"{d.url}/jobs")
    page.locator("#search").fill("n=7")  # a parameter's value
    page.locator("#search").press("Enter")
    expect(page.locator("#jobs tbody tr[data-job]")).to_have_count(1)
    assert page.locator("#jobs tbody tr[data-job]").first.get_attribute("data-job") == ids[7]
    failed = submit(d, "boom", {"message": "Disk QUOTA exceeded on /srv"})
    d.queue.start(concurrency=1)
    d.queue.wait(failed, timeout=10)
    page.goto(f"{d.url}/jobs")
    page.locator('input[name="error"]').fill("quota exceeded")
    page.locator('input[name="error"]').press("Enter")
    expect(page.locator("#jobs tbody tr[data-job]")).to_have_count(1)
    assert page.locator("#jobs tbody tr[data-job]").first.get_attribute("data-job") == failed
    assert "error=quota" in page.url


def test_a_job_page_shows_a_live_progress_timeline_then_the_result(
        make_dashboard: MakeDashboard, new_page: NewPage) -> None:
    d = make_dashboard()
    job_id = submit(d, "steps", {"steps": 3})
    page = new_page()
    page.goto(f"{d.url}/jobs/{job_id}")
    expect(page.locator("#live")).to_have_attribute("data-state", "open")
    for n in (1, 2, 3):
        d.stepper.step()
        expect(page.locator('[data-f="progress_history"] li').last).to_contain_text(f"stage {n} of 3")
    expect(page.locator('.job-head [data-f="status"]')).to_have_text("completed")
    expect(page.locator('[data-f="result"]')).to_contain_text('"steps": 3')
    expect(page.locator(".toast", has_text="completed")).to_have_count(1)
    expect(page.locator('[data-f="ran"]')).not_to_be_empty()


def record_pool(d: Dashboard, name: str = "images", queues: list[str] | None = None,
                detail: str = "1 -> 3: 36 jobs for 4 slots, the oldest waiting 4.2s", **fields: Any) -> None:
    """A pool's registration as `jobhandle pool` writes it each round, with this process's worker in it (the pool
    itself is tested with real processes in tests/reliability/test_pool.py)."""
    now = utcnow()
    d.queue.store.record_pool(PoolInfo(
        pool_id=f"{name}-1", name=name, hostname=socket.gethostname(), pid=4321, queues=queues or ["default"],
        concurrency=4, min_workers=1, max_workers=6, workers=3, draining=1, started_at=now, worker_pids=[os.getpid()],
        load={"pending": 30, "running": 6, "oldest_wait_seconds": 4.2},
        events=[PoolEvent(now, "scale", "0 -> 1: starting", 1), PoolEvent(now, "scale", detail, 3)], **fields), now)


def test_the_workers_page_shows_each_pool_and_why_it_last_scaled(make_dashboard: MakeDashboard,
                                                                 new_page: NewPage) -> None:
    d = make_dashboard(worker_timeout=60)  # the registration is written once: not reaped as stale meanwhile
    record_pool(d)
    page = new_page()
    page.goto(f"{d.url}/workers")
    pool = page.locator('#pools tr[data-pool="images-1"]')
    expect(pool).to_contain_text("images")
    expect(pool).to_contain_text("3 +1 draining")
    expect(pool).to_contain_text("30 pending, 6 running")
    events = page.locator('#pools tr[data-pool-events="images-1"] li')
    expect(events).to_have_count(2)
    expect(events.first).to_contain_text("scale 1 -> 3: 36 jobs for 4 slots, the oldest waiting 4.2s")
    worker = page.locator("#workers tr", has_text="browser-worker")
    expect(worker.locator('a[href="#pool-images"]')).to_have_text("images")


def test_user_strings_are_shown_as_text_and_run_nothing(make_dashboard: MakeDashboard, new_page: NewPage) -> None:
    d = make_dashboard(worker_timeout=60)  # the pool's registration is written once: not reaped meanwhile
    ids = [submit(d, "boom", {"message": payload, "p": payload}, user_id=payload, queue="default")
           for payload in PAYLOADS]
    wait_until(lambda: all(d.queue.get(j).status is JobStatus.FAILED for j in ids), 10, "the jobs to fail")
    record_pool(d, name=PAYLOADS[0], queues=[PAYLOADS[1]], detail=PAYLOADS[3])
    page = new_page()
    dialogs: list[str] = []
    page.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))
    for path in ["/", "/jobs", f"/jobs?q={PAYLOADS[0]}", f"/jobs/{ids[0]}", f"/jobs/{ids[1]}", "/workers"]:
        page.goto(d.url + path)
        page.wait_for_load_state("networkidle")
        assert page.evaluate("window.__pwned") is None, f"a payload ran on {path}"
    expect(page.locator("#pools")).to_contain_text(PAYLOADS[0])  # the last page visited: /workers
    expect(page.locator("#pools .timeline")).to_contain_text(PAYLOADS[3])
    page.goto(f"{d.url}/jobs/{ids[1]}")
    expect(page.locator('[data-f="error_text"]')).to_contain_text(PAYLOADS[1])
    expect(page.locator(".facts")).to_contain_text(PAYLOADS[1])
    live = new_page()
    live.goto(f"{d.url}/jobs")
    expect(live.locator("#live")).to_have_attribute("data-state", "open")
    fresh = submit(d, "boom", {"message": PAYLOADS[3]}, user_id=PAYLOADS[2])  # arrives live, rendered by script
    expect(row(live, fresh).locator('[data-f="user_id"]')).to_have_text(PAYLOADS[2])
    expect(row(live, fresh).locator('td[data-f="error"]')).to_contain_text(PAYLOADS[3])
    assert live.evaluate("window.__pwned") is None
    assert dialogs == []


def test_the_pages_make_no_request_to_another_origin(make_dashboard: MakeDashboard, new_page: NewPage) -> None:
    d = make_dashboard()
    job_id = submit(d, "echo", {"x": 1})
    page = new_page()
    for path in ["/", "/jobs", f"/jobs/{job_id}", "/workers", "/analytics", "/docs"]:
        page.goto(d.url + path)
        page.wait_for_load_state("networkidle")
    foreign = [u for u in page.requests_seen if not u.startswith(d.url) and not u.startswith("data:")]
    assert foreign == []
    expect(page.locator(".swagger-ui")).to_be_visible()  # /docs works offline: its assets are local
    assert page.console_errors == []


KEYS = ("admin-key-0123456789:root:admin,alice-key-0123456789:alice,bob-key-0123456789:bob,"
        "view-key-0123456789:ops:viewer")


def sign_in(page: Any, d: Dashboard, key: str, path: str = "/jobs") -> None:
    page.goto(d.url + path)
    expect(page).to_have_url(re.compile(r"/login\?next="))
    page.locator('input[name="key"]').fill(key)
    page.get_by_role("button", name="Sign in").click()
    expect(page).to_have_url(d.url + path)


def test_with_keys_each_user_sees_only_their_jobs(make_dashboard: MakeDashboard, new_page: NewPage) -> None:
    d = make_dashboard(worker=False, api_keys=KEYS)
    admin = {"Authorization": "Bearer admin-key-0123456789"}
    alice_job = httpx.post(f"{d.url}/api/v1/jobs", json={"job_type": "echo", "user_id": "alice"}, headers=admin)
    bob_job = httpx.post(f"{d.url}/api/v1/jobs", json={"job_type": "echo", "user_id": "bob"}, headers=admin)
    alice_id, bob_id = alice_job.json()["job_id"], bob_job.json()["job_id"]
    page = new_page()
    page.goto(f"{d.url}/ui/overview")
    assert "sign in" in page.content()
    page.locator("body")  # the 401 above is JSON; the pages redirect to the sign-in form instead
    page.goto(f"{d.url}/login")
    page.locator('input[name="key"]').fill("wrong-key")
    page.get_by_role("button", name="Sign in").click()
    expect(page.locator(".alert.error")).to_have_text("unknown API key")
    sign_in(page, d, "alice-key-0123456789")
    expect(row(page, alice_id)).to_be_visible()
    expect(row(page, bob_id)).to_have_count(0)
    page.goto(f"{d.url}/jobs/{bob_id}")
    expect(page.locator("h1")).to_have_text("Not found")
    cookie = next(c for c in page.context.cookies() if c["name"] == "jh_session")
    assert cookie["httpOnly"] is True and cookie["sameSite"] == "Strict"
    assert "alice-key" not in cookie["value"], "the key itself is never in the cookie"
    page.get_by_role("button", name="Sign out").click()
    page.goto(f"{d.url}/jobs")
    expect(page).to_have_url(re.compile(r"/login"))


def test_a_viewer_sees_everything_and_cannot_act(make_dashboard: MakeDashboard, new_page: NewPage) -> None:
    d = make_dashboard(worker=False, api_keys=KEYS)
    admin = {"Authorization": "Bearer admin-key-0123456789"}
    job_id = httpx.post(f"{d.url}/api/v1/jobs", json={"job_type": "echo", "user_id": "bob"},
                        headers=admin).json()["job_id"]
    page = new_page()
    sign_in(page, d, "view-key-0123456789")
    expect(row(page, job_id)).to_be_visible()
    expect(page.locator("button[data-action]")).to_have_count(0)
    expect(page.locator("#bulk")).to_have_count(0)
    token = page.locator('meta[name="csrf-token"]').get_attribute("content")
    status = page.evaluate("""async ([id, token]) => (await fetch(`/ui/jobs/${id}/cancel`,
        {method: "POST", headers: {"X-CSRF-Token": token}})).status""", [job_id, token])
    assert status == 403
    assert d.queue.get(job_id).status is JobStatus.PENDING
    over_api = httpx.post(f"{d.url}/api/v1/jobs/cancel/{job_id}",
                          headers={"Authorization": "Bearer view-key-0123456789"})
    assert over_api.status_code == 403 and over_api.json()["error"] == "PermissionDeniedError"


def test_state_changes_need_the_csrf_token(make_dashboard: MakeDashboard, new_page: NewPage) -> None:
    d = make_dashboard(worker=False)
    job_id = submit(d, "echo")
    page = new_page()
    page.goto(f"{d.url}/jobs")
    status = page.evaluate("""async (id) => (await fetch(`/ui/jobs/${id}/cancel`, {method: "POST"})).status""",
                           job_id)
    assert status == 403
    status = page.evaluate("""async (id) => (await fetch(`/ui/jobs/${id}/cancel`,
        {method: "POST", headers: {"X-CSRF-Token": "forged"}})).status""", job_id)
    assert status == 403
    assert d.queue.get(job_id).status is JobStatus.PENDING


def test_themes_follow_the_system_and_the_toggle(make_dashboard: MakeDashboard, new_page: NewPage) -> None:
    d = make_dashboard(worker=False)
    page = new_page(color_scheme="dark")
    page.goto(f"{d.url}/")

    def background() -> str:
        return str(page.evaluate("getComputedStyle(document.body).backgroundColor"))

    dark = background()
    page.locator("#theme").click()  # auto -> light
    light = background()
    assert dark != light
    page.reload()
    assert background() == light, "the choice is remembered"
    page.keyboard.press("?")
    expect(page.locator("#help")).to_be_visible()


@pytest.mark.parametrize("store", ["redis"])
def test_live_updates_on_redis(make_dashboard: MakeDashboard, new_page: NewPage, store: str,
                               request: pytest.FixtureRequest) -> None:
    from store_urls import redis_url

    d = make_dashboard(store_url=redis_url(request))
    page = new_page()
    page.goto(f"{d.url}/jobs")
    expect(page.locator("#live")).to_have_attribute("data-state", "open")
    job_id = submit(d, "steps", {"steps": 2})
    expect(row(page, job_id)).to_be_visible()
    d.stepper.step(2)
    expect(row(page, job_id).locator('[data-f="status"]')).to_have_text("completed")


def test_submit_from_the_form_then_watch_the_job_in_place(make_dashboard: MakeDashboard, new_page: NewPage) -> None:
    d = make_dashboard()
    page = new_page()
    page.goto(f"{d.url}/submit")
    expect(page.locator("#live")).to_have_attribute("data-state", "open")
    page.evaluate("window.__notReloaded = true")
    page.locator('input[name="job_type"]').fill("steps")
    params = page.locator('textarea[name="parameters"]')
    params.fill('{"steps": 2')
    expect(page.locator("#parameters-error")).to_contain_text("not JSON")
    expect(page.locator("#submit-button")).to_be_disabled()
    params.fill('[1, 2]')
    expect(page.locator("#parameters-error")).to_contain_text("must be a JSON object")
    params.fill('{"steps": 2}')
    expect(page.locator("#submit-button")).to_be_enabled()
    page.locator('select[name="priority"]').select_option("high")
    page.locator("#submit-button").click()
    monitor = page.locator("#monitor")
    expect(monitor).to_be_visible()
    job_id = monitor.locator("#monitor-id").inner_text()
    assert d.queue.get(job_id).priority == 10 and d.queue.get(job_id).parameters == {"steps": 2}
    d.stepper.step()
    expect(monitor.locator('[data-f="progress_message"]')).to_have_text("stage 1 of 2")
    d.stepper.step()
    expect(monitor.locator('[data-f="status"]')).to_have_text("completed")
    expect(monitor.locator('[data-f="result"]')).to_contain_text('"steps": 2')
    assert page.evaluate("window.__notReloaded") is True
    page.locator('input[name="job_type"]').fill("echo")
    page.locator('input[name="depends_on"]').fill("not-a-job-id")
    page.locator("#submit-button").click()
    expect(page.locator("#submit-error")).to_contain_text("not-a-job-id")


def test_failures_are_grouped_and_a_group_restarts(make_dashboard: MakeDashboard, new_page: NewPage) -> None:
    d = make_dashboard()
    slow = [submit(d, "boom", {"message": f"timed out after {n}.5 s"}) for n in range(3)]
    other = submit(d, "boom", {"message": "disk full"})
    wait_until(lambda: all(d.queue.get(j).status is JobStatus.FAILED for j in [*slow, other]), 10, "failures")
    page = new_page()
    page.goto(f"{d.url}/failures")
    groups = page.locator("#failure-groups tbody tr")
    expect(groups).to_have_count(2)
    expect(groups.first).to_contain_text("timed out after <n> s")
    expect(groups.first.locator("td").first).to_have_text("3")
    groups.first.get_by_role("button", name="Restart 3").click()
    page.get_by_role("button", name="Restart 3 jobs").click()
    expect(page.locator(".toast", has_text="3 jobs restarted")).to_have_count(1)
    wait_until(lambda: all(len(d.queue.get(j).error_history) == 2 for j in slow), 10, "the group to run again")
    assert len(d.queue.get(other).error_history) == 1, "the other group was left alone"


def test_schedules_are_created_paused_resumed_and_deleted(make_dashboard: MakeDashboard, new_page: NewPage) -> None:
    d = make_dashboard(worker=False)
    page = new_page()
    page.goto(f"{d.url}/schedules")
    expect(page.locator("#schedules tr.empty")).to_have_count(1)
    form = page.locator("#schedule-form")
    form.locator('input[name="job_type"]').fill("echo")
    form.locator('input[name="cron_expression"]').fill("not cron")
    form.get_by_role("button", name="Create schedule").click()
    expect(page.locator("#submit-error")).to_contain_text("cron")
    form.locator('input[name="cron_expression"]').fill("*/5 * * * *")
    form.locator('input[name="name"]').fill("every five")
    form.get_by_role("button", name="Create schedule").click()
    row = page.locator("#schedules tbody tr[data-schedule]")
    expect(row).to_have_count(1)
    expect(row).to_contain_text("every five")
    expect(row).to_contain_text("active")
    row.get_by_role("button", name="Pause").click()
    page.get_by_role("button", name="Pause it").click()
    expect(page.locator("#schedules tbody tr[data-schedule]")).to_contain_text("paused")
    assert d.queue.schedules()[0].paused is True
    page.locator("#schedules tbody tr[data-schedule]").get_by_role("button", name="Resume").click()
    page.get_by_role("button", name="Resume it").click()
    expect(page.locator("#schedules tbody tr[data-schedule]")).to_contain_text("active")
    page.locator("#schedules tbody tr[data-schedule]").get_by_role("button", name="Delete").click()
    page.get_by_role("button", name="Delete it").click()
    expect(page.locator("#schedules tr.empty")).to_have_count(1)
    assert d.queue.schedules() == []


def test_analytics_charts_are_drawn_and_follow_new_jobs(make_dashboard: MakeDashboard, new_page: NewPage) -> None:
    d = make_dashboard()
    done = [submit(d, "echo", {"n": n}) for n in range(3)] + [submit(d, "boom", {"message": "no disk"})]
    for job_id in done:
        d.queue.wait(job_id, timeout=10)
    page = new_page()
    page.goto(f"{d.url}/analytics?window=1h")
    expect(page.locator("#live")).to_have_attribute("data-state", "open")
    expect(page.locator(".chart canvas")).to_have_count(4)  # throughput, success rate, wait, run
    expect(page.locator('[data-total="completed"]')).to_have_text("3")
    expect(page.locator('[data-total="failed"]')).to_have_text("1")
    expect(page.locator('[data-total="success_rate"]')).to_have_text("75.0%")
    expect(page.locator('#analytics-types tr[data-job-type="echo"]')).to_be_visible()
    expect(page.locator("#analytics-errors")).to_contain_text("RuntimeError")
    page.evaluate("window.__notReloaded = true")
    d.queue.wait(submit(d, "echo"), timeout=10)
    # The page re-reads its figures at most every 5 s (REFRESH_MIN_MS), so this can take 5 s and a bit.
    expect(page.locator('[data-total="completed"]')).to_have_text("4", timeout=15_000)  # from the stream: no reload
    assert page.evaluate("window.__notReloaded") is True
    page.get_by_role("link", name="last 7d").click()
    expect(page).to_have_url(re.compile(r"window=7d"))
    expect(page.locator('[data-total="completed"]')).to_have_text("4")
    assert page.console_errors == []


def test_analytics_are_for_keys_that_see_every_user(make_dashboard: MakeDashboard, new_page: NewPage) -> None:
    d = make_dashboard(worker=False, api_keys=KEYS)
    page = new_page()
    sign_in(page, d, "alice-key-0123456789", "/analytics")
    expect(page.locator(".hint")).to_contain_text("admin or viewer")
    expect(page.locator(".chart")).to_have_count(0)
    assert page.evaluate("async () => (await fetch('/ui/analytics')).status") == 403
    viewer = new_page()
    sign_in(viewer, d, "view-key-0123456789", "/analytics")
    expect(viewer.locator(".chart canvas")).to_have_count(4)
    api = httpx.get(f"{d.url}/api/v1/jobs/analytics", headers={"Authorization": "Bearer bob-key-0123456789"})
    assert api.status_code == 403 and api.json()["error"] == "PermissionDeniedError"


def test_cleanup_from_the_overview_shows_the_count_then_removes(make_dashboard: MakeDashboard,
                                                                new_page: NewPage) -> None:
    d = make_dashboard(worker=False)
    finished = [submit(d, "echo") for _ in range(3)]
    for job_id in finished:
        d.queue.cancel(job_id)
    kept = submit(d, "echo")  # pending: never touched
    page = new_page()
    page.goto(f"{d.url}/")
    page.locator('#cleanup input[name="days"]').fill("0")
    page.get_by_role("button", name="Clean up…").click()
    dialog = page.locator("#confirm")
    expect(dialog).to_contain_text("3 completed, failed or cancelled jobs")
    dialog.get_by_role("button", name="Keep as is").click()
    assert all(d.queue.store.get(j) is not None for j in finished), "declining removed nothing"
    page.get_by_role("button", name="Clean up…").click()
    dialog.get_by_role("button", name="Remove them").click()
    expect(page.locator(".toast")).to_contain_text("3 finished jobs removed")
    assert all(d.queue.store.get(j) is None for j in finished)
    assert d.queue.get(kept).status is JobStatus.PENDING
    expect(page.locator('[data-stat="last_cleanup_removed"]')).to_have_text("3")
    assert page.console_errors == []


def test_a_batch_of_200_files_shows_its_progress_live(make_dashboard: MakeDashboard, new_page: NewPage,
                                                      tmp_path: Any, monkeypatch: Any) -> None:
    """The bundled process_batch over 200 documents: the job page, open before a worker starts, follows the
    batch as it goes (the items count shows values between the first and the last file) without a reload,
    then shows the result."""
    from jobhandle.handlers.documents import process_batch

    folder = tmp_path / "docs"
    folder.mkdir()
    for n in range(200):
        (folder / f"doc-{n:03}.txt").write_text(f"Document {n}. " + "Some words to chunk, over and over. " * 1200)
    monkeypatch.setenv("JOBHANDLE_DOCUMENTS_INPUT_ROOTS", str(tmp_path))
    d = make_dashboard(worker=False, progress_interval=0.05)
    d.queue.registry.register("process_batch", process_batch)
    job_id = submit(d, "process_batch", {"input_dir": "docs", "chunk_size": 500, "chunk_overlap": 50})
    page = new_page()
    page.goto(f"{d.url}/jobs/{job_id}")
    expect(page.locator("#live")).to_have_attribute("data-state", "open")
    page.evaluate("""() => {
        window.__items = new Set();
        const node = document.querySelector('[data-f="items"]');
        new MutationObserver(() => window.__items.add(node.textContent)).observe(
            node, {childList: true, characterData: true, subtree: true});
        window.__notReloaded = true;
    }""")
    with d.queue.worker(concurrency=1):
        expect(page.locator('.job-head [data-f="status"]')).to_have_text("completed", timeout=60_000)
    seen = page.evaluate("[...window.__items]")
    midway = [text for text in seen if text.endswith(" of 200") and text not in ("0 of 200", "200 of 200")]
    assert midway and "200 of 200" in seen, seen
    assert page.evaluate("window.__notReloaded") is True
    expect(page.locator('[data-f="result"]')).to_contain_text('"files": 200')
    assert page.console_errors == []
