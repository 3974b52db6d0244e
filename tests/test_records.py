"""Run, Step and ToolCall: the 2.0.0 API, its rules, and the spans each record becomes."""

from __future__ import annotations

import json
import re
import uuid
from decimal import Decimal
from typing import Any

import pytest
from opentelemetry import trace
from opentelemetry.trace import SpanKind, StatusCode

import contextcompany as tcc

from .conftest import Captured
from .test_ids import assert_uuid4


def seed_example() -> str:
    """The example users of contextcompany 2.0.0 already have, verbatim. Returns the run id."""
    import contextcompany as tcc

    r = tcc.run()
    r.prompt("What is the weather in London?")
    s = r.step()  # or: s = tcc.step(run_id=r.run_id)
    s.prompt("You are a weather agent. The user asked: What is the weather in London?")
    s.response("The weather in London is 15°C and cloudy.")
    s.model(requested="gpt-4", used="gpt-4-0613")
    s.tokens(prompt_uncached=150, prompt_cached=50, completion=25)
    s.finish_reason("stop")
    s.tool_definitions('[{"name": "get_weather", "description": "Get the weather for a location"}]')
    s.end()
    s2 = r.step()
    s2.prompt("Calling weather API...")
    try:
        raise TimeoutError("weather API timed out")
    except Exception as e:
        s2.error(status_message=str(e))  # no prompt/response needed; the run still ends fine
    tc = r.tool_call("get_weather")
    tc.args({"city": "London"}).result({"temp_c": 15}).end()
    r.response("It is 15°C and cloudy in London.")
    r.end()
    return r.run_id


def attrs(span: Any) -> dict[str, Any]:
    return dict(span.attributes or {})


def test_seed_example_spans(captured: Captured) -> None:
    run_id = seed_example()
    spans = captured.spans()
    assert [s.name for s in spans] == ["chat gpt-4", "chat", "execute_tool get_weather", "invoke_agent"]
    step, failed, tool, run = spans

    # one trace; steps and the tool call are the run's children
    assert len({s.context.trace_id for s in spans}) == 1
    for child in (step, failed, tool):
        assert child.parent is not None and child.parent.span_id == run.context.span_id
    assert run.parent is None

    a = attrs(run)
    assert a["gen_ai.operation.name"] == "invoke_agent"
    assert a["tcc.run.id"] == run_id
    assert json.loads(a["gen_ai.input.messages"]) == [
        {"role": "user", "parts": [{"type": "text", "content": "What is the weather in London?"}]}
    ]
    assert json.loads(a["gen_ai.output.messages"]) == [
        {
            "role": "assistant",
            "parts": [{"type": "text", "content": "It is 15°C and cloudy in London."}],
            "finish_reason": "stop",
        }
    ]
    assert run.status.status_code is StatusCode.UNSET

    a = attrs(step)
    assert step.kind is SpanKind.CLIENT
    assert a["gen_ai.operation.name"] == "chat"
    assert a["tcc.run.id"] == run_id
    assert_uuid4(a["tcc.step.id"])
    assert a["gen_ai.request.model"] == "gpt-4"
    assert a["gen_ai.response.model"] == "gpt-4-0613"
    assert a["gen_ai.usage.input_tokens"] == 200  # uncached + cached
    assert a["gen_ai.usage.cache_read.input_tokens"] == 50
    assert a["gen_ai.usage.output_tokens"] == 25
    assert a["gen_ai.response.finish_reasons"] == ("stop",)
    assert a["gen_ai.tool.definitions"] == (
        '[{"name": "get_weather", "description": "Get the weather for a location"}]'
    )
    assert json.loads(a["gen_ai.input.messages"])[0]["parts"][0]["content"].startswith(
        "You are a weather agent"
    )
    out = json.loads(a["gen_ai.output.messages"])
    assert out[0]["role"] == "assistant" and out[0]["finish_reason"] == "stop"
    assert out[0]["parts"] == [{"type": "text", "content": "The weather in London is 15°C and cloudy."}]
    assert a["tcc.cost.source"] == "computed"
    assert a["tcc.cost.usd"] == pytest.approx(200 * 30e-6 + 25 * 60e-6)  # gpt-4: $30 / $60 per M tokens

    assert failed.status.status_code is StatusCode.ERROR
    assert failed.status.description == "weather API timed out"
    assert attrs(failed)["error.type"] == "_OTHER"
    assert "gen_ai.output.messages" not in attrs(failed)

    a = attrs(tool)
    assert a["gen_ai.operation.name"] == "execute_tool"
    assert a["gen_ai.tool.name"] == "get_weather"
    assert_uuid4(a["gen_ai.tool.call.id"])
    assert json.loads(a["gen_ai.tool.call.arguments"]) == {"city": "London"}
    assert json.loads(a["gen_ai.tool.call.result"]) == {"temp_c": 15}

    # the run carries its steps' totals
    a = attrs(run)
    assert a["tcc.run.usage.input_tokens"] == 200
    assert a["tcc.run.usage.cache_read.input_tokens"] == 50
    assert a["tcc.run.usage.output_tokens"] == 25
    assert a["tcc.run.cost.usd"] == pytest.approx(0.0075)
    assert a["tcc.run.llm_calls"] == 1


