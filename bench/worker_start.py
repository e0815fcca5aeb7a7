"""How soon a worker started from the shell runs its first job: jobhandle against Huey, on SQLite.

    .venv/bin/python bench/worker_start.py            # 7 starts each, the systems alternating

One job is waiting in a fresh store; the worker's command is started; the job writes the time it ran into a
file. The figure is that time minus the moment the command was started: Python's start, the imports, opening
the store, the first claim and the job itself (a file write). ``jobhandle worker --concurrency 2`` with
default settings, and ``huey_consumer -w 2 -k process`` on ``SqliteHuey`` (its defaults otherwise). Nothing
here imports redis-py (which alone takes ~0.2 s to import on this VM, for every system on Redis: see
bench/redis_peers.py's "first job" column for those). jobhandle's bytecode is written first, as ``pip
install`` would have.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from tempfile import TemporaryDirectory

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.run import RESULTS, compile_jobhandle, log  # noqa: E402

APP = '''
import os, sys, time
{setup}
def ran():
    with open("ran.tmp", "w") as f:
        f.write(repr(time.time()))
    os.replace("ran.tmp", "ran")
'''

JOBHANDLE_APP = APP.format(setup="from jobhandle import handler") + '''
@handler("first")
def first(ctx):
    ran()
'''

HUEY_APP = APP.format(setup="from huey import SqliteHuey\nhuey = SqliteHuey(filename='huey.db')") + '''
@huey.task()
def first():
    ran()
'''


def jobhandle_start(folder: Path) -> list[str]:
    (folder / "start_app.py").write_text(JOBHANDLE_APP)
    from jobhandle import JobQueue

    with JobQueue(f"sqlite:///{folder}/jobs.db") as q:
        q.submit("first")
    return [str(Path(sys.executable).with_name("jobhandle")), "worker", "--app", "start_app.py", "--store",
            f"sqlite:///{folder}/jobs.db", "--concurrency", "2"]


def huey_start(folder: Path) -> list[str]:
    (folder / "huey_start_app.py").write_text(HUEY_APP)
    subprocess.run([sys.executable, "-c", "import huey_start_app; huey_start_app.first()"], cwd=folder,
                   check=True, env={**os.environ, "PYTHONPATH": str(folder)})
    return [str(Path(sys.executable).with_name("huey_consumer")), "huey_start_app.huey", "-w", "2", "-k",
            "process"]


SYSTEMS: dict[str, Callable[[Path], list[str]]] = {"jobhandle-sqlite": jobhandle_start, "huey-sqlite": huey_start}


def first_job_ms(prepare: Callable[[Path], list[str]], timeout: float = 30.0) -> float:
    with TemporaryDirectory() as tmp:
        folder = Path(tmp)
        argv = prepare(folder)
        started = time.time()
        proc = subprocess.Popen(argv, cwd=folder, env={**os.environ, "PYTHONPATH": str(folder)},
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
        try:
            deadline = time.monotonic() + timeout
            while not (folder / "ran").exists():
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise SystemExit(f"{argv[0]} ran no job (exit code {proc.poll()})")
                time.sleep(0.001)
            return 1000 * (float((folder / "ran").read_text()) - started)
        finally:
            proc.terminate()
            proc.wait(30)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--starts", type=int, default=7)
    p.add_argument("--output", type=Path, default=RESULTS / "worker_start_latest.json")
    args = p.parse_args(argv)
    compile_jobhandle()
    times: dict[str, list[float]] = {name: [] for name in SYSTEMS}
    for i in range(args.starts):
        for name in SYSTEMS if i % 2 == 0 else reversed(list(SYSTEMS)):
            times[name].append(first_job_ms(SYSTEMS[name]))
    medians = {name: round(statistics.median(t)) for name, t in times.items()}
    log(f"first job after the worker's start, ms (median of {args.starts}): {medians}")
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps({"raw_ms": times, "median_ms": medians}, indent=2) + "\n")
    print("| system | first job ms (median) | all |\n| --- | ---: | --- |")
    for name, t in times.items():
        print(f"| {name} | {medians[name]} | {', '.join(str(round(x)) for x in sorted(t))} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
