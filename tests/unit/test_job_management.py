"""The Streamlit view (seed 003's render_job_management, seed 004's Jobs tab), run headless by Streamlit's
AppTest on a real store: counts, filters, the table, cancel and restart."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from jobhandle import JobQueue, JobStatus

pytest.importorskip("streamlit", reason="Streamlit is an optional extra: pip install jobhandle[streamlit]")
from streamlit.testing.v1 import AppTest  # noqa: E402

SCRIPT = '''
from jobhandle.job_management import render_job_management
render_job_management({url!r})
'''


@pytest.fixture
def store(tmp_path: Path) -> Iterator[tuple[str, JobQueue]]:
    url = f"sqlite:///{tmp_path}/jobs.db"
    with JobQueue(url) as q:
        yield url, q


def app(url: str) -> AppTest:
    at = AppTest.from_string(SCRIPT.format(url=url), default_timeout=30)
    at.run()
    assert not at.exception, at.exception
    return at


def metrics(at: AppTest) -> dict[str, str]:
    return {m.label: m.value for m in at.metric}


def test_counts_and_the_table_of_jobs(store: tuple[str, JobQueue]) -> None:
    url, q = store
    first = q.submit("resize", {"path": "a.png"}, user_id="alice")
    q.submit("ocr", user_id="bob")
    q.cancel(first.job_id)
    at = app(url)
    assert metrics(at) == {"Total": "2", "Pending": "1", "Running": "0", "Completed": "0", "Failed": "0",
                           "Cancelled": "1"}
    table = at.dataframe[0].value
    assert list(table["type"]) == ["ocr", "resize"] and list(table["status"]) == ["pending", "cancelled"]
    assert [e.label for e in at.expander] == [f"{j.job_type} {j.job_id[:8]} ({j.status.value})"
                                              for j in q.list(limit=2)]


def test_filters_by_status_type_and_user(store: tuple[str, JobQueue]) -> None:
    url, q = store
    q.submit("resize", user_id="alice")
    q.submit("ocr", user_id="bob")
    at = app(url)
    at.selectbox(key="jobhandle-status").set_value("pending").run()
    assert len(at.dataframe[0].value) == 2
    at.text_input(key="jobhandle-user").input("bob").run()
    assert list(at.dataframe[0].value["type"]) == ["ocr"]
    at.text_input(key="jobhandle-type").input("resize").run()
    assert not at.dataframe and at.info[0].value == "No jobs match."


def test_cancel_and_restart_from_the_view(store: tuple[str, JobQueue]) -> None:
    url, q = store
    job = q.submit("resize")
    at = app(url)
    at.button(key=f"jobhandle-cancel-{job.job_id}").click().run()
    assert not at.exception, at.exception
    assert q.get(job.job_id).status is JobStatus.CANCELLED
    assert metrics(at)["Cancelled"] == "1", "the view shows it after the action"
    at.button(key=f"jobhandle-restart-{job.job_id}").click().run()
    assert q.get(job.job_id).status is JobStatus.PENDING


def test_seed_003s_name_for_the_view(store: tuple[str, JobQueue]) -> None:
    url, q = store
    q.submit("resize")
    at = AppTest.from_string(f"from jobhandle.job_management import JobManagementView\n"
                             f"JobManagementView({url!r}).render()\n", default_timeout=30)
    at.run()
    assert not at.exception and metrics(at)["Pending"] == "1"


def test_the_example_app_submits_a_job_that_runs_and_shows_in_the_view(tmp_path: Path,
                                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    from helpers import wait_until

    monkeypatch.chdir(tmp_path)  # its jobs.db goes here
    example = Path(__file__).resolve().parents[2] / "examples" / "streamlit_app.py"
    at = AppTest.from_file(str(example), default_timeout=30)
    at.run()
    assert not at.exception, at.exception
    at.sidebar.number_input[0].set_value(2)
    at.sidebar.button[0].click().run()
    assert at.sidebar.success[0].value.endswith("submitted: it runs in the background")
    with JobQueue(f"sqlite:///{tmp_path}/jobs.db") as q:
        [job] = q.list()
        done = q.wait(job.job_id, 30)
        assert done.status is JobStatus.COMPLETED and done.result == {"counted": 2}
    try:
        wait_until(lambda: metrics(at.run())["Completed"] == "1", 10, "the view to show the completed job")
    finally:  # the app's JobManager (cached for the Streamlit server's life) runs worker threads: stop them
        import gc

        from jobhandle import JobManager

        for manager in [o for o in gc.get_objects() if isinstance(o, JobManager)]:
            manager.stop()