def test_module_level_step_attaches_to_live_run(captured: Captured) -> None:
    r = tcc.run()
    s = tcc.step(run_id=r.run_id)
    s.prompt("p").response("r").end()
    tc = tcc.tool_call(r.run_id, tool_name="search")
    tc.end()
    r.prompt("q").end()
    run = captured.one("invoke_agent")
    for name in ("chat", "execute_tool search"):
        child = captured.one(name)
        assert child.parent is not None and child.parent.span_id == run.context.span_id
        assert child.context.trace_id == run.context.trace_id


def test_step_after_run_ended_still_lands_in_its_trace(captured: Captured) -> None:
    r = tcc.run()
    r.prompt("q").end()
    tcc.step(r.run_id).prompt("late").response("still counted").end()
    run, step = captured.one("invoke_agent"), captured.one("chat")
    assert step.context.trace_id == run.context.trace_id
    assert step.parent is not None and step.parent.span_id == run.context.span_id


def test_tool_call_from_step_is_the_steps_child(captured: Captured) -> None:
    r = tcc.run()
    s = r.step()
    s.tool_call("lookup", tool_call_id="call_1").args("q=1").result("ok").end()
    s.prompt("p").response("r").end()
    r.prompt("q").end()
    step, tool = captured.one("chat"), captured.one("execute_tool lookup")
    assert tool.parent is not None and tool.parent.span_id == step.context.span_id
    assert attrs(tool)["gen_ai.tool.call.id"] == "call_1"
    assert attrs(tool)["gen_ai.tool.call.arguments"] == "q=1"


def test_run_nests_under_the_callers_active_span(captured: Captured) -> None:
    host = captured.provider.get_tracer("host")
    with host.start_as_current_span("POST /chat") as outer:
        r = tcc.run()
        r.prompt("hi").end()
    run = captured.one("invoke_agent")
    assert run.parent is not None and run.parent.span_id == outer.get_span_context().span_id
    assert run.context.trace_id == outer.get_span_context().trace_id


def test_run_attributes(captured: Captured) -> None:
    r = tcc.run(run_id="run-1", session_id="chat-42", conversational=True)
    assert r.run_id == "run-1"
    r.prompt("What now?", system_prompt="You are terse.")
    r.metadata({"customer": "acme"}, plan="pro").metadata(plan="team", seats=3)
    r.end()
    a = attrs(captured.one("invoke_agent"))
    assert a["tcc.run.id"] == "run-1"
    assert a["gen_ai.conversation.id"] == "chat-42"
    assert a["tcc.run.conversational"] is True
    assert json.loads(a["gen_ai.system_instructions"]) == [{"type": "text", "content": "You are terse."}]
    assert a["tcc.metadata.customer"] == "acme"
    assert a["tcc.metadata.plan"] == "team"
    assert a["tcc.metadata.seats"] == 3
    assert "gen_ai.output.messages" not in a


