"""The bundled document handlers: pure parsing/splitting functions, then whole jobs through a real worker."""

from __future__ import annotations

import json
import random
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from helpers import run_job

import jobhandle.handlers  # noqa: F401 - registers process_document/process_batch in the default registry
from jobhandle import Job, JobQueue, JobStatus, PermanentError, Settings, default_registry
from jobhandle.handlers.documents import (
    check_chunk_sizes,
    file_type_of,
    html_to_text,
    list_documents,
    open_pdf,
    process_file,
    split_text,
    tidy_text,
)

PARAGRAPH = "This is a sentence about documents. " * 12


def minimal_pdf(pages: list[str]) -> bytes:
    """A small valid PDF with one line of Helvetica text per page (offsets in the xref table computed)."""
    page_ids = [4 + 2 * i for i in range(len(pages))]
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [" + b" ".join(b"%d 0 R" % p for p in page_ids) + b"] /Count %d >>" % len(pages),
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
    ]
    for page_id, text in zip(page_ids, pages, strict=True):
        content = b"BT /F1 12 Tf 72 720 Td (" + text.encode("latin-1") + b") Tj ET"
        objects.append(b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] "
                       b"/Resources << /Font << /F1 3 0 R >> >> /Contents %d 0 R >>" % (page_id + 1))
        objects.append(b"<< /Length %d >>\nstream\n" % len(content) + content + b"\nendstream")
    out = bytearray(b"%PDF-1.4\n")
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % number + body + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    out += b"".join(b"%010d 00000 n \n" % offset for offset in offsets)
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (len(objects) + 1, xref)
    return bytes(out)


def wait_for_job(queue: JobQueue, job_id: str, predicate: Callable[[Job], bool], timeout: float = 20) -> Job:
    """Wait (woken by store changes, no sleeping) until ``predicate(job)``; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        seen = queue.store.change_version
        job = queue.get(job_id)
        if predicate(job):
            return job
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise AssertionError(f"job {job_id} never met the condition; last seen {job.to_dict()}")
        queue.store.wait_for_change(seen, min(remaining, 1.0))


@pytest.fixture(autouse=True)
def document_roots(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The handlers may read and write anywhere in the test's tmp_path (see test_document_roots.py)."""
    monkeypatch.setenv("JOBHANDLE_DOCUMENTS_INPUT_ROOTS", str(tmp_path))
    monkeypatch.setenv("JOBHANDLE_DOCUMENTS_OUTPUT_ROOT", str(tmp_path))


@pytest.fixture
def sqlite_queue(tmp_path: Path) -> Iterator[JobQueue]:
    """A SQLite queue on the default registry; every progress report is written (no throttling)."""
    q = JobQueue("sqlite:///" + str(tmp_path / "jobs.db"), settings=Settings(progress_interval=0))
    yield q
    q.close()


# -- pure functions ------------------------------------------------------------------------------------------

@pytest.mark.parametrize("name, expected", [
    ("a.txt", "text"), ("a.md", "markdown"), ("A.MARKDOWN", "markdown"), ("a.html", "html"), ("a.HTM", "html"),
    ("a.pdf", "pdf"),
])
def test_file_type_of_supported(name: str, expected: str) -> None:
    assert file_type_of(Path(name)) == expected


@pytest.mark.parametrize("name, shown", [("report.docx", "'.docx'"), ("README", "'(no extension)'")])
def test_file_type_of_unsupported_names_the_type_and_the_choices(name: str, shown: str) -> None:
    with pytest.raises(PermanentError, match=r"unsupported file type") as err:
        file_type_of(Path(name))
    assert shown in str(err.value) and ".pdf" in str(err.value) and name in str(err.value)


def test_html_to_text_keeps_visible_text_only() -> None:
    html = """<html><head><title>Title</title><style>p { color: red }</style>
      <script>var secret = "<p>not text</p>";</script></head>
      <body><h1>Heading</h1><p>Fish &amp; chips,   <b>hot</b>
      and salty.</p><ul><li>one</li><li>two</li></ul><noscript>enable js</noscript>
      <div>Last<br>line</div></body></html>"""
    assert html_to_text(html) == "Title\n\nHeading\n\nFish & chips, hot and salty.\n\none\ntwo\n\nLast\nline"


def test_tidy_text_collapses_spaces_and_blank_lines() -> None:
    assert tidy_text("  a   b \r\n\r\n\r\n\n c\td  \n") == "a b\n\nc d"


