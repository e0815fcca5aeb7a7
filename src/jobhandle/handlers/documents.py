"""Document processing: read a text, Markdown, HTML or PDF file, extract its text, split it into chunks.

The parsing and splitting are small pure functions (``file_type_of``, ``html_to_text``, ``open_pdf``,
``split_text``); ``process_file`` strings them together with progress and cancellation callbacks, and the two
handlers (``process_document``, ``process_batch``) connect those callbacks to the job's ``ctx``.

Problems no retry can fix (a missing file, an unsupported type, an unreadable PDF, bad sizes) raise
``PermanentError``, so the job fails at once with a message naming the problem.

Job parameters come from whoever may submit jobs (the REST API, perhaps without authentication), so the
handlers read only inside the configured input roots and write only under the output root (``DocumentRoots``,
built from ``Settings().documents_input_roots`` / ``documents_output_root`` when each job starts); a path
that leaves them (``..``, an absolute path elsewhere, a symbolic link) is refused with a PermanentError.
"""

from __future__ import annotations

import json
import os
import re
import secrets
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from html.parser import HTMLParser
from pathlib import Path, PurePath
from typing import Any

from ..config import Settings, SettingsError
from ..registry import handler
from ..retry import PermanentError
from ..worker import JobContext

FILE_TYPES = {
    ".txt": "text", ".md": "markdown", ".markdown": "markdown", ".html": "html", ".htm": "html", ".pdf": "pdf",
}
"""Supported file extensions (lower case) and the file type each one means."""

PREVIEW_CHUNKS = 3
PREVIEW_CHARS = 200

Progress = Callable[[float, str, int | None, int | None], None]
"""``progress(fraction, stage, items_processed, total_items)``."""

Cancelled = Callable[[], bool]

INPUT_ROOTS_SETTING = "JOBHANDLE_DOCUMENTS_INPUT_ROOTS"
OUTPUT_ROOT_SETTING = "JOBHANDLE_DOCUMENTS_OUTPUT_ROOT"


# -- where the handlers may read and write -------------------------------------------------------------------

def _resolve(path: Path, what: str) -> Path:
    """``path`` absolute with every symbolic link followed (``strict=False``: it need not exist, so a refusal
    never tells whether something exists outside the roots)."""
    try:
        return path.resolve(strict=False)
    except (OSError, RuntimeError, ValueError) as exc:  # a symlink loop (RuntimeError before 3.13), a NUL byte
        raise PermanentError(f"{what} cannot be resolved: {exc}") from exc


def _confine(candidate: Path, roots: tuple[Path, ...], setting: str, what: str) -> Path:
    """``candidate`` resolved, if that lies inside one of the (resolved) ``roots``; else PermanentError
    naming ``what`` (the parameter and the path given), the roots and the setting that configures them."""
    resolved = _resolve(candidate, what)
    if any(resolved.is_relative_to(root) for root in roots):
        return resolved
    allowed = ", ".join(str(root) for root in roots)
    change = f"set {setting} to change {'them' if len(roots) > 1 else 'it'}"
    if any(Path(os.path.normpath(candidate)).is_relative_to(root) for root in roots):
        raise PermanentError(f"{what} leads outside the allowed folders ({allowed}) through a symbolic link; "
                             f"{change}")
    raise PermanentError(f"{what} is outside the allowed folders ({allowed}); {change}")


def _given(parameter: str, given: object) -> tuple[Path, str]:
    if not isinstance(given, (str, os.PathLike)):
        raise PermanentError(f"{parameter} must be a path, not {given!r}")
    text = os.fspath(given)
    if not isinstance(text, str):
        raise PermanentError(f"{parameter} must be a path, not {given!r}")
    return Path(text), f"{parameter} {text!r}"