def test_setters_chain_and_ids_default_to_uuid4(captured: Captured) -> None:
    r = tcc.run()
    assert_uuid4(r.run_id)
    s = r.step()
    assert s.prompt("p") is s
    assert s.response("r") is s
    assert s.model("a", "b") is s
    assert s.tokens(1, 2, 3) is s
    assert s.cost(0.5) is s
    assert s.finish_reason("stop") is s
    assert s.tool_definitions("[]") is s
    assert s.status(0) is s
    assert_uuid4(s.step_id)
    tc = r.tool_call()
    assert tc.name("t") is tc and tc.args("a") is tc and tc.result("b") is tc and tc.status(0) is tc
    assert r.prompt("x") is r and r.response("y") is r and r.metadata(a="b") is r and r.status(0) is r


@pytest.mark.parametrize(
    ("make", "missing", "message"),
    [
        (lambda r: r.step().response("r"), "prompt", "Call s.prompt(...) before s.end()"),
        (lambda r: r.step().prompt("p"), "response", "Call s.response(...) before s.end()"),
        (lambda r: r.tool_call(), "name", "Call tc.name(...) before tc.end()"),
        (lambda r: tcc.run(), "prompt", "Call r.prompt(...) before r.end()"),
    ],
)
def test_end_refuses_when_a_required_call_is_missing(
    captured: Captured, make: Any, missing: str, message: str
) -> None:
    r = tcc.run()
    record = make(r)
    with pytest.raises(ValueError, match=re.escape(message)) as info:
        record.end()
    assert f"{missing} is required" in str(info.value)
    assert captured.spans() == []  # nothing exported, the record stays open
    getattr(record, missing)("now set")
    record.end()
    assert len(captured.spans()) == 1
    assert captured.spans()[0].status.status_code is StatusCode.UNSET


def test_everything_raises_after_end_or_error(captured: Captured) -> None:
    r = tcc.run()
    s = r.step()
    s.error("boom")
    tc = r.tool_call("t")
    tc.end()
    r.prompt("q").end()
    calls: list[tuple[Any, str, tuple[Any, ...]]] = [
        (s, "prompt", ("x",)),
        (s, "response", ("x",)),
        (s, "model", ("m",)),
        (s, "tokens", (1,)),
        (s, "cost", (1.0,)),
        (s, "finish_reason", ("stop",)),
        (s, "tool_definitions", ("[]",)),
        (s, "status", (0,)),
        (s, "tool_call", ("t",)),
        (s, "end", ()),
        (s, "error", ("x",)),
        (tc, "name", ("t",)),
        (tc, "args", ("a",)),
        (tc, "result", ("r",)),
        (tc, "status", (2,)),
        (tc, "end", ()),
        (tc, "error", ()),
        (r, "prompt", ("x",)),
        (r, "response", ("x",)),
        (r, "metadata", ({"a": "b"},)),
        (r, "status", (0,)),
        (r, "step", ()),
        (r, "tool_call", ("t",)),
        (r, "end", ()),
        (r, "error", ()),
    ]
    for record, name, args in calls:
        with pytest.raises(RuntimeError, match="has already ended"):
            getattr(record, name)(*args)
    assert len(captured.spans()) == 3  # nothing was sent twice


def test_error_needs_nothing_and_redacts(captured: Captured) -> None:
    r = tcc.run()
    r.error(
        "upstream said 401 for Authorization: Bearer eyJhbGciOi.abc.def using sk-proj-abcdefghijklmnopqrstu"
    )
    span = captured.one("invoke_agent")
    assert span.status.status_code is StatusCode.ERROR
    assert (
        span.status.description == "upstream said 401 for Authorization: Bearer [REDACTED] using [REDACTED]"
    )
    assert attrs(span)["error.type"] == "_OTHER"


