"""Two scheduler processes on one store: every fire of every schedule enqueues exactly one job."""

from __future__ import annotations

import subprocess
import sys
from collections import Counter
from datetime import datetime, timezone
from pathlib import Path

import pytest

from jobhandle import JobQueue
from jobhandle.cron import next_fire
from jobhandle.models import Schedule

pytestmark = pytest.mark.slow

SCHEDULER = Path(__file__).parent / "schedule_proc.py"
T0 = datetime(2026, 1, 5, 8, 59, 30, tzinfo=timezone.utc)
STEPS = 120


def test_two_scheduler_processes_enqueue_each_fire_once(queue: JobQueue, db_url: str, tmp_path: Path) -> None:
    schedules = []
    for expression in ("* * * * *", "*/2 * * * *", "*/5 * * * *"):
        schedule = Schedule(job_type="tick", cron_expression=expression, created_at=T0,
                            next_fire_at=next_fire(expression, "UTC", T0))
        schedules.append(queue.store.create_schedule(schedule, T0)[0])
    go = tmp_path / "go"
    procs = [subprocess.Popen([sys.executable, str(SCHEDULER), db_url, str(T0.timestamp()), str(STEPS), str(go)],
                              stdout=subprocess.PIPE, text=True) for _ in range(2)]
    try:
        for proc in procs:
            assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
        go.touch()
        created = [int(proc.communicate(timeout=120)[0].strip()) for proc in procs]
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()

    jobs = queue.list(limit=10_000)
    keys = Counter(job.idempotency_key for job in jobs)
    assert max(keys.values()) == 1, "a fire enqueued twice"
    last_advance = T0.timestamp() + 60 * (STEPS - 1) + 1
    for schedule in schedules:
        times = sorted(j.scheduled_time for j in jobs if j.schedule_id == schedule.schedule_id)
        expected = [schedule.next_fire_at]
        while expected[-1].timestamp() <= last_advance:  # every fire passed, then the upcoming one
            expected.append(next_fire(schedule.cron_expression, "UTC", expected[-1]))
        assert times == expected, schedule.cron_expression
    assert sum(created) == len(jobs) - len(schedules), created
