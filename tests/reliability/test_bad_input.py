"""Bad input never hurts the host service.

Every public entry point, given any value (wrong types, NaN and infinities, huge numbers, 10 MB text, deep,
recursive or non-JSON values, lone surrogates, bytes, odd metadata keys, times before 1970, ...) either
works, with the documented coercion only (lone surrogates become U+FFFD, UUID ids become str), or raises
TypeError / ValueError at the call, naming the call and the parameter. Never another exception type, never
an exception later (from ``end()`` of a record whose setters all succeeded, or on the export thread), never a
corrupt span (every attribute a valid OpenTelemetry value, every str valid UTF-8, every messages attribute
valid JSON), and never a lost value: valid calls interleaved with invalid ones on the same records all
arrive with their values.
"""

from __future__ import annotations

import dataclasses
import enum
import json
import math
import operator
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta, timezone
from decimal import Decimal
from fractions import Fraction
from functools import partial
from typing import Any, Final

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.trace import StatusCode

import contextcompany as tcc
from contextcompany import _pipeline, _settings
from contextcompany._redact import redact
from tests.conftest import Captured, sending_nothing

# --- what a valid exported span is ----------------------------------------------------------------------

INT64_MIN: Final = -(2**63)
INT64_MAX: Final = 2**63 - 1
MESSAGE_KEYS: Final = ("gen_ai.input.messages", "gen_ai.output.messages", "gen_ai.system_instructions")
LIMIT: Final = 262_144


def _check_attribute_value(where: str, value: object) -> None:
    """An OpenTelemetry attribute value the OTLP encoder can carry: str (valid UTF-8), bool, int64,
    float, or a homogeneous sequence of those."""
    if isinstance(value, bool | float):
        return
    if isinstance(value, int):
        assert INT64_MIN <= value <= INT64_MAX, f"{where}: int {value} does not fit OTLP's int64"
        return
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError as exc:
            raise AssertionError(f"{where}: str is not valid UTF-8 ({exc})") from None
        return
    if isinstance(value, tuple | list):
        assert len({type(item) for item in value}) <= 1, f"{where}: mixed sequence {value!r}"
        for index, item in enumerate(value):
            assert not isinstance(item, tuple | list), f"{where}[{index}]: nested sequence"
            _check_attribute_value(f"{where}[{index}]", item)
        return
    raise AssertionError(f"{where}: {type(value).__name__} is not an OpenTelemetry attribute value")


def _check_attributes(where: str, attributes: Mapping[str, object] | None) -> None:
    for key, value in (attributes or {}).items():
        assert isinstance(key, str), f"{where}: attribute key {key!r} is not a str"
        _check_attribute_value(f"{where} key {key[:60]!r}", key)
        _check_attribute_value(f"{where} {key[:60]!r}", value)


def assert_exportable(spans: list[ReadableSpan]) -> None:
    """Every span is one the OTLP exporter sends whole: valid names, attributes, events and status, valid
    JSON in every messages attribute, and the real OTLP encoder serialises the batch."""
    for span in spans:
        where = f"span {span.name[:60]!r}"
        _check_attribute_value(f"{where} name", span.name)
        _check_attributes(where, span.attributes)
        _check_attributes(f"{where} resource", span.resource.attributes)
        if span.status.description is not None:
            _check_attribute_value(f"{where} status", span.status.description)
        for event in span.events:
            _check_attribute_value(f"{where} event name", event.name)
            _check_attributes(f"{where} event {event.name!r}", event.attributes)
        for key in MESSAGE_KEYS:
            value = (span.attributes or {}).get(key)
            if value is not None:
                assert isinstance(value, str), f"{where} {key} is not a str"
                try:
                    parsed = json.loads(value)
                except ValueError as exc:
                    raise AssertionError(f"{where} {key} is not valid JSON: {exc}") from None
                assert isinstance(parsed, list), f"{where} {key} is not a JSON list"
    encode_spans(spans).SerializeToString()


def attrs(span: ReadableSpan) -> dict[str, Any]:
    return dict(span.attributes or {})


def spans_of_run(captured: Captured, run_id: str) -> list[ReadableSpan]:
    """Every span of run ``run_id`` exported so far, checked: nothing dropped, nothing failed, exportable."""
    spans = captured.spans()  # flushes and asserts nothing was dropped
    stats = captured.processor.stats()
    assert stats.exports_failed == 0, stats
    assert stats.spans_dropped == 0, stats
    assert_exportable(spans)
    return [s for s in spans if attrs(s).get("tcc.run.id") == run_id]


# --- the documented coercions, as an independent oracle -------------------------------------------------


def fix(text: str) -> str:
    """Lone UTF-16 surrogates become U+FFFD, pairs are joined (README: "Text is stored as given, except
    lone UTF-16 surrogates...")."""
    if text.isascii():
        return text
    out: list[str] = []
    i = 0
    while i < len(text):
        code = ord(text[i])
        if 0xD800 <= code <= 0xDBFF and i + 1 < len(text) and 0xDC00 <= ord(text[i + 1]) <= 0xDFFF:
            out.append(chr(0x10000 + ((code - 0xD800) << 10) + (ord(text[i + 1]) - 0xDC00)))
            i += 2
            continue
        out.append("\ufffd" if 0xD800 <= code <= 0xDFFF else text[i])
        i += 1
    return "".join(out)


def dumps(value: object) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"), allow_nan=False)


def user_messages(text: str) -> list[dict[str, Any]]:
    return [{"role": "user", "parts": [{"type": "text", "content": text}]}]


def assistant_messages(text: str, finish_reason: str | None) -> list[dict[str, Any]]:
    message: dict[str, Any] = {"role": "assistant", "parts": [{"type": "text", "content": text}]}
    if finish_reason is not None:
        message["finish_reason"] = finish_reason
    return [message]


def epoch_ns(value: object) -> int:
    if isinstance(value, datetime):
        aware = value if value.tzinfo is not None else value.replace(tzinfo=UTC)
        return (aware - datetime(1970, 1, 1, tzinfo=UTC)) // timedelta(microseconds=1) * 1000
    assert isinstance(value, int)
    return value


# --- "any value" -------------------------------------------------------------------------------------------


class Opaque:
    """An object JSON cannot hold, with an ordinary repr."""

    def __repr__(self) -> str:
        return "<Opaque>"


class BigText(str):
    """A 10 MB str that prints short in a failure report."""

    __slots__ = ()

    def __repr__(self) -> str:
        return f"<str of {len(self):,} chars>"


class DeepList(list[Any]):
    """A list nested far beyond the recursion limit, printed short."""

    def __repr__(self) -> str:
        return "<list nested 100,000 deep>"


class Weekday(enum.IntEnum):
    MONDAY = 1


def _recursive_list() -> list[Any]:
    value: list[Any] = ["a"]
    value.append(value)
    return value


def _recursive_dict() -> dict[str, Any]:
    value: dict[str, Any] = {"a": 1}
    value["self"] = value
    return value


def _deep_list(depth: int) -> DeepList:
    inner: list[Any] = []
    for _ in range(depth):
        inner = [inner]
    return DeepList(inner)


TEN_MB: Final = BigText("x" * 10_000_000)
SURROGATES: Final = ("\ud800", "\udbff", "\udc00", "\udfff", "\ud83d", "\ude00")