@dataclass(frozen=True)
class DocumentRoots:
    """The folders the handlers may read (``inputs``) and write under (``output``), resolved (absolute,
    symbolic links followed).

    A relative path in a job parameter resolves against the first input root (``output_dir`` against the
    output root); an absolute one must lie inside a root. The path is resolved too, so ``..`` and symbolic
    links (the file itself or any folder on the way) may not lead out of the roots.
    """

    inputs: tuple[Path, ...]
    output: Path

    @classmethod
    def of(cls, inputs: Iterable[str | os.PathLike[str]], output: str | os.PathLike[str]) -> DocumentRoots:
        """Roots from folder paths; relative ones are relative to the current directory (now)."""
        resolved = tuple(_resolve(Path(root), f"{INPUT_ROOTS_SETTING} entry {os.fspath(root)!r}")
                         for root in inputs)
        if not resolved:
            raise ValueError("DocumentRoots needs at least one input root")
        return cls(resolved, _resolve(Path(output), f"{OUTPUT_ROOT_SETTING} {os.fspath(output)!r}"))

    @classmethod
    def from_settings(cls, settings: Settings | None = None) -> DocumentRoots:
        """The configured roots: ``settings``, by default ``Settings()`` read from the environment now."""
        if settings is None:
            try:
                settings = Settings()
            except SettingsError as exc:
                raise PermanentError(f"the document handlers' settings are invalid: {exc}") from exc
        return cls.of(settings.documents_input_roots, settings.documents_output_root)

    def input_path(self, parameter: str, given: str | os.PathLike[str]) -> Path:
        """The resolved path a job parameter names, if it lies inside an input root (else PermanentError)."""
        path, what = _given(parameter, given)
        return _confine(self.inputs[0] / path, self.inputs, INPUT_ROOTS_SETTING, what)

    def output_path(self, parameter: str, given: str | os.PathLike[str]) -> Path:
        """The resolved folder a job parameter names, if it lies inside the output root (else PermanentError)."""
        path, what = _given(parameter, given)
        return _confine(self.output / path, (self.output,), OUTPUT_ROOT_SETTING, what)

    def check_input(self, path: Path, what: str) -> Path:
        """``path`` (absolute, e.g. a file listed from a folder) resolved, if inside an input root."""
        return _confine(path, self.inputs, INPUT_ROOTS_SETTING, what)

    def check_output(self, path: Path, what: str) -> Path:
        """``path`` (absolute) resolved, if inside the output root."""
        return _confine(path, (self.output,), OUTPUT_ROOT_SETTING, what)


# -- parsing -------------------------------------------------------------------------------------------------

def file_type_of(path: Path) -> str:
    """The file type (``FILE_TYPES``) of ``path``'s extension; PermanentError when it is not supported."""
    file_type = FILE_TYPES.get(path.suffix.lower())
    if file_type is None:
        supported = ", ".join(sorted(FILE_TYPES))
        raise PermanentError(f"unsupported file type {path.suffix or '(no extension)'!r} for {path.name}; "
                             f"supported: {supported}")
    return file_type


class _TextExtractor(HTMLParser):
    """Collects an HTML document's visible text. Whitespace in text is a space (except in ``<pre>``); block
    elements become blank-line paragraph breaks, list items, rows and ``<br>`` line breaks."""

    SKIP = frozenset({"script", "style", "noscript", "template"})
    BLOCKS = frozenset({"p", "div", "section", "article", "header", "footer", "main", "aside", "nav",
                        "h1", "h2", "h3", "h4", "h5", "h6", "ul", "ol", "table", "blockquote", "pre", "form",
                        "title", "body", "figure"})
    LINES = frozenset({"br", "li", "tr", "dt", "dd", "hr"})

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self._skipping = 0
        self._pre = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self._skipping += tag in self.SKIP
        self._pre += tag == "pre"
        if tag in self.BLOCKS:
            self.parts.append("\n\n")
        elif tag in self.LINES:
            self.parts.append("\n")

    def handle_endtag(self, tag: str) -> None:
        if tag in self.SKIP:
            self._skipping = max(0, self._skipping - 1)
        if tag == "pre":
            self._pre = max(0, self._pre - 1)
        if tag in self.BLOCKS:
            self.parts.append("\n\n")

    def handle_data(self, data: str) -> None:
        if not self._skipping:
            self.parts.append(data if self._pre else re.sub(r"\s+", " ", data))


def html_to_text(html: str) -> str:
    """The visible text of an HTML document: scripts and styles dropped, whitespace tidied, one blank line
    between blocks (paragraphs, headings, ...)."""
    extractor = _TextExtractor()
    extractor.feed(html)
    extractor.close()
    return tidy_text("".join(extractor.parts))


