"""Prometheus metrics for ``GET /metrics``.

Two sources, so jobs run by any worker process count, not only this server's:

- the store's transition-maintained counters, read at scrape time: jobs by status and type (queue depth),
  registered and active workers;
- the change feed (the hub hands every change to ``observe``): submissions, completions, failures and
  cancellations by job type, and run durations. These count from the server's start, as Prometheus counters
  do; a job is counted as submitted when its first change after the start is seen and it was created after
  the start.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Iterator, Sequence

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from ..models import ALL_STATUSES, Job, JobStatus, utcnow
from ..queue import JobQueue

DURATION_BUCKETS = (0.01, 0.05, 0.1, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600, float("inf"))
SEEN_LIMIT = 100_000
"""Job ids remembered to count each submission once (a bound on memory, not on correctness in practice)."""


class _StoreCollector(Collector):
    """Gauges read from the store's counters at scrape time (no table scans)."""

    def __init__(self, queue: JobQueue) -> None:
        self.queue = queue

    def collect(self) -> Iterator[GaugeMetricFamily]:
        counts = self.queue.store.counts()
        depth = GaugeMetricFamily("jobhandle_queue_depth", "Jobs in each status now", labels=["status"])
        for status in ALL_STATUSES:
            depth.add_metric([status.value], counts.by_status.get(status.value, 0))
        yield depth
        by_type = GaugeMetricFamily("jobhandle_jobs", "Jobs now, by type and status", labels=["job_type", "status"])
        for job_type, statuses in sorted(counts.by_type.items()):
            for status_name, n in sorted(statuses.items()):
                by_type.add_metric([job_type, status_name], n)
        yield by_type
        workers = self.queue.workers()
        yield GaugeMetricFamily("jobhandle_workers", "Registered workers", value=len(workers))
        yield GaugeMetricFamily("jobhandle_active_workers", "Workers whose heartbeat is recent",
                                value=sum(1 for w in workers if w["healthy"]))
        yield GaugeMetricFamily("jobhandle_worker_slots", "Job slots of the active workers",
                                value=sum(w["concurrency"] for w in workers if w["healthy"]))


class ApiMetrics:
    """This server's Prometheus registry (one per app, so several apps in one process do not collide)."""

    def __init__(self, queue: JobQueue) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.started_at = utcnow()
        self.submitted = Counter("jobhandle_jobs_submitted", "Jobs submitted (seen on the change feed)",
                                 ["job_type"], registry=self.registry)
        self.finished = Counter("jobhandle_jobs_finished", "Jobs that reached a terminal status",
                                ["job_type", "status"], registry=self.registry)
        self.duration = Histogram("jobhandle_job_duration_seconds", "Run time of the last attempt of finished jobs",
                                  ["job_type", "status"], buckets=DURATION_BUCKETS, registry=self.registry)
        self.registry.register(_StoreCollector(queue))
        self._seen: OrderedDict[str, None] = OrderedDict()
        self._lock = threading.Lock()

    def observe(self, jobs: Sequence[Job]) -> None:
        """Count a batch of changes from the feed (called by the change hub's thread)."""
        with self._lock:
            for job in jobs:
                if job.job_id not in self._seen:
                    self._seen[job.job_id] = None
                    if len(self._seen) > SEEN_LIMIT:
                        self._seen.popitem(last=False)
                    if job.created_at >= self.started_at:
                        self.submitted.labels(job.job_type).inc()
                if job.status.is_terminal:
                    self.finished.labels(job.job_type, job.status.value).inc()
                    took = job.metrics.execution_time_seconds
                    if took is not None and job.status is not JobStatus.CANCELLED:
                        self.duration.labels(job.job_type, job.status.value).observe(took)

    def render(self) -> bytes:
        return generate_latest(self.registry)
