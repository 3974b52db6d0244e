"""Huge input never hurts the host service.

A 10 MB prompt, response, system prompt, full input or output, tool arguments or result, and a list of 1,000
chat messages: each exported value is at most the limit (262,144 characters, or
``OTEL_ATTRIBUTE_VALUE_LENGTH_LIMIT``), a cut text ends with the visible marker ``…[truncated by tcc: N chars]``,
``tcc.truncated.<attribute>`` holds the attribute's original length, and messages stay valid JSON (the texts
inside are cut, not the JSON). Over the wire, a run of 50 steps with 10 MB prompts arrives whole, in requests
each under 4 MiB, and the caller's ``end()`` returns.
"""

from __future__ import annotations

import dataclasses
import json
import re
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, Final

import pytest

import contextcompany as tcc
from contextcompany import _settings
from contextcompany.dev import OTLPReceiver, ReceivedSpan
from tests.conftest import Captured
from tests.e2e.conftest import run_script
from tests.reliability.test_bad_input import assert_exportable, attrs, dumps

DEFAULT_LIMIT: Final = 262_144
MARKER: Final = re.compile(r"…\[truncated by tcc: (\d+) chars\]\Z")
DROPPED: Final = re.compile(r"…\[truncated by tcc: (\d+) more (?:messages|items)\]\Z")
TEN_MB: Final = "x" * 10_000_000
FOUR_MIB: Final = 4 * 1024 * 1024

INPUT: Final = "gen_ai.input.messages"
OUTPUT: Final = "gen_ai.output.messages"
SYSTEM: Final = "gen_ai.system_instructions"
ARGS: Final = "gen_ai.tool.call.arguments"
RESULT: Final = "gen_ai.tool.call.result"
FULL_INPUT: Final = "tcc.run.full_input"
FULL_OUTPUT: Final = "tcc.run.full_output"


def marker(original: int) -> str:
    return f"…[truncated by tcc: {original} chars]"


def strings(value: object) -> Iterator[str]:
    """Every str inside a JSON value (keys included)."""
    if isinstance(value, str):
        yield value
    elif isinstance(value, list):
        for item in value:
            yield from strings(item)
    elif isinstance(value, dict):
        for key, item in value.items():
            yield key
            yield from strings(item)


def assert_cut(value: str, original: str, limit: int, *, structured: object = None) -> None:
    """``value`` is ``original`` cut to ``limit``: plain text ends with the marker and keeps the start;
    JSON stays JSON, every cut text inside ends with a marker carrying that text's original length."""
    assert len(value) <= limit, f"{len(value):,} chars exported, the limit is {limit:,}"
    if structured is None:
        found = MARKER.search(value)
        assert found is not None, f"no marker at the end: ...{value[-80:]!r}"
        assert int(found.group(1)) == len(original)
        assert original.startswith(value[: found.start()])
        return
    try:
        parsed = json.loads(value)
    except ValueError as exc:
        raise AssertionError(f"the cut value is not valid JSON ({exc}): ...{value[-80:]!r}") from None
    originals = list(strings(structured))
    cut = [s for s in strings(parsed) if MARKER.search(s)]
    # When even short texts do not fit (many messages under a small limit), trailing items give way to
    # one that says how many were left out: that is the visible marker then.
    dropped = [s for s in strings(parsed) if DROPPED.search(s)]
    assert cut or dropped, "nothing inside was marked as cut"
    if dropped:
        (note,) = dropped
        left_out = int(DROPPED.search(note).group(1))  # type: ignore[union-attr]
        assert isinstance(parsed, list) and isinstance(structured, list)
        assert len(parsed) - 1 + left_out == len(structured)
    for text in cut:
        found = MARKER.search(text)
        assert found is not None
        head, length = text[: found.start()], int(found.group(1))
        assert any(len(o) == length and o.startswith(head) for o in originals), (
            f"a cut text ({head[:40]!r}..., said to be {length:,} chars) is no text of the original"
        )


@dataclass(frozen=True)
class Case:
    """One way to set a huge value: the record's attribute and the value as tcc writes it before cutting."""

    name: str
    key: str
    make: Callable[[tcc.Run], object]  # sets it (on the run, or a step or tool call it makes and ends)
    original: Callable[[], str]  # the whole attribute, as it would be without a limit
    structured: Callable[[], object] | None  # the JSON it holds, or None for plain text
    span: str  # the exported span's name


