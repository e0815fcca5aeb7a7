"""Handlers: the functions that do a job type's work, ``fn(ctx, **parameters)``, sync or ``async def``."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from .errors import InvalidParameterError

F = TypeVar("F", bound=Callable[..., Any])


@dataclass(frozen=True, slots=True)
class Handler:
    name: str
    fn: Callable[..., Any]
    signature: inspect.Signature
    is_async: bool
    fitting: set[frozenset[str]] = field(default_factory=set, compare=False)
    """Parameter name sets already known to fit: binding depends on the names only, and is slow."""

    def check_parameters(self, parameters: dict[str, Any]) -> None:
        """Raise InvalidParameterError when ``fn(ctx, **parameters)`` could not be called."""
        names = frozenset(parameters)
        if names in self.fitting:
            return
        try:
            self.signature.bind(None, **parameters)
        except TypeError as exc:
            raise InvalidParameterError(f"parameters do not fit handler {self.name!r}: {exc}",
                                        job_type=self.name) from None
        if len(self.fitting) < 64:
            self.fitting.add(names)


class HandlerRegistry:
    """Job type name -> handler. Workers run what their registry knows; submit checks parameters with it."""

    def __init__(self) -> None:
        self._handlers: dict[str, Handler] = {}

    def register(self, name: str, fn: Callable[..., Any]) -> Handler:
        if not name or not isinstance(name, str):
            raise InvalidParameterError(f"a handler needs a non-empty name, not {name!r}")
        if not callable(fn):
            raise InvalidParameterError(f"handler {name!r} is not callable")
        signature = inspect.signature(fn)
        try:
            signature.bind_partial(None)
        except TypeError:
            raise InvalidParameterError(
                f"handler {name!r} must take the job context as its first positional parameter: fn(ctx, ...)",
                job_type=name) from None
        handler = Handler(name, fn, signature, inspect.iscoroutinefunction(fn))
        self._handlers[name] = handler
        return handler

    def get(self, name: str) -> Handler | None:
        return self._handlers.get(name)

    def names(self) -> list[str]:
        return sorted(self._handlers)

    def __contains__(self, name: object) -> bool:
        return name in self._handlers

    def handler(self, name: str | None = None) -> Callable[[F], F]:
        """Decorator: ``@registry.handler("resize")``; the function's name when no name is given."""

        def decorate(fn: F) -> F:
            self.register(name or fn.__name__, fn)
            return fn

        return decorate


default_registry = HandlerRegistry()


def handler(name: str | None = None, *, registry: HandlerRegistry | None = None) -> Callable[[F], F]:
    """Register ``fn(ctx, **parameters)`` as the handler of job type ``name`` (default registry)."""
    return (registry or default_registry).handler(name)
