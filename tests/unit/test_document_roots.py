"""The document handlers read and write only inside their configured roots.

First the confinement rules on ``DocumentRoots`` and ``process_file`` with explicit roots, then the settings
(``JOBHANDLE_DOCUMENTS_INPUT_ROOTS``, ``JOBHANDLE_DOCUMENTS_OUTPUT_ROOT``) read from the environment, then whole
jobs through a real ``JobQueue("memory://")`` and worker, whose handlers build their roots from ``Settings()``.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from helpers import run_job

import jobhandle.handlers  # noqa: F401 - registers process_document/process_batch in the default registry
from jobhandle import JobQueue, JobStatus, PermanentError, Settings
from jobhandle.handlers import documents

INPUT_SETTING = "JOBHANDLE_DOCUMENTS_INPUT_ROOTS"
OUTPUT_SETTING = "JOBHANDLE_DOCUMENTS_OUTPUT_ROOT"
SECRET = "the secret text outside every root"


@dataclass
class Tree:
    """Two input roots, an output root and a folder outside all of them (with a secret file)."""

    inputs: Path
    more: Path
    output: Path
    outside: Path

    @property
    def secret(self) -> Path:
        return self.outside / "secret.txt"


@pytest.fixture
def tree(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Tree:
    t = Tree(tmp_path / "in", tmp_path / "more", tmp_path / "out", tmp_path / "outside")
    for folder in (t.inputs, t.more, t.output, t.outside, tmp_path / "cwd"):
        folder.mkdir()
    # Relative paths must never reach the checkout the tests run from, even with a broken handler.
    monkeypatch.chdir(tmp_path / "cwd")
    (t.inputs / "a.txt").write_text("Inside text.")
    (t.inputs / "sub").mkdir()
    (t.inputs / "sub" / "b.md").write_text("# B")
    (t.more / "c.txt").write_text("More text.")
    t.secret.write_text(SECRET)
    return t


def roots(t: Tree) -> documents.DocumentRoots:
    return documents.DocumentRoots.of([t.inputs, t.more], t.output)


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """No root variables from the environment the tests run in."""
    monkeypatch.delenv(INPUT_SETTING, raising=False)
    monkeypatch.delenv(OUTPUT_SETTING, raising=False)


@pytest.fixture
def env_roots(tree: Tree, monkeypatch: pytest.MonkeyPatch) -> Tree:
    """The tree's roots configured the way a deployment does it: environment variables."""
    monkeypatch.setenv(INPUT_SETTING, os.pathsep.join([str(tree.inputs), str(tree.more)]))
    monkeypatch.setenv(OUTPUT_SETTING, str(tree.output))
    return tree


@pytest.fixture
def memory_queue() -> Iterator[JobQueue]:
    q = JobQueue("memory://", settings=Settings(progress_interval=0))
    yield q
    q.close()


def assert_refused(message: str, parameter: str, given: str, allowed: list[Path], setting: str) -> None:
    assert f"{parameter} {given!r}" in message, message
    for root in allowed:
        assert str(root.resolve()) in message, message
    assert setting in message, message
    assert SECRET not in message


# -- the rules, with explicit roots --------------------------------------------------------------------------

def test_a_relative_path_resolves_against_the_first_input_root(tree: Tree) -> None:
    assert roots(tree).input_path("file_path", "sub/b.md") == (tree.inputs / "sub" / "b.md").resolve()
    summary = documents.process_file(Path("a.txt"), roots=roots(tree))
    assert summary is not None and summary["chunk_preview"] == ["Inside text."]


def test_dotdot_that_stays_inside_the_root_is_fine(tree: Tree) -> None:
    assert roots(tree).input_path("file_path", "sub/../a.txt") == (tree.inputs / "a.txt").resolve()


def test_an_absolute_path_inside_any_root_is_accepted(tree: Tree) -> None:
    summary = documents.process_file(tree.more / "c.txt", roots=roots(tree))
    assert summary is not None and summary["chunk_preview"] == ["More text."]


def test_dotdot_leaving_the_root_is_refused(tree: Tree) -> None:
    with pytest.raises(PermanentError, match="outside the allowed folders") as err:
        documents.process_file(Path("../outside/secret.txt"), roots=roots(tree))
    assert_refused(str(err.value), "file_path", "../outside/secret.txt", [tree.inputs, tree.more], INPUT_SETTING)


def test_an_absolute_path_outside_the_roots_is_refused(tree: Tree) -> None:
    with pytest.raises(PermanentError, match="outside the allowed folders") as err:
        documents.process_file(tree.secret, roots=roots(tree))
    assert_refused(str(err.value), "file_path", str(tree.secret), [tree.inputs, tree.more], INPUT_SETTING)