def test_error_without_message_still_says_it_failed(captured: Captured) -> None:
    tcc.run().step().error()
    span = captured.one("chat")
    assert span.status.status_code is StatusCode.ERROR
    assert span.status.description == "step failed"


def test_status_codes(captured: Captured) -> None:
    r = tcc.run()
    r.step().prompt("p").response("r").status(2, "rate limited, password=hunter2").end()
    r.step().prompt("p").response("r").status(1).end()
    r.prompt("q").status(0, "ignored for ok").end()
    failed, ok = captured.by_op("chat")
    assert failed.status.status_code is StatusCode.ERROR
    assert failed.status.description == "rate limited, password=[REDACTED]"
    assert ok.status.status_code is StatusCode.OK
    assert captured.one("invoke_agent").status.status_code is StatusCode.UNSET


def test_reported_cost_wins(captured: Captured) -> None:
    r = tcc.run()
    r.step().prompt("p").response("r").model("gpt-4o").tokens(1000, 0, 100).cost(Decimal("0.25")).end()
    r.prompt("q").end()
    a = attrs(captured.one("chat gpt-4o"))
    assert a["tcc.cost.usd"] == 0.25 and a["tcc.cost.source"] == "reported"
    assert attrs(captured.one("invoke_agent"))["tcc.run.cost.usd"] == 0.25


def test_unknown_model_breaks_nothing(captured: Captured) -> None:
    r = tcc.run()
    r.step().prompt("p").response("r").model("my-finetune-v7").tokens(10, 0, 5).end()
    r.prompt("q").end()
    a = attrs(captured.one("chat my-finetune-v7"))
    assert a["tcc.cost.source"] == "no_price" and "tcc.cost.usd" not in a
    run = attrs(captured.one("invoke_agent"))
    assert run["tcc.run.unpriced_llm_calls"] == 1 and run["tcc.run.cost.usd"] == 0.0
    assert run["tcc.run.usage.input_tokens"] == 10


@pytest.mark.parametrize(
    ("call", "error", "names"),
    [
        (lambda s: s.tokens(completion="25"), TypeError, "s.tokens(completion=...)"),
        (lambda s: s.tokens(completion=-1), ValueError, "s.tokens(completion=...)"),
        (lambda s: s.tokens(prompt_uncached=1.5), TypeError, "s.tokens(prompt_uncached=...)"),
        (lambda s: s.tokens(prompt_cached=True), TypeError, "s.tokens(prompt_cached=...)"),
        (lambda s: s.cost(real_total=float("nan")), ValueError, "s.cost(real_total=...)"),
        (lambda s: s.cost(real_total=float("inf")), ValueError, "s.cost(real_total=...)"),
        (lambda s: s.cost(real_total=-0.01), ValueError, "s.cost(real_total=...)"),
        (lambda s: s.cost(real_total="0.1"), TypeError, "s.cost(real_total=...)"),
        (lambda s: s.prompt(42), TypeError, "s.prompt(text=...)"),
        (lambda s: s.response(b"bytes"), TypeError, "s.response(text=...)"),
        (lambda s: s.model(requested=4), TypeError, "s.model(requested=...)"),
        (lambda s: s.finish_reason(None), TypeError, "s.finish_reason(reason=...)"),
        (lambda s: s.tool_definitions([1]), TypeError, "s.tool_definitions(definitions=...)"),
        (lambda s: s.status(3), ValueError, "s.status(code=...)"),
        (lambda s: s.status("0"), TypeError, "s.status(code=...)"),
        (lambda s: s.error(status_message=7), TypeError, "s.error(status_message=...)"),
    ],
)
def test_step_misuse_raises_at_the_call(
    captured: Captured, call: Any, error: type[Exception], names: str
) -> None:
    r = tcc.run()
    s = r.step()
    with pytest.raises(error) as info:
        call(s)
    assert names in str(info.value)
    s.prompt("p").response("r").end()  # the record is still usable and nothing was lost
    r.prompt("q").end()
    assert len(captured.spans()) == 2