def tidy_text(text: str) -> str:
    """Collapse runs of spaces within lines, trim lines, and keep at most one blank line between paragraphs."""
    lines = [" ".join(line.split()) for line in text.replace("\r\n", "\n").replace("\r", "\n").split("\n")]
    return re.sub(r"\n{3,}", "\n\n", "\n".join(lines)).strip()


def read_text(path: Path) -> str:
    """A text file as UTF-8 (a BOM is dropped; undecodable bytes become U+FFFD rather than failing the job)."""
    return path.read_text(encoding="utf-8-sig", errors="replace")


@contextmanager
def _unreadable_pdf(what: str) -> Iterator[None]:
    """pypdf's many error types on a malformed file -> PermanentError; an OSError stays retryable."""
    try:
        yield
    except OSError:
        raise
    except Exception as exc:  # noqa: BLE001 - pypdf raises KeyError, ValueError... on broken files
        raise PermanentError(f"cannot read {what}: {type(exc).__name__}: {exc}") from exc


def open_pdf(path: Path) -> tuple[int, Iterator[str]]:
    """A PDF's page count and an iterator over each page's text, read lazily page by page (pypdf).

    PermanentError when pypdf is missing or the file is not a readable PDF.
    """
    try:
        from pypdf import PdfReader
    except ImportError:
        raise PermanentError("reading PDF files needs the 'pypdf' package: pip install 'pypdf>=4'") from None
    with _unreadable_pdf(f"PDF {path.name}"):
        reader = PdfReader(path)
        count = len(reader.pages)

    def pages() -> Iterator[str]:
        for index in range(count):
            with _unreadable_pdf(f"page {index + 1} of PDF {path.name}"):
                text = reader.pages[index].extract_text() or ""
            yield text

    return count, pages()


# -- splitting -----------------------------------------------------------------------------------------------

# From coarse to fine: paragraphs, lines, sentences, words. Each level's separator is what joins its parts.
_LEVELS: tuple[tuple[str, re.Pattern[str]], ...] = (
    ("\n\n", re.compile(r"\n\s*\n")),
    ("\n", re.compile(r"\n")),
    (" ", re.compile(r"(?<=[.!?])\s+")),
    (" ", re.compile(r"\s+")),
)

Piece = tuple[str, str]
"""(separator before the piece, piece text)."""


def check_chunk_sizes(chunk_size: int, chunk_overlap: int) -> None:
    """PermanentError unless 1 <= chunk_size and 0 <= chunk_overlap < chunk_size (both integers)."""
    for name, value in (("chunk_size", chunk_size), ("chunk_overlap", chunk_overlap)):
        if isinstance(value, bool) or not isinstance(value, int):
            raise PermanentError(f"{name} must be an integer, not {value!r}")
    if chunk_size < 1:
        raise PermanentError(f"chunk_size must be at least 1, not {chunk_size}")
    if not 0 <= chunk_overlap < chunk_size:
        raise PermanentError(f"chunk_overlap must be from 0 to chunk_size - 1 ({chunk_size - 1}), "
                             f"not {chunk_overlap}")


def _join(pieces: list[Piece]) -> str:
    return "".join(sep + text for sep, text in pieces)[len(pieces[0][0]):] if pieces else ""


def _overlap(pieces: list[Piece], limit: int) -> list[Piece]:
    """The end of a finished chunk that starts the next one: as many whole trailing pieces (sentences,
    paragraphs) as fit in ``limit`` characters, else the last ``limit`` characters from a word boundary."""
    if limit <= 0 or not pieces:
        return []
    start, length = len(pieces), 0
    while start > 0:
        grown = length + len(pieces[start - 1][1]) + (len(pieces[start][0]) if start < len(pieces) else 0)
        if grown > limit:
            break
        start, length = start - 1, grown
    if start < len(pieces):
        return [("", pieces[start][1]), *pieces[start + 1:]]
    last = pieces[-1][1]
    cut = last[-limit:]
    if not last[-limit - 1].isspace():  # the cut fell inside a word: start at the next word
        words = cut.split(None, 1)
        cut = words[1] if len(words) == 2 else ""
    cut = cut.strip()
    return [("", cut)] if cut else []


