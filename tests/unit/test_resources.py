"""Resource protection: a worker stops claiming while the machine is over its CPU or memory threshold."""

from __future__ import annotations

from helpers import wait_until

from jobhandle import HandlerRegistry, JobContext, JobQueue, JobStatus
from jobhandle.worker.load import LoadSampler


def test_a_worker_over_its_memory_threshold_claims_nothing_until_back_under(queue: JobQueue,
                                                                          registry: HandlerRegistry) -> None:
    @registry.handler("quick")
    def quick(ctx: JobContext) -> str:
        return "ok"

    worker = queue.worker(1)
    worker.memory_threshold = 0.01  # every machine uses more memory than that
    with worker:
        wait_until(lambda: queue.workers()[0]["state"].startswith("paused (memory"), 10, "the worker to pause")
        stats = queue.stats()
        assert stats["paused_workers"] == 1 and stats["worker_health_status"] == "degraded"
        assert "memory" in stats["resource_alerts"][0]

        job = queue.submit("quick")
        for _ in range(2):  # two more heartbeats, and the job is still waiting
            seen = queue.workers()[0]["last_seen"]
            wait_until(lambda seen=seen: queue.workers()[0]["last_seen"] != seen, 10, "a heartbeat")
        assert queue.get(job.job_id).status is JobStatus.PENDING

        worker.memory_threshold = 100
        assert queue.wait(job.job_id, timeout=10).status is JobStatus.COMPLETED
        wait_until(lambda: queue.workers()[0]["state"] == "running", 10, "the worker to report running")
    assert queue.stats()["resource_alerts"] == []


class BusyMachine(LoadSampler):
    """Other processes use 95% of the CPU (a stand-in for a loaded host: psutil cannot be told what to say)."""

    def sample(self) -> tuple[float, float]:
        return 95.0, 10.0


def test_cpu_used_by_other_work_pauses_claiming(queue: JobQueue) -> None:
    worker = queue.worker(1)
    worker.cpu_threshold = 80
    worker.load = BusyMachine()
    with worker:
        wait_until(lambda: queue.workers()[0]["state"] == "paused (cpu used by other work 95% > 80%)", 10,
                   "the worker to pause for the CPU")


def test_the_load_sampler_reports_percentages() -> None:
    sampler = LoadSampler()
    cpu, memory = sampler.sample()
    assert 0.0 <= cpu <= 100.0 and 0.0 < memory <= 100.0
