"""The CLI's failures are one clear ``error:`` line and a non-zero exit, not a traceback: a store path it
cannot write, a handler module that does not import (syntax error, import error, an exception at import).
``jobhandle --debug`` adds the full traceback."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from jobhandle import JobQueue
from jobhandle.cli import app

JOBHANDLE = Path(sys.executable).parent / "jobhandle"
PROCESS_TIMEOUT = 30.0


def cli(*args: str) -> Result:
    return CliRunner().invoke(app, list(args))


def run_jobhandle(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(JOBHANDLE), *args], capture_output=True, text=True, timeout=PROCESS_TIMEOUT,
                          cwd=cwd)


def one_error_line(result: Result | subprocess.CompletedProcess[str], code: int) -> str:
    """The one ``error:`` line the command printed on stderr (after checking the exit code and no traceback)."""
    exit_code = result.returncode if isinstance(result, subprocess.CompletedProcess) else result.exit_code
    assert exit_code == code, (exit_code, result.stdout, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    assert "Traceback" not in result.stdout + result.stderr
    return lines[0]


# -- a store the CLI cannot open ---------------------------------------------------------------------------

def test_a_store_path_the_os_refuses_is_one_line_naming_path_and_reason() -> None:
    line = one_error_line(cli("stats", "--store", "sqlite:////proc/jobs.db"), 1)

    assert "/proc/jobs.db" in line and "No such file or directory" in line, line


def test_a_store_under_a_file_is_one_line(tmp_path: Path) -> None:
    (tmp_path / "afile").write_text("not a folder")
    line = one_error_line(cli("list", "--store", f"sqlite:///{tmp_path}/afile/jobs.db"), 1)

    assert f"{tmp_path}/afile/jobs.db" in line and "not a folder" in line, line


def test_a_store_path_that_is_a_folder_is_one_line(tmp_path: Path) -> None:
    (tmp_path / "jobs.db").mkdir()
    line = one_error_line(cli("stats", "--store", f"sqlite:///{tmp_path}/jobs.db"), 1)

    assert f"{tmp_path}/jobs.db" in line and "Is a directory" in line, line


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only folders")
def test_a_store_in_a_read_only_folder_is_one_line(tmp_path: Path) -> None:
    folder = tmp_path / "ro"
    folder.mkdir()
    folder.chmod(0o555)
    try:
        line = one_error_line(cli("stats", "--store", f"sqlite:///{folder}/jobs.db"), 1)
    finally:
        folder.chmod(0o755)

    assert f"{folder}/jobs.db" in line and "Permission denied" in line, line


def test_a_file_that_is_no_database_is_one_line(tmp_path: Path) -> None:
    (tmp_path / "jobs.db").write_bytes(b"SQLite format 3 - or so it says" * 200)
    line = one_error_line(cli("stats", "--store", f"sqlite:///{tmp_path}/jobs.db"), 1)

    assert f"{tmp_path}/jobs.db" in line and "file is not a database" in line, line


def test_an_unexpected_error_is_one_line_pointing_at_debug(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    def broken_stats(self: JobQueue) -> None:
        raise RuntimeError("something\nunforeseen")

    monkeypatch.setattr(JobQueue, "stats", broken_stats)
    line = one_error_line(cli("stats", "--store", f"sqlite:///{tmp_path}/jobs.db"), 1)
    assert line == "error: RuntimeError: something unforeseen (jobhandle --debug stats ... prints the traceback)"

    result = cli("--debug", "stats", "--store", f"sqlite:///{tmp_path}/jobs.db")
    assert result.exit_code == 1 and "Traceback" in result.stderr and "broken_stats" in result.stderr


def test_debug_adds_the_traceback() -> None:
    result = cli("--debug", "stats", "--store", "sqlite:////proc/jobs.db")

    assert result.exit_code == 1
    assert "Traceback" in result.stderr and "sqlite3.OperationalError" in result.stderr
    assert result.stderr.strip().splitlines()[-1].startswith("error: cannot open the SQLite store")


@pytest.mark.slow
def test_an_unwritable_store_as_a_real_process() -> None:
    line = one_error_line(run_jobhandle("stats", "--store", "sqlite:////proc/jobs.db"), 1)
    assert "/proc/jobs.db" in line


# -- handler modules that do not import --------------------------------------------------------------------

BROKEN_APPS = {
    "syntax": ("@handler('x')\ndef x(ctx:\n    return 1\n", 2, "SyntaxError"),
    "import": ("from jobhandle import handler\nimport no_such_dependency_here\n", 2,
               "ModuleNotFoundError: No module named 'no_such_dependency_here'"),
    "raises": ("from jobhandle import handler\n\nSETTING = 1 / 0\n", 3, "ZeroDivisionError: division by zero"),
}


@pytest.mark.parametrize("kind", list(BROKEN_APPS))
def test_a_handler_file_that_does_not_import_is_one_line(tmp_path: Path, kind: str) -> None:
    source, line_number, problem = BROKEN_APPS[kind]
    path = tmp_path / f"broken_{kind}.py"
    path.write_text(source)

    line = one_error_line(cli("worker", "--app", str(path), "--store", f"sqlite:///{tmp_path}/jobs.db"), 2)

    assert str(path) in line and f"line {line_number}" in line and problem in line, line


def test_a_registration_error_names_the_app_line_not_jobhandle_internals(tmp_path: Path) -> None:
    path = tmp_path / "not_callable.py"
    path.write_text("from jobhandle import handler\n\nLIMIT = 3\nhandler('not_callable_cli_test')(LIMIT)\n")

    line = one_error_line(cli("worker", "--app", str(path), "--store", f"sqlite:///{tmp_path}/jobs.db"), 2)

    assert f"{path}, line 4" in line and "InvalidParameterError: handler 'not_callable_cli_test' is not callable" \
        in line, line


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["syntax", "import"])
def test_a_module_that_does_not_import_is_one_line_as_a_real_process(tmp_path: Path, kind: str) -> None:
    source, line_number, problem = BROKEN_APPS[kind]
    (tmp_path / "broken_tasks.py").write_text(source)

    result = run_jobhandle("worker", "--app", "broken_tasks", "--store", f"sqlite:///{tmp_path}/jobs.db",
                           cwd=tmp_path)

    line = one_error_line(result, 2)
    assert "'broken_tasks'" in line and f"line {line_number}" in line and problem in line, line


@pytest.mark.slow
def test_debug_shows_the_traceback_of_a_broken_module(tmp_path: Path) -> None:
    (tmp_path / "broken_tasks.py").write_text(BROKEN_APPS["raises"][0])

    result = run_jobhandle("--debug", "worker", "--app", "broken_tasks", "--store", f"sqlite:///{tmp_path}/jobs.db",
                           cwd=tmp_path)

    assert result.returncode == 2
    assert "Traceback" in result.stderr and "ZeroDivisionError" in result.stderr
    assert result.stderr.strip().splitlines()[-1].startswith("error: cannot import 'broken_tasks'")


def test_a_mistyped_sqlite_path_is_refused_naming_the_missing_folder(tmp_path: Path) -> None:
    """A typo in a folder of a sqlite:/// URL must not quietly create a new, empty store somewhere else."""
    missing = tmp_path / "no-such-folder" / "deeper"
    line = one_error_line(cli("stats", "--store", f"sqlite:///{missing}/jobs.db"), 1)
    assert f"{missing} does not exist" in line
    assert not (tmp_path / "no-such-folder").exists(), "nothing was created"
