"""A Streamlit view of the jobs: seed 003's ``render_job_management()`` (its GUI) and seed 004's "Jobs" tab.

``render_job_management(source)`` draws, in the current Streamlit page: counts by status, filters (status, job
type, user), the matching jobs (newest first) as a table with progress, and each one's details with Cancel (a
job not ended yet) and Restart (a failed or cancelled job) buttons. ``source`` is a ``JobQueue``, a
``JobManager``, or a store URL (default: the configured store). Install Streamlit with ``pip install
jobhandle[streamlit]``. ``streamlit run`` on this file shows the view on the configured store.

It reads through the same ``JobQueue`` as everything else: counts from the store's counters, one page of the
list; nothing scans the jobs.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .compat import JobManager
from .errors import JobHandleError
from .models import ALL_STATUSES, TERMINAL_STATUSES, Job, JobStatus
from .queue import JobQueue

if TYPE_CHECKING:
    from types import ModuleType

RESTARTABLE = (JobStatus.FAILED, JobStatus.CANCELLED)


def _streamlit() -> ModuleType:
    try:
        import streamlit
    except ImportError:
        raise ImportError("render_job_management needs Streamlit: pip install jobhandle[streamlit]") from None
    return streamlit


def _queue(source: JobQueue | JobManager | str | None) -> JobQueue:
    if isinstance(source, JobQueue):
        return source
    if isinstance(source, JobManager):
        return source.queue
    st = _streamlit()

    @st.cache_resource
    def opened(url: str | None) -> JobQueue:  # one per store for the whole Streamlit server
        return JobQueue(url)

    return opened(source)


def _row(job: Job) -> dict[str, Any]:
    return {"job": job.job_id[:8], "type": job.job_type, "status": job.status.value,
            "progress": round(job.progress * 100), "user": job.user_id,
            "created": job.created_at.strftime("%Y-%m-%d %H:%M:%S"), "error": job.error or ""}


def render_job_management(source: JobQueue | JobManager | str | None = None, *, page_size: int = 50,
                          key: str = "jobhandle") -> None:
    """Draw the view (see the module docstring); ``key`` keeps two views on one page apart."""
    st = _streamlit()
    q = _queue(source)
    st.header("Jobs")
    by_status = q.stats()["by_status"]
    columns = st.columns(6)
    columns[0].metric("Total", sum(by_status.values()))
    for column, status in zip(columns[1:], ("pending", "running", "completed", "failed", "cancelled"), strict=True):
        column.metric(status.capitalize(), by_status.get(status, 0))

    left, middle, right = st.columns(3)
    status = left.selectbox("Status", ["All", *(s.value for s in ALL_STATUSES)], key=f"{key}-status")
    job_type = middle.text_input("Job type", key=f"{key}-type").strip() or None
    user = right.text_input("User", key=f"{key}-user").strip() or None
    jobs = q.list(None if status == "All" else status, job_type=job_type, user_id=user, limit=page_size)
    if not jobs:
        st.info("No jobs match.")
        return
    st.dataframe([_row(j) for j in jobs], hide_index=True, width="stretch",
                 column_config={"progress": st.column_config.ProgressColumn("progress", min_value=0,
                                                                              max_value=100, format="%d%%")})
    for job in jobs:
        with st.expander(f"{job.job_type} {job.job_id[:8]} ({job.status.value})"):
            st.text(f"Job ID: {job.job_id}\nStatus: {job.status.value}   Priority: {job.priority}   "
                    f"Attempts: {job.attempts}\nCreated: {job.created_at:%Y-%m-%d %H:%M:%S}")
            if job.status is JobStatus.RUNNING:
                st.progress(job.progress, text=job.progress_message or f"{job.progress:.0%}")
            if job.parameters:
                st.json(job.parameters)
            if job.result is not None:
                st.json(job.result)
            if job.error:
                st.error(job.error)
            if job.status not in TERMINAL_STATUSES and st.button("Cancel", key=f"{key}-cancel-{job.job_id}"):
                _act(st, lambda job_id=job.job_id: q.cancel(job_id, "cancelled from the Streamlit view"))
            if job.status in RESTARTABLE and st.button("Restart", key=f"{key}-restart-{job.job_id}"):
                _act(st, lambda job_id=job.job_id: q.restart(job_id))


def _act(st: ModuleType, action: Any) -> None:
    try:
        action()
    except JobHandleError as exc:  # ended or restarted meanwhile, by someone else
        st.warning(exc.message)
        return
    st.rerun()


class JobManagementView:
    """Seed 003's name for the view: ``JobManagementView(source).render()``."""

    def __init__(self, source: JobQueue | JobManager | str | None = None, *, page_size: int = 50) -> None:
        self.source = source
        self.page_size = page_size

    def render(self) -> None:
        render_job_management(self.source, page_size=self.page_size)


if __name__ == "__main__":  # streamlit run .../jobhandle/job_management.py
    render_job_management()
