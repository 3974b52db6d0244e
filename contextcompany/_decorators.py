"""``@tcc.agent`` and ``@tcc.tool``: record every call of a function as a run or a tool call.

    >>> @tcc.tool
    ... def get_weather(city: str) -> dict:
    ...     return {"temp_c": 15}
    >>> @tcc.agent(name="weather")
    ... async def answer(question: str) -> str:
    ...     with tcc.step() as s:           # steps and tool calls inside attach to this run
    ...         ...
    ...     return f"It is {get_weather('London')['temp_c']}°C"

Sync and async functions alike. The decorated function behaves exactly as before: same arguments,
same return value, same exceptions (recorded on the span, then re-raised). Recording never raises:
values JSON cannot hold are written readably instead (see ``readable_json``).
"""

from __future__ import annotations

import dataclasses
import functools
import inspect
import logging
import math
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, Final, ParamSpec, TypeVar, cast, overload

from . import _diag as diag
from . import _semconv as sc
from ._api import tool_call
from ._records import Run
from ._redact import REDACTED
from ._registry import current_run

logger = logging.getLogger("contextcompany")

P = ParamSpec("P")
R = TypeVar("R")

_MAX_DEPTH: Final = 32
# Arguments whose parameter name says "credential" are recorded as [REDACTED], never as their value.
_SECRET_NAMES: Final = (
    "api_key",
    "apikey",
    "token",
    "password",
    "passwd",
    "secret",
    "authorization",
    "credential",
)


def _readable(value: object, seen: set[int], depth: int) -> object:
    """A JSON-safe copy: containers kept, anything else as its readable form, cycles and depth cut."""
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else repr(value)
    if depth >= _MAX_DEPTH:
        return "<too deep>"
    if id(value) in seen:
        return "<cycle>"
    seen.add(id(value))
    try:
        if isinstance(value, Mapping):
            return {str(k): _readable(v, seen, depth + 1) for k, v in value.items()}
        if isinstance(value, list | tuple | set | frozenset):
            return [_readable(v, seen, depth + 1) for v in value]
        dump = getattr(value, "model_dump", None)  # pydantic models, OpenAI/Anthropic SDK objects
        if callable(dump):
            try:
                return _readable(dump(), seen, depth + 1)
            except Exception:
                return repr(value)
        if dataclasses.is_dataclass(value) and not isinstance(value, type):
            fields = {f.name: getattr(value, f.name) for f in dataclasses.fields(value)}
            return _readable(fields, seen, depth + 1)
        return repr(value)
    finally:
        seen.discard(id(value))


def readable_json(value: object) -> str:
    """JSON for any value: what JSON cannot hold (objects, NaN, bytes, cycles) becomes readable text.

    >>> readable_json({"when": datetime(2026, 1, 1), "n": float("nan")})
    '{"when":"datetime.datetime(2026, 1, 1, 0, 0)","n":"nan"}'
    """
    try:
        return sc.dumps(_readable(value, set(), 0))
    except Exception:  # a __repr__ or model_dump that raises, say
        return sc.dumps(f"<unrepresentable {type(value).__name__}>")


def _is_secret(parameter: str) -> bool:
    lowered = parameter.lower()
    return any(marker in lowered for marker in _SECRET_NAMES)


