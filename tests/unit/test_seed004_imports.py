"""Seed 004's imports and payloads, as its app.py uses them: ``from jobhandle import JobManager, JobStatus`` and
``from jobhandle.document_handler import process_document_job, process_batch_job``, registered under the
seed's job types, fed the seed's payloads (an uploaded file saved under ./input, a batch of ./input)."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest

from jobhandle import JobManager, JobStatus
from jobhandle.document_handler import process_batch_job, process_document_job


def test_the_seeds_upload_and_batch_tabs_run_their_jobs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)  # the document roots default to the working directory, as the seed's app runs
    manager = JobManager(db_path="jobs.db", max_workers=2)
    manager.register_handler("process_document", process_document_job)
    manager.register_handler("process_batch", process_batch_job)
    manager.start()
    try:
        temp_path = Path("input") / "notes.md"  # the upload tab's "Save uploaded file temporarily"
        temp_path.parent.mkdir(exist_ok=True)
        temp_path.write_text("# Notes\n\n" + "Background jobs keep the app responsive. " * 50)
        (Path("input") / "more.txt").write_text("A second document.")
        single = manager.submit_job(job_type="process_document", payload={
            "file_path": str(temp_path), "file_name": "notes.md", "document_id": str(uuid.uuid4())})
        batch = manager.submit_job(job_type="process_batch", payload={"input_dir": str(Path("input"))}, priority=0)
        for job_id in (single, batch):
            manager.queue.wait(job_id, 30)
        done = manager.get_job(single)
        assert done is not None and done["status"] == JobStatus.COMPLETED.value
        assert manager.get_job(batch)["status"] == "completed"
    finally:
        manager.stop()
