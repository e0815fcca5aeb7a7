"""A Streamlit view of the jobs: seed 003's ``render_job_management()`` (its GUI) and seed 004's "Jobs" tab.

``render_job_management(source)`` draws, in the current Streamlit page: counts by status, filters (status, job
type, user), the matching jobs (newest first) as a table with progress, and each one's details with Cancel (a
job not ended yet) and Restart (a failed or cancelled job) buttons. ``source`` is a ``JobQueue``, a
``JobManager``, a store URL (default: the configured store), or a jobhandle server's URL (its REST API, with
``api_key`` when it has keys, which then decide what the view sees and may do). Install Streamlit with ``pip
install jobhandle[streamlit]``. ``streamlit run`` on this file shows the view on the configured store.

It reads counts from the store's counters and one page of the list, whatever the number of jobs.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.parse
import urllib.request
from datetime import datetime
from typing import TYPE_CHECKING, Any

from .compat import JobManager
from .errors import JobHandleError
from .models import ALL_STATUSES, CANCELLABLE, RESTARTABLE, JobStatus
from .queue import JobQueue

if TYPE_CHECKING:
    from types import ModuleType

REQUEST_TIMEOUT = 10.0


class _Local:
    """The view's source on a store, through a JobQueue."""

    def __init__(self, queue: JobQueue) -> None:
        self.queue = queue

    def by_status(self) -> dict[str, int]:
        return dict(self.queue.stats()["by_status"])

    def jobs(self, status: str | None, job_type: str | None, user: str | None, limit: int) -> list[dict[str, Any]]:
        return [j.to_dict() for j in self.queue.list(status, job_type=job_type, user_id=user, limit=limit)]

    def cancel(self, job_id: str) -> None:
        self.queue.cancel(job_id, "cancelled from the Streamlit view")

    def restart(self, job_id: str) -> None:
        self.queue.restart(job_id)


class RemoteError(JobHandleError):
    """The jobhandle server answered with an error (its type and message), or did not answer."""


class _Remote:
    """The view's source on a jobhandle server (``jobhandle serve``), through its REST API."""

    def __init__(self, url: str, api_key: str | None) -> None:
        self.url = url.rstrip("/")
        self.api_key = api_key

    def _call(self, method: str, path: str, query: dict[str, Any] | None = None) -> Any:
        params = urllib.parse.urlencode({k: v for k, v in (query or {}).items() if v is not None})
        request = urllib.request.Request(f"{self.url}{path}{'?' + params if params else ''}", method=method)
        if self.api_key:
            request.add_header("Authorization", f"Bearer {self.api_key}")
        try:
            with urllib.request.urlopen(request, timeout=REQUEST_TIMEOUT) as response:  # noqa: S310 - our URL
                return json.loads(response.read() or b"null")
        except urllib.error.HTTPError as exc:
            try:
                body = json.loads(exc.read())
                raise RemoteError(f"{body['error']}: {body['message']}") from None
            except (ValueError, KeyError, TypeError):
                raise RemoteError(f"the server at {self.url} answered {exc.code} {exc.reason}") from None
        except (urllib.error.URLError, OSError) as exc:
            raise RemoteError(f"the server at {self.url} does not answer: {exc}") from None

    def by_status(self) -> dict[str, int]:
        return dict(self._call("GET", "/api/v1/jobs/queue/stats")["by_status"])

    def jobs(self, status: str | None, job_type: str | None, user: str | None, limit: int) -> list[dict[str, Any]]:
        return list(self._call("GET", "/api/v1/jobs", {"status": status, "job_type": job_type, "user_id": user,
                                                       "limit": limit})["jobs"])

    def cancel(self, job_id: str) -> None:
        self._call("POST", f"/api/v1/jobs/cancel/{urllib.parse.quote(job_id)}")

    def restart(self, job_id: str) -> None:
        self._call("POST", f"/api/v1/jobs/restart/{urllib.parse.quote(job_id)}")


Source = JobQueue | JobManager | str | None


def _streamlit() -> ModuleType:
    try:
        import streamlit
    except ImportError:
        raise ImportError("render_job_management needs Streamlit: pip install jobhandle[streamlit]") from None
    return streamlit


