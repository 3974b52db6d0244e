"""_fields: one definition of each record's fields, and everything that derives from it agrees with it."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

import pytest

import contextcompany as tcc
from contextcompany import _fields as fields
from contextcompany import _import
from contextcompany._records import Run, Step, ToolCall

from .conftest import Captured


def _params(function: Callable[..., object]) -> set[str]:
    return set(inspect.signature(function).parameters)


def test_send_signatures_and_field_definitions_name_the_same_fields() -> None:
    destination = set(fields.DESTINATION_NAMES)
    assert _params(tcc.send_run) == fields.names(fields.RUN_FIELDS) | destination
    assert _params(tcc.send_step) == fields.names(fields.STEP_FIELDS) | destination
    assert _params(tcc.send_tool_call) == fields.names(fields.TOOL_CALL_FIELDS) | destination


def test_the_import_derives_its_keys_and_setters_from_the_fields() -> None:
    assert fields.names(fields.STEP_FIELDS) == _import._STEP_KEYS
    assert fields.names(fields.TOOL_CALL_FIELDS) == _import._TOOL_CALL_KEYS
    assert {f.name for f in _import._STEP_SETTERS} == {
        f.name for f in fields.STEP_FIELDS if f.store is not None
    }
    names = [f.name for f in _import._STEP_SETTERS]
    tokens = ["prompt_uncached_tokens", "prompt_cached_tokens", "cache_write_tokens", "completion_tokens"]
    assert names.index("reasoning_tokens") > max(names.index(t) for t in tokens)


def test_every_field_names_a_setter_argument_that_exists() -> None:
    """A field's ``where`` is ``var.setter(argument=...)`` (or ``tcc.call(argument=...)``): both exist."""
    owners: dict[str, Any] = {"s": Step, "tc": ToolCall, "r": Run}
    calls: dict[str, Any] = {"tcc.run": Run, "tcc.step": Step, "tcc.tool_call": ToolCall}
    for field in (*fields.RUN_FIELDS, *fields.STEP_FIELDS, *fields.TOOL_CALL_FIELDS, *fields.PROMPT_FIELDS):
        if (
            field.name in ("steps", "tool_calls", "feedback", "status_code", "prompt")
            and "(" not in field.where
        ):
            continue
        call, _, rest = field.where.partition("(")
        prefix, _, method = call.rpartition(".")
        if call in calls:
            target = calls[call].__init__
        elif prefix in owners:
            target = getattr(owners[prefix], method)
        else:
            raise AssertionError(f"{field.name}: {field.where!r} names no known setter")
        argument = rest.partition("=")[0]
        if argument:
            assert argument in _params(target), f"{field.name}: {field.where!r}"


# One sample value per field that a setter stores, with the setter call that takes the same value.
SETTERS: list[tuple[fields.Field, object, Callable[[Any, object], object]]] = [
    (fields.STEP_PROMPT, [{"role": "user", "content": "Hi"}], lambda s, v: s.prompt(v)),
    (fields.STEP_RESPONSE, "Hello", lambda s, v: s.response(v)),
    (fields.STEP_RESPONSE, {"role": "assistant", "content": "Hi"}, lambda s, v: s.response(v)),
    (fields.MODEL, "gpt-4o", lambda s, v: s.model(v)),
    (fields.MODEL_REQUESTED, "gpt-4o", lambda s, v: s.model(requested=v)),
    (fields.MODEL_USED, "gpt-4o-0806", lambda s, v: s.model(used=v)),
    (fields.UNCACHED_TOKENS, 10, lambda s, v: s.tokens(prompt_uncached=v)),
    (fields.CACHED_TOKENS, 11, lambda s, v: s.tokens(prompt_cached=v)),
    (fields.CACHE_WRITE_TOKENS, 12, lambda s, v: s.tokens(cache_write=v)),
    (fields.COMPLETION_TOKENS, 13, lambda s, v: s.tokens(completion=v)),
    (fields.REASONING_TOKENS, 0, lambda s, v: s.tokens(reasoning=v)),
    (fields.COST, 0.25, lambda s, v: s.cost(v)),
    (fields.FINISH_REASON, "stop", lambda s, v: s.finish_reason(v)),
    (fields.TOOL_DEFINITIONS, [{"name": "f"}], lambda s, v: s.tool_definitions(v)),
    (fields.NAME, "get_weather", lambda tc, v: tc.name(v)),
    (fields.ARGS, {"city": "Paris"}, lambda tc, v: tc.args(v)),
    (fields.RESULT, "18°C", lambda tc, v: tc.result(v)),
    (fields.USER_PROMPT, "Hi", lambda r, v: r.prompt(v)),
    (fields.FULL_INPUT, {"q": 1}, lambda r, v: r.prompt("Hi", full_input=v)),
    (fields.RUN_RESPONSE, "Hello", lambda r, v: r.response(v)),
    (fields.FULL_OUTPUT, [1, 2], lambda r, v: r.response("Hello", full_output=v)),
    (fields.METADATA, {"k": "v"}, lambda r, v: r.metadata(v)),
]