@pytest.mark.parametrize(
    ("call", "error", "names"),
    [
        (lambda r: r.metadata(x=object()), TypeError, "r.metadata(x=...)"),
        (lambda r: r.metadata({"k": [1]}), TypeError, "r.metadata(data=...)"),
        (lambda r: r.metadata({1: "v"}), TypeError, "r.metadata(data=...)"),
        (lambda r: r.metadata({"": "v"}), ValueError, "r.metadata(data=...)"),
        (lambda r: r.metadata(["k", "v"]), TypeError, "r.metadata(data=...)"),
        (lambda r: r.metadata(x=float("nan")), ValueError, "r.metadata(x=...)"),
        (lambda r: r.prompt(None), TypeError, "r.prompt(user_prompt=...)"),
        (lambda r: r.prompt("ok", system_prompt=1), TypeError, "r.prompt(system_prompt=...)"),
        (lambda r: r.response(3.0), TypeError, "r.response(text=...)"),
        (lambda r: r.tool_call("").end(), ValueError, "tcc.tool_call(tool_name=...)"),
        (lambda r: r.tool_call("t").args({"x": object()}), TypeError, "tc.args(value=...)"),
        (lambda r: r.tool_call("t").result({"x": float("nan")}), ValueError, "tc.result(value=...)"),
        (lambda r: r.tool_call("t").name(5), TypeError, "tc.name(tool_name=...)"),
        (lambda r: r.feedback(score="meh"), ValueError, "tcc.submit_feedback(score=...)"),
    ],
)
def test_run_and_tool_misuse_raises_at_the_call(
    captured: Captured, call: Any, error: type[Exception], names: str
) -> None:
    r = tcc.run()
    with pytest.raises(error) as info:
        call(r)
    assert names in str(info.value)
    r.prompt("still fine").end()
    assert captured.one("invoke_agent").status.status_code is StatusCode.UNSET


@pytest.mark.parametrize(
    ("call", "error", "names"),
    [
        (lambda: tcc.run(run_id=""), ValueError, "tcc.run(run_id=...)"),
        (lambda: tcc.run(run_id=12), TypeError, "tcc.run(run_id=...)"),
        (lambda: tcc.run(session_id=3), TypeError, "tcc.run(session_id=...)"),
        (lambda: tcc.run(conversational="yes"), TypeError, "tcc.run(conversational=...)"),
        (lambda: tcc.run(tcc_url="collector:4318"), ValueError, "tcc.run(tcc_url=...)"),
        (lambda: tcc.run(api_key=""), TypeError, "tcc.run(api_key=...)"),
        (lambda: tcc.step(None), TypeError, "tcc.step() needs run_id=..."),
        (lambda: tcc.step(5), TypeError, "tcc.step(run_id=...)"),
        (lambda: tcc.tool_call(), TypeError, "tcc.tool_call() needs run_id=..."),
        (lambda: tcc.step("r", step_id=""), ValueError, "tcc.step(step_id=...)"),
        (lambda: tcc.tool_call("r", tool_call_id=1), TypeError, "tcc.tool_call(tool_call_id=...)"),
        (lambda: tcc.submit_feedback("r"), ValueError, "at least one of 'score' or 'text'"),
        (lambda: tcc.submit_feedback("r", text="x" * 2001), ValueError, "exceeds maximum of 2000"),
        (lambda: tcc.submit_feedback("r", score="thumbs_sideways"), ValueError, "score"),
        (lambda: tcc.submit_feedback("r", text=5), TypeError, "tcc.submit_feedback(text=...)"),
        (lambda: tcc.flush(timeout_millis=-1), ValueError, "tcc.flush(timeout_millis=...)"),
    ],
)
def test_constructor_misuse_raises_at_the_call(
    captured: Captured, call: Any, error: type[Exception], names: str
) -> None:
    with pytest.raises(error) as info:
        call()
    assert names in str(info.value)
    assert captured.spans() == []


