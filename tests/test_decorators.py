"""@tcc.agent and @tcc.tool on sync and async functions."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
from datetime import datetime
from typing import Any

import pytest
from opentelemetry.trace import StatusCode

import contextcompany as tcc
from contextcompany._decorators import readable_json

from .conftest import Captured


def attrs(span: Any) -> dict[str, Any]:
    return dict(span.attributes or {})


@tcc.tool
def get_weather(city: str, unit: str = "C") -> dict[str, object]:
    return {"city": city, "temp": 15, "unit": unit}


@tcc.tool(name="search_web")
async def search(query: str, api_key: str, limit: int = 3) -> list[str]:
    await asyncio.sleep(0)
    return [f"{query} {i}" for i in range(limit)]


@tcc.tool
def broken(x: int) -> None:
    raise ValueError(f"bad x: {x}")


@tcc.agent
def weather_agent(question: str) -> str:
    with tcc.step() as s:
        s.prompt(question).response("calling get_weather").model("gpt-4o-mini")
    w = get_weather("London")
    return f"{w['temp']}°C"


@tcc.agent(name="researcher")
async def research(topic: str, depth: int) -> dict[str, object]:
    found = await search(topic, api_key="sk-live-secret-value", limit=2)
    return {"topic": topic, "found": found}


@dataclasses.dataclass
class Order:
    item: str
    qty: int


class Shop:
    @tcc.tool
    def place(self, order: Order) -> Order:
        return order


def test_sync_agent_and_tool(captured: Captured) -> None:
    assert weather_agent("What is the weather in London?") == "15°C"  # behaviour unchanged
    run = captured.one("invoke_agent weather_agent")
    a = attrs(run)
    assert a["gen_ai.agent.name"] == "weather_agent"
    assert (
        json.loads(a["gen_ai.input.messages"])[0]["parts"][0]["content"] == "What is the weather in London?"
    )
    assert json.loads(a["gen_ai.output.messages"])[0]["parts"][0]["content"] == "15°C"
    tool = captured.one("execute_tool get_weather")
    assert tool.parent is not None and tool.parent.span_id == run.context.span_id
    assert json.loads(attrs(tool)["gen_ai.tool.call.arguments"]) == {"city": "London", "unit": "C"}
    assert json.loads(attrs(tool)["gen_ai.tool.call.result"]) == {"city": "London", "temp": 15, "unit": "C"}
    step = captured.one("chat gpt-4o-mini")
    assert step.parent is not None and step.parent.span_id == run.context.span_id


def test_async_agent_and_tool_with_secret_argument(captured: Captured) -> None:
    result = asyncio.run(research("otel", depth=2))
    assert result == {"topic": "otel", "found": ["otel 0", "otel 1"]}
    run = captured.one("invoke_agent researcher")
    prompt = json.loads(attrs(run)["gen_ai.input.messages"])[0]["parts"][0]["content"]
    assert json.loads(prompt) == {"topic": "otel", "depth": 2}
    assert json.loads(json.loads(attrs(run)["gen_ai.output.messages"])[0]["parts"][0]["content"]) == result
    tool = captured.one("execute_tool search_web")
    assert tool.parent is not None and tool.parent.span_id == run.context.span_id
    arguments = json.loads(attrs(tool)["gen_ai.tool.call.arguments"])
    assert arguments == {"query": "otel", "api_key": "[REDACTED]", "limit": 2}


def test_tool_exception_is_recorded_and_reraised(captured: Captured) -> None:
    with tcc.run() as r:
        r.prompt("q")
        with pytest.raises(ValueError, match="bad x: 7"):
            broken(7)
    tool = captured.one("execute_tool broken")
    assert tool.status.status_code is StatusCode.ERROR
    assert tool.status.description == "bad x: 7"
    assert attrs(tool)["error.type"] == "ValueError"
    assert [e.name for e in tool.events] == ["exception"]
    assert captured.one("invoke_agent").status.status_code is StatusCode.UNSET


def test_agent_exception_fails_the_run(captured: Captured) -> None:
    @tcc.agent
    def flaky(question: str) -> str:
        raise TimeoutError("model timed out")

    with pytest.raises(TimeoutError):
        flaky("q")
    run = captured.one("invoke_agent flaky")
    assert run.status.status_code is StatusCode.ERROR
    assert attrs(run)["error.type"] == "TimeoutError"


def test_methods_dataclasses_and_unserialisable_values(captured: Captured) -> None:
    with tcc.run() as r:
        r.prompt("q")
        order = Shop().place(Order("tea", 2))
    assert order == Order("tea", 2)
    tool = captured.one("execute_tool place")
    assert json.loads(attrs(tool)["gen_ai.tool.call.arguments"]) == {"order": {"item": "tea", "qty": 2}}
    assert json.loads(attrs(tool)["gen_ai.tool.call.result"]) == {"item": "tea", "qty": 2}


def test_tool_outside_a_run_runs_unrecorded_with_one_warning(
    captured: Captured, caplog: pytest.LogCaptureFixture
) -> None:
    @tcc.tool
    def lonely(x: int) -> int:
        return x + 1

    with caplog.at_level(logging.WARNING, logger="contextcompany"):
        assert lonely(1) == 2
        assert lonely(2) == 3
    assert captured.spans() == []
    assert len([r for r in caplog.records if "outside a run" in r.getMessage()]) == 1


def test_nested_agents(captured: Captured) -> None:
    @tcc.agent(name="inner")
    def inner(x: str) -> str:
        return x.upper()

    @tcc.agent(name="outer")
    def outer(x: str) -> str:
        return inner(x) + "!"

    assert outer("hi") == "HI!"
    inner_span, outer_span = captured.spans()
    assert inner_span.parent is not None and inner_span.parent.span_id == outer_span.context.span_id


def test_generators_are_refused_at_decoration() -> None:
    with pytest.raises(TypeError, match="generator function"):

        @tcc.tool
        def stream() -> Any:
            yield 1


def test_decorated_functions_keep_their_identity() -> None:
    assert get_weather.__name__ == "get_weather"
    assert asyncio.iscoroutinefunction(search)
    assert not asyncio.iscoroutinefunction(get_weather)


def test_readable_json_never_raises() -> None:
    loop: list[object] = []
    loop.append(loop)

    class Weird:
        def __repr__(self) -> str:
            raise RuntimeError("no repr")

    assert json.loads(readable_json({"n": float("nan"), "b": b"\x00", "s": {1}})) == {
        "n": "nan",
        "b": "b'\\x00'",
        "s": [1],
    }
    assert json.loads(readable_json(loop)) == ["<cycle>"]
    assert json.loads(readable_json(datetime(2026, 1, 1))) == "datetime.datetime(2026, 1, 1, 0, 0)"
    assert json.loads(readable_json(Weird())).startswith("<unrepresentable")
    deep: list[object] = []
    cur = deep
    for _ in range(100):
        nxt: list[object] = []
        cur.append(nxt)
        cur = nxt
    assert "<too deep>" in readable_json(deep)
