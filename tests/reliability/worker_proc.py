"""A worker process for the reliability tests: ``python worker_proc.py STORE_URL CONCURRENCY [GRACE]``.

Prints ``ready <worker_id>`` once registered; on SIGTERM stops with the given grace, then prints ``stopped``.
"""

from __future__ import annotations

import faulthandler
import signal
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
import proc_handlers  # noqa: E402,F401  (registers the handlers)

from jobhandle import JobQueue  # noqa: E402


def main() -> None:
    faulthandler.register(signal.SIGUSR1)  # the tests ask for every thread's stack when a worker hangs
    url, concurrency = sys.argv[1], int(sys.argv[2])
    grace = float(sys.argv[3]) if len(sys.argv) > 3 else None
    queue = JobQueue(url)
    stopped: list[int] = []
    # The handler takes no lock (an Event.set there can deadlock with the main thread's own Event.wait: see
    # jobhandle.cli.StopRequest); the main thread looks for the signal between short sleeps.
    signal.signal(signal.SIGTERM, lambda signum, _: stopped.append(signum))
    worker = queue.worker(concurrency).start()
    print("ready", worker.worker_id, flush=True)
    while not stopped:
        time.sleep(0.05)
    worker.stop(grace)
    queue.close()
    print("stopped", flush=True)


if __name__ == "__main__":
    main()