def _fresh(field: fields.Field, run: tcc.Run) -> Any:
    if field in fields.STEP_FIELDS:
        return run.step()
    if field in fields.TOOL_CALL_FIELDS:
        return run.tool_call()
    return tcc.run()


@pytest.mark.parametrize(
    ("field", "value", "setter"), SETTERS, ids=[f"{f.name}-{i}" for i, (f, _, _) in enumerate(SETTERS)]
)
def test_a_field_stores_what_its_setter_stores(
    captured: Captured, field: fields.Field, value: object, setter: Callable[[Any, object], object]
) -> None:
    """The import builds records from checked values through ``store``: the same state as the setter."""
    run = tcc.run()
    by_setter, by_field = _fresh(field, run), _fresh(field, run)
    setter(by_setter, value)
    assert field.store is not None
    # full_input / full_output come with the prompt / response they belong to (a setter takes both)
    companion = {
        fields.FULL_INPUT: (fields.USER_PROMPT, "Hi"),
        fields.FULL_OUTPUT: (fields.RUN_RESPONSE, "Hello"),
    }
    if field in companion:
        other, given = companion[field]
        assert other.store is not None
        other.store(by_field, other.check(given, other.where))
    field.store(by_field, field.check(value, field.where))
    slots = [s for cls in type(by_setter).__mro__ for s in getattr(cls, "__slots__", ())]
    record_slots = [
        s for s in slots if s not in ("_handle", "_end_lock", "_finalizer", "_owner", "__weakref__")
    ]
    ids = {"_step_id", "_tool_call_id", "_run_id", "_children", "_context", "_deadline"}
    state = [(s, getattr(by_setter, s, None)) for s in record_slots if s not in ids]
    assert state == [(s, getattr(by_field, s, None)) for s in record_slots if s not in ids]
    run.error("done")


def test_a_setter_and_the_import_give_the_same_error(captured: Captured) -> None:
    s = tcc.run().step()
    with pytest.raises(TypeError) as by_setter:
        s.tokens(completion="25")  # type: ignore[arg-type]
    with pytest.raises(TypeError) as by_import:
        tcc.send_step(run_id="r", prompt="p", response="r", completion_tokens="25")  # type: ignore[arg-type]
    assert str(by_import.value) == f"completion_tokens: {by_setter.value}"
    with pytest.raises(ValueError, match=r"^\[TCC\] s.tokens\(reasoning=...\) counts part of the completion"):
        s.tokens(completion=5, reasoning=6)
    with pytest.raises(ValueError, match=r"^reasoning_tokens: \[TCC\] s.tokens\(reasoning=...\) counts part"):
        tcc.send_step(run_id="r", prompt="p", response="r", completion_tokens=5, reasoning_tokens=6)
