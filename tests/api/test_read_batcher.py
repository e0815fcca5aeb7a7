"""The API's read batcher: blocking reads on threads, many per wake-up, a hanging one holding up only itself."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from typing import Any

import pytest

from jobhandle.api.offload import ReadBatcher

DEADLINE = 10.0


def blocker() -> tuple[threading.Event, threading.Event, Callable[[], str]]:
    """A call that says it started, then waits until released."""
    started, release = threading.Event(), threading.Event()

    def call() -> str:
        started.set()
        release.wait(DEADLINE)
        return "slow"
    return started, release, call


async def until(event: threading.Event) -> None:
    assert await asyncio.to_thread(event.wait, DEADLINE), "the call never started"


def test_each_caller_gets_its_own_answer_or_exception() -> None:
    def read(n: int) -> int:
        if n % 3 == 0:
            raise KeyError(n)
        return n * 2

    async def main() -> list[Any]:
        batcher = ReadBatcher()
        try:
            return await asyncio.gather(*(batcher.run(read, n) for n in range(100)), return_exceptions=True)
        finally:
            batcher.close()

    for n, answer in enumerate(asyncio.run(main())):
        if n % 3 == 0:
            assert isinstance(answer, KeyError) and answer.args == (n,)
        else:
            assert answer == n * 2


def test_reads_arriving_while_a_batch_runs_wake_no_other_thread() -> None:
    started, release, slow = blocker()
    threads: list[int] = []

    def read(n: int) -> int:
        threads.append(threading.get_ident())
        return n

    async def main() -> None:
        batcher = ReadBatcher(threads=8, patience=DEADLINE)  # never impatient here
        try:
            first = asyncio.ensure_future(batcher.run(slow))
            await until(started)
            rest = [asyncio.ensure_future(batcher.run(read, n)) for n in range(50)]
            await asyncio.sleep(0)  # let them queue (nothing to wait for: they must wait for the first)
            assert not any(task.done() for task in rest)
            release.set()
            assert await asyncio.wait_for(first, DEADLINE) == "slow"
            assert await asyncio.wait_for(asyncio.gather(*rest), DEADLINE) == list(range(50))
        finally:
            release.set()
            batcher.close()

    asyncio.run(main())
    assert len(threads) == 50 and len(set(threads)) == 1  # all fifty on the thread that ran the first read


def test_a_hanging_read_holds_up_only_itself() -> None:
    started, release, slow = blocker()

    async def main() -> None:
        batcher = ReadBatcher(threads=2, patience=0.05)
        try:
            hanging = asyncio.ensure_future(batcher.run(slow))
            await until(started)
            assert await asyncio.wait_for(batcher.run(lambda: "quick"), DEADLINE / 2) == "quick"
            assert not hanging.done()
            release.set()
            assert await asyncio.wait_for(hanging, DEADLINE) == "slow"
        finally:
            release.set()
            batcher.close()

    asyncio.run(main())


def test_close_fails_waiting_reads_and_a_later_read_starts_afresh() -> None:
    started, release, slow = blocker()

    async def main() -> None:
        batcher = ReadBatcher(threads=1, patience=0.01)  # one thread, so the second read can only wait
        hanging = asyncio.ensure_future(batcher.run(slow))
        await until(started)
        waiting = asyncio.ensure_future(batcher.run(lambda: "never"))
        await asyncio.sleep(0.05)  # past patience: the batcher looks again and still may not start a thread
        assert not waiting.done()
        batcher.close()
        with pytest.raises(RuntimeError, match="stopping"):
            await waiting
        release.set()
        assert await asyncio.wait_for(hanging, DEADLINE) == "slow"
        assert await asyncio.wait_for(batcher.run(lambda: "again"), DEADLINE) == "again"
        batcher.close()

    asyncio.run(main())
