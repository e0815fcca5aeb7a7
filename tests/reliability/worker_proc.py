"""A worker process for the reliability tests: ``python worker_proc.py STORE_URL CONCURRENCY [GRACE]``.

Prints ``ready <worker_id>`` once registered; on SIGTERM stops with the given grace, then prints ``stopped``.
"""

from __future__ import annotations

import signal
import sys
import threading
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
import proc_handlers  # noqa: E402,F401  (registers the handlers)

from jobhandle import JobQueue  # noqa: E402


def main() -> None:
    url, concurrency = sys.argv[1], int(sys.argv[2])
    grace = float(sys.argv[3]) if len(sys.argv) > 3 else None
    queue = JobQueue(url)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    worker = queue.worker(concurrency).start()
    print("ready", worker.worker_id, flush=True)
    stop.wait()
    worker.stop(grace)
    queue.close()
    print("stopped", flush=True)


if __name__ == "__main__":
    main()
