"""Fixtures of the dashboard's browser tests: Debian's Chromium driven by Playwright, and a live server.

Chromium is ``/usr/bin/chromium`` (or ``JOBHANDLE_CHROMIUM``); without it the tests are skipped with the
reason printed, or fail when ``JOBHANDLE_REQUIRE_BROWSER=1`` (as in CI, which installs it).
"""

from __future__ import annotations

import os
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).parent.parent / "api"))
from api_helpers import LiveServer  # noqa: E402

from jobhandle import HandlerRegistry, JobContext, JobQueue, Settings  # noqa: E402
from jobhandle.api import create_app  # noqa: E402

CHROMIUM = os.environ.get("JOBHANDLE_CHROMIUM", "/usr/bin/chromium")
DEADLINE_MS = 10_000
"""How long a browser assertion waits for the page to show what it expects."""


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """One headless Chromium per test module (each test gets its own context: cookies and storage). Not for
    the session: Playwright's sync API holds an event loop on the main thread while it runs, which would stop
    later tests from calling asyncio.run."""
    reason = None
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        reason = "playwright is not installed (pip install -e '.[dev]')"
    if reason is None and not os.access(CHROMIUM, os.X_OK):
        reason = f"no Chromium at {CHROMIUM} (apt-get install chromium, or set JOBHANDLE_CHROMIUM)"
    if reason is not None:
        if os.environ.get("JOBHANDLE_REQUIRE_BROWSER") == "1":
            pytest.fail(reason + " (JOBHANDLE_REQUIRE_BROWSER=1)")
        pytest.skip(reason)
    with sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=CHROMIUM, headless=True,
                                     args=["--no-sandbox", "--disable-background-networking",
                                           "--disable-dev-shm-usage"])
        yield chromium
        chromium.close()


class Stepper:
    """A handler that advances one progress step each time the test calls ``step()``, then returns."""

    def __init__(self, registry: HandlerRegistry) -> None:
        self.permits = threading.Semaphore(0)
        self.stop = threading.Event()
        registry.register("steps", self.run)

    def run(self, ctx: JobContext, steps: int = 4) -> dict[str, int]:
        for n in range(1, steps + 1):
            while not self.permits.acquire(timeout=0.05):
                if self.stop.is_set():
                    raise TimeoutError("the test ended before the last step")
                ctx.check_cancelled()
            ctx.progress(n / steps, f"stage {n} of {steps}")
        return {"steps": steps}

    def step(self, times: int = 1) -> None:
        for _ in range(times):
            self.permits.release()


class Dashboard:
    """A live server (uvicorn, real HTTP) on a fresh store, with a worker, and the queue behind it."""

    def __init__(self, queue: JobQueue, server: LiveServer, stepper: Stepper) -> None:
        self.queue = queue
        self.server = server
        self.url = server.url
        self.stepper = stepper


@pytest.fixture
def make_dashboard(tmp_path: Path, registry: HandlerRegistry,
                   settings: Settings) -> Iterator[Callable[..., Dashboard]]:
    """``make_dashboard(store_url=None, worker=True, **settings)``: a started Dashboard."""
    stack: list[Callable[[], None]] = []
    stepper = Stepper(registry)
    registry.register("echo", lambda ctx, **params: params)

    def boom(ctx: JobContext, message: str = "it broke", **ignored: Any) -> None:
        raise RuntimeError(message)

    registry.register("boom", boom)

    def make(store_url: str | None = None, worker: bool = True, **overrides: Any) -> Dashboard:
        merged = settings.replace(max_retries=0, **overrides)
        queue = JobQueue(store_url or f"sqlite:///{tmp_path}/jobs.db", registry=registry, settings=merged)
        stack.append(queue.close)
        server = LiveServer(create_app(queue, merged))
        server.__enter__()
        stack.append(lambda: server.__exit__(None, None, None))
        if worker:
            w = queue.worker(concurrency=4, name="browser-worker")
            w.start()
            stack.append(lambda: w.stop(2))
        return Dashboard(queue, server, stepper)

    try:
        yield make
    finally:
        stepper.stop.set()
        for undo in reversed(stack):
            undo()


@pytest.fixture
def new_page(browser: Any) -> Iterator[Callable[..., Any]]:
    """``new_page(dashboard)``: a page in a fresh browser context that records every request it makes."""
    contexts: list[Any] = []

    def make(color_scheme: str = "light") -> Any:
        context = browser.new_context(color_scheme=color_scheme, viewport={"width": 1360, "height": 900})
        context.set_default_timeout(DEADLINE_MS)
        contexts.append(context)
        page = context.new_page()
        page.requests_seen = []  # type: ignore[attr-defined]
        page.console_errors = []  # type: ignore[attr-defined]
        page.on("request", lambda request: page.requests_seen.append(request.url))
        page.on("console", lambda msg: msg.type == "error" and page.console_errors.append(msg.text))
        page.on("pageerror", lambda exc: page.console_errors.append(str(exc)))
        return page

    try:
        yield make
    finally:
        for context in contexts:
            context.close()
