"""The with form, the current run, and context across asyncio tasks and threads."""

from __future__ import annotations

import asyncio
import contextvars
import json
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from opentelemetry import trace
from opentelemetry.trace import StatusCode

import contextcompany as tcc

from .conftest import Captured


def attrs(span: Any) -> dict[str, Any]:
    return dict(span.attributes or {})


class RateLimited(Exception):
    pass


def test_with_blocks_end_everything(captured: Captured) -> None:
    with tcc.run(name="weather") as r:
        r.prompt("What is the weather in London?")
        assert tcc.current_run() is r
        with r.step() as s:
            s.prompt("p").response("r").model("gpt-4o")
        with r.tool_call("get_weather") as tc:
            tc.args({"city": "London"}).result({"temp_c": 15})
        r.response("15°C")
    assert tcc.current_run() is None
    names = [s.name for s in captured.spans()]
    assert names == ["chat gpt-4o", "execute_tool get_weather", "invoke_agent weather"]
    run = captured.one("invoke_agent weather")
    assert attrs(run)["gen_ai.agent.name"] == "weather"
    assert all(s.status.status_code is StatusCode.UNSET for s in captured.spans())


def test_exception_in_with_block_is_recorded_redacted_and_reraised(captured: Captured) -> None:
    with pytest.raises(RateLimited, match="429"), tcc.run() as r:
        r.prompt("q")
        with r.step() as s:
            s.prompt("p")
            raise RateLimited("429 for key sk-proj-abcdefghijklmnopqrstuvwx")
    step, run = captured.spans()
    for span in (step, run):
        assert span.status.status_code is StatusCode.ERROR
        assert span.status.description == "429 for key [REDACTED]"
        assert attrs(span)["error.type"] == "tests.test_context.RateLimited"
        (event,) = span.events
        assert event.name == "exception"
        event_attrs = dict(event.attributes or {})
        assert event_attrs["exception.type"] == "tests.test_context.RateLimited"
        assert event_attrs["exception.message"] == "429 for key [REDACTED]"
        assert "sk-proj" not in event_attrs["exception.stacktrace"]
        assert "raise RateLimited" in event_attrs["exception.stacktrace"]


def test_builtin_exception_type_and_empty_message(captured: Captured) -> None:
    with pytest.raises(KeyError), tcc.run() as r:
        r.prompt("q")
        raise KeyError()
    run = captured.one("invoke_agent")
    assert attrs(run)["error.type"] == "KeyError"
    assert run.status.description == "KeyError"


def test_normal_exit_still_requires_the_prompt(captured: Captured) -> None:
    r = tcc.run()
    with pytest.raises(ValueError, match=r"Call r\.prompt"), r:
        pass
    assert captured.spans() == []  # not sent; the run is still open
    r.prompt("q").end()
    assert len(captured.spans()) == 1


def test_ending_inside_the_block_is_fine(captured: Captured) -> None:
    with tcc.run() as r:
        r.prompt("q").end()
    with tcc.run() as r2:
        r2.error("gave up")
    assert [s.status.status_code for s in captured.spans()] == [StatusCode.UNSET, StatusCode.ERROR]


def test_spans_inside_a_with_block_nest_under_the_record(captured: Captured) -> None:
    other = captured.provider.get_tracer("httpx")
    with tcc.run() as r:
        r.prompt("q")
        with other.start_as_current_span("POST https://api.openai.com/v1/chat/completions"):
            pass
        with r.tool_call("search"), other.start_as_current_span("GET https://search"):
            pass
    run, tool = captured.one("invoke_agent"), captured.one("execute_tool search")
    post = captured.one("POST https://api.openai.com/v1/chat/completions")
    get = captured.one("GET https://search")
    assert post.parent is not None and post.parent.span_id == run.context.span_id
    assert get.parent is not None and get.parent.span_id == tool.context.span_id
    assert trace.get_current_span() is trace.INVALID_SPAN