def _user(text: str) -> list[dict[str, Any]]:
    return [{"role": "user", "parts": [{"type": "text", "content": text}]}]


def _assistant(text: str, finish_reason: str | None = None) -> list[dict[str, Any]]:
    message: dict[str, Any] = {"role": "assistant", "parts": [{"type": "text", "content": text}]}
    if finish_reason is not None:
        message["finish_reason"] = finish_reason
    return [message]


THOUSAND_MESSAGES: Final = [
    {"role": "user" if i % 2 == 0 else "assistant", "content": f"message {i}: " + "m" * 1000}
    for i in range(1000)
]


def _thousand_genai() -> list[dict[str, Any]]:
    return [
        {"role": m["role"], "parts": [{"type": "text", "content": m["content"]}]} for m in THOUSAND_MESSAGES
    ]


def _step(r: tcc.Run, prompt: Any = "p", response: Any = "a") -> None:
    r.step().prompt(prompt).response(response).end()


def _tool(r: tcc.Run, args: Any = None, result: Any = None) -> None:
    tc = r.tool_call("search")
    if args is not None:
        tc.args(args)
    if result is not None:
        tc.result(result)
    tc.end()


CASES: Final = (
    Case(
        "run prompt",
        INPUT,
        lambda r: r.prompt(TEN_MB),
        lambda: dumps(_user(TEN_MB)),
        lambda: _user(TEN_MB),
        "invoke_agent",
    ),
    Case(
        "run system prompt",
        SYSTEM,
        lambda r: r.prompt("q", system_prompt=TEN_MB),
        lambda: dumps([{"type": "text", "content": TEN_MB}]),
        lambda: [{"type": "text", "content": TEN_MB}],
        "invoke_agent",
    ),
    Case(
        "run response",
        OUTPUT,
        lambda r: r.prompt("q").response(TEN_MB),
        lambda: dumps(_assistant(TEN_MB, "stop")),
        lambda: _assistant(TEN_MB, "stop"),
        "invoke_agent",
    ),
    Case(
        "run full input (text)",
        FULL_INPUT,
        lambda r: r.prompt("q", full_input=TEN_MB),
        lambda: TEN_MB,
        None,
        "invoke_agent",
    ),
    Case(
        "run full output (JSON)",
        FULL_OUTPUT,
        lambda r: r.prompt("q").response("a", full_output={"document": TEN_MB, "pages": 3}),
        lambda: dumps({"document": TEN_MB, "pages": 3}),
        lambda: {"document": TEN_MB, "pages": 3},
        "invoke_agent",
    ),
    Case(
        "step prompt",
        INPUT,
        lambda r: _step(r, prompt=TEN_MB),
        lambda: dumps(_user(TEN_MB)),
        lambda: _user(TEN_MB),
        "chat",
    ),
    Case(
        "step response",
        OUTPUT,
        lambda r: _step(r, response=TEN_MB),
        lambda: dumps(_assistant(TEN_MB)),
        lambda: _assistant(TEN_MB),
        "chat",
    ),
    Case(
        "step response (an assistant message)",
        OUTPUT,
        lambda r: _step(r, response={"role": "assistant", "content": TEN_MB}),
        lambda: dumps(_assistant(TEN_MB)),
        lambda: _assistant(TEN_MB),
        "chat",
    ),
    Case(
        "step prompt of 1,000 chat messages",
        INPUT,
        lambda r: _step(r, prompt=THOUSAND_MESSAGES),
        lambda: dumps(_thousand_genai()),
        _thousand_genai,
        "chat",
    ),
    Case(
        "tool arguments (text)",
        ARGS,
        lambda r: _tool(r, args=TEN_MB),
        lambda: TEN_MB,
        None,
        "execute_tool search",
    ),
    Case(
        "tool arguments (JSON)",
        ARGS,
        lambda r: _tool(r, args={"query": TEN_MB, "limit": 5}),
        lambda: dumps({"query": TEN_MB, "limit": 5}),
        lambda: {"query": TEN_MB, "limit": 5},
        "execute_tool search",
    ),
    Case(
        "tool result (text)",
        RESULT,
        lambda r: _tool(r, result=TEN_MB),
        lambda: TEN_MB,
        None,
        "execute_tool search",
    ),
    Case(
        "tool result (JSON)",
        RESULT,
        lambda r: _tool(r, result=[TEN_MB, "second"]),
        lambda: dumps([TEN_MB, "second"]),
        lambda: [TEN_MB, "second"],
        "execute_tool search",
    ),
)


