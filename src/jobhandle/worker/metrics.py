"""A worker's own Prometheus metrics (``jobhandle worker --metrics-port``): how long each store call takes and
how often it fails, and the worker's slots. The API server's ``/metrics`` counts jobs for every worker; these
say how this process meets its store, which only it can measure."""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry, Counter, Histogram, start_http_server
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

if TYPE_CHECKING:
    from .worker import Worker

CALL_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, float("inf"))


class WorkerMetrics:
    """One worker's registry; ``observe`` is what WorkerStore calls after each store call."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.calls = Histogram("jobhandle_worker_store_call_seconds", "How long this worker's store calls take",
                               ["primitive"], buckets=CALL_BUCKETS, registry=self.registry)
        self.errors = Counter("jobhandle_worker_store_errors", "This worker's store calls that raised",
                              ["primitive"], registry=self.registry)

    def observe(self, primitive: str, seconds: float, failed: bool) -> None:
        self.calls.labels(primitive).observe(seconds)
        if failed:
            self.errors.labels(primitive).inc()

    def watch(self, worker: Worker) -> None:
        self.registry.register(_SlotCollector(worker))

    def serve(self, port: int, host: str = "127.0.0.1") -> None:
        """Serve ``/metrics`` on ``host:port`` from a daemon thread (it ends with the process)."""
        start_http_server(port, addr=host, registry=self.registry)


class _SlotCollector(Collector):
    def __init__(self, worker: Worker) -> None:
        self.worker = worker

    def collect(self) -> Iterator[GaugeMetricFamily]:
        w = self.worker
        yield GaugeMetricFamily("jobhandle_worker_slots", "This worker's slots", value=w.concurrency)
        yield GaugeMetricFamily("jobhandle_worker_slots_busy", "This worker's slots running a job now",
                                value=len(w.running.ids()))
        yield GaugeMetricFamily("jobhandle_worker_buffered_jobs", "Jobs this worker claimed and has not started",
                                value=len(w.buffer.ids()))
        yield GaugeMetricFamily("jobhandle_worker_paused", "1 while claiming is paused (resources over threshold)",
                                value=0 if w.claiming.is_set() else 1)
