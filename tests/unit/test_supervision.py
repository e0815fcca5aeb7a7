"""Every background thread is supervised: one that fails is logged, started again after a pause, and visible in
health meanwhile; it never dies silently, leaving waiters and streams without wake-ups."""

from __future__ import annotations

import asyncio
import logging
import socket
import threading
import time
from pathlib import Path
from typing import Any

import pytest
import redis
from helpers import new_job, wait_until

from jobhandle.api.events import ChangeHub
from jobhandle.models import utcnow
from jobhandle.stores import SQLiteStore, Store, open_store
from jobhandle.supervise import Supervised

DEADLINE = 20.0


def woken_by(waiter: Store, writer: Store) -> bool:
    """Whether a change written through ``writer`` wakes a waiter on ``waiter`` (within DEADLINE)."""
    seen = waiter.change_version
    woke = threading.Event()

    def wait() -> None:
        if waiter.wait_for_change(seen, DEADLINE) != seen:
            woke.set()

    thread = threading.Thread(target=wait)
    thread.start()
    writer.submit([new_job()], utcnow())
    thread.join(DEADLINE)
    return woke.is_set()


class BrokenSocket:
    """Stands in for a listener's socket that the operating system broke (its folder removed, say)."""

    def recv(self, size: int) -> bytes:
        raise OSError(9, "Bad file descriptor (injected)")

    def settimeout(self, value: float) -> None: ...

    def setblocking(self, value: bool) -> None: ...

    def getsockname(self) -> str:
        return "/nonexistent"

    def sendto(self, data: bytes, address: str) -> None:
        raise OSError("broken")

    def close(self) -> None: ...


def test_a_sqlite_listener_whose_socket_breaks_listens_again(tmp_path: Path) -> None:
    path = tmp_path / "jobs.db"
    waiter, writer = SQLiteStore(path, poll_interval=30), SQLiteStore(path, poll_interval=30)
    try:
        waiter.wait_for_change(waiter.change_version, 0)  # starts the listener
        listener = waiter._listener
        assert listener is not None
        old_path = listener.path
        listener._sock = BrokenSocket()  # type: ignore[assignment]
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as poke:  # the listener's next recv is the broken one
            poke.sendto(b"!", old_path)
        wait_until(lambda: listener.path not in (None, old_path), DEADLINE, "the listener to bind a new socket")
        assert listener.loop.health().alive
        started = time.monotonic()
        assert woken_by(waiter, writer) and time.monotonic() - started < 5, \
            "another process's commit wakes the waiter again (the fallback poll would take 30 s)"
        wait_until(lambda: all(h.healthy for h in waiter.health()), DEADLINE, "the listener to be healthy again")
    finally:
        writer.close()
        waiter.close()


def test_a_redis_listener_that_gets_an_error_reply_subscribes_again(request: pytest.FixtureRequest,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    from store_urls import redis_url

    url = redis_url(request)
    waiter, writer = open_store(url), open_store(url)
    try:
        waiter.wait_for_change(waiter.change_version, 0)  # subscribes, starts the listener
        failed = threading.Event()
        real = redis.client.PubSub.get_message

        def once_an_error(self: Any, *args: Any, **kwargs: Any) -> Any:
            if not failed.is_set():
                failed.set()
                raise redis.ResponseError("ERR an error reply (injected)")
            return real(self, *args, **kwargs)

        monkeypatch.setattr(redis.client.PubSub, "get_message", once_an_error)
        assert failed.wait(DEADLINE)
        wait_until(lambda: any(h.failures for h in waiter.health()) or all(h.healthy for h in waiter.health()),
                   DEADLINE, "the failure to be seen")
        started = time.monotonic()
        assert woken_by(waiter, writer) and time.monotonic() - started < 5
        assert all(h.alive for h in waiter.health())
    finally:
        writer.close()
        waiter.close()


def test_the_api_change_hub_survives_a_store_error_and_keeps_feeding_subscribers(tmp_path: Path) -> None:
    store = open_store(f"sqlite:///{tmp_path}/jobs.db")
    failures = [0]
    real = type(store).change_version

    class Flaky(type(store)):  # type: ignore[misc]
        @property
        def change_version(self) -> int:
            if failures[0] < 2:
                failures[0] += 1
                raise RuntimeError("change_version exploded (injected)")
            return real.fget(self)  # type: ignore[no-any-return]

    store.__class__ = Flaky
    hub = ChangeHub(store)

    async def follow() -> str:
        hub.start()
        sub = hub.subscribe()
        job = await asyncio.to_thread(lambda: store.submit([new_job()], utcnow())[0])
        while True:
            change = await asyncio.wait_for(sub.queue.get(), DEADLINE)
            if change.job_id == job.job_id:
                return change.job_id

    try:
        assert asyncio.run(follow())
        assert failures[0] == 2 and hub.running
        health = hub.health()
        assert health is not None and health.healthy
    finally:
        hub.stop()
        store.close()


def test_a_supervised_loop_is_logged_restarted_and_reports_its_failures(caplog: pytest.LogCaptureFixture) -> None:
    stopping = threading.Event()
    runs = []

    def loop() -> None:
        runs.append(1)
        if len(runs) < 3:
            raise ValueError(f"run {len(runs)} failed")
        supervised.ok()
        stopping.wait(DEADLINE)

    supervised = Supervised("test-loop", loop, stopping=stopping, log=logging.getLogger("test"), first_pause=0.01)
    supervised.start()
    try:
        wait_until(lambda: len(runs) == 3, DEADLINE, "two restarts")
        wait_until(lambda: supervised.health().healthy, DEADLINE, "the loop to report it works")
        messages = [r.getMessage() for r in caplog.records]
        assert any("test-loop failed: ValueError('run 1 failed')" in m for m in messages)
        assert any("works again after 2 failure(s)" in m for m in messages)
    finally:
        stopping.set()
        supervised.join(DEADLINE)
    assert not supervised.health().alive