def test_uuid_ids_are_accepted(captured: Captured) -> None:
    rid = uuid.uuid4()
    r = tcc.run(run_id=rid)  # type: ignore[arg-type]
    assert r.run_id == str(rid)
    r.prompt("q").end()


def test_feedback_is_a_span_in_the_runs_trace(captured: Captured) -> None:
    r = tcc.run()
    r.prompt("q").end()
    assert r.feedback(score="thumbs_down", text="wrong city") is True
    assert tcc.submit_feedback(r.run_id, text="second thoughts") is True
    run = captured.one("invoke_agent")
    feedback = [s for s in captured.spans() if s.name == "feedback"]
    assert len(feedback) == 2
    for span in feedback:
        assert span.context.trace_id == run.context.trace_id
        assert span.parent is not None and span.parent.span_id == run.context.span_id
        assert attrs(span)["tcc.run.id"] == r.run_id
        assert attrs(span)["gen_ai.evaluation.name"] == "user_feedback"
    first, second = (attrs(s) for s in feedback)
    assert first["gen_ai.evaluation.score.label"] == "thumbs_down"
    assert first["gen_ai.evaluation.score.value"] == -1.0
    assert first["gen_ai.evaluation.explanation"] == "wrong city"
    assert "gen_ai.evaluation.score.label" not in second


def test_feedback_for_an_unknown_run_still_carries_the_run_id(captured: Captured) -> None:
    tcc.submit_feedback("run-from-yesterday", score="thumbs_up")
    span = captured.one("feedback")
    assert attrs(span)["tcc.run.id"] == "run-from-yesterday"
    assert attrs(span)["gen_ai.evaluation.score.value"] == 1.0


def test_lone_surrogates_become_replacement_characters(captured: Captured) -> None:
    r = tcc.run()
    r.step().prompt("bad \ud800 half").response("pair \ud83d\ude00 joined").end()
    r.prompt("q").end()
    a = attrs(captured.one("chat"))
    assert json.loads(a["gen_ai.input.messages"])[0]["parts"][0]["content"] == "bad \ufffd half"
    assert json.loads(a["gen_ai.output.messages"])[0]["parts"][0]["content"] == "pair \U0001f600 joined"
    for value in a.values():
        if isinstance(value, str):
            value.encode("utf-8")  # every attribute can be sent


def test_tool_json_values(captured: Captured) -> None:
    r = tcc.run()
    r.tool_call("t").args({"city": "Zürich", "days": [1, 2]}).result([{"ok": True}, None]).end()
    a = attrs(captured.one("execute_tool t"))
    assert a["gen_ai.tool.call.arguments"] == '{"city":"Zürich","days":[1,2]}'
    assert json.loads(a["gen_ai.tool.call.result"]) == [{"ok": True}, None]


def test_recursive_tool_result_raises_at_the_call(captured: Captured) -> None:
    loop: list[Any] = []
    loop.append(loop)
    tc = tcc.run().tool_call("t")
    with pytest.raises(ValueError, match=r"tc\.result\(value=\.\.\.\)"):
        tc.result(loop)


def test_repr_names_the_record(captured: Captured) -> None:
    r = tcc.run(run_id="abc")
    assert repr(r) == "<Run run_id='abc' open>"
    r.prompt("q").end()
    assert repr(r) == "<Run run_id='abc' ended>"


def test_current_span_is_untouched(captured: Captured) -> None:
    before = trace.get_current_span()
    r = tcc.run()
    r.step().prompt("p").response("r").end()
    assert trace.get_current_span() is before
    r.prompt("q").end()


# --- times -------------------------------------------------------------------------------------------


