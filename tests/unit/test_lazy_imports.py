"""The package loads what a process uses, when it uses it: its public names all resolve, and a worker's start
imports neither the API, the pools, rich, prometheus_client, psutil, croniter nor asyncio."""

from __future__ import annotations

import json
import subprocess
import sys

import jobhandle

HEAVY = ["asyncio", "croniter", "fastapi", "jobhandle.api", "jobhandle.pool", "multiprocessing", "prometheus_client",
         "pydantic", "redis", "rich"]
"""Not loaded by a thread-mode worker on SQLite until its first job has run (psutil comes with the monitor's
first load sample, a second after the start, off the claiming path)."""


def test_every_public_name_resolves() -> None:
    for name in [*jobhandle.__all__, "submit_extraction_job", "create_worker_manager", "WorkerManager"]:
        assert getattr(jobhandle, name) is not None, name
    assert set(jobhandle.__all__) <= set(dir(jobhandle))


def test_an_unknown_name_is_an_attribute_error() -> None:
    try:
        jobhandle.NoSuchThing  # noqa: B018
    except AttributeError as exc:
        assert "NoSuchThing" in str(exc)
    else:
        raise AssertionError("jobhandle.NoSuchThing resolved")


def test_a_worker_runs_its_first_job_without_what_it_does_not_use(tmp_path: object) -> None:
    """A SQLite worker set up the way ``jobhandle worker`` does (the CLI's module, a queue, a worker): the heavy
    modules loaded when it was made, and when its first job ran."""
    script = f"""
import json, sys
import jobhandle.cli
from jobhandle import JobQueue
heavy = {HEAVY!r}
loaded = lambda: sorted(m for m in heavy + ["psutil"] if m in sys.modules)
with JobQueue("sqlite:///{tmp_path}/j.db") as q:
    q.registry.register("look", lambda ctx: loaded())
    job = q.submit("look")
    worker = q.worker(2)
    made = loaded()
    with worker:
        ran = q.wait(job.job_id, 30).result
print(json.dumps([made, ran]))
"""
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=True)
    made, ran = json.loads(done.stdout.splitlines()[-1])
    assert made == []
    assert [m for m in ran if m != "psutil"] == []
