"""The dashboard's server side, in process: security headers, sessions, CSRF, the sign-in redirect, /docs."""

from __future__ import annotations

import re

from api_helpers import ALICE_KEY, KEYS, ApiFactory, TestClient

from jobhandle import JobQueue, JobStatus
from jobhandle.web.guard import CONTENT_SECURITY_POLICY
from jobhandle.web.session import COOKIE


def csrf_of(html: str) -> str:
    match = re.search(r'name="csrf-token" content="([^"]+)"', html)
    assert match, "every page carries the session's CSRF token"
    return match.group(1)


def sign_in(api: TestClient, key: str, next_path: str = "/") -> None:
    form = api.get("/login")
    response = api.post("/login", data={"key": key, "csrf": csrf_of(form.text), "next": next_path},
                        follow_redirects=False)
    assert response.status_code == 303, response.text


def test_pages_carry_a_strict_content_security_policy_and_the_api_does_not(api: TestClient) -> None:
    for path in ("/", "/jobs", "/workers", "/static/app.js"):
        response = api.get(path)
        assert response.status_code == 200, path
        assert response.headers["content-security-policy"] == CONTENT_SECURITY_POLICY
        assert response.headers["x-frame-options"] == "DENY"
    assert "script-src 'self';" in CONTENT_SECURITY_POLICY and "unsafe-inline" not in CONTENT_SECURITY_POLICY
    assert "content-security-policy" not in api.get("/api/v1/jobs").headers


def test_docs_are_served_from_this_server(api: TestClient) -> None:
    html = api.get("/docs").text
    assert "cdn." not in html and "https://" not in html.replace("https://swagger.io", "")
    for asset in re.findall(r'(?:src|href)="(/static/[^"]+)"', html):
        assert api.get(asset).status_code == 200, asset
    assert api.get("/redoc").status_code == 404


def test_the_session_cookie_is_http_only_and_same_site_strict(api: TestClient) -> None:
    response = api.get("/")
    cookie = response.headers["set-cookie"]
    assert f"{COOKIE}=" in cookie and "HttpOnly" in cookie and "SameSite=strict" in cookie.replace("Strict", "strict")


def test_with_keys_pages_redirect_to_sign_in_and_come_back(make_api: ApiFactory) -> None:
    api = make_api(api_keys=KEYS)
    response = api.get("/jobs?status=failed", follow_redirects=False)
    assert response.status_code == 303 and response.headers["location"] == "/login?next=/jobs%3Fstatus%3Dfailed"
    assert api.get("/ui/overview").status_code == 401
    form = api.get("/login")
    response = api.post("/login", data={"key": ALICE_KEY, "csrf": csrf_of(form.text), "next": "/jobs?status=failed"},
                        follow_redirects=False)
    assert response.status_code == 303 and response.headers["location"] == "/jobs?status=failed"
    assert api.get("/ui/overview").status_code == 200


def test_sign_in_never_sends_you_to_another_site(make_api: ApiFactory) -> None:
    api = make_api(api_keys=KEYS)
    for target in ("//evil.example/x", "https://evil.example/", "/\\evil.example", "jobs"):
        form = api.get("/login")
        response = api.post("/login", data={"key": ALICE_KEY, "csrf": csrf_of(form.text), "next": target},
                            follow_redirects=False)
        assert response.headers["location"] == "/", target


def test_sign_in_needs_the_forms_csrf_token(make_api: ApiFactory) -> None:
    api = make_api(api_keys=KEYS)
    api.get("/login")
    response = api.post("/login", data={"key": ALICE_KEY, "csrf": "forged"}, follow_redirects=False)
    assert response.status_code == 403 and response.json()["error"] == "PermissionDeniedError"


def test_a_tampered_cookie_or_a_removed_key_ends_the_session(make_api: ApiFactory, api_queue: JobQueue) -> None:
    api = make_api(api_keys=KEYS)
    sign_in(api, ALICE_KEY)
    value = api.cookies[COOKIE]
    assert api.get("/", follow_redirects=False).status_code == 200
    api.cookies.set(COOKIE, value[:-1] + ("0" if value[-1] != "0" else "1"))
    assert api.get("/", follow_redirects=False).status_code == 303
    other = make_api(api_keys=KEYS.replace(f"{ALICE_KEY}:alice,", ""), session_secret="shared")
    again = make_api(api_keys=KEYS, session_secret="shared")
    sign_in(again, ALICE_KEY)
    other.cookies.set(COOKIE, again.cookies[COOKIE])  # the same secret, but alice's key is gone there
    assert again.get("/", follow_redirects=False).status_code == 200
    assert other.get("/", follow_redirects=False).status_code == 303