def test_start_and_end_times(captured: Captured) -> None:
    from datetime import UTC, datetime, timedelta, timezone

    t0 = datetime(2026, 5, 1, 12, 0, 0, tzinfo=UTC)
    r = tcc.run(start_time=t0)
    s = r.step(start_time=datetime(2026, 5, 1, 12, 0, 1))  # naive: read as UTC
    s.prompt("p").response("r").end_time(datetime(2026, 5, 1, 14, 0, 2, tzinfo=timezone(timedelta(hours=2))))
    s.end()
    tc = r.tool_call("t", start_time=1_777_636_803_000_000_000)
    tc.end_time(1_777_636_803_500_000_000).end()
    r.prompt("q").end_time(t0 + timedelta(seconds=5)).end()
    run, step, tool = captured.one("invoke_agent"), captured.one("chat"), captured.one("execute_tool t")
    assert run.start_time == 1_777_636_800_000_000_000 and run.end_time == 1_777_636_805_000_000_000
    assert step.start_time == 1_777_636_801_000_000_000 and step.end_time == 1_777_636_802_000_000_000
    assert tool.start_time == 1_777_636_803_000_000_000 and tool.end_time == 1_777_636_803_500_000_000


@pytest.mark.parametrize(
    ("call", "error", "names"),
    [
        (lambda: tcc.run(start_time=1.5e18), TypeError, "tcc.run(start_time=...)"),
        (lambda: tcc.run(start_time="2026-01-01"), TypeError, "tcc.run(start_time=...)"),
        (lambda: tcc.run(start_time=-1), ValueError, "after 1970"),
        (lambda: tcc.run(start_time=True), TypeError, "tcc.run(start_time=...)"),
        (lambda: tcc.run(start_time=2**64), ValueError, "2262"),
        (lambda: tcc.run(start_time=10**18).end_time(10**18 - 1), ValueError, "before the run's start"),
        (lambda: tcc.run().step(start_time=object()), TypeError, "tcc.step(start_time=...)"),
        (lambda: tcc.run(timeout=-1), ValueError, "tcc.run(timeout=...)"),
        (lambda: tcc.run(timeout="5"), TypeError, "tcc.run(timeout=...)"),
        (lambda: tcc.run(name=""), ValueError, "tcc.run(name=...)"),
    ],
)
def test_bad_times_raise_at_the_call(
    captured: Captured, call: Any, error: type[Exception], names: str
) -> None:
    with pytest.raises(error) as info:
        call()
    assert names in str(info.value)


# --- richer records ------------------------------------------------------------------------------------


