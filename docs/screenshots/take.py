"""Takes the dashboard screenshots in this folder: ``.venv/bin/python docs/screenshots/take.py``.

A server on a temporary SQLite store with a worker and a few jobs of every kind, each page in light and dark,
in headless Chromium (``/usr/bin/chromium``, or ``JOBHANDLE_CHROMIUM``).
"""

from __future__ import annotations

import os
import random
import socket
import sys
import tempfile
import threading
import time
from datetime import timedelta
from pathlib import Path

from playwright.sync_api import sync_playwright

HERE = Path(__file__).parent
sys.path.insert(0, str(HERE.parent.parent / "tests" / "api"))
sys.path.insert(0, str(HERE.parent.parent / "tests"))
from api_helpers import LiveServer  # noqa: E402

from jobhandle import HandlerRegistry, Job, JobContext, JobQueue, JobStatus, Settings  # noqa: E402
from jobhandle.api import create_app  # noqa: E402
from jobhandle.models import utcnow  # noqa: E402
from jobhandle.stores.base import AttemptKey, ClaimRequest, Outcome, PoolEvent, PoolInfo  # noqa: E402

release = threading.Event()


def past_hour(queue: JobQueue) -> None:
    """An hour of earlier work for the analytics page, run through the store's own primitives at past times
    (queue "archive", so the pages' other examples stay on top)."""
    store, rng = queue.store, random.Random(7)
    start = utcnow() - timedelta(minutes=60)
    for minute in range(60):
        for _ in range(rng.randint(3, 6 + minute % 10)):
            at = start + timedelta(minutes=minute, seconds=rng.uniform(0, 50))
            job_type = rng.choice(["document_processing", "document_processing", "extraction", "ocr"])
            [job] = store.submit([Job(job_type, queue="archive", user_id=rng.choice(["alice", "bob", "carol"]))], at)
            started = at + timedelta(seconds=rng.lognormvariate(-3, 1.2))
            store.claim(ClaimRequest("archive-worker", ("archive",), 1, 60.0), started)
            ran = rng.lognormvariate(-0.7 if job_type != "ocr" else 0.8, 0.6)
            if rng.random() < 0.07:
                error = rng.choice(["TimeoutError", "ValueError", "ConnectionError"])
                outcome = Outcome(JobStatus.FAILED, error=f"{error} while reading", error_type=error,
                                  execution_time_seconds=ran)
            else:
                outcome = Outcome(JobStatus.COMPLETED, result={"ok": True}, execution_time_seconds=ran)
            store.finish(AttemptKey(job.job_id, "archive-worker", 1), outcome, started + timedelta(seconds=ran))


def a_pool(queue: JobQueue) -> None:
    """A pool's registration as `jobhandle pool` writes it, with this process's worker among its workers."""
    now = utcnow()
    events = [PoolEvent(now - timedelta(minutes=12), "scale", "0 -> 1: starting", 1),
              PoolEvent(now - timedelta(minutes=9), "scale", "1 -> 4: 52 jobs for 3 slots, the oldest waiting 4.2s", 4),
              PoolEvent(now - timedelta(minutes=6), "replace", "started images-5 for a worker that died", 4),
              PoolEvent(now - timedelta(minutes=2), "scale", "4 -> 2: 9 of 12 slots spare for 60s, 2 needed at most "
                                                             "in the last 60s", 2)]
    queue.store.record_pool(PoolInfo(
        pool_id="images-web-1", name="images", hostname=socket.gethostname(), pid=4321, queues=["default"],
        concurrency=3, min_workers=1, max_workers=6, workers=2, draining=1, started_at=now - timedelta(minutes=12),
        worker_pids=[os.getpid()], load={"pending": 14, "running": 5, "oldest_wait_seconds": 1.8},
        events=events), now)


def main() -> None:
    registry = HandlerRegistry()

    def parse(ctx: JobContext, document: str = "", pages: int = 40, hold: bool = False) -> dict[str, int]:
        for page in range(1, pages + 1):
            ctx.progress(page / pages, f"parsing page {page} of {pages}", items_processed=page, total_items=pages)
            if page == pages // 2 and hold:
                release.wait(60)
            time.sleep(0.01)
        return {"pages": pages, "chunks": pages * 3}

    def extract(ctx: JobContext, document: str = "") -> None:
        ctx.progress(0.3, "classifying chunks")
        raise ValueError(f"no taxonomy found for {document}")

    registry.register("document_processing", parse)
    registry.register("extraction", extract)
    with tempfile.TemporaryDirectory() as folder:
        settings = Settings(store=f"sqlite:///{folder}/jobs.db", max_retries=0, heartbeat_interval=1,
                            worker_timeout=600, per_user_max_concurrent_jobs=0, global_max_concurrent_jobs=0)
        queue = JobQueue(settings=settings, registry=registry)
        past_hour(queue)
        worker = queue.worker(concurrency=3, name="worker-a").start()
        for n, user in enumerate(["alice", "bob", "carol"] * 4):
            queue.submit("document_processing", {"document": f"report-{n}.pdf", "pages": 20 + n})
            queue.submit("extraction", {"document": f"scan-{n}.pdf"}, user_id=user)
        time.sleep(3)
        running = [queue.submit("document_processing", {"document": f"big-{n}.pdf", "pages": 400, "hold": True},
                                user_id="alice") for n in range(2)]
        queue.submit("extraction", {"document": "big-0.pdf"}, user_id="alice", depends_on=[running[0].job_id])
        for n in range(5):
            queue.submit("document_processing", {"document": f"later-{n}.pdf"}, delay_seconds=3600, queue="batch")
        time.sleep(2)
        a_pool(queue)
        with LiveServer(create_app(queue, settings)) as server, sync_playwright() as p:
            browser = p.chromium.launch(executable_path=os.environ.get("JOBHANDLE_CHROMIUM", "/usr/bin/chromium"),
                                        args=["--no-sandbox", "--disable-background-networking"])
            failed = queue.list(["failed"], limit=1)[0].job_id
            queue.schedule("document_processing", "0 * * * *", {"document": "hourly.pdf"}, name="hourly report")
            queue.schedule("extraction", "*/15 * * * *", {"document": "inbox.pdf"}, name="inbox sweep")
            pages = {"overview": "/", "jobs": "/jobs", "job": f"/jobs/{running[0].job_id}",
                     "failed-job": f"/jobs/{failed}",
                     "failures": "/failures", "analytics": "/analytics?window=1h", "schedules": "/schedules",
                     "submit": "/submit", "workers": "/workers"}
            for scheme in ("light", "dark"):
                context = browser.new_context(color_scheme=scheme, viewport={"width": 1360, "height": 860})
                page = context.new_page()
                for name, path in pages.items():
                    page.goto(server.url + path)
                    page.wait_for_selector('#live[data-state="open"]')
                    page.screenshot(path=str(HERE / f"{name}-{scheme}.png"))
                context.close()
            phone = browser.new_context(viewport={"width": 390, "height": 844}, device_scale_factor=2,
                                        is_mobile=True)
            page = phone.new_page()
            page.goto(server.url + "/")
            page.wait_for_selector('#live[data-state="open"]')
            page.screenshot(path=str(HERE / "overview-phone.png"))
            browser.close()
        release.set()
        worker.stop(5)
        queue.close()


if __name__ == "__main__":
    main()