class _Packer:
    """Packs text into chunks of at most ``size`` characters, descending from paragraphs to lines,
    sentences and words only for a unit too long for a chunk of its own."""

    def __init__(self, size: int, overlap: int) -> None:
        self.size = size
        self.overlap = overlap
        self.current: list[Piece] = []
        self.length = 0  # len(_join(self.current))
        self.carried = 0  # how many leading pieces of ``current`` repeat the previous chunk's end

    def add(self, text: str, sep: str, level: int) -> Iterator[str]:
        """Add ``text`` (joined to what precedes it by ``sep``); yield the chunks this completes."""
        if self.length + (len(sep) if self.current else 0) + len(text) <= self.size:
            self._append(sep, text)
            return
        if len(text) <= self.size:
            yield from self._flush(room=self.size - len(sep) - len(text))
            self._append(sep, text)
            return
        if len(self.current) > self.carried and self.length >= self.size // 2:
            yield from self._flush(room=self.size)  # a long unit starts a chunk unless this one is short
        if level == len(_LEVELS):  # a single "word" longer than a chunk: cut it
            parts = [text[i:i + self.size] for i in range(0, len(text), self.size)]
            for i, part in enumerate(parts):
                yield from self.add(part, sep if i == 0 else "", level)
            return
        joiner, pattern = _LEVELS[level]
        parts = [part.strip() for part in pattern.split(text)]
        for i, part in enumerate(filter(None, parts)):
            yield from self.add(part, sep if i == 0 else joiner, level + 1)

    def finish(self) -> Iterator[str]:
        if len(self.current) > self.carried:
            yield _join(self.current)

    def _append(self, sep: str, text: str) -> None:
        if self.current:
            self.length += len(sep)
        else:
            sep = ""
        self.current.append((sep, text))
        self.length += len(text)

    def _flush(self, room: int) -> Iterator[str]:
        """Emit the current chunk (unless it only repeats the previous one's end) and start the next one
        with an overlap of at most ``room`` characters."""
        yield from self.finish()
        self.current = _overlap(self.current, min(self.overlap, room))
        self.length = len(_join(self.current))
        self.carried = len(self.current)


def iter_chunks(text: str, chunk_size: int = 1000, chunk_overlap: int = 100) -> Iterator[str]:
    """Split ``text`` into chunks of at most ``chunk_size`` characters, cut at paragraph, line, sentence or
    word boundaries where possible; each chunk after the first starts with up to ``chunk_overlap``
    characters from the end of the previous one."""
    check_chunk_sizes(chunk_size, chunk_overlap)
    text = text.replace("\r\n", "\n").replace("\r", "\n").strip()
    if not text:
        return
    packer = _Packer(chunk_size, chunk_overlap)
    yield from packer.add(text, "", 0)
    yield from packer.finish()


def split_text(text: str, chunk_size: int = 1000, chunk_overlap: int = 100) -> list[str]:
    """``iter_chunks`` as a list."""
    return list(iter_chunks(text, chunk_size, chunk_overlap))


# -- one file ------------------------------------------------------------------------------------------------

def _silent(fraction: float, stage: str, items: int | None, total: int | None) -> None:
    """A progress callback that reports nothing (batch jobs report per file instead)."""


def extract_text(path: Path, file_type: str, cancelled: Cancelled, progress: Progress) -> str | None:
    """The plain text of a file (None if cancelled between PDF pages). Parsing is the first half of a
    document's progress."""
    if file_type != "pdf":
        progress(0.0, "Parsing", 0, 1)
        raw = read_text(path)
        text = html_to_text(raw) if file_type == "html" else raw
        progress(0.5, "Parsing", 1, 1)
        return text
    total, pages = open_pdf(path)
    texts: list[str] = []
    for page in pages:
        if cancelled():
            return None
        texts.append(page.strip())
        progress(0.5 * len(texts) / total, "Parsing", len(texts), total)
    return "\n\n".join(t for t in texts if t)