def test_step_takes_chat_messages_and_sdk_responses(captured: Captured) -> None:
    class Choice:  # the shape of an OpenAI SDK Choice (pydantic)
        def model_dump(self, **_: Any) -> dict[str, Any]:
            return {
                "finish_reason": "tool_calls",
                "index": 0,
                "message": {
                    "role": "assistant",
                    "content": None,
                    "tool_calls": [
                        {
                            "id": "call_1",
                            "type": "function",
                            "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'},
                        }
                    ],
                },
            }

    r = tcc.run()
    s = r.step()
    s.prompt([{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Weather in Paris?"}])
    s.response(Choice()).model("gpt-4o")
    s.tool_definitions([{"type": "function", "function": {"name": "get_weather", "parameters": {}}}])
    s.end()
    r.prompt("q").end()
    a = attrs(captured.one("chat gpt-4o"))
    assert json.loads(a["gen_ai.input.messages"]) == [
        {"role": "system", "parts": [{"type": "text", "content": "Be brief."}]},
        {"role": "user", "parts": [{"type": "text", "content": "Weather in Paris?"}]},
    ]
    assert json.loads(a["gen_ai.output.messages"]) == [
        {
            "role": "assistant",
            "parts": [
                {"type": "tool_call", "id": "call_1", "name": "get_weather", "arguments": {"city": "Paris"}}
            ],
            "finish_reason": "tool_calls",
        }
    ]
    assert a["gen_ai.response.finish_reasons"] == ("tool_calls",)
    assert json.loads(a["gen_ai.tool.definitions"])[0]["function"]["name"] == "get_weather"
    assert a["gen_ai.request.model"] == a["gen_ai.response.model"] == "gpt-4o"


def test_finish_reason_given_after_a_structured_response_wins(captured: Captured) -> None:
    r = tcc.run()
    anthropic_message = {
        "role": "assistant",
        "content": [{"type": "text", "text": "Hi"}],
        "stop_reason": "end_turn",
    }
    r.step().prompt("p").response(anthropic_message).finish_reason("max_tokens").end()
    r.prompt("q").end()
    a = attrs(captured.one("chat"))
    assert json.loads(a["gen_ai.output.messages"])[0]["finish_reason"] == "max_tokens"
    assert a["gen_ai.response.finish_reasons"] == ("max_tokens",)


def test_model_shorthand_and_explicit_used_model(captured: Captured) -> None:
    r = tcc.run()
    r.step().prompt("p").response("r").model(used="claude-sonnet-4-5-20250929").model(
        "claude-sonnet-4-5"
    ).end()
    r.prompt("q").end()
    a = attrs(captured.one("chat claude-sonnet-4-5"))
    assert a["gen_ai.request.model"] == "claude-sonnet-4-5"
    assert a["gen_ai.response.model"] == "claude-sonnet-4-5-20250929"


def test_cache_write_and_reasoning_tokens_are_recorded_priced_and_rolled_up(captured: Captured) -> None:
    r = tcc.run()
    r.step().prompt("p").response("r").model("claude-sonnet-4-5").tokens(
        prompt_uncached=1000, prompt_cached=2000, completion=500, cache_write=300, reasoning=200
    ).end()
    r.prompt("q").end()
    a = attrs(captured.one("chat claude-sonnet-4-5"))
    assert a["gen_ai.usage.input_tokens"] == 3300
    assert a["gen_ai.usage.cache_read.input_tokens"] == 2000
    assert a["gen_ai.usage.cache_creation.input_tokens"] == 300
    assert a["gen_ai.usage.output_tokens"] == 500
    assert a["gen_ai.usage.reasoning.output_tokens"] == 200
    # claude-sonnet-4-5: $3 input, $0.30 cache read, $3.75 cache write, $15 output per M tokens
    expected = (1000 * 3 + 2000 * 0.3 + 300 * 3.75 + 500 * 15) / 1e6
    assert a["tcc.cost.usd"] == pytest.approx(expected, rel=1e-9)
    run = attrs(captured.one("invoke_agent"))
    assert run["tcc.run.usage.cache_creation.input_tokens"] == 300
    assert run["tcc.run.usage.reasoning.output_tokens"] == 200


def test_reasoning_cannot_exceed_completion(captured: Captured) -> None:
    s = tcc.run().step().tokens(completion=100)
    with pytest.raises(ValueError, match=r"reasoning=500, completion=100"):
        s.tokens(reasoning=500)


def test_run_full_input_and_output(captured: Captured) -> None:
    r = tcc.run()
    r.prompt(
        "Book a table",
        system_prompt=[{"type": "text", "text": "You are a concierge."}],
        full_input={"user": 7},
    )
    r.response("Booked.", full_output={"booking": "B-12"}).end()
    a = attrs(captured.one("invoke_agent"))
    assert json.loads(a["gen_ai.system_instructions"]) == [
        {"type": "text", "content": "You are a concierge."}
    ]
    assert json.loads(a["tcc.run.full_input"]) == {"user": 7}
    assert json.loads(a["tcc.run.full_output"]) == {"booking": "B-12"}


def test_rich_record_misuse_raises_at_the_call(captured: Captured) -> None:
    s = tcc.run().step()
    with pytest.raises(TypeError, match=r"s\.prompt\(text=\.\.\.\)"):
        s.prompt(42)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"s\.prompt\(text=\.\.\.\).*message 0"):
        s.prompt([{"content": "no role"}])
    with pytest.raises(TypeError, match=r"s\.tool_definitions\(definitions=\.\.\.\)"):
        s.tool_definitions({"name": "x"})  # type: ignore[arg-type]
    with pytest.raises(TypeError, match=r"r\.prompt\(full_input=\.\.\.\)"):
        tcc.run().prompt("q", full_input=object())