def test_a_missing_file_outside_the_roots_is_refused_not_reported_missing(tree: Tree) -> None:
    # The refusal comes before any look at the file: no way to learn what exists outside.
    with pytest.raises(PermanentError, match="outside the allowed folders"):
        documents.process_file(tree.outside / "nothing-here.txt", roots=roots(tree))


def test_a_symlinked_file_pointing_outside_is_refused(tree: Tree) -> None:
    (tree.inputs / "link.txt").symlink_to(tree.secret)
    with pytest.raises(PermanentError, match="through a symbolic link") as err:
        documents.process_file(Path("link.txt"), roots=roots(tree))
    assert_refused(str(err.value), "file_path", "link.txt", [tree.inputs, tree.more], INPUT_SETTING)


def test_a_dangling_symlink_pointing_outside_is_refused(tree: Tree) -> None:
    (tree.inputs / "dangling.txt").symlink_to(tree.outside / "not-yet.txt")
    with pytest.raises(PermanentError, match="through a symbolic link"):
        documents.process_file(Path("dangling.txt"), roots=roots(tree))


def test_a_symlinked_folder_on_the_way_pointing_outside_is_refused(tree: Tree) -> None:
    (tree.inputs / "elsewhere").symlink_to(tree.outside, target_is_directory=True)
    with pytest.raises(PermanentError, match="through a symbolic link") as err:
        documents.process_file(tree.inputs / "elsewhere" / "secret.txt", roots=roots(tree))
    assert_refused(str(err.value), "file_path", str(tree.inputs / "elsewhere" / "secret.txt"),
                   [tree.inputs, tree.more], INPUT_SETTING)


def test_a_symlink_inside_pointing_inside_is_followed(tree: Tree) -> None:
    (tree.inputs / "alias.txt").symlink_to(tree.more / "c.txt")
    summary = documents.process_file(Path("alias.txt"), roots=roots(tree))
    assert summary is not None and summary["chunk_preview"] == ["More text."]


def test_a_symlink_loop_is_a_permanent_error(tree: Tree) -> None:
    (tree.inputs / "loop.txt").symlink_to(tree.inputs / "loop.txt")
    with pytest.raises(PermanentError, match="file_path 'loop.txt'"):
        documents.process_file(Path("loop.txt"), roots=roots(tree))


def test_a_relative_output_dir_resolves_against_the_output_root(tree: Tree) -> None:
    summary = documents.process_file(Path("a.txt"), output_dir=Path("chunks/today"), roots=roots(tree))
    assert summary is not None
    written = tree.output.resolve() / "chunks" / "today" / "a.txt.chunks.json"
    assert summary["output_file"] == str(written)
    assert json.loads(written.read_text())["chunks"][0]["text"] == "Inside text."


@pytest.mark.parametrize("output_dir", ["../outside", "{outside}", "{inputs}"])
def test_an_output_dir_outside_the_output_root_is_refused(tree: Tree, output_dir: str) -> None:
    given = output_dir.format(outside=tree.outside, inputs=tree.inputs)
    with pytest.raises(PermanentError, match="outside the allowed folders") as err:
        documents.process_file(Path("a.txt"), output_dir=Path(given), roots=roots(tree))
    assert_refused(str(err.value), "output_dir", given, [tree.output], OUTPUT_SETTING)
    assert list(tree.outside.iterdir()) == [tree.secret]


def test_an_output_dir_through_a_symlinked_folder_outside_is_refused(tree: Tree) -> None:
    (tree.output / "escape").symlink_to(tree.outside, target_is_directory=True)
    with pytest.raises(PermanentError, match="through a symbolic link"):
        documents.process_file(Path("a.txt"), output_dir=Path("escape"), roots=roots(tree))
    assert list(tree.outside.iterdir()) == [tree.secret]


def test_a_symlink_planted_at_the_output_destination_is_refused(tree: Tree) -> None:
    victim = tree.outside / "victim.json"
    victim.write_text("untouched")
    (tree.output / "a.txt.chunks.json").symlink_to(victim)
    with pytest.raises(PermanentError, match="through a symbolic link") as err:
        documents.process_file(Path("a.txt"), output_dir=Path("."), roots=roots(tree))
    assert "output" in str(err.value) and str(tree.output.resolve()) in str(err.value)
    assert OUTPUT_SETTING in str(err.value)
    assert victim.read_text() == "untouched"
    assert sorted(p.name for p in tree.output.iterdir()) == ["a.txt.chunks.json"]  # no temp file left behind