def write_chunks(output_dir: Path, name: str, source: Path, file_type: str, chunks: list[str],
                 document_id: str | None, *, roots: DocumentRoots | None = None,
                 what: str = "output_dir") -> Path:
    """Write ``<output_dir>/<name>.chunks.json`` atomically (temp file + rename); return its path.

    ``name`` is the source's name, or its path relative to a batch's input directory. With ``roots``, the
    file's folder (resolved) must lie inside the output root, and so must whatever a symbolic link already at
    the destination points to (else PermanentError; ``what`` names the parameter in the message). The rename
    replaces such a link itself, never writing through it; the temp file is always a new file.
    """
    target = output_dir / f"{name}.chunks.json"
    if roots is not None:
        label = f"{what}: {target.relative_to(output_dir).as_posix()!r}"
        target = roots.check_output(target.parent, label) / target.name
        if target.is_symlink():
            roots.check_output(target, label)
    target.parent.mkdir(parents=True, exist_ok=True)
    document = {
        "source": str(source), "file_type": file_type, "document_id": document_id,
        "chunks": [{"index": i, "characters": len(c), "text": c} for i, c in enumerate(chunks)],
    }
    # A new file (O_EXCL: never an existing file or link) with an unguessable name, mode 0o666 less the umask.
    temp = target.with_name(f".{target.name}.{os.getpid()}.{secrets.token_hex(6)}.tmp")
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0), 0o666)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            out.write(json.dumps(document, ensure_ascii=False, indent=1))
        os.replace(temp, target)  # a rename replaces a link at ``target`` itself, never what it points to
    except BaseException:
        temp.unlink(missing_ok=True)
        raise
    return target


def process_file(path: Path | str, *, chunk_size: int = 1000, chunk_overlap: int = 100,
                 output_dir: Path | str | None = None, name: str | None = None, file_name: str | None = None,
                 document_id: str | None = None, cancelled: Cancelled = lambda: False,
                 progress: Progress = _silent, roots: DocumentRoots | None = None) -> dict[str, Any] | None:
    """Parse, chunk and optionally write one file; return its summary, or None when cancelled.

    ``name`` (default: the file's name) names the output file; ``file_name`` (default: ``name``) is the
    name the summary shows, e.g. an uploaded file's original name.

    With ``roots`` (as the handlers call it) ``path`` and ``output_dir`` are job parameters: resolved against
    and confined to the roots (see ``DocumentRoots``; PermanentError naming ``file_path``/``output_dir``).
    Without, they are used as given: for code that chooses its own paths.
    """
    check_chunk_sizes(chunk_size, chunk_overlap)
    what = "output_dir"
    if roots is not None:
        path = roots.input_path("file_path", path)
        if output_dir is not None:
            what = f"output_dir {os.fspath(output_dir)!r}"
            output_dir = roots.output_path("output_dir", output_dir)
    path = Path(path)
    file_type = file_type_of(path)
    if not path.is_file():
        raise PermanentError(f"file not found: {path}")
    name = name or path.name
    text = extract_text(path, file_type, cancelled, progress)
    if text is None:
        return None
    progress(0.5, "Chunking", None, None)
    chunks: list[str] = []
    for chunk in iter_chunks(text, chunk_size, chunk_overlap):
        if cancelled():
            return None
        chunks.append(chunk)
    progress(0.9, "Chunking", len(chunks), len(chunks))
    output_file = None
    if output_dir is not None:
        progress(0.9, "Writing", 0, 1)
        output_file = str(write_chunks(Path(output_dir), name, path, file_type, chunks, document_id, roots=roots,
                                       what=what))
        progress(1.0, "Writing", 1, 1)
    return {
        "file_name": file_name or name,
        "file_type": file_type,
        "document_id": document_id,
        "characters": len(text),
        "chunks": len(chunks),
        "chunk_preview": [_truncate(c) for c in chunks[:PREVIEW_CHUNKS]],
        "output_file": output_file,
    }


def _truncate(text: str) -> str:
    return text if len(text) <= PREVIEW_CHARS else text[:PREVIEW_CHARS - 1].rstrip() + "…"


