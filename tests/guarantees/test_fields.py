"""Bad input, field by field: every parameter of every public record call refuses an invalid value at the
call, naming the parameter, and takes every valid value through to the exported span unchanged.

The fields are read from the public API's signatures (``tcc.run``, ``tcc.step``, ``tcc.tool_call``,
``tcc.submit_feedback`` and the public methods of ``Run``, ``Step`` and ``ToolCall``); the first test
fails when one has no entry here, so a new parameter cannot go untested. Routing parameters (``api_key``,
``tcc_url``) are left to ``tests/reliability/test_bad_input.py::test_routing_arguments_with_any_value``:
what they change is where a span goes, not what it carries.

"Unchanged" is exact: a text arrives as the same str (inside the GenAI message JSON where the
convention puts it there), a number as the same number, a time as the same nanoseconds. The valid texts
here avoid what is documented to change a value (lone surrogates, secrets the redaction removes, text
over the size limit); ``test_bad_input.py::test_documented_coercions`` and ``test_size.py`` pin those.
"""

from __future__ import annotations

import inspect
import json
import math
import string
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Final

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.trace import StatusCode

import contextcompany as tcc
from tests.conftest import Captured

# --- values ------------------------------------------------------------------------------------------------

# Texts the redaction cannot match (no ':', '=', '-', '_', '/', '@') and that need no coercion: what is
# set is what must arrive, character for character.
_ALPHABET: Final = string.ascii_letters + string.digits + " .,!?'" + "éßЖ中😀"
TEXT: Final = st.text(_ALPHABET, max_size=40)
NAME: Final = st.text(_ALPHABET, min_size=1, max_size=20).filter(lambda t: bool(t.strip()))
ID: Final = NAME
COUNT: Final = st.integers(0, 2**53)
JSON: Final = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**53), 2**53)
    | st.floats(allow_nan=False, allow_infinity=False)
    | TEXT,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(TEXT, inner, max_size=3),
    max_leaves=8,
)
NOW_NS: Final = datetime.now(UTC).timestamp() * 1e9
# Start times: any time between 2000 and an hour ago; end times: from an hour ahead to the year 2200.
START_NS: Final = st.integers(946_684_800 * 10**9, int(NOW_NS) - 3600 * 10**9)
END_NS: Final = st.integers(int(NOW_NS) + 3600 * 10**9, 7_258_118_400 * 10**9)