def test_module_level_calls_use_the_current_run_and_step(captured: Captured) -> None:
    with tcc.run() as r:
        r.prompt("q")
        with tcc.step() as s:
            s.prompt("p").response("r")
            tcc.tool_call("inside_step").end()
        tcc.tool_call("inside_run").end()
        tcc.tool_call(r.run_id, tool_name="old_style").end()  # 2.0.0 form still means a run id
    run, step = captured.one("invoke_agent"), captured.one("chat")
    assert step.parent is not None and step.parent.span_id == run.context.span_id
    inside_step = captured.one("execute_tool inside_step")
    assert inside_step.parent is not None and inside_step.parent.span_id == step.context.span_id
    for name in ("execute_tool inside_run", "execute_tool old_style"):
        span = captured.one(name)
        assert span.parent is not None and span.parent.span_id == run.context.span_id


def test_outside_any_run_module_calls_need_a_run_id(captured: Captured) -> None:
    with pytest.raises(TypeError, match=r"tcc\.step\(\) needs run_id"):
        tcc.step()
    with pytest.raises(TypeError, match=r"tcc\.tool_call\(\) needs run_id"):
        tcc.tool_call(tool_name="x")
    assert tcc.current_run() is None


def test_nested_runs_restore_the_outer_one(captured: Captured) -> None:
    with tcc.run(name="outer") as outer:
        outer.prompt("q")
        with tcc.run(name="inner") as inner:
            inner.prompt("q")
            assert tcc.current_run() is inner
        assert tcc.current_run() is outer
    inner_span, outer_span = captured.spans()
    assert inner_span.parent is not None and inner_span.parent.span_id == outer_span.context.span_id


def test_a_thousand_concurrent_asyncio_tasks_keep_their_own_runs(captured: Captured) -> None:
    async def agent(i: int) -> None:
        with tcc.run(run_id=f"run-{i}") as r:
            r.prompt(f"question {i}")
            for j in range(2):
                await asyncio.sleep(0)  # interleave every task with every other
                with tcc.step() as s:
                    s.prompt(f"{i}.{j}").response("ok")
                await asyncio.sleep(0)
                tcc.tool_call(f"tool-{i}").end()

    async def main() -> None:
        await asyncio.gather(*(agent(i) for i in range(1000)))

    asyncio.run(main())
    spans = captured.spans()
    assert len(spans) == 1000 * 5
    runs = {attrs(s)["tcc.run.id"]: s for s in spans if s.name == "invoke_agent"}
    assert len(runs) == 1000
    for span in spans:
        if span.name == "invoke_agent":
            continue
        run = runs[attrs(span)["tcc.run.id"]]
        assert span.parent is not None and span.parent.span_id == run.context.span_id
        assert span.context.trace_id == run.context.trace_id
        i = attrs(span)["tcc.run.id"].removeprefix("run-")
        if span.name == "chat":
            content = json.loads(attrs(span)["gen_ai.input.messages"])[0]["parts"][0]["content"]
            assert content.split(".")[0] == i
        else:
            assert span.name == f"execute_tool tool-{i}"


def test_threads_that_copy_the_context_see_the_run(captured: Captured) -> None:
    def work(i: int) -> str:
        run = tcc.current_run()
        assert run is not None
        with tcc.step() as s:
            s.prompt(str(i)).response("ok")
        return run.run_id

    with tcc.run() as r, ThreadPoolExecutor(4) as pool:
        r.prompt("fan out")
        futures = [pool.submit(contextvars.copy_context().run, work, i) for i in range(20)]
        assert {f.result() for f in futures} == {r.run_id}
    run = captured.one("invoke_agent")
    steps = captured.by_op("chat")
    assert len(steps) == 20
    assert all(s.parent is not None and s.parent.span_id == run.context.span_id for s in steps)


def test_exit_in_another_context_does_not_raise(captured: Captured) -> None:
    r = tcc.run()
    r.prompt("q")
    contextvars.copy_context().run(r.__enter__)  # entered in one task...
    contextvars.copy_context().run(r.__exit__, None, None, None)  # ...exited in another
    assert len(captured.spans()) == 1
    assert tcc.current_run() is None
