"""A worker process for the reliability tests: ``python worker_proc.py STORE_URL CONCURRENCY [GRACE]``.

Prints ``ready <worker_id>`` once registered; on SIGTERM stops with the given grace, then prints ``stopped``.
"""

from __future__ import annotations

import faulthandler
import signal
import sys
import threading
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
import proc_handlers  # noqa: E402,F401  (registers the handlers)

from jobhandle import JobQueue  # noqa: E402


def main() -> None:
    faulthandler.register(signal.SIGUSR1)  # the tests ask for every thread's stack when a worker hangs
    url, concurrency = sys.argv[1], int(sys.argv[2])
    grace = float(sys.argv[3]) if len(sys.argv) > 3 else None
    queue = JobQueue(url)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    worker = queue.worker(concurrency).start()
    print("ready", worker.worker_id, flush=True)
    # Wait with a timeout: a signal may land in another thread, and Python runs handlers only when the main
    # thread executes bytecode, which an untimed wait never lets it do (the CLI's worker loop does the same).
    while not stop.wait(0.2):
        pass
    worker.stop(grace)
    queue.close()
    print("stopped", flush=True)


if __name__ == "__main__":
    main()
