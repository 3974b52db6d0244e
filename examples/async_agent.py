"""An asyncio agent serving three users at once, with parallel tool calls: no API key needed.

Each conversation is a run in its own task; `tcc.step()` and `tcc.tool_call()` find their run through
contextvars, so concurrent runs never mix, and the run's `with` block ends everything it opened.

    make demo
    python examples/async_agent.py     # sends to OTEL_EXPORTER_OTLP_ENDPOINT (default localhost:4318)
"""

from __future__ import annotations

import asyncio
import random

import contextcompany as tcc

FORECASTS = {"Oslo": "-2°C, snow", "Lisbon": "19°C, sunny", "Tokyo": "12°C, rain", "Lima": "22°C, haze"}


async def llm(prompt: str, model: str) -> tuple[str, int, int]:
    """Stands in for a model call: latency, an answer, token counts."""
    await asyncio.sleep(random.uniform(0.02, 0.08))
    return f"({model}) {prompt[:40]}...", 200 + len(prompt), random.randint(20, 60)


async def forecast(city: str) -> str:
    with tcc.tool_call("get_forecast") as tc:  # the current run, found through contextvars
        tc.args({"city": city})
        await asyncio.sleep(random.uniform(0.01, 0.05))
        if city not in FORECASTS:
            raise KeyError(f"no forecast for {city}")
        tc.result(FORECASTS[city])
        return FORECASTS[city]


async def converse(user: str, cities: list[str]) -> str:
    with tcc.run(name="travel-weather", session_id=f"session-{user}") as run:
        question = f"Should I pack an umbrella for {', '.join(cities)}?"
        run.prompt(question).metadata(user=user)
        with tcc.step() as plan:
            answer, tokens_in, tokens_out = await llm(question, "gpt-4o-mini")
            plan.prompt(question).response(answer).model("gpt-4o-mini").tokens(tokens_in, 0, tokens_out)
        # the tool calls run concurrently, each in its own task, all in this run
        results = await asyncio.gather(*(forecast(c) for c in cities), return_exceptions=True)
        summary = "; ".join(f"{c}: {r}" for c, r in zip(cities, results, strict=True))
        with tcc.step() as final:
            answer, tokens_in, tokens_out = await llm(summary, "claude-haiku-4-5")
            final.prompt(summary).response(answer).model("claude-haiku-4-5").tokens(tokens_in, 0, tokens_out)
        run.response(answer)
        return answer


async def main() -> None:
    answers = await asyncio.gather(
        converse("ana", ["Lisbon", "Oslo"]),
        converse("ken", ["Tokyo"]),
        converse("rosa", ["Lima", "Atlantis"]),  # one forecast fails; the run still answers
    )
    for answer in answers:
        print(answer)


if __name__ == "__main__":
    asyncio.run(main())
