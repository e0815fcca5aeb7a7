"""A worker's own metrics: each store call timed by primitive, failures counted, its slots; served by
``jobhandle worker --metrics-port``."""

from __future__ import annotations

import socket
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest
from helpers import wait_until
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from jobhandle import HandlerRegistry, JobQueue
from jobhandle.errors import StoreError
from jobhandle.worker.guard import named
from jobhandle.worker.metrics import WorkerMetrics


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def test_store_calls_are_timed_by_primitive_and_slots_shown(queue: JobQueue, registry: HandlerRegistry) -> None:
    registry.register("echo", lambda ctx: 1)
    job = queue.submit("echo")
    worker = queue.worker(concurrency=3)
    with worker:
        queue.wait(job.job_id, 10)
        got = samples(generate_latest(worker.metrics.registry).decode())
    assert got[("jobhandle_worker_store_call_seconds_count", (("primitive", "heartbeat"),))] >= 1
    claims = sum(v for (name, labels), v in got.items() if name == "jobhandle_worker_store_call_seconds_count"
                 and dict(labels)["primitive"] in ("claim", "finish_many_and_claim"))
    assert claims >= 1
    assert got[("jobhandle_worker_slots", ())] == 3 and got[("jobhandle_worker_paused", ())] == 0
    assert not [k for k in got if k[0] == "jobhandle_worker_store_call_seconds_count"
                and dict(k[1])["primitive"] == "wait_for_change"], "waits are not store call latency"


def test_a_failing_call_is_timed_and_counted_as_failed() -> None:
    seen: list[tuple[str, bool]] = []

    def broken() -> None:
        raise ValueError("driver says no")

    with pytest.raises(StoreError, match="store.claim failed: ValueError: driver says no"):
        named("claim", broken, lambda primitive, seconds, failed: seen.append((primitive, failed)))()
    assert seen == [("claim", True)]


def test_jobhandle_worker_serves_them_on_its_metrics_port(tmp_path: Path) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    proc = subprocess.Popen([sys.executable, "-m", "jobhandle", "worker", "--store", f"sqlite:///{tmp_path}/j.db",
                             "--metrics-port", str(port)], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                            text=True)
    try:
        assert proc.stdout is not None and "started" in proc.stdout.readline()

        def served() -> dict:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
                return samples(response.read().decode())

        got = wait_until(served, 20, "the worker's metrics")
        assert got[("jobhandle_worker_slots", ())] == 4
        assert got[("jobhandle_worker_store_call_seconds_count", (("primitive", "heartbeat"),))] >= 1
    finally:
        proc.terminate()
        assert proc.wait(30) == 0


def test_a_call_counts_in_every_bucket_from_its_bound_up_and_failures_by_primitive() -> None:
    metrics = WorkerMetrics()
    metrics.observe("claim", 0.001, False)
    metrics.observe("claim", 0.003, True)
    metrics.observe("heartbeat", 7.0, False)
    got = samples(generate_latest(metrics.registry).decode())

    def bucket(primitive: str, le: str) -> float:
        return got[("jobhandle_worker_store_call_seconds_bucket", (("le", le), ("primitive", primitive)))]

    assert [bucket("claim", le) for le in ("0.0005", "0.001", "0.0025", "0.005", "+Inf")] == [0, 1, 1, 2, 2]
    assert got[("jobhandle_worker_store_call_seconds_sum", (("primitive", "claim"),))] == pytest.approx(0.004)
    assert (bucket("heartbeat", "5.0"), bucket("heartbeat", "+Inf")) == (0, 1)
    assert got[("jobhandle_worker_store_errors_total", (("primitive", "claim"),))] == 1
    assert ("jobhandle_worker_store_errors_total", (("primitive", "heartbeat"),)) not in got
