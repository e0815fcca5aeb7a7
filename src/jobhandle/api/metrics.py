"""Prometheus metrics for ``GET /metrics``.

Two sources, so jobs run by any worker process count, not only this server's:

- the store's transition-maintained counters, read at scrape time: jobs by status and type (queue depth),
  registered and active workers;
- the change feed (the hub hands every change to ``observe``): submissions, completions, failures,
  cancellations and retries by job type and queue, wait and run durations. These count from the server's
  start, as Prometheus counters do; a job is counted as submitted when its first change after the start is
  seen and it was created after the start.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Iterator, Sequence

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from ..analytics import waited
from ..health import oldest_pending_wait
from ..models import ALL_STATUSES, Job, JobStatus, utcnow
from ..queue import JobQueue

DURATION_BUCKETS = (0.01, 0.05, 0.1, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600, float("inf"))
RETRIED_STATES = (JobStatus.RETRYING, JobStatus.PENDING, JobStatus.SCHEDULED)
"""A job in these with N attempts made had all N retried (a released job's attempt is not counted)."""
SEEN_LIMIT = 100_000
"""Job ids remembered to count each submission once (a bound on memory, not on correctness in practice)."""


class _StoreCollector(Collector):
    """Gauges read from the store at scrape time: its counters, the workers table, and per queue with pending
    jobs one index seek for the oldest one (no table scans)."""

    def __init__(self, queue: JobQueue) -> None:
        self.queue = queue

    def collect(self) -> Iterator[GaugeMetricFamily]:
        started = time.perf_counter()
        counts = self.queue.store.counts()
        depth = GaugeMetricFamily("jobhandle_queue_depth", "Jobs in each status now", labels=["status"])
        for status in ALL_STATUSES:
            depth.add_metric([status.value], counts.by_status.get(status.value, 0))
        yield depth
        per_queue = GaugeMetricFamily("jobhandle_queue_jobs", "Jobs now, by queue and status",
                                      labels=["queue", "status"])
        oldest = GaugeMetricFamily("jobhandle_oldest_pending_age_seconds",
                                   "How long each queue's pending job created first has waited since it was due "
                                   "(0: none pending); the signal to scale workers on", labels=["queue"])
        now = utcnow()
        for queue_name, statuses in sorted(counts.by_queue.items()):
            for status in ALL_STATUSES:
                per_queue.add_metric([queue_name, status.value], statuses.get(status.value, 0))
            waited = oldest_pending_wait(self.queue, now, queue_name) if statuses.get("pending") else None
            oldest.add_metric([queue_name], waited or 0.0)
        yield per_queue
        yield oldest
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
        yield GaugeMetricFamily("jobhandle_worker_slots_busy", "Jobs claimed by workers now (running or buffered)",
                                value=counts.by_status.get("running", 0))
        yield GaugeMetricFamily("jobhandle_store_scrape_seconds", "How long this scrape's store reads took",
                                value=time.perf_counter() - started)


class ApiMetrics:
    """This server's Prometheus registry (one per app, so several apps in one process do not collide)."""

    def __init__(self, queue: JobQueue) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.started_at = utcnow()
        self.submitted = Counter("jobhandle_jobs_submitted", "Jobs submitted (seen on the change feed)",
                                 ["job_type", "queue"], registry=self.registry)
        self.finished = Counter("jobhandle_jobs_finished", "Jobs that reached a terminal status",
                                ["job_type", "queue", "status"], registry=self.registry)
        self.retried = Counter("jobhandle_jobs_retried", "Attempts that failed and will be retried",
                               ["job_type", "queue"], registry=self.registry)
        self.duration = Histogram("jobhandle_job_duration_seconds", "Run time of the last attempt of finished jobs",
                                  ["job_type", "status"], buckets=DURATION_BUCKETS, registry=self.registry)
        self.wait = Histogram("jobhandle_job_wait_seconds", "How long attempts waited from due to started",
                              ["job_type", "queue"], buckets=DURATION_BUCKETS, registry=self.registry)
        self.registry.register(_StoreCollector(queue))
        self._seen: OrderedDict[str, None] = OrderedDict()
        self._attempts: OrderedDict[tuple[str, int, str], None] = OrderedDict()  # (job, attempt, what) counted
        self._retries: OrderedDict[str, int] = OrderedDict()  # job -> retries counted
        self._lock = threading.Lock()

    def _first_time(self, key: tuple[str, int, str]) -> bool:
        if key in self._attempts:
            return False
        self._attempts[key] = None
        if len(self._attempts) > SEEN_LIMIT:
            self._attempts.popitem(last=False)
        return True

    def observe(self, jobs: Sequence[Job]) -> None:
        """Count a batch of changes from the feed (called by the change hub's thread)."""
        with self._lock:
            for job in jobs:
                if job.job_id not in self._seen:
                    self._seen[job.job_id] = None
                    if len(self._seen) > SEEN_LIMIT:
                        self._seen.popitem(last=False)
                    if job.created_at >= self.started_at:
                        self.submitted.labels(job.job_type, job.queue).inc()
                # The feed hands over a job's latest state: a short job may first be seen finished, a quick
                # retry already running again. Each attempt's start is counted once whenever it is first seen,
                # and the retries a job's attempt count implies.
                if job.started_at is not None and job.attempts and \
                        self._first_time((job.job_id, job.attempts, "started")):
                    self.wait.labels(job.job_type, job.queue).observe(max(0.0, waited(job)))
                retries = job.attempts if job.status in RETRIED_STATES else job.attempts - 1
                counted = self._retries.get(job.job_id, 0)
                if retries > counted:
                    self.retried.labels(job.job_type, job.queue).inc(retries - counted)
                    self._retries[job.job_id] = retries
                    if len(self._retries) > SEEN_LIMIT:
                        self._retries.popitem(last=False)
                if job.status.is_terminal:
                    self.finished.labels(job.job_type, job.queue, job.status.value).inc()
                    took = job.metrics.execution_time_seconds
                    if took is not None and job.status is not JobStatus.CANCELLED:
                        self.duration.labels(job.job_type, job.status.value).observe(took)

    def render(self) -> bytes:
        return generate_latest(self.registry)