def test_split_short_text_is_one_chunk_and_empty_text_none() -> None:
    assert split_text("  Just this.  ", 100, 10) == ["Just this."]
    assert split_text(" \n\n ", 100, 10) == []


def test_split_prefers_paragraph_then_sentence_boundaries() -> None:
    text = ("First paragraph. It has two sentences! Really?\n\n"
            "Second paragraph is here. It is longer than the first one was.\n\nThird.")
    assert split_text(text, 70, 0) == [
        "First paragraph. It has two sentences! Really?",
        "Second paragraph is here. It is longer than the first one was.\n\nThird.",
    ]
    # A paragraph too long for one chunk is cut between sentences, and the overlap is whole sentences.
    long_paragraph = "Alpha one. Beta two. Gamma three. Delta four. Epsilon five."
    assert split_text(long_paragraph, 25, 12) == [
        "Alpha one. Beta two.", "Beta two. Gamma three.", "Gamma three. Delta four.", "Delta four. Epsilon five.",
    ]


def test_split_overlap_falls_back_to_whole_words_when_no_whole_sentence_fits() -> None:
    # The last 8 characters of the first sentence are "a delta.": the partial word is dropped.
    assert split_text("Alpha beta gamma delta. Epsilon zeta eta theta.", 40, 8) == [
        "Alpha beta gamma delta.", "delta. Epsilon zeta eta theta."]


def test_split_cuts_a_word_longer_than_a_chunk() -> None:
    assert split_text("x" * 25, 10, 3) == ["x" * 10, "x" * 10, "x" * 5]


@pytest.mark.parametrize("size, overlap", [(50, 0), (50, 20), (200, 40), (1000, 100)])
def test_split_chunks_fit_and_keep_every_word_in_order(size: int, overlap: int) -> None:
    rng = random.Random(size * 31 + overlap)
    text = "".join(
        "".join(rng.choice("abcdefgh") for _ in range(rng.randint(1, 12)))
        + rng.choices([". ", "\n\n", "\n", " "], weights=[10, 3, 2, 85])[0]
        for _ in range(3000))
    chunks = split_text(text, size, overlap)
    assert all(0 < len(c) <= size for c in chunks)
    if overlap == 0:
        assert " ".join(chunks).split() == text.split()
        return
    # Each chunk continues where the previous one ended, repeating at most ``overlap`` characters of it.
    words, position, overlapping = text.split(), 0, 0
    for chunk in chunks:
        chunk_words = chunk.split()
        starts = [i for i in range(max(0, position - overlap), position + 1)
                  if words[i:i + len(chunk_words)] == chunk_words]
        assert starts, f"chunk {chunk!r} does not continue the text at word {position}"
        overlapping += starts[-1] < position
        assert starts[-1] + len(chunk_words) > position
        position = starts[-1] + len(chunk_words)
    assert position == len(words)
    assert overlapping > len(chunks) / 2


@pytest.mark.parametrize("size, overlap, problem", [
    (0, 0, "chunk_size must be at least 1"),
    (100, 100, "chunk_overlap must be from 0 to chunk_size - 1"),
    (100, -1, "chunk_overlap must be from 0"),
    ("100", 0, "chunk_size must be an integer"),
    (100, 1.5, "chunk_overlap must be an integer"),
])
def test_bad_chunk_sizes_are_permanent_errors(size: object, overlap: object, problem: str) -> None:
    with pytest.raises(PermanentError, match=problem):
        check_chunk_sizes(size, overlap)  # type: ignore[arg-type]


def test_open_pdf_reads_each_page(tmp_path: Path) -> None:
    path = tmp_path / "two.pdf"
    path.write_bytes(minimal_pdf(["Hello from page one.", "Second page text."]))
    count, pages = open_pdf(path)
    assert count == 2
    assert list(pages) == ["Hello from page one.", "Second page text."]


def test_open_pdf_rejects_a_file_that_is_not_a_pdf(tmp_path: Path) -> None:
    path = tmp_path / "fake.pdf"
    path.write_text("just text")
    with pytest.raises(PermanentError, match="cannot read PDF fake.pdf"):
        open_pdf(path)


