"""A jobhandle worker process for the benchmark, equivalent to
``jobhandle worker --app bench/_jobhandle_app.py --store URL --concurrency N``.

``bench/run.py`` uses it only when the ``jobhandle worker`` command is not available. It runs until SIGTERM or
SIGINT, then stops the worker gracefully; it exits 1 if the worker died.
"""

from __future__ import annotations

import argparse
import signal
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import bench._jobhandle_app  # noqa: E402,F401 - registers the handlers
from jobhandle import JobQueue  # noqa: E402

SUPERVISION_INTERVAL = 0.05
"""How often the main thread checks that the worker is still alive while it waits for a signal."""


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--store", required=True, help="store URL, e.g. sqlite:////tmp/jh.db")
    parser.add_argument("--concurrency", type=int, default=2)
    args = parser.parse_args()
    stopped: list[int] = []  # no Event.set in a signal handler: see jobhandle.cli.StopRequest
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda signum, _: stopped.append(signum))
    with JobQueue(args.store) as queue:
        worker = queue.worker(concurrency=args.concurrency).start()
        print(f"worker {worker.worker_id} ready", flush=True)
        while not stopped and not worker.stopping:
            time.sleep(SUPERVISION_INTERVAL)
        worker.stop()
        if worker.failure is not None:
            print(f"worker died: {worker.failure!r}", file=sys.stderr)
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