SPECIAL_VALUES: Final[tuple[object, ...]] = (
    math.nan,
    math.inf,
    -math.inf,
    -0.0,
    5e-324,
    1e308,
    -1,
    -(2**63) - 1,
    2**63,
    2**64,
    10**400,
    Decimal("1.5"),
    Decimal("NaN"),
    Decimal("-Infinity"),
    Fraction(1, 3),
    Weekday.MONDAY,
    uuid.UUID("12345678-1234-5678-1234-567812345678"),
    b"\xff\xfe\xfd",
    bytearray(b"\x80abc"),
    "",
    " ",
    "\t\n",
    "\x00",
    "\ud800",
    "a\udcffb",
    "\ud83d\ude00",
    "\ufffe\uffff",
    "http://[",
    "http://collector.example.com",
    "https://collector.example.com:4318",
    "ftp://collector.example.com",
    "thumbs_up",
    "thumbs_down",
    "f" * 2001,
    TEN_MB,
    datetime(1969, 12, 31, 23, 59, 59, tzinfo=UTC),
    datetime(1970, 1, 1),
    datetime(2000, 1, 1, tzinfo=timezone(timedelta(hours=14))),
    datetime(2262, 4, 12, tzinfo=UTC),
    datetime.max,
    datetime.min,
    date(2026, 1, 1),
    timedelta(seconds=1),
    object(),
    Opaque(),
    _recursive_list(),
    _recursive_dict(),
    _deep_list(100_000),
    _deep_list(200),
    set(),
    frozenset({1, 2}),
    complex(1, 2),
    Ellipsis,
    int,
    print,
)


def texts(max_size: int = 12) -> st.SearchStrategy[str]:
    """Text including lone surrogates (and so, now and then, surrogate pairs)."""
    return st.lists(st.one_of(st.characters(), st.sampled_from(SURROGATES)), max_size=max_size).map("".join)


_SCALARS: Final = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(),
    texts(),
    st.binary(max_size=8),
    st.sampled_from(SPECIAL_VALUES),
)
ANY: Final = st.recursive(
    _SCALARS,
    lambda children: st.one_of(
        st.lists(children, max_size=3),
        st.tuples(children, children),
        st.dictionaries(st.one_of(texts(6), st.integers(), st.none()), children, max_size=3),
    ),
    max_leaves=8,
)
JSON_VALUES: Final = st.recursive(
    st.one_of(
        st.none(),
        st.booleans(),
        st.integers(INT64_MIN, INT64_MAX),
        st.floats(allow_nan=False, allow_infinity=False),
        texts(),
    ),
    lambda children: st.one_of(
        st.lists(children, max_size=3), st.dictionaries(texts(6), children, max_size=3)
    ),
    max_leaves=6,
)
METADATA_KEYS: Final = st.one_of(
    texts(8),
    st.sampled_from(
        ["", " ", "\t", "\u2003", "a.b.c", "..", "ключ", "キー", "\ud800", "k" * 10_000, "x" * 300]
    ),
)
METADATA_VALUES: Final = st.one_of(
    texts(),
    st.booleans(),
    st.integers(INT64_MIN, INT64_MAX),
    st.floats(allow_nan=False, allow_infinity=False),
)

_ROLES: Final = st.sampled_from(
    ["user", "assistant", "system", "developer", "tool", "function", "", " ", "critic"]
)
_BLOCK_TYPES: Final = st.sampled_from(
    [
        "text",
        "image_url",
        "tool_use",
        "tool_result",
        "image",
        "thinking",
        "input_audio",
        "refusal",
        "document",
        "",
    ]
)
BLOCKISH: Final = st.fixed_dictionaries(
    {"type": _BLOCK_TYPES | ANY},
    optional=dict.fromkeys(
        (
            "text",
            "image_url",
            "name",
            "input",
            "id",
            "tool_use_id",
            "content",
            "source",
            "thinking",
            "input_audio",
            "refusal",
            "is_error",
        ),
        ANY,
    ),
)
TOOLCALLISH: Final = st.fixed_dictionaries(
    {},
    optional={
        "id": ANY,
        "type": st.just("function") | ANY,
        "function": st.fixed_dictionaries(
            {},
            optional={
                "name": texts() | ANY,
                "arguments": ANY | st.sampled_from(['{"a": NaN}', '{"a": "\\ud800"}', "{", "{}"]),
            },
        )
        | ANY,
        "custom": ANY,
    },
)
MESSAGEISH: Final = st.fixed_dictionaries(
    {"role": _ROLES | ANY},
    optional={
        "content": ANY | st.lists(BLOCKISH | texts(), max_size=3),
        "tool_calls": ANY | st.lists(TOOLCALLISH, max_size=2),
        "parts": ANY | st.lists(BLOCKISH, max_size=2),
        "name": ANY,
        "tool_call_id": ANY,
        "refusal": ANY,
        "reasoning_content": ANY,
        "function_call": ANY | st.fixed_dictionaries({"name": ANY}, optional={"arguments": ANY}),
        "audio": ANY,
    },
)
# What an LLM SDK hands back: a message, an OpenAI choice or completion, an Anthropic message.
RESPONSEISH: Final = st.one_of(
    MESSAGEISH,
    st.fixed_dictionaries({"message": MESSAGEISH | ANY}, optional={"finish_reason": ANY, "index": ANY}),
    st.fixed_dictionaries(
        {
            "choices": st.lists(
                st.fixed_dictionaries({"message": MESSAGEISH}, optional={"finish_reason": ANY}), max_size=2
            )
            | ANY
        }
    ),
    st.fixed_dictionaries(
        {"type": st.just("message"), "content": st.lists(BLOCKISH, max_size=3) | ANY},
        optional={"stop_reason": ANY, "role": ANY},
    ),
)

# Derandomised: the same examples every run, so a run's outcome does not depend on luck.
FUZZ: Final = settings(
    max_examples=100,
    derandomize=True,
    deadline=None,
    suppress_health_check=[
        HealthCheck.function_scoped_fixture,
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
    ],
)


# --- the outcome of one call -------------------------------------------------------------------------------


def call(label: str, fn: Callable[[], object], *names: str) -> tuple[bool, object]:
    """Call ``fn``: (True, its result), or (False, None) when it raised a TypeError / ValueError whose message
    carries ``[TCC]`` and names ``label``'s call (or all of ``names``). Anything else fails the test."""
    try:
        result = fn()
    except Exception as exc:
        error = exc
    else:
        return True, result
    kind, message = type(error).__name__, str(error)
    if not isinstance(error, TypeError | ValueError):
        raise AssertionError(f"{label} raised {kind}, not TypeError/ValueError: {message[:300]}") from error
    assert type(error) in (TypeError, ValueError), f"{label} raised {kind}, a subclass: {message[:300]}"
    assert "[TCC]" in message, f"{label} raised a message not from tcc: {kind}: {message[:300]}"
    wanted = names or (label,)
    assert all(name in message for name in wanted), (
        f"{label}: the error does not name {wanted}: {kind}: {message[:300]}"
    )
    return False, None


# --- records under test, and what they must export ---------------------------------------------------------


class _Unknown:
    """Set, to a value this model does not predict (it is checked to be a valid one)."""

    def __repr__(self) -> str:
        return "UNKNOWN"


UNKNOWN: Final = _Unknown()
MAYBE: Final = object()  # may be exported or not (e.g. a finish reason read from a structured response)


def _text_or_unknown(value: object) -> object:
    if isinstance(value, str) and len(value) < 10_000:
        return fix(value)
    return UNKNOWN


def _json_or_text(value: object) -> object:
    """What tc.args(v) / full_input=v exports, for a value the call accepted."""
    if isinstance(value, str):
        return _text_or_unknown(value)
    try:
        text = dumps(value)
    except (TypeError, ValueError, RecursionError):
        return UNKNOWN
    return fix(text) if len(text) < 10_000 else UNKNOWN


@dataclass
class State:
    """What one record must export, from the calls that succeeded on it."""

    status: int = 0
    status_message: str | None = None
    end_ns: int | None = None
    error: str | None = None  # ended with error(message): the description
    values: dict[str, object] = field(default_factory=dict)  # attribute -> expected (or UNKNOWN)
    # a step's composite attributes
    prompt: object = None
    response: object = None  # str, or UNKNOWN for a structured one
    finish_reason: object = None
    requested: object = None
    used: object = None
    tokens: dict[str, int] = field(default_factory=dict)
    metadata: dict[str, object] = field(default_factory=dict)


