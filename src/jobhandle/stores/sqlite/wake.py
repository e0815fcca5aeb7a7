"""Cross-process wake-ups for one SQLite database on one host.

Every process that waits for changes binds a Unix datagram socket in a directory named after the database
(under the temp dir); every process that commits sends one byte to each socket there. A waiter thus wakes
within microseconds of another process's commit and costs nothing while idle. A socket whose process died
refuses the datagram and is removed by the sender. Where Unix sockets are unavailable, or for writers that do
not notify (another program editing the file), waiters also check ``PRAGMA data_version`` now and then.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import socket
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path

from ...supervise import Supervised

log = logging.getLogger("jobhandle.store")

SUPPORTED = hasattr(socket, "AF_UNIX")


def wake_dir(db_path: str) -> Path:
    digest = hashlib.sha1(os.path.abspath(db_path).encode()).hexdigest()[:16]
    return Path(tempfile.gettempdir()) / f"jobhandle-wake-{digest}"


LISTING_SETTLED_NS = 2_000_000_000
"""A listing of the wake directory read this long after its last change is reused while it stays unchanged:
the directory's modification time then tells of any later change, whatever its file system's clock tick."""


class Notifier:
    """The sending side: after a commit, tell every listening process of this database."""

    def __init__(self, db_path: str) -> None:
        self._dir = wake_dir(db_path)
        self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) if SUPPORTED else None
        if self._sock is not None:
            self._sock.setblocking(False)
        self._listing: tuple[int, int, list[str]] = (-1, -1, [])  # (dir mtime, read at, socket paths)

    def notify(self, own: str | None) -> None:
        if self._sock is None:
            return
        for path in self._listeners():
            if path == own:
                continue
            try:
                self._sock.sendto(b"!", path)
            except BlockingIOError:
                pass  # its queue is full: it has wake-ups pending already
            except (ConnectionRefusedError, FileNotFoundError):
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(path)  # its process is gone
            except OSError:
                pass  # e.g. a foreign file in the directory: never let a wake-up fail a commit

    def _listeners(self) -> list[str]:
        """The listening sockets' paths. Reading the directory costs a commit ~50 us on a cold CPU (it is on
        the pickup path); while the directory is unchanged, one stat shows that the last listing still holds."""
        try:
            mtime = os.stat(self._dir).st_mtime_ns
        except FileNotFoundError:
            return []
        listed_mtime, listed_at, paths = self._listing
        if mtime == listed_mtime and listed_at - mtime >= LISTING_SETTLED_NS:
            return paths
        listed_at = time.time_ns()
        try:
            paths = [entry.path for entry in os.scandir(self._dir)]
        except FileNotFoundError:
            return []
        self._listing = (mtime, listed_at, paths)  # one assignment: commits of other threads may read it
        return paths

    def close(self) -> None:
        if self._sock is not None:
            self._sock.close()


class Listener:
    """The receiving side: a supervised thread that calls ``on_wake`` when another process committed.

    ``check`` is the fallback (PRAGMA data_version) run every ``fallback_interval`` seconds without wake-ups.
    A failure (the socket gone, an error in ``check``) is logged, and the listener starts again with a new
    socket after a pause, waking the waiters once (commits may have gone unheard meanwhile); ``health`` says so.
    """

    def __init__(self, db_path: str, on_wake: Callable[[], None], check: Callable[[], bool],
                 fallback_interval: float) -> None:
        self._on_wake = on_wake
        self._check = check
        self._interval = fallback_interval
        self._closed = threading.Event()
        self._dir = wake_dir(db_path)
        self.path: str | None = None
        self._sock: socket.socket | None = None
        self._restarts = 0
        self._bind()
        self.loop = Supervised("sqlite-wake", self._serve, stopping=self._closed, log=log)
        self.loop.start()

    def _bind(self) -> None:
        """A new socket in the wake directory (the previous one, if any, closed and removed)."""
        self._unbind()
        if not SUPPORTED:
            return
        path = str(self._dir / f"{os.getpid()}-{uuid.uuid4().hex[:8]}")
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        for attempt in range(3):  # the last listener of another process may remove the folder meanwhile
            self._dir.mkdir(mode=0o700, exist_ok=True)
            try:
                sock.bind(path)
                break
            except FileNotFoundError:
                if attempt == 2:
                    sock.close()
                    raise
        sock.settimeout(self._interval)
        self._sock, self.path = sock, path

    def _unbind(self) -> None:
        sock, path, self._sock, self.path = self._sock, self.path, None, None
        if path:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(path)
        if sock is not None:
            sock.close()

    def _serve(self) -> None:
        if self._restarts:
            self._bind()
            self._on_wake()  # commits made while nobody listened were not heard
        self._restarts += 1
        while not self._closed.is_set():
            woken = False
            if self._sock is not None:
                try:
                    self._sock.recv(16)
                    woken = True
                    self._drain()
                except (TimeoutError, socket.timeout):
                    pass
                except OSError:
                    if self._closed.is_set():
                        return
                    raise
            elif self._closed.wait(self._interval):
                return
            if woken or self._check():
                self._on_wake()
            self.loop.ok()

    def _drain(self) -> None:
        assert self._sock is not None
        self._sock.setblocking(False)
        try:
            while True:
                self._sock.recv(16)
        except BlockingIOError:
            pass
        finally:
            self._sock.settimeout(self._interval)

    def close(self) -> None:
        self._closed.set()
        sock = self._sock
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.sendto(b"", sock.getsockname())
        self.loop.join(timeout=2)
        self._unbind()
        with contextlib.suppress(OSError):  # not empty: other processes still listen
            self._dir.rmdir()
