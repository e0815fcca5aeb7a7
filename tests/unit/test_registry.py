"""Handler registration: the decorators, names, async detection and parameter checks against signatures."""

from __future__ import annotations

from typing import Any

import pytest

from jobhandle import HandlerRegistry, InvalidParameterError, handler


def test_decorator_registers_under_the_given_name_and_returns_the_function(registry: HandlerRegistry) -> None:
    def resize(ctx: Any, path: str) -> str:
        return path

    assert registry.handler("images.resize")(resize) is resize
    registered = registry.get("images.resize")
    assert registered is not None
    assert (registered.name, registered.fn, registered.is_async) == ("images.resize", resize, False)
    assert "images.resize" in registry
    assert registry.get("resize") is None


def test_decorator_defaults_to_the_function_name(registry: HandlerRegistry) -> None:
    @registry.handler()
    def chunk_text(ctx: Any) -> None:
        return None

    assert registry.names() == ["chunk_text"]


def test_async_handlers_are_detected(registry: HandlerRegistry) -> None:
    @registry.handler("fetch")
    async def fetch(ctx: Any, url: str) -> str:
        return url

    registered = registry.get("fetch")
    assert registered is not None and registered.is_async


def test_module_level_decorator_with_an_explicit_registry(registry: HandlerRegistry) -> None:
    @handler("parse", registry=registry)
    def parse(ctx: Any) -> None:
        return None

    assert registry.names() == ["parse"]


def test_names_are_sorted(registry: HandlerRegistry) -> None:
    for name in ("b", "c", "a"):
        registry.register(name, lambda ctx: None)
    assert registry.names() == ["a", "b", "c"]


@pytest.mark.parametrize("name", ["", None, 5])
def test_a_handler_needs_a_name(registry: HandlerRegistry, name: Any) -> None:
    with pytest.raises(InvalidParameterError, match="name"):
        registry.register(name, lambda ctx: None)


def test_a_handler_must_be_callable(registry: HandlerRegistry) -> None:
    with pytest.raises(InvalidParameterError, match="'job' is not callable"):
        registry.register("job", "print")  # type: ignore[arg-type]


def test_a_handler_that_cannot_take_the_context_is_rejected(registry: HandlerRegistry) -> None:
    """Handlers are called as fn(ctx, **parameters): one without a positional ctx can never run."""
    def no_ctx() -> None:
        return None

    def keyword_only(*, path: str) -> None:
        return None

    for fn in (no_ctx, keyword_only):
        with pytest.raises(InvalidParameterError, match="ctx"):
            registry.register("bad", fn)
    assert "bad" not in registry


# -- parameter checks ------------------------------------------------------------------------------------

@pytest.fixture
def add(registry: HandlerRegistry) -> Any:
    @registry.handler("add")
    def add(ctx: Any, a: int, b: int = 0, *, scale: float = 1.0) -> float:
        return (a + b) * scale

    return registry.get("add")


@pytest.mark.parametrize("parameters", [{"a": 1}, {"a": 1, "b": 2}, {"a": 1, "scale": 2.0}])
def test_parameters_that_fit_the_signature_pass(add: Any, parameters: dict[str, Any]) -> None:
    add.check_parameters(parameters)


@pytest.mark.parametrize(("parameters", "named"), [
    ({}, "'a'"), ({"b": 2}, "'a'"), ({"a": 1, "c": 3}, "'c'"), ({"a": 1, "ctx": 2}, "ctx"),
], ids=["missing", "missing-with-other", "unexpected", "ctx-twice"])
def test_parameters_that_do_not_fit_are_rejected_naming_the_handler_and_argument(
        add: Any, parameters: dict[str, Any], named: str) -> None:
    with pytest.raises(InvalidParameterError) as error:
        add.check_parameters(parameters)
    assert "'add'" in error.value.message
    assert named in error.value.message
    assert error.value.context["job_type"] == "add"


def test_var_keyword_handlers_accept_any_parameters(registry: HandlerRegistry) -> None:
    @registry.handler("anything")
    def anything(ctx: Any, **parameters: Any) -> dict[str, Any]:
        return parameters

    registered = registry.get("anything")
    assert registered is not None
    registered.check_parameters({"x": 1, "y": [2]})
