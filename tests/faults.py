"""Fault injection for tests: a store whose calls are applied but whose answers are lost, and a TCP proxy that
cuts connections in the middle of a reply, after the server applied the command."""

from __future__ import annotations

import itertools
import socket
import threading
from collections.abc import Callable, Iterable
from typing import Any

from jobhandle.errors import StoreUnavailableError
from jobhandle.stores import Store


def lose_answers(store: Store, primitives: Iterable[str], every: int) -> Callable[[], int]:
    """Make every ``every``-th call of ``primitives`` on ``store`` apply, then raise StoreUnavailableError, as
    a call whose reply a cut connection lost does. Returns a function telling how many answers were lost."""
    counter = itertools.count(1)
    lost = [0]

    def wrap(name: str) -> Callable[..., Any]:
        real = getattr(type(store), name)

        def applied_then_lost(self: Store, *args: Any, **kwargs: Any) -> Any:
            answer = real(self, *args, **kwargs)
            if next(counter) % every == 0:
                lost[0] += 1
                raise StoreUnavailableError(f"the answer of {name} was lost (injected)")
            return answer

        return applied_then_lost

    store.__class__ = type(f"Lossy{type(store).__name__}", (type(store),), {name: wrap(name) for name in primitives})
    return lambda: lost[0]


class CuttingProxy:
    """Forwards loopback TCP connections to ``port``; every ``every``-th chunk the server sends is dropped and
    both sides of that connection are closed: the command was applied, its reply never arrives."""

    def __init__(self, port: int, every: int) -> None:
        self.target = port
        self.every = every
        self.cuts = 0
        self._chunks = itertools.count(1)
        self._lock = threading.Lock()
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = self._listener.getsockname()[1]
        self._closed = threading.Event()
        threading.Thread(target=self._accept, name="cutting-proxy", daemon=True).start()

    def _accept(self) -> None:
        while not self._closed.is_set():
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            try:
                server = socket.create_connection(("127.0.0.1", self.target))
            except OSError:
                client.close()
                continue
            threading.Thread(target=self._pipe, args=(client, server, False), daemon=True).start()
            threading.Thread(target=self._pipe, args=(server, client, True), daemon=True).start()

    def _pipe(self, source: socket.socket, sink: socket.socket, replies: bool) -> None:
        try:
            while chunk := source.recv(65536):
                if replies:
                    with self._lock:
                        cut = next(self._chunks) % self.every == 0
                        self.cuts += cut
                    if cut:
                        break
                sink.sendall(chunk)
        except OSError:
            pass
        finally:
            for sock in (source, sink):
                try:
                    sock.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
                sock.close()

    def close(self) -> None:
        self._closed.set()
        self._listener.close()
