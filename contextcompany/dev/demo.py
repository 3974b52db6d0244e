"""A simulated agent shipped with the package, to see the dev viewer without writing one.

No model and no API key: it records two runs of a trip-planning agent with real model names and
token counts (an LLM step asking for a tool, the tool call, a failed step, a retry, the answer) and
sends them wherever ``OTEL_EXPORTER_OTLP_ENDPOINT`` points::

    python -m contextcompany dev -- python -m contextcompany.dev.demo
"""

from __future__ import annotations

import json
import time
import uuid

import contextcompany as tcc

__all__ = ["main"]

SYSTEM = "You plan day trips. Call find_trains for timetables, then answer in two sentences."
TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "find_trains",
            "description": "Trains between two stations on a day",
            "parameters": {
                "type": "object",
                "properties": {"origin": {"type": "string"}, "destination": {"type": "string"}},
            },
        },
    }
]
TRAINS = {
    "Lyon": [{"departs": "07:04", "arrives": "09:00"}],
    "Bruges": [{"departs": "08:13", "arrives": "09:45"}],
}


class UpstreamTimeoutError(Exception):
    """Stands in for a provider that did not answer in time."""


def plan_trip(city: str, session_id: str) -> str:
    question = f"Plan a day trip from the capital to {city}."
    run = tcc.run(session_id=session_id, name="trip_planner")
    run.prompt(question, system_prompt=SYSTEM)
    run.metadata(app="contextcompany-demo", destination=city)

    ask = run.step()
    ask.prompt(f"{SYSTEM}\n\nUser: {question}").model(requested="gpt-4o", used="gpt-4o-2024-08-06")
    ask.tool_definitions(TOOLS)
    time.sleep(0.05)
    ask.response(json.dumps({"tool": "find_trains", "arguments": {"origin": "capital", "destination": city}}))
    ask.tokens(prompt_uncached=380, prompt_cached=1152, completion=24).finish_reason("tool_calls")
    call = ask.tool_call("find_trains", tool_call_id=f"call_{uuid.uuid4().hex[:8]}")
    call.args({"origin": "capital", "destination": city})
    time.sleep(0.02)
    trains = TRAINS[city]
    call.result({"trains": trains}).end()
    ask.end()

    answer_prompt = f"{SYSTEM}\n\nUser: {question}\nfind_trains: {json.dumps(trains)}"
    slow = run.step()
    slow.prompt(answer_prompt).model(requested="claude-sonnet-4-5")
    try:
        with slow:
            time.sleep(0.03)
            raise UpstreamTimeoutError("no answer within 30 s from the provider")
    except UpstreamTimeoutError:
        pass  # recorded on the step by the with block; the agent retries on another model

    retry = run.step()
    retry.prompt(answer_prompt).model(requested="gpt-4o-mini", used="gpt-4o-mini-2024-07-18")
    time.sleep(0.04)
    first = trains[0]
    text = (
        f"Take the {first['departs']} train; you are in {city} at {first['arrives']}. Back by the last train."
    )
    retry.response(text).tokens(prompt_uncached=1610, completion=31).finish_reason("stop").end()

    run.response(text).end()
    run.feedback(score="thumbs_up", text="Exactly what I needed.")
    return text


def main() -> None:
    session = f"demo-{uuid.uuid4().hex[:6]}"
    for city in ("Lyon", "Bruges"):
        print(f"{city}: {plan_trip(city, session)}")
    tcc.flush()


if __name__ == "__main__":
    main()