@dataclass(frozen=True, repr=False)
class Op:
    """A setter: how to call it with a value, its valid values, and what a call that succeeded sets."""

    label: str  # the call as tcc's error messages name it
    target: str  # "run", "step" or "tool"
    apply: Callable[[Any, Any], object]
    valid: Callable[[State], st.SearchStrategy[Any]]
    accept: Callable[[State, Any], None]
    names: tuple[str, ...] = ()  # what an error must name, when not the label
    anything: st.SearchStrategy[Any] = ANY  # the invalid (or odd) values to try

    def __repr__(self) -> str:
        return f"Op({self.label})"


def _set(key: str, convert: Callable[[Any], object] = _text_or_unknown) -> Callable[[State, Any], None]:
    def accept(state: State, value: Any) -> None:
        state.values[key] = convert(value)

    return accept


def _run_prompt(state: State, user: Any, system: Any = None, full_input: Any = None) -> None:
    state.values["gen_ai.input.messages"] = (
        user_messages(fix(user)) if isinstance(user, str) and len(user) < 10_000 else UNKNOWN
    )
    if system is None:
        state.values["gen_ai.system_instructions"] = None
    elif isinstance(system, str) and len(system) < 10_000:
        state.values["gen_ai.system_instructions"] = [{"type": "text", "content": fix(system)}]
    else:
        state.values["gen_ai.system_instructions"] = UNKNOWN
    state.values["tcc.run.full_input"] = None if full_input is None else _json_or_text(full_input)


def _run_response(state: State, text: Any, full_output: Any = None) -> None:
    state.values["gen_ai.output.messages"] = (
        assistant_messages(fix(text), "stop") if isinstance(text, str) and len(text) < 10_000 else UNKNOWN
    )
    state.values["tcc.run.full_output"] = None if full_output is None else _json_or_text(full_output)


def _metadata(state: State, data: Any, kwargs: Mapping[str, Any]) -> None:
    for key, value in [*(data.items() if data is not None else ()), *kwargs.items()]:
        state.metadata[fix(key)] = _text_or_unknown(value) if isinstance(value, str) else value


def _step_prompt(state: State, value: Any) -> None:
    if isinstance(value, str):
        state.prompt = user_messages(fix(value)) if len(value) < 10_000 else UNKNOWN
    elif isinstance(value, list) and all(
        isinstance(m, dict) and set(m) == {"role", "content"} and isinstance(m["content"], str) for m in value
    ):
        state.prompt = [
            {"role": m["role"], "parts": [{"type": "text", "content": fix(m["content"])}]} for m in value
        ]
    else:
        state.prompt = UNKNOWN


def _step_response(state: State, value: Any) -> None:
    state.response = fix(value) if isinstance(value, str) and len(value) < 10_000 else UNKNOWN


def _model(state: State, requested: Any, used: Any) -> None:
    if requested is not None:
        state.requested = fix(requested)
    if used is not None:
        state.used = fix(used)
    elif requested is not None and state.used is None:
        state.used = fix(requested)


def _tokens(name: str) -> Callable[[State, Any], None]:
    def accept(state: State, value: Any) -> None:
        if value is not None:
            state.tokens[name] = operator.index(value)

    return accept


def _valid_tokens(name: str) -> Callable[[State], st.SearchStrategy[Any]]:
    def valid(state: State) -> st.SearchStrategy[Any]:
        if name == "reasoning":
            return (
                st.integers(0, state.tokens.get("completion", 0))
                if "completion" in state.tokens
                else st.integers(0, 10**6)
            )
        if name == "completion":
            least = state.tokens.get("reasoning", 0)
            return st.integers(least, least + 10**7)
        return st.integers(0, 10**7) | st.none()

    return valid


def _cost(state: State, value: Any) -> None:
    state.values["tcc.cost.usd"] = float(value)
    state.values["tcc.cost.source"] = "reported"


def _status(state: State, code: Any, message: Any = None) -> None:
    state.status = int(code)
    state.status_message = None if message is None else redact(fix(message))


def _end_time(state: State, value: Any) -> None:
    state.end_ns = None if value is None else epoch_ns(value)


FUTURE_NS: Final = 4_000_000_000 * 10**9  # 2096: after any record's start


