"""A worker's own Prometheus metrics (``jobhandle worker --metrics-port``): how long each store call takes and
how often it fails, and the worker's slots. The API server's ``/metrics`` counts jobs for every worker; these
say how this process meets its store, which only it can measure.

The figures are kept here in plain counters from the worker's start; prometheus_client is imported only when
they are served or read (``registry``), so a worker that does not serve them does not pay for its import."""

from __future__ import annotations

import bisect
import threading
from collections.abc import Iterator
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from prometheus_client import CollectorRegistry
    from prometheus_client.metrics_core import Metric

    from .worker import Worker

CALL_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, float("inf"))


class _Timings:
    """One primitive's calls: a count per bucket (not cumulative), their total seconds, and failures."""

    __slots__ = ("counts", "failed", "seconds")

    def __init__(self) -> None:
        self.counts = [0] * len(CALL_BUCKETS)
        self.seconds = 0.0
        self.failed = 0


class WorkerMetrics:
    """One worker's figures; ``observe`` is what WorkerStore calls after each store call."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._calls: dict[str, _Timings] = {}
        self._worker: Worker | None = None
        self._registry: CollectorRegistry | None = None

    def observe(self, primitive: str, seconds: float, failed: bool) -> None:
        with self._lock:
            timings = self._calls.get(primitive)
            if timings is None:
                timings = self._calls[primitive] = _Timings()
            timings.counts[bisect.bisect_left(CALL_BUCKETS, seconds)] += 1  # a bucket holds values <= its bound
            timings.seconds += seconds
            timings.failed += failed

    def watch(self, worker: Worker) -> None:
        self._worker = worker

    @property
    def registry(self) -> CollectorRegistry:
        """A Prometheus registry that reads these figures when collected."""
        if self._registry is None:
            from prometheus_client import CollectorRegistry

            self._registry = CollectorRegistry(auto_describe=True)
            self._registry.register(self)  # collected through ``collect``
        return self._registry

    def serve(self, port: int, host: str = "127.0.0.1") -> None:
        """Serve ``/metrics`` on ``host:port`` from a daemon thread (it ends with the process)."""
        from prometheus_client import start_http_server

        start_http_server(port, addr=host, registry=self.registry)

    def collect(self) -> Iterator[Metric]:
        from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily
        from prometheus_client.utils import floatToGoString

        calls = HistogramMetricFamily("jobhandle_worker_store_call_seconds", "How long this worker's store calls take",
                                      labels=["primitive"])
        errors = CounterMetricFamily("jobhandle_worker_store_errors", "This worker's store calls that raised",
                                     labels=["primitive"])
        with self._lock:
            snapshot = {name: (list(t.counts), t.seconds, t.failed) for name, t in self._calls.items()}
        for name, (counts, seconds, failed) in sorted(snapshot.items()):
            cumulative, total = [], 0
            for bound, count in zip(CALL_BUCKETS, counts, strict=True):
                total += count
                cumulative.append((floatToGoString(bound), total))
            calls.add_metric([name], cumulative, seconds)
            if failed:
                errors.add_metric([name], failed)
        yield calls
        yield errors
        w = self._worker
        if w is None:
            return
        yield GaugeMetricFamily("jobhandle_worker_slots", "This worker's slots", value=w.concurrency)
        yield GaugeMetricFamily("jobhandle_worker_slots_busy", "This worker's slots running a job now",
                                value=len(w.running.ids()))
        yield GaugeMetricFamily("jobhandle_worker_buffered_jobs", "Jobs this worker claimed and has not started",
                                value=len(w.buffer.ids()))
        yield GaugeMetricFamily("jobhandle_worker_paused", "1 while claiming is paused (resources over threshold)",
                                value=0 if w.claiming.is_set() else 1)

