"""Cross-process wake-ups of the SQLite store (stores/sqlite/wake.py)."""

from __future__ import annotations

import os
import socket
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from helpers import new_job

from jobhandle.models import utcnow
from jobhandle.stores import SQLiteStore
from jobhandle.stores.sqlite.wake import SUPPORTED, Notifier, wake_dir

pytestmark = pytest.mark.skipif(not SUPPORTED, reason="no Unix sockets here: waiters rely on the fallback poll")


def test_a_commit_through_another_connection_wakes_a_waiter_without_the_fallback_poll(tmp_path: Path) -> None:
    path = tmp_path / "jobs.db"
    waiter = SQLiteStore(path, poll_interval=30)  # the fallback would take 30 s: only a datagram is quick
    writer = SQLiteStore(path, poll_interval=30)
    try:
        seen = waiter.change_version
        waiter.wait_for_change(seen, 0)  # starts the listener
        seen = waiter.change_version
        woke = threading.Event()

        def wait() -> None:
            if waiter.wait_for_change(seen, 10) != seen:
                woke.set()

        thread = threading.Thread(target=wait)
        thread.start()
        started = time.monotonic()
        writer.submit([new_job()], utcnow())
        thread.join(10)
        assert woke.is_set() and time.monotonic() - started < 2
    finally:
        writer.close()
        waiter.close()


def test_the_last_listener_removes_its_folder(tmp_path: Path) -> None:
    path = tmp_path / "jobs.db"
    store = SQLiteStore(path)
    store.wait_for_change(store.change_version, 0)
    assert wake_dir(str(path)).is_dir()
    store.close()
    assert not wake_dir(str(path)).exists()


def test_a_dead_listeners_socket_is_removed_by_the_next_commit(tmp_path: Path) -> None:
    path = tmp_path / "jobs.db"
    directory = wake_dir(str(path))
    directory.mkdir(mode=0o700)
    stale = directory / "999999-dead"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(stale))
    sock.close()  # bound then closed without unlink: what a killed process leaves behind
    notifier = Notifier(str(path))
    try:
        notifier.notify(own=None)
    finally:
        notifier.close()
        if directory.exists():
            for entry in os.scandir(directory):
                os.unlink(entry.path)
            directory.rmdir()
    assert not stale.exists()


def test_the_listing_of_listeners_is_reused_while_their_folder_is_unchanged(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = str(tmp_path / "jobs.db")
    directory = wake_dir(path)
    directory.mkdir(mode=0o700)
    listeners: list[socket.socket] = []

    def listen(name: str) -> socket.socket:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        sock.bind(str(directory / name))
        sock.setblocking(False)
        listeners.append(sock)
        return sock

    reads = [0]
    scandir = os.scandir

    def counting_scandir(folder: Any) -> Any:
        reads[0] += 1
        return scandir(folder)

    monkeypatch.setattr("jobhandle.stores.sqlite.wake.os.scandir", counting_scandir)
    notifier = Notifier(path)
    try:
        first = listen("1-first")
        settled = time.time() - 10  # as if the folder had last changed 10 s ago
        os.utime(directory, (settled, settled))
        for _ in range(3):
            notifier.notify(own=None)
            assert first.recv(16) == b"!"
        assert reads[0] == 1, "read once; then a stat shows the folder did not change"
        second = listen("2-second")  # changes the folder
        notifier.notify(own=None)
        assert (first.recv(16), second.recv(16)) == (b"!", b"!")
        assert reads[0] == 2
        notifier.notify(own=None)
        assert reads[0] == 3, "a folder changed within the last 2 s is read again at each commit"
    finally:
        notifier.close()
        for sock in listeners:
            sock.close()
        for entry in scandir(directory):
            os.unlink(entry.path)
        directory.rmdir()