def test_actions_need_the_csrf_token_and_a_same_origin(api: TestClient, api_queue: JobQueue) -> None:
    job = api_queue.submit("echo")
    token = csrf_of(api.get("/jobs").text)
    assert api.post(f"/ui/jobs/{job.job_id}/cancel").status_code == 403
    cross = api.post(f"/ui/jobs/{job.job_id}/cancel", headers={"X-CSRF-Token": token,
                                                                "Origin": "https://evil.example"})
    assert cross.status_code == 403 and "cross-origin" in cross.json()["message"]
    assert api_queue.get(job.job_id).status is JobStatus.PENDING
    done = api.post(f"/ui/jobs/{job.job_id}/cancel", headers={"X-CSRF-Token": token})
    assert done.status_code == 200 and done.json()["status"] == "cancelled"
    again = api.post(f"/ui/jobs/{job.job_id}/cancel", headers={"X-CSRF-Token": token})
    assert again.status_code == 409 and again.json()["error"] == "JobAlreadyCompletedError"


def test_bulk_actions_refuse_unclear_requests(api: TestClient, api_queue: JobQueue) -> None:
    token = {"X-CSRF-Token": csrf_of(api.get("/jobs").text)}
    neither = api.post("/ui/jobs/bulk", json={"action": "cancel"}, headers=token)
    assert neither.status_code == 400 and "job_ids or filter" in neither.json()["message"]
    unknown = api.post("/ui/jobs/bulk", json={"action": "delete", "job_ids": []}, headers=token)
    assert unknown.status_code == 422 and unknown.json()["error"] == "ValidationError"
    assert "action" in unknown.json()["message"]
    bad_filter = api.post("/ui/jobs/bulk", json={"action": "cancel", "filter": "status=nonsense"}, headers=token)
    assert bad_filter.status_code == 400 and "nonsense" in bad_filter.json()["message"]


def test_bulk_restart_by_filter_counts_then_acts(api: TestClient, api_queue: JobQueue) -> None:
    jobs = [api_queue.submit("echo", queue="q1") for _ in range(3)] + [api_queue.submit("echo", queue="q2")]
    for job in jobs:
        api_queue.cancel(job.job_id)
    token = {"X-CSRF-Token": csrf_of(api.get("/jobs").text)}
    body = {"action": "restart", "filter": "queue=q1&status=cancelled"}
    assert api.post("/ui/jobs/bulk", json={**body, "dry_run": True}, headers=token).json()["matched"] == 3
    result = api.post("/ui/jobs/bulk", json=body, headers=token).json()
    assert sorted(result["done"]) == sorted(j.job_id for j in jobs[:3]) and result["failed"] == []
    assert api_queue.get(jobs[3].job_id).status is JobStatus.CANCELLED


def test_unknown_and_malformed_job_pages_are_404(api: TestClient) -> None:
    assert api.get("/jobs/not-a-uuid").status_code == 404
    assert api.get("/jobs/00000000-0000-4000-8000-000000000000").status_code == 404
    assert api.get("/jobs?sort=evil").status_code == 400


def test_a_jobs_page_links_its_dependencies_both_ways(api: TestClient, api_queue: JobQueue) -> None:
    parent = api_queue.submit("echo")
    child = api_queue.submit("echo", depends_on=[parent.job_id])
    up = api.get(f"/jobs/{child.job_id}").text
    down = api.get(f"/jobs/{parent.job_id}").text
    assert "Depends on" in up and f'href="/jobs/{parent.job_id}"' in up
    assert "Needed by" in down and f'href="/jobs/{child.job_id}"' in down
    assert "Needed by" not in up


def test_cleanup_counts_first_then_removes_and_is_for_admins(make_api: ApiFactory, api_queue: JobQueue) -> None:
    api = make_api()
    token = csrf_of(api.get("/").text)
    job = api_queue.submit("echo")
    api_queue.cancel(job.job_id)
    headers = {"X-CSRF-Token": token}
    assert api.post("/ui/cleanup", json={"days": 0, "dry_run": True}, headers=headers).json()["candidates"] == 1
    assert api_queue.get(job.job_id).status is JobStatus.CANCELLED  # a dry run removes nothing
    assert api.post("/ui/cleanup", json={"days": 0}, headers=headers).json()["removed"] == 1
    assert api.post("/ui/cleanup", json={"days": -1}, headers=headers).status_code == 422
    assert api.post("/ui/cleanup", json={"days": 0}).status_code == 403  # no CSRF token
    users = make_api(api_keys=KEYS)
    sign_in(users, ALICE_KEY)
    refused = users.post("/ui/cleanup", json={"days": 0, "dry_run": True},
                         headers={"X-CSRF-Token": csrf_of(users.get("/").text)})
    assert refused.status_code == 403 and "admin" in refused.json()["message"]