@pytest.fixture(params=[DEFAULT_LIMIT, 4096], ids=["default limit", "limit 4096"])
def limit(request: pytest.FixtureRequest) -> Iterator[int]:
    """The content limit in force: the default, or another one set as OTEL_ATTRIBUTE_VALUE_LENGTH_LIMIT
    would set it at import (restored afterwards)."""
    saved = dataclasses.replace(_settings.settings)
    value: int = request.param
    _settings.settings.value_limit = value
    try:
        yield value
    finally:
        _settings.settings.value_limit = saved.value_limit


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_huge_content_is_cut_with_a_marker(captured: Captured, limit: int, case: Case) -> None:
    r = tcc.run().prompt("q")
    case.make(r)
    r.end()
    spans = captured.spans()
    assert_exportable(spans)
    (span,) = [s for s in spans if s.name == case.span and attrs(s).get("tcc.run.id") == r.run_id]
    got = attrs(span)
    original = case.original()
    assert got[f"tcc.truncated.{case.key}"] == len(original)
    structured = case.structured() if case.structured is not None else None
    assert_cut(got[case.key], original, limit, structured=structured)
    if case.name == "step prompt of 1,000 chat messages" and limit == DEFAULT_LIMIT:
        # The limit leaves room for every message: their texts are cut, none is lost.
        parsed = json.loads(got[case.key])
        assert [m["role"] for m in parsed] == [m["role"] for m in THOUSAND_MESSAGES]
    for key, value in got.items():  # nothing else a record writes grows past the limit
        assert not isinstance(value, str) or len(value) <= limit, key


def test_end_with_a_ten_mb_prompt_returns(captured: Captured) -> None:
    """The caller's end() with 10 MB prompt and response returns (the time is printed, not asserted)."""
    r = tcc.run().prompt(TEN_MB)
    s = r.step().prompt(TEN_MB).response(TEN_MB)
    started = time.perf_counter()
    s.end()
    step_end = time.perf_counter() - started
    started = time.perf_counter()
    r.response(TEN_MB).end()
    run_end = time.perf_counter() - started
    print(
        f"\nend() of a step with a 10 MB prompt and response: {step_end * 1000:.0f} ms; of the run: {run_end * 1000:.0f} ms"
    )
    assert len(captured.spans()) == 2


# --- over the wire ---------------------------------------------------------------------------------------


@pytest.fixture
def receiver() -> Iterator[OTLPReceiver]:
    with OTLPReceiver(port=0) as rx:
        yield rx


FIFTY_STEPS: Final = """
import json, time
import contextcompany as tcc
big = "x" * 10_000_000
r = tcc.run(name="big")
r.prompt(big)
ends = []
for i in range(50):
    s = r.step().prompt(big).response(f"answer {i}").model("gpt-4o").tokens(prompt_uncached=3_000_000, completion=4)
    started = time.perf_counter()
    s.end()
    ends.append(time.perf_counter() - started)
r.response("done")
started = time.perf_counter()
r.end()
run_end = time.perf_counter() - started
flushed = tcc.flush(60_000)
stats = tcc.stats()
print(json.dumps({
    "flushed": flushed,
    "step_end_ms": sorted(t * 1000 for t in ends),
    "run_end_ms": run_end * 1000,
    "exported": stats.spans_exported,
    "dropped": stats.spans_dropped,
    "failed": stats.exports_failed,
}))
"""