def test_open_pdf_without_pypdf_names_the_missing_package(tmp_path: Path,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "two.pdf"
    path.write_bytes(minimal_pdf(["x"]))
    monkeypatch.setitem(sys.modules, "pypdf", None)  # what an environment without pypdf looks like
    with pytest.raises(PermanentError, match="needs the 'pypdf' package: pip install"):
        open_pdf(path)


def test_list_documents_sorted_with_pattern_and_recursion(tmp_path: Path) -> None:
    for name in ["b.txt", "a.md", "c.docx", "sub/d.html", "sub/e.txt"]:
        (tmp_path / name).parent.mkdir(exist_ok=True)
        (tmp_path / name).write_text("x")
    supported, skipped = list_documents(tmp_path)
    assert [p.name for p in supported] == ["a.md", "b.txt"] and [p.name for p in skipped] == ["c.docx"]
    supported, _ = list_documents(tmp_path, "*.txt", recursive=True)
    assert [p.relative_to(tmp_path).as_posix() for p in supported] == ["b.txt", "sub/e.txt"]
    with pytest.raises(PermanentError, match="input directory not found"):
        list_documents(tmp_path / "missing")


def test_process_file_reports_stages_and_writes_chunks(tmp_path: Path) -> None:
    source = tmp_path / "notes.md"
    source.write_text("# Notes\n\n" + "\n\n".join([PARAGRAPH] * 5))
    reports: list[tuple[float, str, int | None, int | None]] = []
    summary = process_file(source, chunk_size=500, chunk_overlap=50, output_dir=tmp_path / "out",
                           document_id="doc-1", progress=lambda *report: reports.append(report))
    assert summary is not None
    assert [stage for _, stage, _, _ in reports] == ["Parsing", "Parsing", "Chunking", "Chunking", "Writing",
                                                      "Writing"]
    assert [fraction for fraction, _, _, _ in reports] == sorted(fraction for fraction, _, _, _ in reports)
    output = tmp_path / "out" / "notes.md.chunks.json"
    written = json.loads(output.read_text())
    texts = [c["text"] for c in written["chunks"]]
    assert summary == {
        "file_name": "notes.md", "file_type": "markdown", "document_id": "doc-1",
        "characters": len(source.read_text()), "chunks": len(texts), "chunk_preview": summary["chunk_preview"],
        "output_file": str(output),
    }
    assert len(texts) > 3 and texts[0].startswith("# Notes") and written["document_id"] == "doc-1"
    assert len(summary["chunk_preview"]) == 3
    for preview, text in zip(summary["chunk_preview"], texts, strict=False):
        assert len(preview) <= 200 and preview.endswith("…") and text.startswith(preview[:-1])


def test_process_file_stops_when_cancelled(tmp_path: Path) -> None:
    source = tmp_path / "long.txt"
    source.write_text("\n\n".join([PARAGRAPH] * 20))
    assert process_file(source, chunk_size=200, chunk_overlap=0, cancelled=lambda: True) is None


# -- whole jobs through a real worker ------------------------------------------------------------------------

def test_handlers_are_in_the_default_registry() -> None:
    assert {"process_document", "process_batch"} <= set(default_registry.names())


@pytest.mark.parametrize("name, content, expected_type, expected_text", [
    ("a.txt", "Plain text file.\n\nSecond paragraph.", "text", "Plain text file.\n\nSecond paragraph."),
    ("b.md", "# Title\n\n- item", "markdown", "# Title\n\n- item"),
    ("c.html", "<p>Hello <i>web</i></p><script>x()</script>", "html", "Hello web"),
])
def test_process_document_text_formats(sqlite_queue: JobQueue, tmp_path: Path, name: str, content: str,
                                       expected_type: str, expected_text: str) -> None:
    (tmp_path / name).write_text(content)
    job = run_job(sqlite_queue, "process_document", {"file_path": str(tmp_path / name)})
    assert job.status is JobStatus.COMPLETED, job.error
    assert job.result == {"file_name": name, "file_type": expected_type, "document_id": None,
                          "characters": len(expected_text), "chunks": 1, "chunk_preview": [expected_text],
                          "output_file": None}
    assert job.progress == 1.0


def test_process_document_pdf_reports_progress_per_page(sqlite_queue: JobQueue, tmp_path: Path) -> None:
    path = tmp_path / "three.pdf"
    path.write_bytes(minimal_pdf(["Page one words.", "Page two words.", "Page three words."]))
    job = run_job(sqlite_queue, "process_document", {"file_path": str(path), "output_dir": str(tmp_path / "out")})
    assert job.status is JobStatus.COMPLETED, job.error
    assert job.result["chunk_preview"] == ["Page one words.\n\nPage two words.\n\nPage three words."]
    assert job.result["file_type"] == "pdf" and job.result["output_file"].endswith("three.pdf.chunks.json")
    parsing = [e["items_processed"] for e in job.progress_history if e["message"] == "Parsing"]
    assert parsing == [1, 2, 3]
    assert [e["message"] for e in job.progress_history][-2:] == ["Writing", "Writing"]


def test_process_document_takes_seed_004s_upload_payload(sqlite_queue: JobQueue, tmp_path: Path) -> None:
    (tmp_path / "tmp123.txt").write_text("Uploaded.")
    job = run_job(sqlite_queue, "process_document", {"file_path": str(tmp_path / "tmp123.txt"),
                                          "file_name": "My Report.txt", "document_id": "d-42"})
    assert job.status is JobStatus.COMPLETED, job.error
    assert job.result["file_name"] == "My Report.txt" and job.result["document_id"] == "d-42"


@pytest.mark.parametrize("name, message", [
    ("missing.txt", "file not found: "), ("slides.pptx", "unsupported file type '.pptx'"),
])
def test_process_document_bad_file_fails_without_retries(sqlite_queue: JobQueue, tmp_path: Path, name: str,
                                                         message: str) -> None:
    if name.endswith(".pptx"):
        (tmp_path / name).write_bytes(b"PK")
    job = run_job(sqlite_queue, "process_document", {"file_path": str(tmp_path / name)})
    assert job.status is JobStatus.FAILED
    assert job.attempts == 1 and job.error_type == "PermanentError"
    assert message in job.error and name in job.error


def test_process_batch_collects_results_and_per_file_errors(sqlite_queue: JobQueue, tmp_path: Path) -> None:
    inputs = tmp_path / "in"
    inputs.mkdir()
    (inputs / "a.txt").write_text(PARAGRAPH)
    (inputs / "b.md").write_text("# B")
    (inputs / "c.html").write_text("<p>C</p>")
    (inputs / "d.pdf").write_bytes(minimal_pdf(["D page."]))
    (inputs / "e.pdf").write_text("not really a pdf")
    (inputs / "f.docx").write_bytes(b"PK")
    job = run_job(sqlite_queue, "process_batch", {"input_dir": str(inputs), "chunk_size": 200})
    assert job.status is JobStatus.COMPLETED, job.error
    result = job.result
    assert (result["files"], result["succeeded"], result["failed"], result["skipped"]) == (5, 4, 1, ["f.docx"])
    assert [r["file_name"] for r in result["results"]] == ["a.txt", "b.md", "c.html", "d.pdf", "e.pdf"]
    assert [r["ok"] for r in result["results"]] == [True, True, True, True, False]
    assert result["results"][0]["chunks"] == len(split_text(PARAGRAPH, 200, 100)) > 1
    assert result["results"][3]["chunk_preview"] == ["D page."]
    assert "cannot read PDF e.pdf" in result["results"][4]["error"]
    per_file = [(e["message"], e.get("items_processed")) for e in job.progress_history]
    assert per_file == [("a.txt", 0), ("b.md", 1), ("c.html", 2), ("d.pdf", 3), ("e.pdf", 4), ("Done", 5)]


def test_process_batch_missing_directory_fails_without_retries(sqlite_queue: JobQueue, tmp_path: Path) -> None:
    job = run_job(sqlite_queue, "process_batch", {"input_dir": str(tmp_path / "nope")})
    assert job.status is JobStatus.FAILED and job.attempts == 1
    assert job.error == f"PermanentError: input directory not found: {tmp_path / 'nope'}"


def test_cancel_stops_a_batch_early(sqlite_queue: JobQueue, tmp_path: Path) -> None:
    inputs, outputs = tmp_path / "in", tmp_path / "out"
    inputs.mkdir()
    files = 300  # about half a second of work: far longer than the test needs to cancel
    for i in range(files):
        (inputs / f"doc{i:03}.txt").write_text((PARAGRAPH + "\n\n") * 10)
    job = sqlite_queue.submit("process_batch", {"input_dir": str(inputs), "output_dir": str(outputs)})
    with sqlite_queue.worker(concurrency=1):
        wait_for_job(sqlite_queue, job.job_id, lambda j: bool(j.progress_history))
        sqlite_queue.cancel(job.job_id)
    # leaving the block stopped the worker, which waits for the handler to return
    assert sqlite_queue.get(job.job_id).status is JobStatus.CANCELLED
    written = len(list(outputs.glob("*.chunks.json"))) if outputs.exists() else 0
    assert written < files, f"all {files} files were processed despite the cancel"
