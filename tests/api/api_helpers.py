"""Helpers for the REST API tests: an app on a fresh SQLite store, a real uvicorn server, an SSE reader."""

from __future__ import annotations

import json
import socket
import threading
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import uvicorn
from fastapi import FastAPI
from helpers import wait_until

with warnings.catch_warnings():  # Starlette asks for httpx2 here; httpx is what the project installs
    warnings.simplefilter("ignore")
    from fastapi.testclient import TestClient

__all__ = ["ADMIN_KEY", "ALICE_KEY", "BOB_KEY", "KEYS", "ApiFactory", "Event", "LiveServer", "TestClient", "bearer",
           "read_events"]

ApiFactory = Callable[..., TestClient]
"""``make_api(**settings)`` (a fixture): a started TestClient of an app with those settings."""

ADMIN_KEY = "admin-key-0123456789"
ALICE_KEY = "alice-key-0123456789"
BOB_KEY = "bob-key-0123456789"
KEYS = f"{ADMIN_KEY}:root:admin,{ALICE_KEY}:alice,{BOB_KEY}:bob:user"


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


@dataclass
class Event:
    """One Server-Sent Event as a client sees it."""

    event: str
    id: str | None
    data: Any


def read_events(lines: Iterator[str]) -> Iterator[Event | str]:
    """Parse an SSE stream: yields an Event per event and each comment line (``": keep-alive"``) as text."""
    fields: dict[str, list[str]] = {}
    for line in lines:
        if line == "":
            if "data" in fields or "event" in fields:
                data = "\n".join(fields.get("data", []))
                yield Event(fields.get("event", ["message"])[0], fields.get("id", [None])[0],
                            json.loads(data) if data else None)
            fields = {}
        elif line.startswith(":"):
            yield line
        else:
            name, _, value = line.partition(":")
            fields.setdefault(name, []).append(value.removeprefix(" "))


class LiveServer:
    """The app served by uvicorn on a free loopback port, in a thread of this process."""

    def __init__(self, app: FastAPI) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}"
        config = uvicorn.Config(app, log_level="warning", lifespan="on", timeout_graceful_shutdown=2)
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, kwargs={"sockets": [self.sock]}, daemon=True)

    def __enter__(self) -> LiveServer:
        self.thread.start()
        wait_until(lambda: self.server.started, 10, "uvicorn started")
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(10)
        self.sock.close()

    def client(self, **kwargs: Any) -> httpx.Client:
        return httpx.Client(base_url=self.url, timeout=10, **kwargs)
