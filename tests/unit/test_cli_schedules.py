"""`jobhandle schedule ...`: add, list, pause, resume, delete, with one-line errors."""

from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner

from jobhandle import JobQueue, JobStatus
from jobhandle.cli import app


def run(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(app, list(args))
    return result.exit_code, result.stdout, result.stderr


def test_the_schedule_commands_manage_a_schedule(tmp_path: Path) -> None:
    store = f"sqlite:///{tmp_path}/jobs.db"
    code, out, _ = run("schedule", "add", "report", "0 9 * * 1-5", "--tz", "Europe/Paris", "--param", "team=ops",
                       "--name", "reports", "--json", "--store", store)
    assert code == 0
    added = json.loads(out)
    assert (added["cron_expression"], added["timezone"], added["parameters"]) == \
        ("0 9 * * 1-5", "Europe/Paris", {"team": "ops"})
    schedule_id = added["schedule_id"]

    code, out, _ = run("schedule", "list", "--store", store)
    assert code == 0 and schedule_id in out and "reports" in out

    assert run("schedule", "pause", schedule_id, "--store", store)[:2] == (0, f"{schedule_id} paused\n")
    with JobQueue(store) as q:
        assert [j.status for j in q.list()] == [JobStatus.CANCELLED], "the coming fire's job was cancelled"
    assert run("schedule", "resume", schedule_id, "--store", store)[:2] == (0, f"{schedule_id} active\n")
    assert run("schedule", "delete", schedule_id, "--store", store)[:2] == (0, f"{schedule_id} deleted\n")
    assert run("schedule", "list", "--store", store)[1] == "no schedules\n"


def test_schedule_errors_are_one_line_and_non_zero(tmp_path: Path) -> None:
    store = f"sqlite:///{tmp_path}/jobs.db"
    code, out, err = run("schedule", "add", "report", "61 * * * *", "--store", store)
    assert code == 2 and err == "error: invalid cron expression '61 * * * *'\n"
    code, _, err = run("schedule", "add", "report", "* * * * *", "--tz", "Mars/Olympus", "--store", store)
    assert code == 2 and "unknown time zone 'Mars/Olympus'" in err
    code, _, err = run("schedule", "pause", "00000000-0000-4000-8000-000000000000", "--store", store)
    assert code == 1 and err == "error: Schedule 00000000-0000-4000-8000-000000000000 not found\n"
    code, _, err = run("schedule", "delete", "not-a-uuid", "--store", store)
    assert code == 2 and "must be a UUID" in err
