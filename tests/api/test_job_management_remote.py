"""The Streamlit view on a jobhandle server's URL: it reads and acts through the REST API, with the key's user
and role deciding what it sees and may do; run headless by Streamlit's AppTest against a live uvicorn."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from api_helpers import ALICE_KEY, KEYS, LiveServer

from jobhandle import JobQueue, JobStatus, Settings
from jobhandle.api import create_app

pytest.importorskip("streamlit", reason="Streamlit is an optional extra: pip install jobhandle[streamlit]")
from streamlit.testing.v1 import AppTest  # noqa: E402


@pytest.fixture
def server(api_queue: JobQueue, settings: Settings) -> Iterator[LiveServer]:
    app = create_app(api_queue, settings.replace(api_keys=KEYS))
    with LiveServer(app) as live:
        yield live


def view(url: str, key: str | None) -> AppTest:
    at = AppTest.from_string("from jobhandle.job_management import render_job_management\n"
                             f"render_job_management({url!r}, api_key={key!r})\n", default_timeout=30)
    at.run()
    assert not at.exception, at.exception
    return at


def test_the_view_on_a_server_shows_the_keys_jobs_and_cancels_through_it(server: LiveServer,
                                                                         api_queue: JobQueue) -> None:
    hers = api_queue.submit("resize", {"path": "a.png"}, user_id="alice")
    api_queue.submit("ocr", user_id="bob")
    at = view(server.url, ALICE_KEY)
    assert list(at.dataframe[0].value["type"]) == ["resize"], "bob's job is not alice's to see"
    assert {m.label: m.value for m in at.metric}["Pending"] == "1"
    at.button(key=f"jobhandle-cancel-{hers.job_id}").click().run()
    assert not at.exception, at.exception
    assert api_queue.get(hers.job_id).status is JobStatus.CANCELLED


def test_a_wrong_key_or_no_server_is_said_plainly(server: LiveServer) -> None:
    at = view(server.url, "not-a-key")
    assert at.error[0].value.startswith("AuthenticationError: ")
    gone = view("http://127.0.0.1:9", None)
    assert "does not answer" in gone.error[0].value