def _valid_end(state: State) -> st.SearchStrategy[Any]:
    return st.one_of(
        st.integers(FUTURE_NS, FUTURE_NS + 10**12),
        st.integers(FUTURE_NS, FUTURE_NS + 10**12).map(lambda ns: datetime.fromtimestamp(ns // 10**9, UTC)),
    )


def _valid_messages() -> st.SearchStrategy[Any]:
    return st.lists(
        st.fixed_dictionaries({"role": st.sampled_from(["user", "assistant", "system"]), "content": texts()}),
        min_size=1,
        max_size=3,
    )


def _common_ops(target: str, var: str) -> list[Op]:
    return [
        Op(
            f"{var}.status(code=...)",
            target,
            lambda r, v: r.status(v),
            lambda s: st.sampled_from([0, 1, 2]),
            lambda s, v: _status(s, v),
        ),
        Op(
            f"{var}.status(message=...)",
            target,
            lambda r, v: r.status(2, v),
            lambda s: texts() | st.none(),
            lambda s, v: _status(s, 2, v),
        ),
        Op(f"{var}.end_time(t=...)", target, lambda r, v: r.end_time(v), _valid_end, _end_time),
    ]


OPS: Final[tuple[Op, ...]] = (
    # the run
    Op("r.prompt(user_prompt=...)", "run", lambda r, v: r.prompt(v), lambda s: texts(), _run_prompt),
    Op(
        "r.prompt(system_prompt=...)",
        "run",
        lambda r, v: r.prompt("the user's question", v),
        lambda s: texts() | st.none(),
        lambda s, v: _run_prompt(s, "the user's question", v),
        anything=ANY | st.lists(BLOCKISH | texts() | ANY, max_size=3),
    ),
    Op(
        "r.prompt(full_input=...)",
        "run",
        lambda r, v: r.prompt("the user's question", None, v),
        lambda s: JSON_VALUES,
        lambda s, v: _run_prompt(s, "the user's question", None, v),
    ),
    Op("r.response(text=...)", "run", lambda r, v: r.response(v), lambda s: texts(), _run_response),
    Op(
        "r.response(full_output=...)",
        "run",
        lambda r, v: r.response("the answer", v),
        lambda s: JSON_VALUES,
        lambda s, v: _run_response(s, "the answer", v),
    ),
    Op(
        "r.metadata(data=...)",
        "run",
        lambda r, v: r.metadata(v),
        lambda s: st.dictionaries(METADATA_KEYS, METADATA_VALUES, max_size=3),
        lambda s, v: _metadata(s, v, {}),
        names=("r.metadata",),
    ),
    Op(
        "r.metadata(key=...)",
        "run",
        lambda r, v: r.metadata(**{v[0]: v[1]}),
        lambda s: st.tuples(METADATA_KEYS, METADATA_VALUES),
        lambda s, v: _metadata(s, None, {v[0]: v[1]}),
        names=("r.metadata",),
        anything=st.tuples(METADATA_KEYS, ANY),
    ),
    *_common_ops("run", "r"),
    # the step
    Op(
        "s.prompt(text=...)",
        "step",
        lambda s, v: s.prompt(v),
        lambda s: texts() | _valid_messages(),
        _step_prompt,
        anything=ANY | st.lists(MESSAGEISH | ANY, max_size=3),
    ),
    Op(
        "s.response(text=...)",
        "step",
        lambda s, v: s.response(v),
        lambda s: texts(),
        _step_response,
        anything=ANY | RESPONSEISH,
    ),
    Op(
        "s.model(requested=...)",
        "step",
        lambda s, v: s.model(v),
        lambda s: texts(),
        lambda s, v: _model(s, v, None),
    ),
    Op(
        "s.model(used=...)",
        "step",
        lambda s, v: s.model(used=v),
        lambda s: texts(),
        lambda s, v: _model(s, None, v),
    ),
    Op(
        "s.tokens(prompt_uncached=...)",
        "step",
        lambda s, v: s.tokens(prompt_uncached=v),
        _valid_tokens("uncached"),
        _tokens("uncached"),
    ),
    Op(
        "s.tokens(prompt_cached=...)",
        "step",
        lambda s, v: s.tokens(prompt_cached=v),
        _valid_tokens("cached"),
        _tokens("cached"),
    ),
    Op(
        "s.tokens(completion=...)",
        "step",
        lambda s, v: s.tokens(completion=v),
        _valid_tokens("completion"),
        _tokens("completion"),
        names=("s.tokens(", "completion"),
    ),
    Op(
        "s.tokens(cache_write=...)",
        "step",
        lambda s, v: s.tokens(cache_write=v),
        _valid_tokens("cache_write"),
        _tokens("cache_write"),
    ),
    Op(
        "s.tokens(reasoning=...)",
        "step",
        lambda s, v: s.tokens(reasoning=v),
        _valid_tokens("reasoning"),
        _tokens("reasoning"),
    ),
    Op(
        "s.cost(real_total=...)",
        "step",
        lambda s, v: s.cost(v),
        lambda s: st.floats(0, 1e6) | st.integers(0, 10**6),
        _cost,
    ),
    Op(
        "s.finish_reason(reason=...)",
        "step",
        lambda s, v: s.finish_reason(v),
        lambda s: st.sampled_from(["stop", "length", "tool_calls"]) | texts(),
        lambda s, v: setattr(s, "finish_reason", fix(v)),
    ),
    Op(
        "s.tool_definitions(definitions=...)",
        "step",
        lambda s, v: s.tool_definitions(v),
        lambda s: st.just('[{"name": "get_weather"}]'),
        _set("gen_ai.tool.definitions"),
        anything=ANY | st.lists(st.dictionaries(texts(6), ANY, max_size=3) | ANY, max_size=3),
    ),
    *_common_ops("step", "s"),
    # the tool call
    Op(
        "tc.name(tool_name=...)",
        "tool",
        lambda tc, v: tc.name(v),
        lambda s: texts().filter(lambda t: bool(t.strip())),
        _set("gen_ai.tool.name"),
    ),
    Op(
        "tc.args(value=...)",
        "tool",
        lambda tc, v: tc.args(v),
        lambda s: JSON_VALUES,
        _set("gen_ai.tool.call.arguments", _json_or_text),
    ),
    Op(
        "tc.result(value=...)",
        "tool",
        lambda tc, v: tc.result(v),
        lambda s: JSON_VALUES,
        _set("gen_ai.tool.call.result", _json_or_text),
    ),
    *_common_ops("tool", "tc"),
)


OPS_BY_LABEL: Final = {op.label: op for op in OPS}


def _expected(state: State, target: str) -> dict[str, object]:
    expected = dict(state.values)
    if target == "run":
        for key, value in state.metadata.items():
            expected["tcc.metadata." + key] = value
    if target == "step":
        expected["gen_ai.input.messages"] = state.prompt
        finish_reason = state.finish_reason or None  # an empty finish reason says nothing: left out
        if isinstance(state.response, str):
            expected["gen_ai.output.messages"] = assistant_messages(state.response, finish_reason)  # type: ignore[arg-type]
        else:
            expected["gen_ai.output.messages"] = state.response
        expected["gen_ai.request.model"] = state.requested
        expected["gen_ai.response.model"] = state.used
        tokens = state.tokens
        expected["gen_ai.usage.input_tokens"] = (
            tokens.get("uncached", 0) + tokens.get("cached", 0) + tokens.get("cache_write", 0)
            if {"uncached", "cached", "cache_write"} & set(tokens)
            else None
        )
        expected["gen_ai.usage.cache_read.input_tokens"] = tokens.get("cached")
        expected["gen_ai.usage.cache_creation.input_tokens"] = tokens.get("cache_write")
        expected["gen_ai.usage.output_tokens"] = tokens.get("completion")
        expected["gen_ai.usage.reasoning.output_tokens"] = tokens.get("reasoning")
        if finish_reason is not None:
            expected["gen_ai.response.finish_reasons"] = (finish_reason,)
        elif state.response is UNKNOWN:
            expected["gen_ai.response.finish_reasons"] = MAYBE
        else:
            expected["gen_ai.response.finish_reasons"] = None
    return expected


def _assert_exported(span: ReadableSpan, state: State, target: str) -> None:
    got = attrs(span)
    for key, want in _expected(state, target).items():
        if want is MAYBE:
            continue
        if want is None:
            assert key not in got, (
                f"{span.name}: {key} was exported ({got[key]!r:.200}) but never validly set"
            )
        elif want is UNKNOWN:
            assert key in got, f"{span.name}: {key} was set but not exported"
        elif key in MESSAGE_KEYS:
            assert json.loads(got[key]) == want, f"{span.name}: {key}"
        else:
            assert got.get(key) == want, f"{span.name}: {key}: {got.get(key)!r:.200} != {want!r:.200}"
    if state.error is not None:
        assert span.status.status_code is StatusCode.ERROR
        assert span.status.description == state.error
        assert got["error.type"] == "_OTHER"
    elif state.status == 2:
        assert span.status.status_code is StatusCode.ERROR
        assert span.status.description == state.status_message
        assert got["error.type"] == "_OTHER"
    else:
        assert span.status.status_code is (StatusCode.OK if state.status == 1 else StatusCode.UNSET), (
            span.status
        )
        assert "error.type" not in got
    if state.end_ns is not None:
        assert span.end_time == state.end_ns


# --- a canary: valid records made around the bad calls all arrive --------------------------------------


def canary(tag: str) -> str:
    r = tcc.run(name="canary", session_id=f"session-{tag}")
    r.prompt(f"canary question {tag}", system_prompt="be brief").metadata(tag=tag)
    s = r.step().prompt(f"canary prompt {tag}").response(f"canary answer {tag}").model("gpt-4o")
    s.tokens(prompt_uncached=10, completion=2).end()
    r.tool_call("canary_tool").args({"tag": tag}).result([tag]).end()
    r.response(f"canary response {tag}").end()
    r.feedback(score="thumbs_up", text=f"canary feedback {tag}")
    return r.run_id


def assert_canary(captured: Captured, run_id: str, tag: str) -> None:
    spans = {s.name: s for s in spans_of_run(captured, run_id)}
    assert set(spans) == {"invoke_agent canary", "chat gpt-4o", "execute_tool canary_tool", "feedback"}
    run, step, tool, feedback = (
        spans[n] for n in ("invoke_agent canary", "chat gpt-4o", "execute_tool canary_tool", "feedback")
    )
    assert json.loads(attrs(run)["gen_ai.input.messages"]) == user_messages(f"canary question {tag}")
    assert json.loads(attrs(run)["gen_ai.output.messages"]) == assistant_messages(
        f"canary response {tag}", "stop"
    )
    assert attrs(run)["tcc.metadata.tag"] == tag
    assert attrs(run)["gen_ai.conversation.id"] == f"session-{tag}"
    assert attrs(run)["tcc.run.llm_calls"] == 1
    assert json.loads(attrs(step)["gen_ai.output.messages"]) == assistant_messages(
        f"canary answer {tag}", None
    )
    assert attrs(step)["gen_ai.usage.input_tokens"] == 10
    assert attrs(step)["gen_ai.usage.output_tokens"] == 2
    assert json.loads(attrs(tool)["gen_ai.tool.call.arguments"]) == {"tag": tag}
    assert json.loads(attrs(tool)["gen_ai.tool.call.result"]) == [tag]
    assert attrs(feedback)["gen_ai.evaluation.explanation"] == f"canary feedback {tag}"
    for span in (run, step, tool, feedback):
        assert span.status.status_code is not StatusCode.ERROR, span.name


# --- the tests -----------------------------------------------------------------------------------------------


def test_documented_coercions(captured: Captured) -> None:
    """Lone surrogates become U+FFFD and pairs are joined, at the call; UUID ids become str; naive
    datetimes are UTC; int-likes count as ints."""
    run_id = uuid.uuid4()
    r = tcc.run(run_id=run_id, session_id=uuid.UUID(int=7), name="agent\ud800")  # type: ignore[arg-type]
    assert r.run_id == str(run_id) and type(r.run_id) is str
    s = r.step(step_id=uuid.UUID(int=8)).prompt("a\ud800b\udc00c").response("\ud83d\ude00 \ude00\ud83d")  # type: ignore[arg-type]
    assert s.step_id == str(uuid.UUID(int=8))
    s.tokens(prompt_uncached=Weekday.MONDAY, completion=Weekday.MONDAY).end()
    tc = r.tool_call("t\udfff", tool_call_id=uuid.UUID(int=9))  # type: ignore[arg-type]
    assert tc.tool_call_id == str(uuid.UUID(int=9))
    tc.args({"k\ud800": ["v\udc00"]}).result("r\ud800").end()
    r.prompt("q").metadata({"key\ud800": "value\udfff"}).end_time(datetime(2100, 1, 1)).end()
    spans = {s.name: s for s in spans_of_run(captured, str(run_id))}
    run, step, tool = spans["invoke_agent agent\ufffd"], spans["chat"], spans["execute_tool t\ufffd"]
    assert attrs(run)["gen_ai.conversation.id"] == str(uuid.UUID(int=7))
    assert attrs(run)["tcc.metadata.key\ufffd"] == "value\ufffd"
    assert run.end_time == epoch_ns(datetime(2100, 1, 1, tzinfo=UTC))
    assert json.loads(attrs(step)["gen_ai.input.messages"]) == user_messages("a\ufffdb\ufffdc")
    assert json.loads(attrs(step)["gen_ai.output.messages"]) == assistant_messages(
        "\U0001f600 \ufffd\ufffd", None
    )
    assert (
        attrs(step)["gen_ai.usage.input_tokens"] == 1
        and type(attrs(step)["gen_ai.usage.input_tokens"]) is int
    )
    assert attrs(step)["tcc.step.id"] == str(uuid.UUID(int=8))
    assert json.loads(attrs(tool)["gen_ai.tool.call.arguments"]) == {"k\ufffd": ["v\ufffd"]}
    assert attrs(tool)["gen_ai.tool.call.result"] == "r\ufffd"
    assert attrs(tool)["gen_ai.tool.call.id"] == str(uuid.UUID(int=9))


@settings(FUZZ, max_examples=250)
@given(data=st.data())
def test_setters_interleaved_with_any_value(captured: Captured, data: st.DataObject) -> None:
    """Random sequences of valid and invalid calls on one run, its step and its tool call: every call works
    or raises TypeError/ValueError naming its parameter; end() then succeeds; every value set by a call
    that succeeded arrives (the last one wins), none set by a call that raised; canaries arrive."""
    captured.exporter.clear()
    before = canary("before")
    r = tcc.run()
    r.prompt("the user's question")
    s = r.step().prompt("the model's prompt").response("the model's answer")
    tc = r.tool_call("tool0")
    records = {"run": r, "step": s, "tool": tc}
    states = {"run": State(), "step": State(), "tool": State()}
    _run_prompt(states["run"], "the user's question")
    states["step"].prompt = user_messages("the model's prompt")
    states["step"].response = "the model's answer"
    states["tool"].values["gen_ai.tool.name"] = "tool0"

    for _ in range(data.draw(st.integers(1, 14), label="calls")):
        op = OPS_BY_LABEL[data.draw(st.sampled_from(sorted(OPS_BY_LABEL)), label="call")]
        state = states[op.target]
        if data.draw(st.booleans(), label="valid?"):
            value = data.draw(op.valid(state), label=f"{op.label} valid")
        else:
            value = data.draw(op.anything, label=f"{op.label} any")
        ok, _ = call(op.label, partial(op.apply, records[op.target], value), *op.names)
        if ok:
            op.accept(state, value)

    for target, var in (("tool", "tc"), ("step", "s"), ("run", "r")):
        record, state = records[target], states[target]
        if data.draw(st.booleans(), label=f"{var}.error?"):
            message = data.draw(ANY | texts(), label=f"{var}.error message")
            ok, _ = call(f"{var}.error(status_message=...)", partial(record.error, message))
            if ok:
                text = fix(message) if message else ""
                kept = state.status_message if state.status_message is not None else f"{record._kind} failed"
                state.error = redact(text) if text else kept
                continue
        record.end()  # all setters that succeeded left a complete record: end() must not raise

    after = canary("after")
    spans = spans_of_run(captured, r.run_id)
    by_id = {
        "run": [x for x in spans if attrs(x).get("gen_ai.operation.name") == "invoke_agent"],
        "step": [x for x in spans if attrs(x).get("tcc.step.id") == s.step_id],
        "tool": [x for x in spans if attrs(x).get("gen_ai.tool.call.id") == tc.tool_call_id],
    }
    for target, found in by_id.items():
        assert len(found) == 1, f"{target}: {len(found)} spans"
        _assert_exported(found[0], states[target], target)
    assert_canary(captured, before, "before")
    assert_canary(captured, after, "after")


CONSTRUCTORS: Final[tuple[tuple[str, Callable[[tcc.Run, Any], Any], tuple[str, ...]], ...]] = (
    ("tcc.run(run_id=...)", lambda r, v: tcc.run(run_id=v), ()),
    ("tcc.run(session_id=...)", lambda r, v: tcc.run(session_id=v), ()),
    ("tcc.run(conversational=...)", lambda r, v: tcc.run(conversational=v), ()),
    ("tcc.run(name=...)", lambda r, v: tcc.run(name=v), ()),
    ("tcc.run(timeout=...)", lambda r, v: tcc.run(timeout=v), ()),
    ("tcc.run(start_time=...)", lambda r, v: tcc.run(start_time=v), ()),
    ("tcc.step(run_id=...)", lambda r, v: tcc.step(run_id=v), ("run_id",)),
    ("tcc.step(step_id=...)", lambda r, v: tcc.step(run_id=r.run_id, step_id=v), ()),
    ("tcc.step(start_time=...)", lambda r, v: tcc.step(run_id=r.run_id, start_time=v), ()),
    ("tcc.tool_call(run_id=...)", lambda r, v: tcc.tool_call(run_id=v, tool_name="t"), ("run_id",)),
    (
        "tcc.tool_call(tool_call_id=...)",
        lambda r, v: tcc.tool_call(r.run_id, tool_call_id=v, tool_name="t"),
        (),
    ),
    ("tcc.tool_call(tool_name=...)", lambda r, v: tcc.tool_call(r.run_id, tool_name=v), ("tool_name",)),
    ("tcc.tool_call(start_time=...)", lambda r, v: tcc.tool_call(r.run_id, tool_name="t", start_time=v), ()),
    ("tcc.step(step_id=...)", lambda r, v: r.step(step_id=v), ()),
    ("tcc.step(start_time=...)", lambda r, v: r.step(start_time=v), ()),
    ("tcc.tool_call(tool_name=...)", lambda r, v: r.tool_call(v), ()),
    ("tcc.tool_call(tool_call_id=...)", lambda r, v: r.tool_call("t", tool_call_id=v), ()),
    ("tcc.tool_call(start_time=...)", lambda r, v: r.tool_call("t", start_time=v), ()),
    ("tcc.tool_call(tool_name=...)", lambda r, v: r.step().tool_call(v), ()),
    ("tcc.tool_call(start_time=...)", lambda r, v: r.step().tool_call("t", start_time=v), ()),
)


def _finish(record: object) -> None:
    """End a record made by a constructor under test (its children too), as valid code would."""
    if isinstance(record, tcc.Run):
        record.prompt("q").end()
    elif isinstance(record, tcc.Step):
        record.prompt("p").response("a").end()
    elif isinstance(record, tcc.ToolCall):
        if record._tool_name is None:
            record.name("t")
        record.end()


@FUZZ
@given(
    index=st.integers(0, len(CONSTRUCTORS) - 1),
    value=st.one_of(
        ANY,
        st.uuids(),
        st.datetimes(
            timezones=st.none()
            | st.builds(timezone, st.timedeltas(-timedelta(hours=23), timedelta(hours=23)))
        ),
        st.integers(0, 2**63 - 1),
    ),
)
def test_constructors_with_any_value(captured: Captured, index: int, value: object) -> None:
    """tcc.run / tcc.step / tcc.tool_call and Run.step / Run.tool_call / Step.tool_call, with any value for
    one parameter: a record whose ids are str, or a TypeError/ValueError naming the parameter."""
    captured.exporter.clear()
    label, make, names = CONSTRUCTORS[index]
    parent = tcc.run(timeout=0)
    ok, record = call(label, lambda: make(parent, value), *names)
    made: list[object] = []
    if ok:
        made.append(record)
        for attribute in ("run_id", "step_id", "tool_call_id"):
            if hasattr(record, attribute):
                assert type(getattr(record, attribute)) is str, attribute
        if isinstance(value, uuid.UUID) and label.endswith(
            ("run_id=...)", "step_id=...)", "tool_call_id=...)")
        ):
            ident = label.split("(")[1].split("=")[0]
            assert getattr(record, ident) == str(value)
        _finish(record)
    _finish(parent)
    run_ids = {parent.run_id, *(getattr(m, "run_id", None) for m in made)}
    spans = [s for run_id in sorted(i for i in run_ids if i) for s in spans_of_run(captured, run_id)]
    assert any(attrs(s).get("gen_ai.operation.name") == "invoke_agent" for s in spans)
    if ok:
        key, ident = {
            tcc.Run: ("tcc.run.id", "run_id"),
            tcc.Step: ("tcc.step.id", "step_id"),
            tcc.ToolCall: ("gen_ai.tool.call.id", "tool_call_id"),
        }[type(record)]
        assert [s for s in spans if attrs(s).get(key) == getattr(record, ident)], (
            f"{label}: its span is missing"
        )


@FUZZ
@given(
    which=st.sampled_from(["run_id", "score", "text", "r.feedback(score)", "r.feedback(text)"]),
    value=st.one_of(ANY, st.sampled_from(["thumbs_up", "thumbs_down", "", "x" * 2000, "x" * 2001, None])),
    ended=st.booleans(),
)
def test_feedback_with_any_value(captured: Captured, which: str, value: object, ended: bool) -> None:
    """submit_feedback and Run.feedback: unknown scores, text over 2000 characters, neither given, any type:
    a feedback span with exactly what was given, or a TypeError/ValueError naming the parameter."""
    captured.exporter.clear()
    r = tcc.run()
    if ended:
        r.prompt("q").end()
    args: dict[str, Any] = {"run_id": r.run_id, "score": "thumbs_down", "text": "fine"}
    param = which.rsplit("(", maxsplit=1)[-1].rstrip(")")
    args[param] = value
    if which.startswith("r.feedback"):
        ok, result = call(
            "r.feedback", lambda: r.feedback(score=args["score"], text=args["text"]), "feedback", param
        )
    else:
        ok, result = call(
            f"tcc.submit_feedback({param}=...)",
            lambda: tcc.submit_feedback(args["run_id"], score=args["score"], text=args["text"]),
            "feedback",
            param,
        )
    if not ended:
        r.prompt("q").end()
    run_id = str(args["run_id"]) if ok else r.run_id
    feedback = [s for s in spans_of_run(captured, fix(run_id)) if s.name == "feedback"]
    if not ok:
        assert feedback == []
        return
    assert result is True
    assert len(feedback) == 1
    got = attrs(feedback[0])
    assert got["gen_ai.evaluation.name"] == "user_feedback"
    assert got.get("gen_ai.evaluation.score.label") == args["score"]
    assert (
        got.get("gen_ai.evaluation.score.value")
        == {"thumbs_up": 1.0, "thumbs_down": -1.0, None: None}[args["score"]]
    )
    assert got.get("gen_ai.evaluation.explanation") == (fix(args["text"]) if args["text"] else None)
    assert len(got.get("gen_ai.evaluation.explanation") or "") <= 2000


_RUN_FIELDS: Final = (
    "run_id",
    "prompt",
    "response",
    "start_time",
    "end_time",
    "session_id",
    "conversational",
    "name",
    "metadata",
    "status_code",
    "status_message",
    "full_input",
    "full_output",
    "steps",
    "tool_calls",
    "feedback",
)
_STEP_FIELDS: Final = (
    "step_id",
    "prompt",
    "response",
    "model",
    "model_requested",
    "model_used",
    "prompt_uncached_tokens",
    "prompt_cached_tokens",
    "completion_tokens",
    "cache_write_tokens",
    "reasoning_tokens",
    "real_total_cost",
    "finish_reason",
    "tool_definitions",
    "start_time",
    "end_time",
    "status_code",
    "status_message",
    "tool_calls",
)
_TOOL_FIELDS: Final = (
    "tool_call_id",
    "tool_name",
    "name",
    "args",
    "result",
    "start_time",
    "end_time",
    "status_code",
    "status_message",
)
_IMPORT_TARGETS: Final = (
    *(("send_run", f) for f in _RUN_FIELDS),
    *(("send_run.steps[0]", f) for f in _STEP_FIELDS),
    *(("send_run.steps[0].tool_calls[0]", f) for f in _TOOL_FIELDS),
    *(("send_step", f) for f in ("run_id", *_STEP_FIELDS)),
    *(("send_tool_call", f) for f in ("run_id", *_TOOL_FIELDS)),
)


def _valid_payloads(run_id: str) -> dict[str, dict[str, Any]]:
    tool = {
        "tool_name": "get_weather",
        "args": {"city": "London"},
        "result": "15°C",
        "start_time": "2025-01-01T12:00:01Z",
    }
    step = {
        "prompt": "Weather in London?",
        "response": "15°C",
        "model": "gpt-4o",
        "prompt_uncached_tokens": 10,
        "completion_tokens": 3,
        "start_time": "2025-01-01T12:00:00.500Z",
        "end_time": "2025-01-01T12:00:02Z",
        "tool_calls": [tool],
    }
    return {
        "send_run": {
            "run_id": run_id,
            "prompt": {"user_prompt": "Weather?", "system_prompt": "Be brief."},
            "response": "15°C",
            "start_time": "2025-01-01T12:00:00Z",
            "end_time": "2025-01-01T12:00:04Z",
            "metadata": {"channel": "web"},
            "steps": [step],
            "feedback": {"score": "thumbs_up", "text": "ok"},
        },
        "send_step": {"run_id": run_id, **step},
        "send_tool_call": {"run_id": run_id, **tool},
    }


@FUZZ
@given(target=st.sampled_from(_IMPORT_TARGETS), value=ANY)
def test_post_hoc_import_with_any_value(captured: Captured, target: tuple[str, str], value: object) -> None:
    """send_run / send_step / send_tool_call with any value in one field (nested ones too): all of the record
    is sent, or a TypeError/ValueError naming the field and nothing is sent."""
    captured.exporter.clear()
    run_id = f"import-{uuid.uuid4()}"
    where, name = target
    payloads = _valid_payloads(run_id)
    function = where.split(".")[0]
    payload = payloads[function]
    if where == "send_run.steps[0]":
        payload["steps"][0][name] = value
    elif where == "send_run.steps[0].tool_calls[0]":
        payload["steps"][0]["tool_calls"][0][name] = value
    else:
        payload[name] = value
    sends: dict[str, Callable[..., str]] = {
        "send_run": tcc.send_run,
        "send_step": tcc.send_step,
        "send_tool_call": tcc.send_tool_call,
    }
    send = sends[function]
    # A required field left out is named by what end() requires ("name is required", "prompt is required").
    wanted = ("required",) if value is None and name in ("prompt", "tool_name") else (name,)
    ok, returned = call(f"tcc.{function}({name}=...)", lambda: send(**payload), *wanted)
    if ok:
        assert type(returned) is str
    sent_run_id: object = run_id
    if ok:
        sent_run_id = returned if function == "send_run" else payload["run_id"]
    spans = spans_of_run(captured, fix(str(sent_run_id)))
    if not ok:
        assert spans == [], f"a rejected {function} sent {[s.name for s in spans]}"
        return
    expected = {"send_run": 4, "send_step": 2, "send_tool_call": 1}[function]
    if where == "send_run" and name in ("steps", "tool_calls", "feedback"):
        return  # the nested records were replaced by whatever was accepted
    if where != "send_run" and name == "tool_calls":
        return
    assert len(spans) == expected, [s.name for s in spans]


CONFIGURE_PARAMS: Final = (
    "service_name",
    "endpoint",
    "headers",
    "api_key",
    "capture_content",
    "mask",
    "run_timeout",
    "span_processors",
    "tracer_provider",
    "shutdown_timeout_millis",
    "allow_insecure_http",
)


@contextmanager
def restored_config() -> Iterator[None]:
    """configure() may change _settings.config and _settings.settings: put both back. The pipeline is
    detached meanwhile, so configure() runs as it does at startup (and nothing builds one)."""
    saved_config, saved_settings = _settings.config, dataclasses.replace(_settings.settings)
    previous = _pipeline.install(None)
    try:
        yield
    finally:
        _pipeline.install(previous)
        _settings.config = saved_config
        for f in dataclasses.fields(saved_settings):
            setattr(_settings.settings, f.name, getattr(saved_settings, f.name))


@pytest.fixture
def no_env_destination(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in (
        "TCC_API_KEY",
        "OTEL_EXPORTER_OTLP_ENDPOINT",
        "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
        "TCC_ALLOW_INSECURE_HTTP",
    ):
        monkeypatch.delenv(name, raising=False)


@FUZZ
@given(param=st.sampled_from(CONFIGURE_PARAMS), value=ANY)
def test_configure_with_any_value(no_env_destination: None, param: str, value: object) -> None:
    """configure() with any value for any parameter: accepted, or a TypeError/ValueError naming it."""
    with restored_config():
        before = _settings.config
        kwargs: dict[str, Any] = {param: value}
        ok, _ = call(f"configure({param}=...)", lambda: tcc.configure(**kwargs), "configure(", param)
        if not ok:
            assert _settings.config is before, "a rejected configure() changed the configuration"


@FUZZ
@given(value=ANY)
def test_flush_with_any_value(captured: Captured, value: object) -> None:
    """tcc.flush(timeout_millis=any): a bool, or a TypeError/ValueError naming the parameter."""
    r = tcc.run()
    r.prompt("q").end()
    ok, result = call("tcc.flush(timeout_millis=...)", lambda: tcc.flush(value))  # type: ignore[arg-type]
    if ok:
        assert isinstance(result, bool)
    assert tcc.flush(10_000) is True
    spans_of_run(captured, r.run_id)


ROUTED_CALLS: Final[tuple[tuple[str, Callable[[Any, Any], object]], ...]] = (
    ("tcc.run", lambda key, url: tcc.run(api_key=key, tcc_url=url)),
    ("tcc.step", lambda key, url: tcc.step(run_id="r", api_key=key, tcc_url=url)),
    ("tcc.tool_call", lambda key, url: tcc.tool_call(run_id="r", tool_name="t", api_key=key, tcc_url=url)),
    ("tcc.submit_feedback", lambda key, url: tcc.submit_feedback("r", "thumbs_up", api_key=key, tcc_url=url)),
    ("", lambda key, url: tcc.send_run(prompt="p", api_key=key, tcc_url=url)),
    ("", lambda key, url: tcc.send_step(run_id="r", prompt="p", response="a", api_key=key, tcc_url=url)),
    ("", lambda key, url: tcc.send_tool_call(run_id="r", tool_name="t", api_key=key, tcc_url=url)),
)


@FUZZ
@given(
    index=st.integers(0, len(ROUTED_CALLS) - 1),
    param=st.sampled_from(["api_key", "tcc_url"]),
    value=ANY,
    other=st.sampled_from([None, "k", "https://collector.example.com", "http://127.0.0.1:4318"]),
)
def test_routing_arguments_with_any_value(
    no_env_destination: None, index: int, param: str, value: object, other: object
) -> None:
    """api_key= / tcc_url= on every call that takes them: accepted, or a TypeError/ValueError naming the
    parameter (a key over plain http to another host names both). Checked without sending."""
    name, make = ROUTED_CALLS[index]
    key: object
    url: object
    if param == "api_key":
        key, url = value, other if isinstance(other, str) and other.startswith("http") else None
    else:
        key, url = ("k" if other == "k" else None), value
    with sending_nothing():
        call(f"{name}({param}=...)", lambda: make(key, url), param)


@pytest.mark.parametrize(
    ("label", "make", "value"),
    [
        ("s.tokens(completion=...)", lambda r, v: r.step().tokens(completion=v), 2**64),
        ("s.tokens(prompt_uncached=...)", lambda r, v: r.step().tokens(prompt_uncached=v), 2**63),
        (
            "s.tokens(prompt_cached=...)",
            lambda r, v: r.step().tokens(prompt_cached=v, prompt_uncached=2**53),
            2**62,
        ),
        ("r.metadata", lambda r, v: r.metadata(n=v), 2**64),
        ("r.metadata", lambda r, v: r.metadata({"n": v}), -(2**63) - 1),
    ],
)
def test_integers_beyond_int64_never_reach_the_exporter(
    captured: Captured, label: str, make: Callable[[tcc.Run, int], Any], value: int
) -> None:
    """OTLP carries int64: a larger token count or metadata int is refused at the call (TypeError/ValueError
    naming the parameter), or exported as a valid value; never an attribute the OTLP encoder drops."""
    r = tcc.run()
    ok, record = call(label, lambda: make(r, value))
    if ok and isinstance(record, tcc.Step):
        _finish(record)
    _finish(r)
    spans_of_run(captured, r.run_id)


@pytest.mark.parametrize(
    "value",
    [math.nan, math.inf, -math.inf, -1, -0.5, 10**400, Decimal("NaN"), Decimal("sNaN"), Decimal("Infinity")],
)
def test_cost_refuses_every_unusable_number(captured: Captured, value: object) -> None:
    """s.cost(): NaN, infinities, negatives and numbers beyond a float raise TypeError/ValueError naming
    s.cost(real_total=...); the step still ends with its other values."""
    r = tcc.run()
    s = r.step().prompt("p").response("a").cost(0.5)
    ok, _ = call("s.cost(real_total=...)", lambda: s.cost(value))  # type: ignore[arg-type]
    assert not ok
    s.end()
    r.prompt("q").end()
    (step,) = [x for x in spans_of_run(captured, r.run_id) if x.name == "chat"]
    assert attrs(step)["tcc.cost.usd"] == 0.5


@pytest.mark.parametrize("value", [math.nan, math.inf, 1e300, 2**70, -1, "10", None, True])
def test_flush_refuses_unusable_timeouts(captured: Captured, value: object) -> None:
    """tcc.flush(timeout_millis=...) with NaN, infinity, a timeout beyond what a clock can hold: a
    TypeError/ValueError naming the parameter, never OverflowError."""
    ok, result = call("tcc.flush(timeout_millis=...)", lambda: tcc.flush(value))  # type: ignore[arg-type]
    assert not ok or isinstance(result, bool)


@pytest.mark.parametrize("score", [[], {}, ["thumbs_up"], {"thumbs_up": 1}, set()])
def test_feedback_score_of_an_unhashable_type(captured: Captured, score: object) -> None:
    """An unhashable score is a wrong type like any other: TypeError/ValueError naming score=."""
    r = tcc.run()
    call("tcc.submit_feedback(score=...)", lambda: tcc.submit_feedback(r.run_id, score=score))  # type: ignore[arg-type]
    call("tcc.submit_feedback(score=...)", lambda: r.feedback(score=score))  # type: ignore[arg-type]
    r.prompt("q").end()
    assert [s.name for s in spans_of_run(captured, r.run_id)] == ["invoke_agent"]


def test_configure_span_processors_of_a_wrong_type(no_env_destination: None) -> None:
    for value in (5, 1.5, True, object()):
        with restored_config():
            kwargs: dict[str, Any] = {"span_processors": value}
            call("configure(span_processors=...)", partial(tcc.configure, **kwargs))


@pytest.mark.parametrize("url", ["http://[", "https://[::1", "http://[::1]:99999", "http://host:port"])
def test_malformed_urls(no_env_destination: None, url: str) -> None:
    """A URL urllib cannot parse is a ValueError naming the parameter, at the call."""
    with sending_nothing():
        call("tcc.run(tcc_url=...)", lambda: tcc.run(tcc_url=url), "tcc_url")
    with restored_config():
        call("configure(endpoint=...)", lambda: tcc.configure(endpoint=url), "endpoint")


class BrokenRepr:
    """A value whose repr() raises: an error message about it must not raise that instead."""

    def __repr__(self) -> str:
        raise RuntimeError("repr() of this object fails")

    def __hash__(self) -> int:
        return 1


class BrokenDump:
    """An SDK-like object (it has model_dump()) whose model_dump() raises, as a pydantic model can."""

    def model_dump(self, **kwargs: object) -> dict[str, object]:
        raise RuntimeError("model_dump() of this object fails")

    def __repr__(self) -> str:
        return "<BrokenDump>"


@pytest.mark.parametrize(
    ("label", "make", "value"),
    [
        ("s.tokens(completion=...)", lambda v: tcc.step(run_id="r").tokens(completion=v), BrokenRepr()),
        ("s.cost(real_total=...)", lambda v: tcc.step(run_id="r").cost(v), BrokenRepr()),
        ("r.status(code=...)", lambda v: tcc.run().status(v), BrokenRepr()),
        ("r.metadata", lambda v: tcc.run().metadata({v: "x"}), BrokenRepr()),
        ("tcc.submit_feedback(score=...)", lambda v: tcc.submit_feedback("r", score=v), BrokenRepr()),
        ("tcc.flush(timeout_millis=...)", lambda v: tcc.flush(v), BrokenRepr()),
        ("configure(service_name=...)", lambda v: tcc.configure(service_name=v), BrokenRepr()),
        ("configure(mask=...)", lambda v: tcc.configure(mask=v), BrokenRepr()),
        ("s.prompt(text=...)", lambda v: tcc.step(run_id="r").prompt([v]), BrokenDump()),
        ("s.response(text=...)", lambda v: tcc.step(run_id="r").response(v), BrokenDump()),
        (
            "s.tool_definitions(definitions=...)",
            lambda v: tcc.step(run_id="r").tool_definitions([v]),
            BrokenDump(),
        ),
    ],
)
def test_values_whose_methods_raise(
    no_env_destination: None, label: str, make: Callable[[object], object], value: object
) -> None:
    """A value whose repr() or model_dump() raises is refused (or recorded readably) like any other bad
    value: TypeError/ValueError naming the parameter, not the value's own exception."""
    with restored_config(), sending_nothing():
        call(label, lambda: make(value))


@pytest.mark.parametrize("where", ["with", "tool", "agent"])
def test_exception_text_with_lone_surrogates_is_exported_whole(captured: Captured, where: str) -> None:
    """An exception whose message holds a lone surrogate (a file name decoded with surrogateescape, say)
    still gives a span whose status, exception.message and exception.stacktrace are valid UTF-8."""
    message = "cannot open /data/report-\udcff.csv"

    @tcc.tool
    def read_report() -> None:
        raise FileNotFoundError(message)

    @tcc.agent(name="reporter")
    def agent() -> None:
        raise FileNotFoundError(message)

    run_id = f"surrogate-{uuid.uuid4()}"
    with pytest.raises(FileNotFoundError), tcc.run(run_id=run_id) as r:
        r.prompt("q")
        if where == "tool":
            read_report()
        elif where == "agent":
            agent()
        else:
            raise FileNotFoundError(message)
    spans = captured.spans()
    assert_exportable(spans)
    failed = [s for s in spans if s.events]
    assert failed
    for span in failed:
        event = dict(span.events[0].attributes or {})
        assert event["exception.message"] == "cannot open /data/report-\ufffd.csv"
        assert "report-\ufffd.csv" in str(event["exception.stacktrace"])


@pytest.mark.parametrize(
    ("label", "make"),
    [
        ("r.end_time(t=...)", lambda r, s: r.end_time(datetime(1969, 7, 20, tzinfo=UTC))),
        ("r.end_time(t=...)", lambda r, s: r.end_time(-1)),
        ("r.end_time(t=...)", lambda r, s: r.end_time(1)),
        ("r.end_time(t=...)", lambda r, s: r.end_time(time.time())),
        ("s.end_time(t=...)", lambda r, s: s.end_time(r._start_ns - 1)),
        ("r.end_time(t=...)", lambda r, s: r.end_time(datetime(2263, 1, 1, tzinfo=UTC))),
        ("tcc.run(start_time=...)", lambda r, s: tcc.run(start_time=datetime(1969, 12, 31, 23, 59, 59))),
        ("tcc.step(start_time=...)", lambda r, s: r.step(start_time=-(10**9))),
        ("tcc.tool_call(start_time=...)", lambda r, s: r.tool_call("t", start_time=1.5)),
    ],
)
def test_times_before_the_epoch_or_the_start(
    captured: Captured, label: str, make: Callable[[Any, Any], object]
) -> None:
    """Times before 1970, after 2262, floats, and an end before the start raise at the call, naming it;
    the records then end with their valid times."""
    start = time.time_ns() - 10**9
    r = tcc.run(start_time=start).prompt("q")
    s = r.step(start_time=start + 1000).prompt("p").response("a")
    ok, _ = call(label, lambda: make(r, s))
    assert not ok, f"{label} accepted a time it must refuse"
    s.end_time(start + 2000).end()
    r.end_time(start + 3000).end()
    spans = {x.name: x for x in spans_of_run(captured, r.run_id)}
    assert (spans["invoke_agent"].start_time, spans["invoke_agent"].end_time) == (start, start + 3000)
    assert (spans["chat"].start_time, spans["chat"].end_time) == (start + 1000, start + 2000)
