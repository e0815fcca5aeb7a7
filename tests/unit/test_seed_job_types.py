"""The seeds' job types, bundled (``--app jobhandle.handlers``): extraction, document_processing,
taxonomy_processing and dataset_generation, on the shipped samples and on given documents, confined to the
document roots; and seed 003's own job submissions finishing through them."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

import jobhandle.handlers  # noqa: F401 - registers the bundled handlers in the default registry
from jobhandle import JobQueue, JobStatus, Settings, default_registry
from jobhandle.handlers.seed_types import SAMPLES, key_terms

SEED_TYPES = ("extraction", "document_processing", "taxonomy_processing", "dataset_generation")


@pytest.fixture(autouse=True)
def document_roots(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("JOBHANDLE_DOCUMENTS_INPUT_ROOTS", str(tmp_path / "in"))
    monkeypatch.setenv("JOBHANDLE_DOCUMENTS_OUTPUT_ROOT", str(tmp_path / "out"))
    (tmp_path / "in").mkdir()
    (tmp_path / "out").mkdir()


@pytest.fixture
def q(tmp_path: Path) -> Iterator[JobQueue]:
    with JobQueue(f"sqlite:///{tmp_path}/jobs.db", settings=Settings(progress_interval=0, retry_delay=0)) as queue:
        yield queue


def run(q: JobQueue, job_type: str, **parameters: object):
    job = q.submit(job_type, parameters, max_retries=0)
    with q.worker(concurrency=1):
        return q.wait(job.job_id, 30)


def test_the_seed_types_are_registered() -> None:
    assert set(SEED_TYPES) <= set(default_registry.names())


@pytest.mark.parametrize("job_type", SEED_TYPES)
def test_each_works_on_the_shipped_samples_with_the_seeds_parameters(q: JobQueue, job_type: str) -> None:
    done = run(q, job_type, document_id=123, taxonomy_id=456)
    assert done.status is JobStatus.COMPLETED, done.error
    assert done.result["parameters"] == {"document_id": 123, "taxonomy_id": 456}
    samples = sorted(p.name for p in SAMPLES.iterdir())
    assert done.metrics.items_processed == done.metrics.total_items == len(samples) == 3
    if job_type == "extraction":
        assert [d["file_name"] for d in done.result["documents"]] == samples
        assert all(d["chunks"] >= 1 and d["key_terms"] for d in done.result["documents"])
    if job_type == "taxonomy_processing":
        assert done.result["terms"][0]["count"] >= 3 and done.result["documents"] == samples


def test_a_checkout_runs_them_on_examples_documents(q: JobQueue, monkeypatch: pytest.MonkeyPatch) -> None:
    """From a clone, with the default input root (the working folder): examples/documents is the shipped
    samples (a link into the package, so both stay one copy)."""
    checkout = Path(__file__).resolve().parents[2]
    monkeypatch.delenv("JOBHANDLE_DOCUMENTS_INPUT_ROOTS")
    monkeypatch.chdir(checkout)
    done = run(q, "extraction", input_dir="examples/documents")
    assert done.status is JobStatus.COMPLETED, done.error
    assert [d["file_name"] for d in done.result["documents"]] == sorted(p.name for p in SAMPLES.iterdir())


def test_extraction_of_a_given_document(q: JobQueue, tmp_path: Path) -> None:
    (tmp_path / "in" / "notes.md").write_text("Queues hold jobs. Workers run jobs from queues. " * 40)
    done = run(q, "extraction", file_path="notes.md", chunk_size=200, chunk_overlap=20, top_terms=3)
    [doc] = done.result["documents"]
    assert doc["file_name"] == "notes.md" and doc["chunks"] > 5
    assert doc["key_terms"] == ["queues", "hold", "workers"]


def test_taxonomy_counts_terms_and_where_they_occur(q: JobQueue, tmp_path: Path) -> None:
    (tmp_path / "in" / "a.txt").write_text("redis redis redis sqlite")
    (tmp_path / "in" / "b.txt").write_text("redis postgres")
    done = run(q, "taxonomy_processing", input_dir=".", pattern="*.txt", top_terms=2)
    assert done.result["terms"] == [{"term": "redis", "count": 4, "documents": ["a.txt", "b.txt"]},
                                    {"term": "sqlite", "count": 1, "documents": ["a.txt"]}]


def test_a_dataset_is_written_as_jsonl_under_the_output_root(q: JobQueue, tmp_path: Path) -> None:
    (tmp_path / "in" / "doc.txt").write_text("One sentence here. " * 100)
    done = run(q, "dataset_generation", file_path="doc.txt", chunk_size=300, chunk_overlap=0)
    output = Path(done.result["output_file"])
    assert output.parent == (tmp_path / "out" / "datasets").resolve()
    records = [json.loads(line) for line in output.read_text().splitlines()]
    assert len(records) == done.result["records"] > 3
    assert records[0]["id"] == "doc-0" and records[0]["source"] == "doc.txt" and records[0]["text"]


@pytest.mark.parametrize(("parameters", "problem"), [
    ({"file_path": "/etc/hostname"}, "JOBHANDLE_DOCUMENTS_INPUT_ROOTS"),
    ({"input_dir": "../"}, "JOBHANDLE_DOCUMENTS_INPUT_ROOTS"),
    ({"file_path": "a.txt", "input_dir": "."}, "give file_path or input_dir, not both"),
])
def test_documents_outside_the_roots_or_ambiguous_are_refused(q: JobQueue, parameters: dict[str, str],
                                                              problem: str) -> None:
    done = run(q, "extraction", **parameters)
    assert done.status is JobStatus.FAILED and done.attempts == 1 and problem in (done.error or "")


def test_a_dataset_outside_the_output_root_is_refused(q: JobQueue) -> None:
    done = run(q, "dataset_generation", output_dir="../../elsewhere")
    assert done.status is JobStatus.FAILED and "JOBHANDLE_DOCUMENTS_OUTPUT_ROOT" in (done.error or "")


def test_seed_003s_submissions_finish(q: JobQueue) -> None:
    """``submit_extraction_job({"document_id": 123, "taxonomy_id": 456})`` and the like, on make run's app."""
    for parameters in ({"document_id": 123, "taxonomy_id": 456}, {"batch_size": 100}, {"test": True}):
        assert run(q, "extraction", **parameters).status is JobStatus.COMPLETED, parameters


def test_key_terms_skip_stop_words_and_short_words() -> None:
    assert key_terms("The job and the queue; a job is in the queue. Job!", 5) == [("queue", 2)]