@pytest.mark.slow
def test_fifty_steps_with_ten_mb_prompts_arrive_in_requests_under_4_mib(receiver: OTLPReceiver) -> None:
    result = run_script(
        FIFTY_STEPS,
        {"OTEL_EXPORTER_OTLP_ENDPOINT": receiver.endpoint, "OTEL_SERVICE_NAME": "size-test"},
        timeout=120,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report["flushed"] is True
    assert (report["exported"], report["dropped"], report["failed"]) == (51, 0, 0)
    spans = receiver.wait_for_spans(51, timeout=30)
    assert len(spans) == 51, "a span arrived twice"
    requests = [r for r in receiver.requests if r.path == "/v1/traces"]  # tcc's metrics go there too
    sizes = [int(request.headers["content-length"]) for request in requests]
    assert all(request.status == 200 for request in requests)
    assert sum(request.span_count for request in requests) == 51
    assert max(sizes) < FOUR_MIB, f"request sizes: {sizes}"
    steps = sorted((s for s in spans if s.name == "chat gpt-4o"), key=lambda s: s.start_time_unix_nano)
    assert len(steps) == 50
    for index, step in enumerate(steps):
        prompt = step.attributes[INPUT]
        assert len(prompt) <= DEFAULT_LIMIT
        assert step.attributes[f"tcc.truncated.{INPUT}"] == len(dumps(_user(TEN_MB)))
        assert_cut(prompt, dumps(_user(TEN_MB)), DEFAULT_LIMIT, structured=_user(TEN_MB))
        assert json.loads(step.attributes[OUTPUT]) == _assistant(f"answer {index}")
        assert step.status_code != 2
    (run,) = [s for s in spans if s.name == "invoke_agent big"]
    assert run.attributes["tcc.run.llm_calls"] == 50
    assert run.attributes["tcc.run.usage.input_tokens"] == 150_000_000
    print(
        f"\n50 steps x 10 MB: {len(requests)} requests of {min(sizes):,}-{max(sizes):,} bytes; step end() "
        f"median {report['step_end_ms'][25]:.0f} ms, max {report['step_end_ms'][-1]:.0f} ms; "
        f"run end() {report['run_end_ms']:.0f} ms"
    )


LIMIT_FROM_ENV: Final = """
import contextcompany as tcc
from contextcompany import _settings
assert _settings.settings.value_limit == 5000, _settings.settings.value_limit
big = "y" * 10_000_000
r = tcc.run(name="limited")
r.prompt(big, full_input=big)
r.step().prompt(big).response(big).end()
r.step().prompt([{"role": "user", "content": "q " + "m" * 1000} for _ in range(1000)]).response("a").end()
r.tool_call("search").args({"query": big}).result(big).end()
r.response(big).end()
assert tcc.flush(30_000)
"""


def test_otel_attribute_value_length_limit_is_the_limit(receiver: OTLPReceiver) -> None:
    """OTEL_ATTRIBUTE_VALUE_LENGTH_LIMIT (read at import) is the limit tcc cuts to, marker and all, and the
    cut values arrive over the wire as they left."""
    result = run_script(
        LIMIT_FROM_ENV,
        {"OTEL_EXPORTER_OTLP_ENDPOINT": receiver.endpoint, "OTEL_ATTRIBUTE_VALUE_LENGTH_LIMIT": "5000"},
        timeout=120,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    spans = receiver.wait_for_spans(4, timeout=30)
    assert len(spans) == 4
    big = "y" * 10_000_000
    by_name: dict[str, list[ReceivedSpan]] = {}
    for span in spans:
        by_name.setdefault(span.name, []).append(span)
    (run,) = by_name["invoke_agent limited"]
    assert_cut(run.attributes[INPUT], dumps(_user(big)), 5000, structured=_user(big))
    assert_cut(
        run.attributes[OUTPUT], dumps(_assistant(big, "stop")), 5000, structured=_assistant(big, "stop")
    )
    assert_cut(run.attributes[FULL_INPUT], big, 5000)
    assert run.attributes[f"tcc.truncated.{FULL_INPUT}"] == len(big)
    steps = by_name["chat"]
    (step,) = [s for s in steps if s.attributes[f"tcc.truncated.{INPUT}"] == len(dumps(_user(big)))]
    assert_cut(step.attributes[INPUT], dumps(_user(big)), 5000, structured=_user(big))
    assert_cut(step.attributes[OUTPUT], dumps(_assistant(big)), 5000, structured=_assistant(big))
    (tool,) = by_name["execute_tool search"]
    assert_cut(tool.attributes[ARGS], dumps({"query": big}), 5000, structured={"query": big})
    assert_cut(tool.attributes[RESULT], big, 5000)
    for span in spans:
        for key, value in span.attributes.items():
            assert not isinstance(value, str) or len(value) <= 5000, (span.name, key)
    # Checked last, so that a failure here cannot hide the checks above.
    (many,) = [s for s in steps if s is not step]
    messages = [
        {"role": "user", "parts": [{"type": "text", "content": "q " + "m" * 1000}]} for _ in range(1000)
    ]
    assert many.attributes[f"tcc.truncated.{INPUT}"] == len(dumps(messages))
    assert_cut(many.attributes[INPUT], dumps(messages), 5000, structured=messages)
