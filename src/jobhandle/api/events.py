"""The change hub: one thread per app follows the store's change feed and fans changes out to asyncio clients.

SSE streams and long-polls never re-read a job in a loop. The hub blocks in ``store.wait_for_change``
(woken by commits in this process, and by other processes' commits through the store's cross-process
wake-up), reads ``changes_since(last_seq)`` once per wake-up and hands each changed Job to the subscribers
it concerns, through their own asyncio queues (``loop.call_soon_threadsafe``). An idle subscriber costs a
queue and a dict entry, so one server holds many idle streams cheaply.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Callable, Sequence

from ..errors import StoreUnavailableError
from ..models import Job
from ..stores import Store
from ..supervise import LoopHealth, Supervised

log = logging.getLogger("jobhandle.api.events")

FEED_BATCH = 500
"""Changes read per ``changes_since`` call."""
WAIT_SECONDS = 1.0
"""Longest sleep between two looks at the feed when nothing wakes the hub (a fallback only)."""
RETRY_MAX_SECONDS = 5.0
"""After a failed read of the feed the hub tries again after 0.5 s, doubling up to this."""
QUEUE_LIMIT = 1000
"""Changes buffered per subscriber; past this the subscriber is marked ``overflowed`` and must resync."""


class Subscription:
    """One client's view of the feed: the changes of one job, or of every job (optionally one user's).

    ``queue`` receives Jobs in change order. When a slow client lets it fill up, further changes are
    dropped and ``overflowed`` is set: the client then catches up from the store (``changes_since``).
    """

    def __init__(self, loop: asyncio.AbstractEventLoop, job_id: str | None, user_id: str | None) -> None:
        self.loop = loop
        self.job_id = job_id
        self.user_id = user_id
        self.queue: asyncio.Queue[Job] = asyncio.Queue(QUEUE_LIMIT)
        self.overflowed = False

    def matches(self, job: Job) -> bool:
        return self.user_id is None or job.user_id == self.user_id

    def _deliver(self, jobs: list[Job]) -> None:
        """Runs on the subscriber's event loop."""
        for job in jobs:
            try:
                self.queue.put_nowait(job)
            except asyncio.QueueFull:
                self.overflowed = True
                return


class ChangeHub:
    """Follows the store's change feed in one background thread; see the module docstring.

    ``on_changes`` (optional) sees every batch of changes first, in the hub's thread (metrics use it).
    """

    def __init__(self, store: Store, on_changes: Callable[[Sequence[Job]], None] | None = None) -> None:
        self.store = store
        self.on_changes = on_changes
        self.last_seq = 0
        self._by_job: dict[str, set[Subscription]] = {}
        self._feeds: set[Subscription] = set()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._loop: Supervised | None = None

    # -- lifecycle ---------------------------------------------------------------------------------------

    def start(self) -> None:
        """Follow the feed from now on (earlier changes are for clients to replay from the store)."""
        self.last_seq = self.store.last_seq()
        self._stop.clear()
        self._loop = Supervised("api-hub", self._run, stopping=self._stop, log=log, max_pause=RETRY_MAX_SECONDS,
                                expected=(StoreUnavailableError,))
        self._loop.start()

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        self.store.wake_waiters()
        if self._loop is not None:
            self._loop.join(timeout)
            self._loop = None

    @property
    def running(self) -> bool:
        return self._loop is not None and self._loop.thread.is_alive()

    def health(self) -> LoopHealth | None:
        """The hub's loop: alive, and failing or not (a store that cannot be read: SSE gets no updates)."""
        return None if self._loop is None else self._loop.health()

    # -- subscribers (called on an event loop) -----------------------------------------------------------

    def subscribe(self, *, job_id: str | None = None, user_id: str | None = None) -> Subscription:
        """Start receiving changes: of ``job_id`` only, or of every job (of ``user_id`` only, if given).

        Subscribe before reading the current state from the store, so no change falls in between.
        """
        sub = Subscription(asyncio.get_running_loop(), job_id, user_id)
        with self._lock:
            if job_id is None:
                self._feeds.add(sub)
            else:
                self._by_job.setdefault(job_id, set()).add(sub)
        return sub

    def unsubscribe(self, sub: Subscription) -> None:
        with self._lock:
            if sub.job_id is None:
                self._feeds.discard(sub)
            else:
                subs = self._by_job.get(sub.job_id)
                if subs is not None:
                    subs.discard(sub)
                    if not subs:
                        del self._by_job[sub.job_id]

    @property
    def subscriber_count(self) -> int:
        with self._lock:
            return len(self._feeds) + sum(len(s) for s in self._by_job.values())

    # -- the hub's thread --------------------------------------------------------------------------------

    def _run(self) -> None:
        """The hub's loop (supervised: a store that fails is read again after a pause, every stream kept)."""
        assert self._loop is not None
        while not self._stop.is_set():
            seen = self.store.change_version  # taken before reading: a change after it wakes the wait
            self._drain()
            self._loop.ok()
            self.store.wait_for_change(seen, WAIT_SECONDS)

    def _drain(self) -> None:
        while not self._stop.is_set():
            jobs = self.store.changes_since(self.last_seq, FEED_BATCH)
            if not jobs:
                return
            self.last_seq = jobs[-1].seq
            if self.on_changes is not None:
                self.on_changes(jobs)
            self._fan_out(jobs)
            if len(jobs) < FEED_BATCH:
                return

    def _fan_out(self, jobs: Sequence[Job]) -> None:
        deliveries: dict[Subscription, list[Job]] = {}
        with self._lock:
            feeds = list(self._feeds)
            for job in jobs:
                for sub in self._by_job.get(job.job_id, ()):
                    deliveries.setdefault(sub, []).append(job)
                for sub in feeds:
                    if sub.matches(job):
                        deliveries.setdefault(sub, []).append(job)
        for sub, batch in deliveries.items():
            try:
                sub.loop.call_soon_threadsafe(sub._deliver, batch)
            except RuntimeError:  # its loop is closed: the client is gone
                self.unsubscribe(sub)
