"""A scheduler process for the reliability tests: ``python schedule_proc.py STORE_URL T0 STEPS GO_FILE``.

Prints ``ready``, waits for GO_FILE to exist (so that several processes start together), then advances the
schedules at T0 + 60 s * i + 1 s for i in range(STEPS) and prints how many jobs it created.
"""

from __future__ import annotations

import sys
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

from jobhandle import JobQueue


def main() -> None:
    url, t0, steps, go = sys.argv[1], float(sys.argv[2]), int(sys.argv[3]), Path(sys.argv[4])
    queue = JobQueue(url)
    print("ready", flush=True)
    while not go.exists():
        time.sleep(0.001)
    start = datetime.fromtimestamp(t0, timezone.utc)
    created = sum(len(queue.store.advance_schedules(start + timedelta(seconds=60 * i + 1))) for i in range(steps))
    queue.close()
    print(created, flush=True)


if __name__ == "__main__":
    main()
