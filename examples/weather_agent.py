"""A simulated weather agent: no API key and no model needed, real model names and token counts.

It answers two questions. Each answer is a run with a planning step that asks for a tool, the tool
call, a step that fails (a rate limit, with a key in the error text that tcc redacts), a retry on a
cheaper model, and the final answer; the user then gives feedback.

    make demo                                  # prints every run as a tree
    python examples/weather_agent.py           # sends to OTEL_EXPORTER_OTLP_ENDPOINT (default localhost:4318)
"""

from __future__ import annotations

import json
import random
import time

import contextcompany as tcc

SYSTEM = "You are a weather agent. Use get_weather for current conditions and answer in one sentence."
TOOLS = json.dumps(
    [
        {
            "type": "function",
            "function": {
                "name": "get_weather",
                "description": "Get the current weather for a city",
                "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
            },
        }
    ]
)
WEATHER = {"London": {"temp_c": 15, "sky": "cloudy"}, "Paris": {"temp_c": 21, "sky": "sunny"}}


class RateLimitError(Exception):
    pass


def think(seconds: float) -> None:
    """Stands in for the latency of a model or an API."""
    time.sleep(seconds * random.uniform(0.8, 1.2))


def get_weather(run: tcc.Run, step: tcc.Step, city: str) -> dict[str, object]:
    tc = step.tool_call("get_weather", tool_call_id=f"call_{random.randrange(16**8):08x}")
    tc.args({"city": city})
    think(0.03)
    result = WEATHER[city]
    tc.result(result).end()
    return result


def answer(question: str, city: str, session_id: str) -> str:
    run = tcc.run(session_id=session_id, conversational=True)
    run.prompt(question, system_prompt=SYSTEM)
    run.metadata(app="weather-demo", city=city)

    plan = run.step()
    plan.prompt(f"{SYSTEM}\n\nUser: {question}")
    plan.model(requested="gpt-4o", used="gpt-4o-2024-08-06")
    plan.tool_definitions(TOOLS)
    think(0.08)
    plan.response(json.dumps({"tool": "get_weather", "arguments": {"city": city}}))
    plan.tokens(prompt_uncached=412, prompt_cached=1024, completion=18).finish_reason("tool_calls")
    weather = get_weather(run, plan, city)
    plan.end()

    final_prompt = f"{SYSTEM}\n\nUser: {question}\nTool get_weather: {json.dumps(weather)}"
    first_try = run.step()
    first_try.prompt(final_prompt).model(requested="claude-sonnet-4-5")
    try:
        think(0.02)
        raise RateLimitError("429 Too Many Requests (x-api-key sk-ant-api03-Zq8fK2xWm9Lp4Rt7Vb1N)")
    except RateLimitError as exc:
        first_try.error(status_message=f"RateLimitError: {exc}")

    retry = run.step()
    retry.prompt(final_prompt).model(requested="gpt-4o-mini", used="gpt-4o-mini-2024-07-18")
    think(0.05)
    text = f"It is {weather['temp_c']}°C and {weather['sky']} in {city}."
    retry.response(text).tokens(prompt_uncached=1470, completion=14).finish_reason("stop").end()

    run.response(text).end()
    run.feedback(score="thumbs_up", text="Short and right.")
    return text


def main() -> None:
    session = f"demo-{random.randrange(16**6):06x}"
    for question, city in [
        ("What is the weather in London?", "London"),
        ("And in Paris?", "Paris"),
    ]:
        print(f"> {question}\n< {answer(question, city, session)}")
    # No tcc.flush() needed: whatever is queued is sent when the interpreter exits.


if __name__ == "__main__":
    main()
