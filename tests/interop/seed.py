"""The seed scenario as the interoperability checks send it.

It is ``tests/test_records.py::seed_example`` (the example users of contextcompany 2.0.0 have), with
the additions a backend check needs: a session id on the run; a step whose cost the application gives
with ``s.cost()`` and no token counts (a call priced by a bill, not by tokens); and a step with cache
writes and reasoning tokens, which seed_example's counts lack.
The calls are repeated here rather than imported because seed_example must stay verbatim.

    run_id = seed_scenario(session_id="interop-session")
"""

from __future__ import annotations

GIVEN_COST = 0.0035
CACHE_MODEL = "claude-sonnet-4-5"
CACHE_TOKENS = {
    "prompt_uncached": 100,
    "prompt_cached": 1000,
    "completion": 300,
    "cache_write": 400,
    "reasoning": 100,
}
SESSION_ID = "interop-session"
SEED_MODEL_REQUESTED = "gpt-4"
SEED_MODEL_USED = "gpt-4-0613"
SEED_TOKENS = {"prompt_uncached": 150, "prompt_cached": 50, "completion": 25}
STEP_PROMPT = "You are a weather agent. The user asked: What is the weather in London?"
STEP_RESPONSE = "The weather in London is 15°C and cloudy."
RUN_PROMPT = "What is the weather in London?"
RUN_RESPONSE = "It is 15°C and cloudy in London."


def seed_scenario(session_id: str = SESSION_ID) -> str:
    """Record the scenario with tcc's global functions; returns the run id."""
    import contextcompany as tcc

    r = tcc.run(session_id=session_id)
    r.prompt(RUN_PROMPT)
    s = r.step()
    s.prompt(STEP_PROMPT)
    s.response(STEP_RESPONSE)
    s.model(requested=SEED_MODEL_REQUESTED, used=SEED_MODEL_USED)
    s.tokens(**SEED_TOKENS)
    s.finish_reason("stop")
    s.tool_definitions('[{"name": "get_weather", "description": "Get the weather for a location"}]')
    s.end()
    s2 = r.step()
    s2.prompt("Calling weather API...")
    try:
        raise TimeoutError("weather API timed out")
    except Exception as e:
        s2.error(status_message=str(e))
    tc = r.tool_call("get_weather")
    tc.args({"city": "London"}).result({"temp_c": 15}).end()
    # The addition: a step billed at a known price, with no token counts.
    s3 = r.step()
    s3.prompt("Summarise the forecast.").response("Cloudy, 15°C.")
    s3.model(requested="house-model-1")
    s3.cost(GIVEN_COST)
    s3.end()
    s4 = r.step()
    s4.prompt("Anything else?").response("Bring an umbrella.").model(requested=CACHE_MODEL)
    s4.tokens(**CACHE_TOKENS)  # type: ignore[arg-type]
    s4.finish_reason("stop")
    s4.end()
    r.response(RUN_RESPONSE)
    r.end()
    return r.run_id
