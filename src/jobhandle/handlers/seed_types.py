"""Handlers for the seeds' job types, so that their examples do real work out of the box (``jobhandle serve
--app jobhandle.handlers``, as ``make run`` starts it):

- ``extraction``: parse each document, split it into chunks and pick its key terms;
- ``document_processing``: parse and chunk each document (``process_document``'s work, for many);
- ``taxonomy_processing``: a keyword taxonomy of the documents (terms, how often, in which documents);
- ``dataset_generation``: the documents' chunks as a JSONL dataset file under the output root.

Each takes ``file_path`` (one document) or ``input_dir`` (+ ``pattern``, ``recursive``), confined to the
document roots like the other bundled handlers; with neither, it works on the sample documents shipped in
``jobhandle/handlers/samples`` (so seed 003's ``{"document_id": 123, "taxonomy_id": 456}`` finishes). Other
parameters (``document_id``, ``taxonomy_id``, ``batch_size``...) are echoed in the result as ``parameters``.
Progress is reported per document, with ``items_processed``/``total_items``.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from ..registry import handler
from ..retry import PermanentError
from ..worker import JobContext
from .documents import (
    FILE_TYPES,
    DocumentRoots,
    check_chunk_sizes,
    extract_text,
    file_type_of,
    list_documents,
    split_text,
)

SAMPLES = Path(__file__).with_name("samples")
STOPWORDS = frozenset("""
a about after again all also an and any are as at be because been before being but by can could did do does
doing done each either else every few for from further had has have having he her here his how if in into is
it its itself just may me more most much must my no nor not now of off on once one only or other our out over
own per rather same she should so some such than that the their them then there these they this those through
to too under until up upon us very was we were what when where which while who whom why will with within
without would yet you your jobs job
""".split())


def _documents(file_path: str | None, input_dir: str | None, pattern: str, recursive: bool) -> list[Path]:
    """The documents a job names, confined to the input roots; the shipped samples when it names none."""
    if file_path is not None and input_dir is not None:
        raise PermanentError("give file_path or input_dir, not both")
    if file_path is None and input_dir is None:
        return sorted(p for p in SAMPLES.iterdir() if p.suffix.lower() in FILE_TYPES)
    roots = DocumentRoots.from_settings()
    if file_path is not None:
        return [roots.input_path("file_path", file_path)]
    assert input_dir is not None
    root = roots.input_path("input_dir", input_dir)
    found, _ = list_documents(root, pattern, recursive)
    return [roots.check_input(p, f"input_dir {input_dir!r}: {p.name!r}") for p in found]


def _each(ctx: JobContext, paths: list[Path]) -> Iterator[tuple[Path, str]]:
    """Each document's text, with progress; stops (the caller returns None) when the job is cancelled."""
    if not paths:
        raise PermanentError("no supported documents to work on")
    for index, path in enumerate(paths):
        ctx.progress(index / len(paths), path.name, items_processed=index, total_items=len(paths))
        if ctx.cancelled:
            return
        text = extract_text(path, file_type_of(path), lambda: ctx.cancelled, lambda *_: None)
        if text is None:
            return
        yield path, text
    ctx.progress(1.0, "done", items_processed=len(paths), total_items=len(paths))


def key_terms(text: str, top: int) -> list[tuple[str, int]]:
    """The ``top`` most frequent words of three letters or more that are not stop words, with their counts."""
    words = (w.strip("-") for w in re.findall(r"[a-z][a-z-]{2,}", text.lower()))
    return Counter(w for w in words if w not in STOPWORDS and len(w) > 2).most_common(top)


def _run(ctx: JobContext, file_path: str | None, input_dir: str | None, pattern: str, recursive: bool,
         per_document: Callable[[Path, str], dict[str, Any]]) -> list[dict[str, Any]] | None:
    paths = _documents(file_path, input_dir, pattern, recursive)
    out = [per_document(path, text) for path, text in _each(ctx, paths)]
    return None if ctx.cancelled or len(out) < len(paths) else out


@handler("extraction")
def extraction(ctx: JobContext, file_path: str | None = None, input_dir: str | None = None, pattern: str = "*",
               recursive: bool = False, chunk_size: int = 1000, chunk_overlap: int = 100, top_terms: int = 10,
               **parameters: Any) -> dict[str, Any] | None:
    check_chunk_sizes(chunk_size, chunk_overlap)
    docs = _run(ctx, file_path, input_dir, pattern, recursive, lambda path, text: {
        "file_name": path.name, "characters": len(text), "chunks": len(split_text(text, chunk_size, chunk_overlap)),
        "key_terms": [term for term, _ in key_terms(text, top_terms)]})
    if docs is None:
        return None
    return {"documents": docs, "chunks": sum(d["chunks"] for d in docs), "parameters": parameters}


@handler("document_processing")
def document_processing(ctx: JobContext, file_path: str | None = None, input_dir: str | None = None,
                        pattern: str = "*", recursive: bool = False, chunk_size: int = 1000,
                        chunk_overlap: int = 100, **parameters: Any) -> dict[str, Any] | None:
    check_chunk_sizes(chunk_size, chunk_overlap)
    docs = _run(ctx, file_path, input_dir, pattern, recursive, lambda path, text: {
        "file_name": path.name, "file_type": file_type_of(path), "characters": len(text),
        "chunks": len(split_text(text, chunk_size, chunk_overlap))})
    if docs is None:
        return None
    return {"documents": docs, "parameters": parameters}


@handler("taxonomy_processing")
def taxonomy_processing(ctx: JobContext, file_path: str | None = None, input_dir: str | None = None,
                        pattern: str = "*", recursive: bool = False, top_terms: int = 25,
                        **parameters: Any) -> dict[str, Any] | None:
    counts: Counter[str] = Counter()
    found_in: dict[str, list[str]] = {}

    def tally(path: Path, text: str) -> dict[str, Any]:
        for term, n in key_terms(text, 10 * top_terms):
            counts[term] += n
            found_in.setdefault(term, []).append(path.name)
        return {"file_name": path.name}

    docs = _run(ctx, file_path, input_dir, pattern, recursive, tally)
    if docs is None:
        return None
    terms = [{"term": term, "count": n, "documents": found_in[term]} for term, n in counts.most_common(top_terms)]
    return {"terms": terms, "documents": [d["file_name"] for d in docs], "parameters": parameters}


@handler("dataset_generation")
def dataset_generation(ctx: JobContext, file_path: str | None = None, input_dir: str | None = None,
                       pattern: str = "*", recursive: bool = False, output_dir: str = "datasets",
                       chunk_size: int = 1000, chunk_overlap: int = 100, **parameters: Any) -> dict[str, Any] | None:
    check_chunk_sizes(chunk_size, chunk_overlap)
    roots = DocumentRoots.from_settings()
    folder = roots.output_path("output_dir", output_dir)
    records: list[dict[str, Any]] = []

    def chunks_of(path: Path, text: str) -> dict[str, Any]:
        pieces = split_text(text, chunk_size, chunk_overlap)
        records.extend({"id": f"{path.stem}-{i}", "source": path.name, "text": piece}
                       for i, piece in enumerate(pieces))
        return {"file_name": path.name, "records": len(pieces)}

    docs = _run(ctx, file_path, input_dir, pattern, recursive, chunks_of)
    if docs is None:
        return None
    folder.mkdir(parents=True, exist_ok=True)
    target = roots.check_output(folder / f"dataset-{ctx.job_id}.jsonl", f"output_dir {output_dir!r}")
    target.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records))
    return {"output_file": str(target), "records": len(records), "documents": docs, "parameters": parameters}