def list_documents(input_dir: Path, pattern: str = "*", recursive: bool = False) -> tuple[list[Path], list[Path]]:
    """The files in ``input_dir`` matching ``pattern``, sorted: (supported ones, unsupported ones).

    ``pattern`` is a relative glob pattern that may not climb out with ``..`` (else PermanentError). Listed
    files may still be symbolic links to anywhere: ``process_batch`` checks each against the roots.
    """
    if not isinstance(pattern, str) or not pattern or PurePath(pattern).is_absolute() \
            or ".." in PurePath(pattern).parts:
        raise PermanentError(f"pattern {pattern!r} must be a relative glob pattern without '..', e.g. '*.pdf'")
    if not input_dir.is_dir():
        raise PermanentError(f"input directory not found: {input_dir}")
    found = sorted(p for p in (input_dir.rglob(pattern) if recursive else input_dir.glob(pattern)) if p.is_file())
    supported = [p for p in found if p.suffix.lower() in FILE_TYPES]
    return supported, [p for p in found if p.suffix.lower() not in FILE_TYPES]


# -- the handlers --------------------------------------------------------------------------------------------

def _ctx_progress(ctx: JobContext) -> Progress:
    def progress(fraction: float, stage: str, items: int | None, total: int | None) -> None:
        ctx.progress(fraction, stage, items_processed=items, total_items=total)

    return progress


@handler("process_document")
def process_document(ctx: JobContext, file_path: str, chunk_size: int = 1000, chunk_overlap: int = 100,
                     output_dir: str | None = None, file_name: str | None = None,
                     document_id: str | None = None) -> dict[str, Any] | None:
    """Parse and chunk one document. ``file_name`` (a display name, e.g. the uploaded file's) and
    ``document_id`` (any id of the caller's) are echoed in the result; the Streamlit upload tab sends both.

    ``file_path`` must lie inside an input root and ``output_dir`` inside the output root (``DocumentRoots``,
    read from the settings now); relative ones resolve against the first input root / the output root."""
    return process_file(file_path, chunk_size=chunk_size, chunk_overlap=chunk_overlap, output_dir=output_dir,
                        file_name=file_name, document_id=document_id, cancelled=lambda: ctx.cancelled,
                        progress=_ctx_progress(ctx), roots=DocumentRoots.from_settings())


@handler("process_batch")
def process_batch(ctx: JobContext, input_dir: str, pattern: str = "*", chunk_size: int = 1000,
                  chunk_overlap: int = 100, recursive: bool = False,
                  output_dir: str | None = None) -> dict[str, Any] | None:
    """Process every supported file of a directory in name order. A file that fails is reported in the
    result and the batch goes on; files of unsupported types are listed as ``skipped``.

    ``input_dir`` must lie inside an input root and ``output_dir`` inside the output root, as for
    ``process_document``. A listed file that resolves outside the input roots (a symbolic link) is not read:
    it is reported as a failed file and the batch goes on."""
    check_chunk_sizes(chunk_size, chunk_overlap)
    roots = DocumentRoots.from_settings()
    root = roots.input_path("input_dir", input_dir)
    if output_dir is not None:
        roots.output_path("output_dir", output_dir)  # refuse a bad output_dir before any work
    files, skipped = list_documents(root, pattern, recursive)
    results: list[dict[str, Any]] = []
    for index, path in enumerate(files):
        name = path.relative_to(root).as_posix()
        ctx.progress(index / len(files), name, items_processed=index, total_items=len(files))
        if ctx.cancelled:
            return None
        try:
            source = roots.check_input(path, f"input_dir {input_dir!r}: {name!r}")
            summary = process_file(source, chunk_size=chunk_size, chunk_overlap=chunk_overlap,
                                   output_dir=output_dir, name=name, cancelled=lambda: ctx.cancelled, roots=roots)
        except Exception as exc:  # noqa: BLE001 - one bad file must not fail the batch; it is reported
            ctx.logger.warning("batch: %s failed: %s", path, exc)
            results.append({"file_name": name, "ok": False, "error": f"{type(exc).__name__}: {exc}"})
            continue
        if summary is None:
            return None
        results.append({"ok": True, **summary})
    ctx.progress(1.0, "Done", items_processed=len(files), total_items=len(files))
    succeeded = sum(r["ok"] for r in results)
    return {"files": len(files), "succeeded": succeeded, "failed": len(results) - succeeded,
            "skipped": [p.relative_to(root).as_posix() for p in skipped], "results": results}