def _source(source: Source, api_key: str | None) -> _Local | _Remote:
    if isinstance(source, JobQueue):
        return _Local(source)
    if isinstance(source, JobManager):
        return _Local(source.queue)
    if isinstance(source, str) and source.startswith(("http://", "https://")):
        return _Remote(source, api_key)
    st = _streamlit()

    @st.cache_resource
    def opened(url: str | None) -> JobQueue:  # one per store for the whole Streamlit server
        return JobQueue(url)

    return _Local(opened(source))


def _when(text: str | None) -> str:
    return datetime.fromisoformat(text).strftime("%Y-%m-%d %H:%M:%S") if text else ""


def _row(job: dict[str, Any]) -> dict[str, Any]:
    return {"job": job["job_id"][:8], "type": job["job_type"], "status": job["status"],
            "progress": round(job["progress"] * 100), "user": job["user_id"], "created": _when(job["created_at"]),
            "error": job.get("error") or ""}


def render_job_management(source: Source = None, *, api_key: str | None = None, page_size: int = 50,
                          key: str = "jobhandle") -> None:
    """Draw the view (see the module docstring). ``source``: a JobQueue, a JobManager, a store URL, or a
    jobhandle server's URL (``http://host:8000``, with ``api_key`` when it has keys). ``key`` keeps two views
    on one page apart."""
    st = _streamlit()
    jobs_of = _source(source, api_key)
    st.header("Jobs")
    try:
        by_status = jobs_of.by_status()
    except JobHandleError as exc:
        st.error(exc.message)
        return
    columns = st.columns(6)
    columns[0].metric("Total", sum(by_status.values()))
    for column, status in zip(columns[1:], ("pending", "running", "completed", "failed", "cancelled"), strict=True):
        column.metric(status.capitalize(), by_status.get(status, 0))

    left, middle, right = st.columns(3)
    status = left.selectbox("Status", ["All", *(s.value for s in ALL_STATUSES)], key=f"{key}-status")
    job_type = middle.text_input("Job type", key=f"{key}-type").strip() or None
    user = right.text_input("User", key=f"{key}-user").strip() or None
    jobs = jobs_of.jobs(None if status == "All" else status, job_type, user, page_size)
    if not jobs:
        st.info("No jobs match.")
        return
    st.dataframe([_row(j) for j in jobs], hide_index=True, width="stretch",
                 column_config={"progress": st.column_config.ProgressColumn("progress", min_value=0,
                                                                              max_value=100, format="%d%%")})
    for job in jobs:
        job_id, state = job["job_id"], JobStatus(job["status"])
        with st.expander(f"{job['job_type']} {job_id[:8]} ({state.value})"):
            st.text(f"Job ID: {job_id}\nStatus: {state.value}   Priority: {job['priority']}   "
                    f"Attempts: {job['attempts']}\nCreated: {_when(job['created_at'])}")
            if state is JobStatus.RUNNING:
                st.progress(job["progress"], text=job.get("progress_message") or f"{job['progress']:.0%}")
            if job.get("parameters"):
                st.json(job["parameters"])
            if job.get("result") is not None:
                st.json(job["result"])
            if job.get("error"):
                st.error(job["error"])
            if state in CANCELLABLE and st.button("Cancel", key=f"{key}-cancel-{job_id}"):
                _act(st, lambda job_id=job_id: jobs_of.cancel(job_id))
            if state in RESTARTABLE and st.button("Restart", key=f"{key}-restart-{job_id}"):
                _act(st, lambda job_id=job_id: jobs_of.restart(job_id))


def _act(st: ModuleType, action: Any) -> None:
    try:
        action()
    except JobHandleError as exc:  # ended or restarted meanwhile, by someone else
        st.warning(exc.message)
        return
    st.rerun()


class JobManagementView:
    """Seed 003's name for the view: ``JobManagementView(source).render()``."""

    def __init__(self, source: Source = None, *, api_key: str | None = None, page_size: int = 50) -> None:
        self.source = source
        self.api_key = api_key
        self.page_size = page_size

    def render(self) -> None:
        render_job_management(self.source, api_key=self.api_key, page_size=self.page_size)


if __name__ == "__main__":  # streamlit run .../jobhandle/job_management.py
    render_job_management()
