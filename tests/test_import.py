"""send_run / send_step / send_tool_call: complete records sent after the fact, all or nothing."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime
from typing import Any

import pytest
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.trace import SpanKind, StatusCode

import contextcompany as tcc
from contextcompany import _ids, _records, _registry
from contextcompany._import import send_run, send_step, send_tool_call

from .conftest import Captured

T0 = 1_735_732_800_123_000_000  # 2025-01-01T12:00:00.123Z
T1 = 1_735_732_801_000_000_000  # 12:00:01
T3_5 = 1_735_732_803_500_000_000  # 12:00:03.5
T4 = 1_735_732_804_000_000_000  # 12:00:04
T4_25 = 1_735_732_804_250_000_000  # 12:00:04.25
T5 = 1_735_732_805_000_000_000  # 12:00:05


def attrs(span: ReadableSpan) -> dict[str, Any]:
    return dict(span.attributes or {})


def parent_id(span: ReadableSpan) -> int | None:
    return None if span.parent is None else span.parent.span_id


def text_messages(role: str, text: str, finish_reason: str | None = None) -> list[dict[str, Any]]:
    message: dict[str, Any] = {"role": role, "parts": [{"type": "text", "content": text}]}
    if finish_reason is not None:
        message["finish_reason"] = finish_reason
    return [message]


def full_run(**overrides: Any) -> dict[str, Any]:
    """A run with everything: steps (one failing), tool calls under the run and under a step, metadata,
    session, feedback, and times as ISO strings, datetimes and epoch ns."""
    record: dict[str, Any] = {
        "run_id": "import-run-1",
        "name": "weather",
        "prompt": {
            "user_prompt": "What is the weather in London?",
            "system_prompt": "You are a weather agent.",
        },
        "response": "15°C and cloudy.",
        "session_id": "chat-42",
        "conversational": True,
        "metadata": {"customer": "acme", "seats": 3},
        "full_input": {"messages": ["What is the weather in London?"]},
        "full_output": {"answer": "15°C and cloudy."},
        "start_time": "2025-01-01T12:00:00.123Z",
        "end_time": datetime(2025, 1, 1, 12, 0, 5, tzinfo=UTC),
        "steps": [
            {
                "step_id": "step-1",
                "prompt": "The user asked: What is the weather in London?",
                "response": "Let me look that up.",
                "model_requested": "gpt-4",
                "model_used": "gpt-4-0613",
                "prompt_uncached_tokens": 150,
                "prompt_cached_tokens": 50,
                "completion_tokens": 25,
                "real_total_cost": 0.0123,
                "finish_reason": "tool_calls",
                "tool_definitions": '[{"name": "get_weather"}]',
                "start_time": T1,
                "end_time": "2025-01-01T14:00:03.5+02:00",  # an offset, not UTC
                "tool_calls": [
                    {"tool_call_id": "call-lookup", "tool_name": "lookup", "args": {"q": "London"}},
                ],
            },
            {
                "step_id": "step-2",
                "prompt": "Calling the weather API...",
                "status_code": 2,
                "status_message": "rate limited",
            },
        ],
        "tool_calls": [
            {
                "tool_call_id": "call-weather",
                "name": "get_weather",
                "args": {"city": "London"},
                "result": {"temp_c": 15},
                "start_time": datetime(2025, 1, 1, 12, 0, 4),  # naive: read as UTC
                "end_time": "2025-01-01T12:00:04.250",
            },
        ],
        "feedback": {"score": "thumbs_up", "text": "Spot on"},
    }
    record.update(overrides)
    return record


def test_a_complete_run_becomes_the_exact_spans(captured: Captured) -> None:
    assert send_run(**full_run()) == "import-run-1"
    spans = {s.name: s for s in captured.spans()}
    assert sorted(spans) == [
        "chat",
        "chat gpt-4",
        "execute_tool get_weather",
        "execute_tool lookup",
        "feedback",
        "invoke_agent weather",
    ]
    run = spans["invoke_agent weather"]
    step, failed = spans["chat gpt-4"], spans["chat"]
    weather, lookup = spans["execute_tool get_weather"], spans["execute_tool lookup"]
    feedback = spans["feedback"]

    # one trace, the run's; the step's tool call is the step's child
    run_span = run.context.span_id
    assert {s.context.trace_id for s in spans.values()} == {run.context.trace_id}
    assert run.parent is None
    for child in (step, failed, weather, feedback):
        assert parent_id(child) == run_span
    assert parent_id(lookup) == step.context.span_id

    # times: as given; children without times take their parent's
    assert (run.start_time, run.end_time) == (T0, T5)
    assert (step.start_time, step.end_time) == (T1, T3_5)
    assert (lookup.start_time, lookup.end_time) == (T1, T3_5)
    assert (failed.start_time, failed.end_time) == (T0, T5)
    assert (weather.start_time, weather.end_time) == (T4, T4_25)

    a = attrs(run)
    assert run.kind is SpanKind.INTERNAL
    assert run.status.status_code is StatusCode.UNSET
    assert a["gen_ai.operation.name"] == "invoke_agent"
    assert a["tcc.run.id"] == "import-run-1"
    assert a["gen_ai.agent.name"] == "weather"
    assert a["gen_ai.conversation.id"] == "chat-42"
    assert a["tcc.run.conversational"] is True
    assert a["tcc.metadata.customer"] == "acme" and a["tcc.metadata.seats"] == 3
    assert json.loads(a["gen_ai.input.messages"]) == text_messages("user", "What is the weather in London?")
    assert json.loads(a["gen_ai.system_instructions"]) == [
        {"type": "text", "content": "You are a weather agent."}
    ]
    assert json.loads(a["gen_ai.output.messages"]) == text_messages("assistant", "15°C and cloudy.", "stop")
    assert json.loads(a["tcc.run.full_input"]) == {"messages": ["What is the weather in London?"]}
    assert json.loads(a["tcc.run.full_output"]) == {"answer": "15°C and cloudy."}
    assert a["tcc.run.usage.input_tokens"] == 200 and a["tcc.run.usage.output_tokens"] == 25
    assert a["tcc.run.cost.usd"] == pytest.approx(0.0123)

    a = attrs(step)
    assert step.kind is SpanKind.CLIENT
    assert step.status.status_code is StatusCode.UNSET
    assert a["tcc.step.id"] == "step-1" and a["tcc.run.id"] == "import-run-1"
    assert a["gen_ai.request.model"] == "gpt-4" and a["gen_ai.response.model"] == "gpt-4-0613"
    assert a["gen_ai.usage.input_tokens"] == 200
    assert a["gen_ai.usage.cache_read.input_tokens"] == 50
    assert a["gen_ai.usage.output_tokens"] == 25
    assert a["gen_ai.response.finish_reasons"] == ("tool_calls",)
    assert a["gen_ai.tool.definitions"] == '[{"name": "get_weather"}]'
    assert a["tcc.cost.usd"] == 0.0123 and a["tcc.cost.source"] == "reported"
    assert json.loads(a["gen_ai.input.messages"]) == text_messages(
        "user", "The user asked: What is the weather in London?"
    )
    assert json.loads(a["gen_ai.output.messages"]) == text_messages(
        "assistant", "Let me look that up.", "tool_calls"
    )

    # failed with status_code 2 and no response: ended with error(status_message)
    assert failed.status.status_code is StatusCode.ERROR
    assert failed.status.description == "rate limited"
    assert attrs(failed)["error.type"] == "_OTHER"
    assert attrs(failed)["tcc.step.id"] == "step-2"
    assert "gen_ai.output.messages" not in attrs(failed)

    assert attrs(weather) == {
        "gen_ai.operation.name": "execute_tool",
        "gen_ai.tool.call.id": "call-weather",
        "tcc.run.id": "import-run-1",
        "gen_ai.tool.name": "get_weather",
        "gen_ai.tool.call.arguments": '{"city":"London"}',
        "gen_ai.tool.call.result": '{"temp_c":15}',
    }
    assert attrs(lookup) == {
        "gen_ai.operation.name": "execute_tool",
        "gen_ai.tool.call.id": "call-lookup",
        "tcc.run.id": "import-run-1",
        "gen_ai.tool.name": "lookup",
        "gen_ai.tool.call.arguments": '{"q":"London"}',
    }
    assert attrs(feedback) == {
        "tcc.run.id": "import-run-1",
        "gen_ai.evaluation.name": "user_feedback",
        "gen_ai.evaluation.score.label": "thumbs_up",
        "gen_ai.evaluation.score.value": 1.0,
        "gen_ai.evaluation.explanation": "Spot on",
    }
    # nothing of the dry pass is left behind: the run ended, no open records
    assert not _registry.live_runs and not _registry.orphans


def _without_ids(span: ReadableSpan) -> tuple[str, dict[str, Any], Any, int | None, int | None]:
    a = {
        k: v for k, v in attrs(span).items() if k not in ("tcc.run.id", "tcc.step.id", "gen_ai.tool.call.id")
    }
    return span.name, a, span.status.status_code, span.start_time, span.end_time


def test_the_same_spans_as_the_live_api(captured: Captured) -> None:
    # The import goes through the same records and setters: what it sends is what live calls send.
    r = tcc.run(name="weather", session_id="chat-42", start_time=T0)
    r.prompt("Hi", system_prompt="Be brief.").metadata(customer="acme")
    s = r.step(start_time=T1).prompt("Hi").response("Hello!").model("gpt-4o")
    s.tokens(prompt_uncached=10, completion=3).finish_reason("stop")
    s.tool_call("lookup", start_time=T1).args({"q": 1}).end_time(T3_5).end()
    s.end_time(T3_5).end()
    r.tool_call("get_weather", start_time=T4).result("15°C").end_time(T4_25).end()
    r.response("Hello!").end_time(T5).end()
    live = sorted(map(_without_ids, captured.spans()), key=repr)
    captured.exporter.clear()

    send_run(
        name="weather",
        session_id="chat-42",
        start_time=T0,
        end_time=T5,
        prompt={"user_prompt": "Hi", "system_prompt": "Be brief."},
        metadata={"customer": "acme"},
        response="Hello!",
        steps=[
            {
                "prompt": "Hi",
                "response": "Hello!",
                "model": "gpt-4o",
                "prompt_uncached_tokens": 10,
                "completion_tokens": 3,
                "finish_reason": "stop",
                "start_time": T1,
                "end_time": T3_5,
                "tool_calls": [{"tool_name": "lookup", "args": {"q": 1}}],
            }
        ],
        tool_calls=[{"tool_name": "get_weather", "result": "15°C", "start_time": T4, "end_time": T4_25}],
    )
    assert sorted(map(_without_ids, captured.spans()), key=repr) == live


def test_children_without_times_take_the_runs(captured: Captured) -> None:
    send_run(
        prompt="q",
        start_time="2025-01-01T12:00:00.123Z",
        end_time="2025-01-01T12:00:05Z",
        steps=[{"prompt": "p", "response": "r", "tool_calls": [{"tool_name": "t"}]}],
        tool_calls=[
            {"tool_name": "u"},
            {"tool_name": "v", "start_time": T4},
            {"tool_name": "w", "end_time": T1},
        ],
    )
    spans = {s.name: s for s in captured.spans()}
    for name in ("invoke_agent", "chat", "execute_tool t", "execute_tool u"):
        assert (spans[name].start_time, spans[name].end_time) == (T0, T5), name
    assert (spans["execute_tool v"].start_time, spans["execute_tool v"].end_time) == (T4, T5)
    assert (spans["execute_tool w"].start_time, spans["execute_tool w"].end_time) == (T0, T1)


def test_a_run_without_times_happens_now(captured: Captured) -> None:
    before = time.time_ns()
    send_run(prompt="q", steps=[{"prompt": "p", "response": "r"}])
    after = time.time_ns()
    run, step = captured.one("invoke_agent"), captured.one("chat")
    assert run.start_time is not None and run.end_time is not None
    assert before <= run.start_time <= run.end_time <= after
    assert (step.start_time, step.end_time) == (run.start_time, run.end_time)
    # only an end time: the run starts there (zero length) rather than after it ends
    send_run(prompt="q", end_time=T5)
    ended = [s for s in captured.spans() if s.end_time == T5]
    assert len(ended) == 1 and ended[0].start_time == T5


def test_a_2_0_0_payload_replays(captured: Captured) -> None:
    # What contextcompany 2.0.0 POSTed for a run, a step and a tool call, nested as they were sent.
    run_payload = {
        "run_id": "legacy-run",
        "prompt": {"user_prompt": "Book a table", "system_prompt": None},
        "response": "Booked for 8pm.",
        "session_id": None,
        "conversational": False,
        "metadata": {"source": "v2"},
        "status_code": 0,
        "status_message": None,
        "start_time": "2024-06-01T09:30:00.000Z",
        "end_time": "2024-06-01T09:30:02.500Z",
    }
    step_payload = {
        "run_id": "legacy-run",
        "step_id": "legacy-step",
        "prompt": "Book a table",
        "response": "Calling book_table",
        "model_requested": "gpt-4o",
        "model_used": "gpt-4o-2024-05-13",
        "finish_reason": "tool_calls",
        "prompt_uncached_tokens": 40,
        "prompt_cached_tokens": 0,
        "completion_tokens": 12,
        "real_total_cost": None,
        "tool_definitions": None,
        "status_code": 0,
        "status_message": None,
        "start_time": "2024-06-01T09:30:00.100Z",
        "end_time": "2024-06-01T09:30:01.000Z",
    }
    tool_payload = {
        "run_id": "legacy-run",
        "tool_call_id": "legacy-call",
        "tool_name": "book_table",
        "args": '{"time": "20:00"}',
        "result": '{"ok": true}',
        "status_code": 0,
        "status_message": None,
        "start_time": "2024-06-01T09:30:01.000Z",
        "end_time": "2024-06-01T09:30:02.000Z",
    }
    assert send_run(**run_payload, steps=[step_payload], tool_calls=[tool_payload]) == "legacy-run"
    run, step, tool = (
        captured.one("invoke_agent"),
        captured.one("chat gpt-4o"),
        captured.one("execute_tool book_table"),
    )
    start = int(datetime(2024, 6, 1, 9, 30, tzinfo=UTC).timestamp()) * 10**9
    assert (run.start_time, run.end_time) == (start, start + 2_500_000_000)
    assert (step.start_time, step.end_time) == (start + 100_000_000, start + 1_000_000_000)
    assert (tool.start_time, tool.end_time) == (start + 1_000_000_000, start + 2_000_000_000)
    assert parent_id(step) == parent_id(tool) == run.context.span_id
    assert attrs(run)["tcc.run.conversational"] is False and attrs(run)["tcc.metadata.source"] == "v2"
    assert "gen_ai.system_instructions" not in attrs(run)
    assert attrs(step)["tcc.step.id"] == "legacy-step"
    assert attrs(step)["gen_ai.usage.output_tokens"] == 12
    assert attrs(tool)["gen_ai.tool.call.arguments"] == '{"time": "20:00"}'

    # and each payload on its own, as 2.0.0 sent them: step and tool call join the run's trace
    captured.exporter.clear()
    assert send_step(**{**step_payload, "step_id": "legacy-step-2"}) == "legacy-step-2"
    assert send_tool_call(**{**tool_payload, "tool_call_id": "legacy-call-2"}) == "legacy-call-2"
    for span in captured.spans():
        assert parent_id(span) == run.context.span_id and span.context.trace_id == run.context.trace_id


def _step_payload(**fields: Any) -> dict[str, Any]:
    return {"prompt": "p", "response": "r", **fields}


BAD_RUNS: list[tuple[dict[str, Any], type[Exception], str]] = [
    (
        {"steps": [_step_payload(), _step_payload(completion_tokens="25")]},
        TypeError,
        "steps[1].completion_tokens: [TCC] s.tokens(completion=...) expects an int >= 0 or None, got str '25'",
    ),
    (
        {"steps": [_step_payload(tool_calls=[{"tool_name": "t", "argz": {}}])]},
        ValueError,
        "steps[0].tool_calls[0]: [TCC] a tool call has an unknown key 'argz': did you mean 'args'?",
    ),
    (
        {"steps": [_step_payload(start_time=T5, end_time=T1)]},
        ValueError,
        "steps[0].end_time: [TCC] s.end_time(t=...) is before the step's start time",
    ),
    (
        {"steps": [_step_payload(), {"prompt": "no response", "status_code": 0}]},
        ValueError,
        "steps[1]: [TCC] Cannot end step: response is required. Call s.response(...) before s.end()",
    ),
    (
        {"tool_calls": [{"tool_name": "t", "start_time": "yesterday"}]},
        ValueError,
        "tool_calls[0].start_time: [TCC] tcc.tool_call(start_time=...) expects an ISO 8601 time",
    ),
    (
        {"tool_calls": [{"args": "x"}]},
        ValueError,
        "tool_calls[0]: [TCC] Cannot end tool call: name is required",
    ),
    ({"session_id": 42}, TypeError, "session_id: [TCC] tcc.run(session_id=...) expects a non-empty str"),
    ({"end_time": "2024-12-31T00:00:00Z"}, ValueError, "end_time: [TCC] r.end_time(t=...) is before"),
    (
        {"prompt": {"user_prompt": "q", "sytem_prompt": "s"}},
        ValueError,
        "prompt: [TCC] prompt has an unknown key 'sytem_prompt': did you mean 'system_prompt'?",
    ),
    ({"prompt": None, "full_input": None}, ValueError, "[TCC] Cannot end run: prompt is required"),
    ({"metadata": {"k": [1]}}, TypeError, "metadata: [TCC] r.metadata(data=...) value for 'k'"),
    ({"steps": ["not a dict"]}, TypeError, "steps[0]: [TCC] expects a step dict, got str"),
    ({"steps": {"prompt": "p"}}, TypeError, "steps: [TCC] expects a list of step dicts, got dict"),
    ({"steps": [_step_payload(run_id="another-run")]}, ValueError, "steps[0].run_id: [TCC] a nested record"),
    ({"steps": [_step_payload(status_code=3)]}, ValueError, "steps[0].status_code: [TCC] s.status(code=...)"),
    ({"feedback": {"score": "meh"}}, ValueError, "feedback: [TCC] tcc.submit_feedback(score=...)"),
    ({"feedback": {"rating": 5}}, ValueError, "feedback: [TCC] feedback has an unknown key 'rating'"),
    ({"full_output": {1, 2}}, TypeError, "full_output: [TCC] r.response(full_output=...) expects a str"),
]


@pytest.mark.parametrize(("fields", "error", "message"), BAD_RUNS, ids=[m[:40] for _, _, m in BAD_RUNS])
def test_a_bad_field_anywhere_raises_with_its_path_and_sends_nothing(
    captured: Captured, fields: dict[str, Any], error: type[Exception], message: str
) -> None:
    record = full_run(run_id="bad-run", **fields)
    with pytest.raises(error) as info:
        send_run(**record)
    assert type(info.value) is error
    assert str(info.value).startswith(message), str(info.value)
    assert captured.spans() == []
    # and nothing is left to send later: no live run, no open record, nothing remembered
    assert not _registry.live_runs and not _registry.orphans
    assert not _registry.known_run("bad-run")


def test_a_failed_run_needs_no_prompt(captured: Captured) -> None:
    send_run(prompt=None, status_code=2, status_message="the agent crashed", start_time=T0, end_time=T5)
    run = captured.one("invoke_agent")
    assert run.status.status_code is StatusCode.ERROR and run.status.description == "the agent crashed"
    assert "gen_ai.input.messages" not in attrs(run)


def test_status_code_1_is_ok(captured: Captured) -> None:
    send_run(prompt="q", status_code=1, tool_calls=[{"tool_name": "t", "status_code": 1}])
    assert {s.status.status_code for s in captured.spans()} == {StatusCode.OK}


@pytest.fixture
def live_run(captured: Captured) -> tcc.Run:
    return tcc.run(run_id="live-run", start_time=T0)


def _send_child(kind: str, run_id: str) -> str:
    if kind == "step":
        return send_step(
            run_id=run_id,
            prompt="p",
            response="r",
            model="gpt-4o",
            start_time=T1,
            end_time=T4,
            tool_calls=[{"tool_name": "inner"}],
        )
    return send_tool_call(run_id=run_id, tool_name="outer", start_time=T1, end_time=T4)


@pytest.mark.parametrize("kind", ["step", "tool call"])
def test_send_to_a_live_run(captured: Captured, live_run: tcc.Run, kind: str) -> None:
    child_id = _send_child(kind, "live-run")
    live_run.prompt("q").end_time(T5).end()
    run = captured.one("invoke_agent")
    child = captured.one("chat gpt-4o" if kind == "step" else "execute_tool outer")
    assert parent_id(child) == run.context.span_id and child.context.trace_id == run.context.trace_id
    assert (child.start_time, child.end_time) == (T1, T4)
    assert child_id in (attrs(child).get("tcc.step.id"), attrs(child).get("gen_ai.tool.call.id"))
    if kind == "step":
        inner = captured.one("execute_tool inner")
        assert parent_id(inner) == child.context.span_id
        assert (inner.start_time, inner.end_time) == (T1, T4)  # the step's times


@pytest.mark.parametrize("kind", ["step", "tool call"])
def test_send_to_a_run_that_ended_here(captured: Captured, kind: str) -> None:
    run_record = tcc.run(run_id="ended-run")
    run_record.prompt("q").end()
    _send_child(kind, "ended-run")
    run = captured.one("invoke_agent")
    child = next(s for s in captured.spans() if s.name not in {"invoke_agent", "execute_tool inner"})
    assert parent_id(child) == run.context.span_id and child.context.trace_id == run.context.trace_id


@pytest.mark.parametrize("kind", ["step", "tool call"])
def test_send_to_a_run_of_another_process(captured: Captured, kind: str) -> None:
    _send_child(kind, "remote-run-7")
    derived = _ids.run_span_context("remote-run-7")
    child = next(s for s in captured.spans() if s.name != "execute_tool inner")
    assert child.parent is not None and child.parent.span_id == derived.span_id
    assert child.context.trace_id == derived.trace_id
    assert attrs(child)["tcc.run.id"] == "remote-run-7"
    assert not _registry.orphans  # ended, not left for the exit hook


def test_send_step_and_tool_call_errors_name_their_field_and_send_nothing(captured: Captured) -> None:
    with pytest.raises(TypeError, match=r"^completion_tokens: \[TCC\] s.tokens\(completion=...\)"):
        send_step(run_id="r", prompt="p", response="r", completion_tokens=1.5)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"^tool_calls\[0\].end_time: \[TCC\] tc.end_time"):
        send_step(
            run_id="r",
            prompt="p",
            response="r",
            tool_calls=[{"name": "t", "start_time": T1, "end_time": "2000-01-01"}],
        )
    with pytest.raises(ValueError, match=r"^\[TCC\] Cannot end step: prompt is required"):
        send_step(run_id="r", response="r")
    with pytest.raises(TypeError, match=r"^run_id: \[TCC\] tcc.tool_call\(run_id=...\) expects a non-empty"):
        send_tool_call(run_id=None, tool_name="t")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"^name: \[TCC\] tool_name 't' and name 'u' differ"):
        send_tool_call(run_id="r", tool_name="t", name="u")
    with pytest.raises(TypeError, match="unexpected keyword argument 'completion_token'"):
        send_step(run_id="r", prompt="p", response="r", completion_token=3)  # type: ignore[call-arg]
    assert captured.spans() == []
    assert not _registry.orphans


def test_a_failed_step_or_tool_call_needs_nothing(captured: Captured) -> None:
    send_step(run_id="r", status_code=2, status_message="timeout")
    send_tool_call(run_id="r", status_code=2)
    statuses = {s.name: (s.status.status_code, s.status.description) for s in captured.spans()}
    assert statuses == {
        "chat": (StatusCode.ERROR, "timeout"),
        "execute_tool": (StatusCode.ERROR, "tool call failed"),
    }


def test_returned_ids_default_to_uuid4(captured: Captured) -> None:
    import uuid

    run_id = send_run(prompt="q")
    uuid.UUID(run_id, version=4)
    assert attrs(captured.one("invoke_agent"))["tcc.run.id"] == run_id
    step_id = send_step(run_id=run_id, prompt="p", response="r")
    assert attrs(captured.one("chat"))["tcc.step.id"] == step_id
    call_id = send_tool_call(run_id=run_id, name="t")
    assert attrs(captured.one("execute_tool t"))["gen_ai.tool.call.id"] == call_id


def test_a_failure_while_building_ends_what_it_started_as_failed(
    captured: Captured, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Not expected to happen (everything was checked before the first record was made); if it does,
    # nothing is left open.
    def explode(self: _records.Step, *args: object) -> None:
        raise RuntimeError("the collector exploded")

    monkeypatch.setattr(_records.Step, "_close", explode)
    with pytest.raises(RuntimeError, match="the collector exploded"):
        send_run(run_id="midway", prompt="q", steps=[_step_payload()])
    spans = {s.name: s for s in captured.spans()}
    assert set(spans) == {"invoke_agent", "chat"}
    for span in spans.values():
        assert span.status.status_code is StatusCode.ERROR
        assert "failed midway: the collector exploded" in (span.status.description or "")
    assert not _registry.live_runs and not _registry.orphans