def test_the_atomic_write_replaces_a_link_inside_rather_than_writing_through_it(tree: Tree) -> None:
    # A link at the destination that stays inside the root: the rename replaces the link itself.
    other = tree.output / "other.json"
    other.write_text("kept")
    (tree.output / "a.txt.chunks.json").symlink_to(other)
    summary = documents.process_file(Path("a.txt"), output_dir=Path("."), roots=roots(tree))
    assert summary is not None
    destination = tree.output / "a.txt.chunks.json"
    assert not destination.is_symlink() and json.loads(destination.read_text())["file_type"] == "text"
    assert other.read_text() == "kept"


def test_without_roots_process_file_is_unconfined(tree: Tree) -> None:
    # The pure function is for code that chooses its own paths; only the handlers (job parameters) are confined.
    summary = documents.process_file(tree.secret)
    assert summary is not None and summary["chunk_preview"] == [SECRET]


# -- settings ------------------------------------------------------------------------------------------------

def test_the_roots_default_to_the_current_directory(clean_env: None, tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    settings = Settings()
    assert settings.documents_input_roots == [Path(".")] and settings.documents_output_root == Path(".")
    monkeypatch.chdir(tmp_path)
    configured = documents.DocumentRoots.from_settings(settings)
    assert configured.inputs == (tmp_path.resolve(),) and configured.output == tmp_path.resolve()


def test_the_roots_are_read_from_the_environment(clean_env: None, tree: Tree,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(INPUT_SETTING, os.pathsep.join([str(tree.inputs), "", str(tree.more)]))
    monkeypatch.setenv(OUTPUT_SETTING, str(tree.output))
    settings = Settings()
    assert settings.documents_input_roots == [tree.inputs, tree.more]
    assert settings.documents_output_root == tree.output
    configured = documents.DocumentRoots.from_settings()
    assert configured.inputs == (tree.inputs.resolve(), tree.more.resolve())
    assert configured.output == tree.output.resolve()


def test_the_input_roots_in_code_take_a_list_or_one_string(tree: Tree) -> None:
    assert Settings(documents_input_roots=[tree.inputs]).documents_input_roots == [tree.inputs]
    joined = os.pathsep.join([str(tree.inputs), str(tree.more)])
    assert Settings(documents_input_roots=joined).documents_input_roots == [tree.inputs, tree.more]


def test_an_empty_input_roots_variable_is_refused(clean_env: None, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(INPUT_SETTING, os.pathsep)
    with pytest.raises(ValueError, match="at least one folder"):
        Settings()


# -- whole jobs, roots from the environment ------------------------------------------------------------------

def test_relative_paths_in_a_job_resolve_against_the_configured_roots(env_roots: Tree,
                                                                     memory_queue: JobQueue) -> None:
    job = run_job(memory_queue, "process_document", {"file_path": "sub/b.md", "output_dir": "chunks"})
    assert job.status is JobStatus.COMPLETED, job.error
    written = env_roots.output.resolve() / "chunks" / "b.md.chunks.json"
    assert job.result["output_file"] == str(written) and written.is_file()


def test_an_absolute_path_inside_a_root_runs_as_a_job(env_roots: Tree, memory_queue: JobQueue) -> None:
    job = run_job(memory_queue, "process_document", {"file_path": str(env_roots.more / "c.txt")})
    assert job.status is JobStatus.COMPLETED, job.error
    assert job.result["chunk_preview"] == ["More text."]


@pytest.mark.parametrize("case", ["dotdot", "absolute", "symlinked file", "symlinked folder"])
def test_a_refused_file_path_fails_the_job_at_once(env_roots: Tree, memory_queue: JobQueue, case: str) -> None:
    t = env_roots
    if case == "symlinked file":
        (t.inputs / "link.txt").symlink_to(t.secret)
    if case == "symlinked folder":
        (t.inputs / "elsewhere").symlink_to(t.outside, target_is_directory=True)
    given = {"dotdot": "../outside/secret.txt", "absolute": str(t.secret), "symlinked file": "link.txt",
             "symlinked folder": "elsewhere/secret.txt"}[case]
    job = run_job(memory_queue, "process_document", {"file_path": given})
    assert job.status is JobStatus.FAILED and job.attempts == 1
    assert job.error_type == "PermanentError" and job.result is None
    assert_refused(job.error, "file_path", given, [t.inputs, t.more], INPUT_SETTING)


@pytest.mark.parametrize("case", ["absolute", "dotdot", "symlinked folder", "symlink at destination"])
def test_a_refused_output_dir_fails_the_job_and_writes_nothing_outside(env_roots: Tree, memory_queue: JobQueue,
                                                                      case: str) -> None:
    t = env_roots
    victim = t.outside / "victim.json"
    victim.write_text("untouched")
    if case == "symlinked folder":
        (t.output / "escape").symlink_to(t.outside, target_is_directory=True)
    if case == "symlink at destination":
        (t.output / "a.txt.chunks.json").symlink_to(victim)
    given = {"absolute": str(t.outside), "dotdot": "../outside", "symlinked folder": "escape",
             "symlink at destination": "."}[case]
    job = run_job(memory_queue, "process_document", {"file_path": "a.txt", "output_dir": given})
    assert job.status is JobStatus.FAILED and job.attempts == 1 and job.error_type == "PermanentError"
    assert_refused(job.error, "output_dir", given, [t.output], OUTPUT_SETTING)
    assert sorted(p.name for p in t.outside.iterdir()) == ["secret.txt", "victim.json"]
    assert victim.read_text() == "untouched"


def test_a_batch_input_dir_outside_the_roots_fails_the_job(env_roots: Tree, memory_queue: JobQueue) -> None:
    job = run_job(memory_queue, "process_batch", {"input_dir": str(env_roots.outside)})
    assert job.status is JobStatus.FAILED and job.error_type == "PermanentError"
    assert_refused(job.error, "input_dir", str(env_roots.outside), [env_roots.inputs, env_roots.more],
                   INPUT_SETTING)


@pytest.mark.parametrize("recursive", [False, True])
def test_a_batch_reports_symlinks_leading_outside_as_failed_files_and_goes_on(env_roots: Tree,
                                                                             memory_queue: JobQueue,
                                                                             recursive: bool) -> None:
    t = env_roots
    (t.inputs / "link.txt").symlink_to(t.secret)
    (t.inputs / "sub" / "deep.txt").symlink_to(t.secret)
    (t.inputs / "alias.txt").symlink_to(t.more / "c.txt")  # inside another root: fine
    job = run_job(memory_queue, "process_batch", {"input_dir": ".", "recursive": recursive, "output_dir": "o"})
    assert job.status is JobStatus.COMPLETED, job.error
    result = job.result
    by_name = {r["file_name"]: r for r in result["results"]}
    expected = ["a.txt", "alias.txt", "link.txt"] + (["sub/b.md", "sub/deep.txt"] if recursive else [])
    assert sorted(by_name) == expected
    refused = ["link.txt"] + (["sub/deep.txt"] if recursive else [])
    assert (result["files"], result["failed"]) == (len(expected), len(refused))
    for name in refused:
        assert not by_name[name]["ok"]
        error = by_name[name]["error"]
        assert error.startswith("PermanentError: ") and "through a symbolic link" in error
        assert f"{name!r}" in error and str(t.inputs.resolve()) in error and INPUT_SETTING in error
    assert by_name["alias.txt"]["ok"] and by_name["alias.txt"]["chunk_preview"] == ["More text."]
    assert SECRET not in json.dumps(result)
    assert not (t.output / "o" / "link.txt.chunks.json").exists()


def test_a_batch_does_not_mirror_into_a_symlinked_output_folder_outside(env_roots: Tree,
                                                                        memory_queue: JobQueue) -> None:
    t = env_roots
    (t.output / "sub").symlink_to(t.outside, target_is_directory=True)
    job = run_job(memory_queue, "process_batch", {"input_dir": ".", "recursive": True, "output_dir": "."})
    assert job.status is JobStatus.COMPLETED, job.error
    by_name = {r["file_name"]: r for r in job.result["results"]}
    assert by_name["a.txt"]["ok"] and not by_name["sub/b.md"]["ok"]
    assert "through a symbolic link" in by_name["sub/b.md"]["error"]
    assert list(t.outside.iterdir()) == [t.secret]


def test_a_batch_pattern_may_not_climb_out(env_roots: Tree, memory_queue: JobQueue) -> None:
    job = run_job(memory_queue, "process_batch", {"input_dir": "sub", "pattern": "../../outside/*"})
    assert job.status is JobStatus.FAILED and job.error_type == "PermanentError"
    assert "pattern" in job.error and ".." in job.error


def test_roots_changed_in_the_environment_apply_to_the_next_job(env_roots: Tree, memory_queue: JobQueue,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    assert run_job(memory_queue, "process_document", {"file_path": str(env_roots.secret)}).status is JobStatus.FAILED
    monkeypatch.setenv(INPUT_SETTING, str(env_roots.outside))
    job = run_job(memory_queue, "process_document", {"file_path": "secret.txt"})
    assert job.status is JobStatus.COMPLETED, job.error


def test_output_files_get_the_usual_permissions(tree: Tree) -> None:
    # The temp file + rename must not leave owner-only (0o600) files, as tempfile.mkstemp would.
    old_umask = os.umask(0o022)
    try:
        summary = documents.process_file(Path("a.txt"), output_dir=Path("."), roots=roots(tree))
    finally:
        os.umask(old_umask)
    assert summary is not None
    assert Path(summary["output_file"]).stat().st_mode & 0o777 == 0o644