def _datetimes(ns: st.SearchStrategy[int]) -> st.SearchStrategy[datetime]:
    # Microsecond precision, aware or naive (read as UTC).
    aware = ns.map(lambda n: datetime(1970, 1, 1, tzinfo=UTC) + timedelta(microseconds=n // 1000))
    return aware | aware.map(lambda d: d.replace(tzinfo=None))


def _ns(value: int | datetime) -> int:
    if isinstance(value, int):
        return value
    aware = value if value.tzinfo is not None else value.replace(tzinfo=UTC)
    delta = aware - datetime(1970, 1, 1, tzinfo=UTC)
    return (delta.days * 86_400 + delta.seconds) * 10**9 + delta.microseconds * 1000


START: Final = START_NS | _datetimes(START_NS)
END: Final = END_NS | _datetimes(END_NS)

# Values no field accepts (each field adds its own near misses).
OBJECTS: Final = st.sampled_from([object(), b"bytes", 1j, {1, 2}, print])
NOT_TEXT: Final = OBJECTS | st.integers() | st.floats() | st.lists(TEXT, max_size=2) | st.booleans()
NOT_ID: Final = NOT_TEXT | st.sampled_from(["", " ", "\t\n"])
NOT_COUNT: Final = (
    OBJECTS
    | st.integers(max_value=-1)
    | st.integers(min_value=2**53 + 1)
    | st.floats()
    | st.booleans()
    | st.text(max_size=3)
)
NOT_TIME: Final = (
    OBJECTS
    | st.floats()
    | st.booleans()
    | st.text(max_size=3)
    | st.integers(max_value=-1)
    | st.integers(min_value=2**63)
)
NOT_JSON: Final = OBJECTS | st.sampled_from([math.nan, math.inf, [math.nan], {"k": object()}, {1j: 1}])


def user_message(text: str) -> list[dict[str, Any]]:
    return [{"role": "user", "parts": [{"type": "text", "content": text}]}]


def assistant_message(text: str, finish_reason: str | None) -> list[dict[str, Any]]:
    message: dict[str, Any] = {"role": "assistant", "parts": [{"type": "text", "content": text}]}
    if finish_reason is not None:
        message["finish_reason"] = finish_reason
    return [message]


def as_json_or_text(value: object) -> Callable[[str], bool]:
    """How a str-or-JSON field (``tc.args``, ``full_input``, ...) must arrive."""
    if isinstance(value, str):
        return lambda got: got == value
    return lambda got: json.loads(got) == value


# --- the fields --------------------------------------------------------------------------------------------


@dataclass
class Made:
    """What one example made: the records to find on the wire, by role."""

    run: tcc.Run
    step: tcc.Step | None = None
    tool: tcc.ToolCall | None = None
    feedback: bool = False


Check = Callable[[dict[str, ReadableSpan], Any], None]


@dataclass(frozen=True)
class Field:
    """A parameter: how to call it with a value, its valid and invalid values, and what must arrive."""

    owner: str  # the callable, as tcc's messages name it: "tcc.run", "s.tokens", ...
    param: str
    call: Callable[[Any], Made]  # makes (and ends) the records with the value set
    valid: st.SearchStrategy[Any]
    invalid: st.SearchStrategy[Any]
    check: Check  # on the spans by role ("run", "step", "tool", "feedback") and the value
    names: tuple[str, ...] = field(default=())  # what the error must name, if not owner(param=...)

    @property
    def label(self) -> str:
        return f"{self.owner}({self.param}=...)"


def _run(**kwargs: Any) -> tcc.Run:
    return tcc.run(**kwargs)


def _finish_run(r: tcc.Run) -> Made:
    r.prompt("q").end()
    return Made(r)


def _with_step(apply: Callable[[tcc.Step, Any], object]) -> Callable[[Any], Made]:
    def call(value: Any) -> Made:
        r = tcc.run()
        s = r.step().prompt("p").response("a")
        apply(s, value)
        s.end()
        r.prompt("q").end()
        return Made(r, step=s)

    return call


def _with_tool(apply: Callable[[tcc.ToolCall, Any], object]) -> Callable[[Any], Made]:
    def call(value: Any) -> Made:
        r = tcc.run()
        tc = r.tool_call("t")
        apply(tc, value)
        tc.end()
        r.prompt("q").end()
        return Made(r, tool=tc)

    return call


def _with_run(apply: Callable[[tcc.Run, Any], object]) -> Callable[[Any], Made]:
    def call(value: Any) -> Made:
        r = tcc.run()
        r.prompt("q")
        apply(r, value)
        r.end()
        return Made(r)

    return call


def _attr(role: str, key: str, expect: Callable[[Any], Any] = lambda v: v) -> Check:
    def check(spans: dict[str, ReadableSpan], value: Any) -> None:
        got = (spans[role].attributes or {}).get(key)
        want = expect(value)
        assert got == want and type(got) is type(want), f"{role} {key}: {got!r} != {want!r}"

    return check


def _json_attr(role: str, key: str, expect: Callable[[Any], Any]) -> Check:
    def check(spans: dict[str, ReadableSpan], value: Any) -> None:
        got = (spans[role].attributes or {}).get(key)
        assert isinstance(got, str), f"{role} {key}: {got!r}"
        assert json.loads(got) == expect(value), f"{role} {key}: {got!r} != {expect(value)!r}"

    return check


def _text_or_json_attr(role: str, key: str) -> Check:
    def check(spans: dict[str, ReadableSpan], value: Any) -> None:
        got = (spans[role].attributes or {}).get(key)
        assert isinstance(got, str) and as_json_or_text(value)(got), f"{role} {key}: {got!r} != {value!r}"

    return check


def _status(role: str, code: StatusCode, message: Callable[[Any], str | None] = lambda v: None) -> Check:
    def check(spans: dict[str, ReadableSpan], value: Any) -> None:
        status = spans[role].status
        assert status.status_code is code, f"{role}: {status.status_code} != {code}"
        if code is StatusCode.ERROR:
            assert status.description == message(value), f"{role}: {status.description!r}"

    return check


def _time(role: str, which: str) -> Check:
    def check(spans: dict[str, ReadableSpan], value: Any) -> None:
        got = getattr(spans[role], which)
        assert got == _ns(value), f"{role} {which}: {got} != {_ns(value)}"

    return check


def _first_chunk_seconds(spans: dict[str, ReadableSpan], value: Any) -> None:
    got = (spans["step"].attributes or {}).get("gen_ai.response.time_to_first_chunk")
    start = spans["step"].start_time or 0
    assert isinstance(got, float) and abs(got - (value - start) / 1e9) < 1e-6 * max(1.0, got), got


def _all(*checks: Check) -> Check:
    def check(spans: dict[str, ReadableSpan], value: Any) -> None:
        for c in checks:
            c(spans, value)

    return check


def _tokens(param: str, key: str, other: dict[str, int] | None = None) -> Field:
    # ``other`` keeps the cross-field rule (reasoning <= completion) satisfied while one field varies.
    extra = other or {}

    def apply(s: tcc.Step, v: Any) -> object:
        return s.tokens(**{**extra, param: v})

    return Field(
        "s.tokens",
        param,
        _with_step(apply),
        COUNT.filter(lambda v: param != "reasoning" or v <= extra.get("completion", 2**53)),
        NOT_COUNT,
        _attr("step", key),
    )


def _common(
    var: str, role: str, make: Callable[[Callable[[Any, Any], object]], Callable[[Any], Made]]
) -> list[Field]:
    kind = {"r": "run", "s": "step", "tc": "tool call"}[var]
    return [
        Field(
            f"{var}.status",
            "code",
            make(lambda rec, v: rec.status(v)),
            st.sampled_from([0, 1]),
            OBJECTS
            | st.integers().filter(lambda v: v not in (0, 1, 2))
            | st.booleans()
            | st.text(max_size=2),
            lambda spans, v: _status(role, {0: StatusCode.UNSET, 1: StatusCode.OK}[v])(spans, v),
        ),
        Field(
            f"{var}.status",
            "message",
            make(lambda rec, v: rec.status(2, v)),
            TEXT.filter(bool),
            OBJECTS | st.integers() | st.lists(TEXT, max_size=1),
            _status(role, StatusCode.ERROR, lambda v: v),
        ),
        Field(
            f"{var}.end_time",
            "t",
            make(lambda rec, v: rec.end_time(v)),
            END,
            NOT_TIME,
            _time(role, "end_time"),
        ),
        Field(
            f"{var}.error",
            "status_message",
            # error() ends the record: the maker's end() afterwards is not called (see _erroring).
            _erroring(var),
            TEXT,
            OBJECTS | st.integers() | st.lists(TEXT, max_size=1),
            _status(role, StatusCode.ERROR, lambda v: v or f"{kind} failed"),
        ),
    ]


def _erroring(var: str) -> Callable[[Any], Made]:
    def call(value: Any) -> Made:
        r = tcc.run()
        if var == "r":
            r.prompt("q").error(value)
            return Made(r)
        if var == "s":
            s = r.step().prompt("p")
            s.error(value)
            r.prompt("q").end()
            return Made(r, step=s)
        tc = r.tool_call("t")
        tc.error(value)
        r.prompt("q").end()
        return Made(r, tool=tc)

    return call


def _feedback(score: Any, text: Any) -> Made:
    r = tcc.run()
    r.prompt("q").end()
    assert tcc.submit_feedback(r.run_id, score, text) is True
    return Made(r, feedback=True)


FIELDS: Final[tuple[Field, ...]] = (
    # tcc.run(...)
    Field("tcc.run", "run_id", lambda v: _finish_run(_run(run_id=v)), ID, NOT_ID, _attr("run", "tcc.run.id")),
    Field(
        "tcc.run",
        "session_id",
        lambda v: _finish_run(_run(session_id=v)),
        ID,
        NOT_ID,
        _attr("run", "gen_ai.conversation.id"),
    ),
    Field(
        "tcc.run",
        "conversational",
        lambda v: _finish_run(_run(conversational=v)),
        st.booleans(),
        OBJECTS | st.integers() | st.text(max_size=2),
        _attr("run", "tcc.run.conversational"),
    ),
    Field(
        "tcc.run",
        "name",
        lambda v: _finish_run(_run(name=v)),
        NAME,
        NOT_ID,
        lambda spans, v: (
            _attr("run", "gen_ai.agent.name")(spans, v),
            _name("run", f"invoke_agent {v}")(spans, v),
        ),
    ),
    Field(
        "tcc.run",
        "timeout",
        lambda v: _finish_run(_run(timeout=v)),
        st.just(0) | st.integers(3600, 10**9) | st.floats(3600, 1e9),  # 0 disables; long enough not to fire
        OBJECTS | st.booleans() | st.text(max_size=2) | st.sampled_from([-1, -0.5, math.nan, math.inf]),
        _status("run", StatusCode.UNSET),
    ),
    Field(
        "tcc.run",
        "start_time",
        lambda v: _finish_run(_run(start_time=v)),
        START,
        NOT_TIME,
        _time("run", "start_time"),
    ),
    # r.prompt / r.response / r.metadata
    Field(
        "r.prompt",
        "user_prompt",
        _with_run(lambda r, v: r.prompt(v)),
        TEXT,
        NOT_TEXT,
        _json_attr("run", "gen_ai.input.messages", user_message),
    ),
    Field(
        "r.prompt",
        "system_prompt",
        _with_run(lambda r, v: r.prompt("q", v)),
        TEXT,
        OBJECTS | st.integers() | st.floats() | st.booleans(),
        _json_attr("run", "gen_ai.system_instructions", lambda v: [{"type": "text", "content": v}]),
    ),
    Field(
        "r.prompt",
        "full_input",
        _with_run(lambda r, v: r.prompt("q", None, v)),
        JSON.filter(lambda v: v is not None),  # None: not given
        NOT_JSON,
        _text_or_json_attr("run", "tcc.run.full_input"),
    ),
    Field(
        "r.response",
        "text",
        _with_run(lambda r, v: r.response(v)),
        TEXT,
        NOT_TEXT,
        _json_attr("run", "gen_ai.output.messages", lambda v: assistant_message(v, "stop")),
    ),
    Field(
        "r.response",
        "full_output",
        _with_run(lambda r, v: r.response("a", v)),
        JSON.filter(lambda v: v is not None),
        NOT_JSON,
        _text_or_json_attr("run", "tcc.run.full_output"),
    ),
    Field(
        "r.metadata",
        "data",
        _with_run(lambda r, v: r.metadata(v)),
        st.dictionaries(
            NAME,
            TEXT
            | st.booleans()
            | st.integers(-(2**63), 2**63 - 1)
            | st.floats(allow_nan=False, allow_infinity=False),
            min_size=1,
            max_size=3,
        ),
        OBJECTS
        | st.lists(TEXT, max_size=2)
        | st.dictionaries(
            NAME, OBJECTS | st.sampled_from([math.nan, 2**64, None, [1]]), min_size=1, max_size=2
        )
        | st.dictionaries(st.integers() | st.sampled_from(["", " "]), TEXT, min_size=1, max_size=2),
        lambda spans, v: [
            _attr("run", "tcc.metadata." + k, lambda _, w=w: w)(spans, v) for k, w in v.items()
        ],
        names=("r.metadata",),
    ),
    Field(
        "r.metadata",
        "kwargs",
        _with_run(lambda r, v: r.metadata(**v)),
        st.dictionaries(
            st.from_regex(r"[a-z][a-z0-9]{0,9}", fullmatch=True).filter(lambda k: k != "data"),
            TEXT,
            min_size=1,
            max_size=3,
        ),
        st.dictionaries(
            st.from_regex(r"k[a-z0-9]{0,9}", fullmatch=True),
            OBJECTS | st.sampled_from([math.nan, 2**64, None]),
            min_size=1,
            max_size=2,
        ),
        lambda spans, v: [
            _attr("run", "tcc.metadata." + k, lambda _, w=w: w)(spans, v) for k, w in v.items()
        ],
        names=("r.metadata",),
    ),
    *_common("r", "run", _with_run),
    # r.step / r.tool_call: the constructors a run offers
    Field(
        "r.step",
        "step_id",
        lambda v: _step_made(lambda r: r.step(step_id=v)),
        ID,
        NOT_ID,
        _attr("step", "tcc.step.id"),
        names=("step_id",),
    ),
    Field(
        "r.step",
        "start_time",
        lambda v: _step_made(lambda r: r.step(start_time=v)),
        START,
        NOT_TIME,
        _time("step", "start_time"),
        names=("start_time",),
    ),
    Field(
        "r.tool_call",
        "tool_name",
        lambda v: _tool_made(lambda r: r.tool_call(v)),
        NAME,
        NOT_ID.filter(lambda v: v is not None),
        _all(
            _attr("tool", "gen_ai.tool.name"), lambda spans, v: _name("tool", f"execute_tool {v}")(spans, v)
        ),
        names=("tool_name",),
    ),
    Field(
        "r.tool_call",
        "tool_call_id",
        lambda v: _tool_made(lambda r: r.tool_call("t", tool_call_id=v)),
        ID,
        NOT_ID,
        _attr("tool", "gen_ai.tool.call.id"),
        names=("tool_call_id",),
    ),
    Field(
        "r.tool_call",
        "start_time",
        lambda v: _tool_made(lambda r: r.tool_call("t", start_time=v)),
        START,
        NOT_TIME,
        _time("tool", "start_time"),
        names=("start_time",),
    ),
    Field(
        "r.feedback",
        "score",
        lambda v: _run_feedback(v, None),
        st.sampled_from(["thumbs_up", "thumbs_down"]),
        OBJECTS | st.integers() | st.sampled_from(["", "up", "THUMBS_UP"]),
        _attr("feedback", "gen_ai.evaluation.score.label"),
        names=("score",),
    ),
    Field(
        "r.feedback",
        "text",
        lambda v: _run_feedback("thumbs_up", v),
        TEXT.filter(bool),
        OBJECTS | st.integers() | st.lists(TEXT, max_size=1),
        _attr("feedback", "gen_ai.evaluation.explanation"),
        names=("text",),
    ),
    # tcc.step(...), from anywhere
    Field(
        "tcc.step",
        "run_id",
        lambda v: _loose_step(run_id=v),
        ID,
        NOT_ID,
        _attr("step", "tcc.run.id"),
    ),
    Field(
        "tcc.step",
        "step_id",
        lambda v: _loose_step(step_id=v),
        ID,
        NOT_ID,
        _attr("step", "tcc.step.id"),
    ),
    Field(
        "tcc.step",
        "start_time",
        lambda v: _loose_step(start_time=v),
        START,
        NOT_TIME,
        _time("step", "start_time"),
    ),
    # the step's setters
    Field(
        "s.prompt",
        "text",
        _with_step(lambda s, v: s.prompt(v)),
        TEXT
        | st.lists(
            st.fixed_dictionaries(
                {"role": st.sampled_from(["user", "assistant", "system"]), "content": TEXT}
            ),
            min_size=1,
            max_size=3,
        ),
        OBJECTS
        | st.integers()
        | st.floats()
        | st.booleans()
        | st.lists(OBJECTS | st.integers(), min_size=1, max_size=2),
        _json_attr(
            "step",
            "gen_ai.input.messages",
            lambda v: (
                user_message(v)
                if isinstance(v, str)
                else [{"role": m["role"], "parts": [{"type": "text", "content": m["content"]}]} for m in v]
            ),
        ),
    ),
    Field(
        "s.response",
        "text",
        _with_step(lambda s, v: s.response(v)),
        TEXT,
        OBJECTS | st.integers() | st.floats() | st.booleans(),
        _json_attr("step", "gen_ai.output.messages", lambda v: assistant_message(v, None)),
    ),
    Field(
        "s.model",
        "requested",
        _with_step(lambda s, v: s.model(requested=v)),
        NAME,
        NOT_TEXT,
        _all(_attr("step", "gen_ai.request.model"), lambda spans, v: _name("step", f"chat {v}")(spans, v)),
    ),
    Field(
        "s.model",
        "used",
        _with_step(lambda s, v: s.model(used=v)),
        NAME,
        NOT_TEXT,
        _attr("step", "gen_ai.response.model"),
    ),
    Field(
        "s.model",
        "provider",
        _with_step(lambda s, v: s.model("m", provider=v)),
        NAME,
        NOT_TEXT,
        _attr("step", "gen_ai.provider.name"),
    ),
    Field(
        "s.first_chunk",
        "at",
        _with_step(lambda s, v: s.first_chunk(at=v)),
        # After the step's start, whenever the test runs: epoch ns from 2100 on.
        st.integers(4_102_444_800 * 10**9, 2**62),
        OBJECTS | st.text(max_size=2) | st.sampled_from([0, 1, -1, 1.5, True]),
        _all(
            _attr("step", "gen_ai.request.stream", lambda v: True),
            _first_chunk_seconds,
        ),
    ),
    _tokens("prompt_uncached", "gen_ai.usage.input_tokens"),
    _tokens("prompt_cached", "gen_ai.usage.cache_read.input_tokens"),
    _tokens("completion", "gen_ai.usage.output_tokens"),
    _tokens("cache_write", "gen_ai.usage.cache_creation.input_tokens"),
    _tokens("reasoning", "gen_ai.usage.reasoning.output_tokens", {"completion": 2**53}),
    Field(
        "s.cost",
        "real_total",
        _with_step(lambda s, v: s.cost(v)),
        st.floats(0, 1e12),
        OBJECTS
        | st.booleans()
        | st.text(max_size=2)
        | st.sampled_from([-0.01, -1, math.nan, math.inf, 10**400]),
        _all(_attr("step", "tcc.cost.usd", float), _attr("step", "tcc.cost.source", lambda v: "reported")),
    ),
    Field(
        "s.finish_reason",
        "reason",
        _with_step(lambda s, v: s.finish_reason(v)),
        NAME,
        NOT_TEXT,
        _all(
            _attr("step", "gen_ai.response.finish_reasons", lambda v: (v,)),
            _json_attr("step", "gen_ai.output.messages", lambda v: assistant_message("a", v)),
        ),
    ),
    Field(
        "s.tool_definitions",
        "definitions",
        _with_step(lambda s, v: s.tool_definitions(v)),
        st.lists(st.fixed_dictionaries({"name": NAME, "description": TEXT}), max_size=3).map(json.dumps),
        OBJECTS | st.integers() | st.floats() | st.booleans(),
        _attr("step", "gen_ai.tool.definitions"),
    ),
    *_common("s", "step", _with_step),
    Field(
        "s.tool_call",
        "tool_name",
        lambda v: _step_tool(lambda s: s.tool_call(v)),
        NAME,
        NOT_ID.filter(lambda v: v is not None),
        _attr("tool", "gen_ai.tool.name"),
        names=("tool_name",),
    ),
    Field(
        "s.tool_call",
        "tool_call_id",
        lambda v: _step_tool(lambda s: s.tool_call("t", tool_call_id=v)),
        ID,
        NOT_ID,
        _attr("tool", "gen_ai.tool.call.id"),
        names=("tool_call_id",),
    ),
    Field(
        "s.tool_call",
        "start_time",
        lambda v: _step_tool(lambda s: s.tool_call("t", start_time=v)),
        START,
        NOT_TIME,
        _time("tool", "start_time"),
        names=("start_time",),
    ),
    # tcc.tool_call(...), from anywhere
    Field(
        "tcc.tool_call",
        "run_id",
        lambda v: _loose_tool(run_id=v),
        ID,
        NOT_ID,
        _attr("tool", "tcc.run.id"),
    ),
    Field(
        "tcc.tool_call",
        "tool_call_id",
        lambda v: _loose_tool(tool_call_id=v),
        ID,
        NOT_ID,
        _attr("tool", "gen_ai.tool.call.id"),
    ),
    Field(
        "tcc.tool_call",
        "tool_name",
        lambda v: _loose_tool(tool_name=v),
        NAME,
        NOT_ID.filter(lambda v: v is not None),
        _attr("tool", "gen_ai.tool.name"),
    ),
    Field(
        "tcc.tool_call",
        "start_time",
        lambda v: _loose_tool(start_time=v),
        START,
        NOT_TIME,
        _time("tool", "start_time"),
    ),
    # the tool call's setters
    Field(
        "tc.name",
        "tool_name",
        _with_tool(lambda tc, v: tc.name(v)),
        NAME,
        NOT_ID,
        _attr("tool", "gen_ai.tool.name"),
    ),
    Field(
        "tc.args",
        "value",
        _with_tool(lambda tc, v: tc.args(v)),
        JSON.filter(lambda v: v is not None) | TEXT,
        NOT_JSON,
        _text_or_json_attr("tool", "gen_ai.tool.call.arguments"),
    ),
    Field(
        "tc.result",
        "value",
        _with_tool(lambda tc, v: tc.result(v)),
        JSON.filter(lambda v: v is not None) | TEXT,
        NOT_JSON,
        _text_or_json_attr("tool", "gen_ai.tool.call.result"),
    ),
    *_common("tc", "tool", _with_tool),
    # tcc.submit_feedback(...)
    Field(
        "tcc.submit_feedback",
        "run_id",
        lambda v: _loose_feedback(v),
        ID,
        NOT_ID,
        _attr("feedback", "tcc.run.id"),
    ),
    Field(
        "tcc.submit_feedback",
        "score",
        lambda v: _feedback(v, None),
        st.sampled_from(["thumbs_up", "thumbs_down"]),
        OBJECTS | st.integers() | st.sampled_from(["", "up", "THUMBS_UP"]),
        _all(
            _attr("feedback", "gen_ai.evaluation.score.label"),
            _attr(
                "feedback",
                "gen_ai.evaluation.score.value",
                lambda v: {"thumbs_up": 1.0, "thumbs_down": -1.0}[v],
            ),
        ),
    ),
    Field(
        "tcc.submit_feedback",
        "text",
        lambda v: _feedback(None, v),
        TEXT.filter(bool),
        OBJECTS | st.integers() | st.lists(TEXT, max_size=1),
        _attr("feedback", "gen_ai.evaluation.explanation"),
    ),
)


def _name(role: str, expected: str) -> Check:
    def check(spans: dict[str, ReadableSpan], value: Any) -> None:
        assert spans[role].name == expected, f"{role}: span name {spans[role].name!r} != {expected!r}"

    return check


def _step_made(make: Callable[[tcc.Run], tcc.Step]) -> Made:
    r = tcc.run()
    s = make(r)
    s.prompt("p").response("a").end()
    r.prompt("q").end()
    return Made(r, step=s)


def _tool_made(make: Callable[[tcc.Run], tcc.ToolCall]) -> Made:
    r = tcc.run()
    tc = make(r)
    tc.end()
    r.prompt("q").end()
    return Made(r, tool=tc)


def _step_tool(make: Callable[[tcc.Step], tcc.ToolCall]) -> Made:
    r = tcc.run()
    s = r.step().prompt("p").response("a")
    tc = make(s)
    tc.end()
    s.end()
    r.prompt("q").end()
    return Made(r, step=s, tool=tc)


def _run_feedback(score: Any, text: Any) -> Made:
    r = tcc.run()
    r.prompt("q").end()
    assert r.feedback(score, text) is True
    return Made(r, feedback=True)


def _loose_step(**kwargs: Any) -> Made:
    r = tcc.run()
    s = tcc.step(**{"run_id": r.run_id, **kwargs})
    s.prompt("p").response("a").end()
    r.prompt("q").end()
    return Made(r, step=s)


def _loose_tool(**kwargs: Any) -> Made:
    r = tcc.run()
    tc = tcc.tool_call(**{"run_id": r.run_id, "tool_name": "t", **kwargs})
    tc.end()
    r.prompt("q").end()
    return Made(r, tool=tc)


def _loose_feedback(run_id: Any) -> Made:
    r = tcc.run()
    r.prompt("q").end()
    assert tcc.submit_feedback(run_id, "thumbs_up") is True
    return Made(r, feedback=True)


# --- the public API's fields -------------------------------------------------------------------------------

# Parameters that change where a span goes, not what it carries (see the module doc).
ROUTING: Final = {"api_key", "tcc_url"}
_VARS: Final = {tcc.Run: "r", tcc.Step: "s", tcc.ToolCall: "tc"}
# Methods without parameters, or that only end the record (tested through every field above).
NO_FIELDS: Final = {"end", "context"}


def public_fields() -> set[str]:
    """Every ``owner(param=...)`` of the public record API, from the signatures."""
    found: set[str] = set()
    functions: list[tuple[str, Callable[..., Any]]] = [
        ("tcc.run", tcc.run),
        ("tcc.step", tcc.step),
        ("tcc.tool_call", tcc.tool_call),
        ("tcc.submit_feedback", tcc.submit_feedback),
    ]
    for cls, var in _VARS.items():
        for name, member in inspect.getmembers(cls, inspect.isfunction):
            if not name.startswith("_") and name not in NO_FIELDS:
                functions.append((f"{var}.{name}", member))
    for owner, function in functions:
        for param in inspect.signature(function).parameters.values():
            if param.name == "self" or param.name in ROUTING or param.name.startswith("_"):
                continue
            found.add(f"{owner}({param.name}=...)")
    return found


def test_every_public_field_has_an_entry() -> None:
    covered = {f.label for f in FIELDS}
    assert len(covered) == len(FIELDS), "a field is listed twice"
    fields = public_fields()
    assert fields - covered == set(), (
        f"fields of the public API with no entry here: {sorted(fields - covered)}"
    )
    assert covered - fields == set(), (
        f"entries for fields the public API does not have: {sorted(covered - fields)}"
    )


def _spans(captured: Captured, made: Made) -> dict[str, ReadableSpan]:
    spans = [s for s in captured.spans() if (s.attributes or {}).get("tcc.run.id") is not None]
    found: dict[str, ReadableSpan] = {}
    for span in spans:
        a = span.attributes or {}
        if a.get("gen_ai.operation.name") == "invoke_agent" and a.get("tcc.run.id") == made.run.run_id:
            found["run"] = span
        elif made.step is not None and a.get("tcc.step.id") == made.step.step_id:
            found["step"] = span
        elif made.tool is not None and a.get("gen_ai.tool.call.id") == made.tool.tool_call_id:
            found["tool"] = span
        elif made.feedback and span.name == "feedback":
            found["feedback"] = span
    roles = {
        "run": True,
        "step": made.step is not None,
        "tool": made.tool is not None,
        "feedback": made.feedback,
    }
    wanted = {role for role, made_one in roles.items() if made_one}
    assert set(found) == wanted, f"arrived: {sorted(found)}, made: {sorted(wanted)}"
    return found


# Each field on its own (so a failure names it), a few examples each: 2 x 56 fields x 10 examples.
SETTINGS: Final = settings(
    max_examples=10,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
EACH_FIELD: Final = pytest.mark.parametrize("item", FIELDS, ids=[f.label for f in FIELDS])


@EACH_FIELD
@SETTINGS
@given(data=st.data())
def test_every_valid_value_arrives_unchanged(captured: Captured, item: Field, data: st.DataObject) -> None:
    """Any valid value: the call works and the value arrives on the span exactly."""
    value = data.draw(item.valid, label=item.label)
    captured.exporter.clear()
    made = item.call(value)
    item.check(_spans(captured, made), value)


@EACH_FIELD
@SETTINGS
@given(data=st.data())
def test_every_invalid_value_raises_at_the_call_naming_the_parameter(
    captured: Captured, item: Field, data: st.DataObject
) -> None:
    """Any invalid value: TypeError or ValueError at the call, its message naming the call and the
    parameter."""
    value = data.draw(item.invalid, label=item.label)
    with pytest.raises((TypeError, ValueError)) as raised:
        item.call(value)
    message = str(raised.value)
    assert type(raised.value) in (TypeError, ValueError), f"{item.label}: a subclass {raised.type.__name__}"
    assert message.startswith("[TCC] "), f"{item.label}: {message!r}"
    for name in item.names or (item.label,):
        assert name in message, f"{item.label}: the error does not name {name!r}: {message!r}"