class _Call:
    """How to describe a call of one function: computed once, at decoration."""

    def __init__(self, fn: Callable[..., Any]) -> None:
        if inspect.isgeneratorfunction(fn) or inspect.isasyncgenfunction(fn):
            raise TypeError(
                f"[TCC] @tcc.agent / @tcc.tool cannot record generator function {fn.__qualname__!r}: its "
                "body runs after the call returns. Record the work inside it with `with tcc.run()` or "
                "`tcc.tool_call()`."
            )
        try:
            self.signature: inspect.Signature | None = inspect.signature(fn)
        except (TypeError, ValueError):  # some builtins and C functions have none
            self.signature = None
        params = list(self.signature.parameters) if self.signature is not None else []
        # A method's self/cls says nothing about the call and rarely serialises well.
        self.skip_first = bool(params) and params[0] in ("self", "cls")

    def arguments(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> dict[str, object]:
        if self.signature is None:
            return {"args": list(args), "kwargs": kwargs}
        try:
            bound = self.signature.bind(*args, **kwargs)
        except TypeError:
            return {"args": list(args), "kwargs": kwargs}  # the call itself will raise; record what came
        bound.apply_defaults()
        items = list(bound.arguments.items())[1 if self.skip_first else 0 :]
        return {name: (REDACTED if _is_secret(name) else value) for name, value in items}


def _text(value: object) -> str:
    return value if isinstance(value, str) else readable_json(value)


def _prompt(call: _Call, args: tuple[Any, ...], kwargs: dict[str, Any]) -> str:
    arguments = call.arguments(args, kwargs)
    if len(arguments) == 1:
        (only,) = arguments.values()
        if isinstance(only, str):
            return only  # the common agent(question: str): the question is the prompt
    return readable_json(arguments)


@overload
def agent(fn: Callable[P, R], /) -> Callable[P, R]: ...
@overload
def agent(*, name: str | None = None) -> Callable[[Callable[P, R]], Callable[P, R]]: ...
def agent(
    fn: Callable[P, R] | None = None, /, *, name: str | None = None
) -> Callable[P, R] | Callable[[Callable[P, R]], Callable[P, R]]:
    """Record each call of the function as a run named ``name`` (default: the function's name).

    The run's prompt is the call's input (a single str argument as is, otherwise the bound arguments as
    JSON) and its response the return value; steps and tool calls made inside attach to it.

    >>> @tcc.agent(name="support")
    ... def handle(ticket: str) -> str: ...
    """
    if fn is None:
        return lambda f: _agent(f, name)
    return _agent(fn, name)


def _agent(fn: Callable[P, R], name: str | None) -> Callable[P, R]:
    call = _Call(fn)
    run_name = name if name is not None else fn.__name__

    if inspect.iscoroutinefunction(fn):
        async_fn = cast(Callable[..., Awaitable[Any]], fn)

        @functools.wraps(fn)
        async def run_async(*args: Any, **kwargs: Any) -> Any:
            with Run(name=run_name) as r:
                r.prompt(_prompt(call, args, kwargs))
                result = await async_fn(*args, **kwargs)
                if result is not None:
                    r.response(_text(result))
                return result

        return cast(Callable[P, R], run_async)

    @functools.wraps(fn)
    def run_sync(*args: P.args, **kwargs: P.kwargs) -> R:
        with Run(name=run_name) as r:
            r.prompt(_prompt(call, args, kwargs))
            result = fn(*args, **kwargs)
            if result is not None:
                r.response(_text(result))
            return result

    return run_sync


def _outside_run(tool_name: str) -> bool:
    if current_run() is not None:
        return False
    diag.warn_once(
        f"outside {tool_name}",
        "contextcompany: tool %r was called outside a run; its calls are not recorded",
        tool_name,
    )
    return True


@overload
def tool(fn: Callable[P, R], /) -> Callable[P, R]: ...
@overload
def tool(*, name: str | None = None) -> Callable[[Callable[P, R]], Callable[P, R]]: ...
def tool(
    fn: Callable[P, R] | None = None, /, *, name: str | None = None
) -> Callable[P, R] | Callable[[Callable[P, R]], Callable[P, R]]:
    """Record each call of the function as a tool call of the current run (and step, if one is open).

    Arguments are recorded as JSON by parameter name (parameters named like a credential, such as
    ``api_key`` or ``password``, as ``[REDACTED]``), the return value as the result. Outside a run the
    function runs unrecorded (with one warning).

    >>> @tcc.tool(name="weather")
    ... def get_weather(city: str) -> dict: ...
    """
    if fn is None:
        return lambda f: _tool(f, name)
    return _tool(fn, name)


def _tool(fn: Callable[P, R], name: str | None) -> Callable[P, R]:
    call = _Call(fn)
    tool_name = name if name is not None else fn.__name__

    if inspect.iscoroutinefunction(fn):
        async_fn = cast(Callable[..., Awaitable[Any]], fn)

        @functools.wraps(fn)
        async def call_async(*args: Any, **kwargs: Any) -> Any:
            if _outside_run(tool_name):
                return await async_fn(*args, **kwargs)
            with tool_call(None, None, tool_name) as tc:
                tc.args(readable_json(call.arguments(args, kwargs)))
                result = await async_fn(*args, **kwargs)
                tc.result(_text(result))
                return result

        return cast(Callable[P, R], call_async)

    @functools.wraps(fn)
    def call_sync(*args: P.args, **kwargs: P.kwargs) -> R:
        if _outside_run(tool_name):
            return fn(*args, **kwargs)
        with tool_call(None, None, tool_name) as tc:
            tc.args(readable_json(call.arguments(args, kwargs)))
            result = fn(*args, **kwargs)
            tc.result(_text(result))
            return result

    return call_sync
