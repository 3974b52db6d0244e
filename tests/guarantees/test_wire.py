"""What arrives on the wire, end to end: a fresh interpreter using the public API, the OTLP/HTTP exporter,
and the local receiver decoding the protobuf it gets.

- Roll-ups: a run's totals are the sums of its calls, for every token type (input, cache read, cache
  write, output, reasoning), the cost, and the count of calls priced and not; over several calls, so each
  sum adds more than one term.
- The step rule: a step span that ends without its prompt or its response never arrives as a success.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from contextcompany.dev import OTLPReceiver, ReceivedSpan
from tests.e2e.conftest import run_script

pytestmark = pytest.mark.timeout(120)

# Each call's counts are distinct powers of ten per call and per token type, so a sum that drops or
# doubles any one term shows in its own digit.
CALLS: list[dict[str, Any]] = [
    {"model": "gpt-4o", "uncached": 1, "cached": 20, "cache_write": 300, "completion": 4000, "reasoning": 50},
    {
        "model": "claude-sonnet-4-5",
        "uncached": 10,
        "cached": 200,
        "cache_write": 3000,
        "completion": 40_000,
        "reasoning": 500,
    },
    {
        "model": "gpt-4o-mini",
        "uncached": 100,
        "cached": 2000,
        "cache_write": 30,
        "completion": 400,
        "reasoning": 5,
    },
    {
        "model": "not-a-model-anyone-prices",
        "uncached": 1000,
        "cached": 2,
        "cache_write": 3,
        "completion": 40,
        "reasoning": 0,
    },
    {
        "model": "gpt-4o",
        "uncached": 7,
        "cached": 0,
        "cache_write": 0,
        "completion": 9,
        "reasoning": 0,
        "cost": 0.25,
    },
]

ROLL_UP = r"""
import json
import contextcompany as tcc

calls = json.loads(CALLS)
with tcc.run(name="roll-up") as r:
    r.prompt("q").response("a")
    for i, call in enumerate(calls):
        s = r.step().prompt(f"p{i}").response(f"r{i}").model(call["model"])
        s.tokens(
            prompt_uncached=call["uncached"],
            prompt_cached=call["cached"],
            completion=call["completion"],
            cache_write=call["cache_write"],
            reasoning=call["reasoning"],
        )
        if "cost" in call:
            s.cost(call["cost"])
        s.end()
    # A tool call between the calls adds nothing.
    r.tool_call("lookup").args({"q": 1}).result("ok").end()
print("RUN", json.dumps({"run_id": r.run_id}), flush=True)
"""


def _spans(receiver: OTLPReceiver, count: int) -> list[ReceivedSpan]:
    return receiver.wait_for_spans(count, timeout=10)


def test_a_runs_totals_sum_every_token_type_over_several_calls() -> None:
    with OTLPReceiver(port=0) as receiver:
        result = run_script(
            ROLL_UP.replace("CALLS", repr(json.dumps(CALLS))),
            {"OTEL_EXPORTER_OTLP_ENDPOINT": receiver.endpoint},
        )
        assert result.returncode == 0, result.stderr
        spans = _spans(receiver, len(CALLS) + 2)
    (run,) = [s for s in spans if s.attributes.get("gen_ai.operation.name") == "invoke_agent"]
    steps = [s for s in spans if s.attributes.get("gen_ai.operation.name") == "chat"]
    assert len(steps) == len(CALLS)
    by_model_and_output = {
        (s.attributes["gen_ai.request.model"], s.attributes["gen_ai.usage.output_tokens"]): s for s in steps
    }

    # Each call on the wire, as set.
    for call in CALLS:
        a = by_model_and_output[(call["model"], call["completion"])].attributes
        assert a["gen_ai.usage.input_tokens"] == call["uncached"] + call["cached"] + call["cache_write"]
        assert a["gen_ai.usage.cache_read.input_tokens"] == call["cached"]
        assert a["gen_ai.usage.cache_creation.input_tokens"] == call["cache_write"]
        assert a["gen_ai.usage.reasoning.output_tokens"] == call["reasoning"]
        if "cost" in call:
            assert a["tcc.cost.usd"] == pytest.approx(call["cost"]) and a["tcc.cost.source"] == "reported"

    # The run: the sum of its calls, for every count.
    r = run.attributes
    assert r["tcc.run.usage.input_tokens"] == sum(
        c["uncached"] + c["cached"] + c["cache_write"] for c in CALLS
    )
    assert r["tcc.run.usage.cache_read.input_tokens"] == sum(c["cached"] for c in CALLS)
    assert r["tcc.run.usage.cache_creation.input_tokens"] == sum(c["cache_write"] for c in CALLS)
    assert r["tcc.run.usage.output_tokens"] == sum(c["completion"] for c in CALLS)
    assert r["tcc.run.usage.reasoning.output_tokens"] == sum(c["reasoning"] for c in CALLS)
    assert r["tcc.run.llm_calls"] == len(CALLS)

    # The cost: every priced call's cost (computed or reported), none for the unknown model.
    costs = [s.attributes.get("tcc.cost.usd") for s in steps]
    priced = [c for c in costs if c is not None]
    assert len(priced) == len(CALLS) - 1, costs  # the unknown model has no price
    assert all(c > 0 for c in priced)
    assert r["tcc.run.cost.usd"] == pytest.approx(sum(priced), rel=1e-9)
    assert r["tcc.run.unpriced_llm_calls"] == 1


# --- the step rule ---------------------------------------------------------------------------------------

STEP_RULE = r"""
import json
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.trace import TracerProvider
import contextcompany as tcc

# A service's own provider with tcc's processor in front of its exporter (drop-in), so that spans made by
# another instrumentation go through tcc's pipeline too.
provider = TracerProvider()
provider.add_span_processor(tcc.SpanProcessor(OTLPSpanExporter(endpoint="ENDPOINT/v1/traces")))
tcc.configure(tracer_provider=provider)
tracer = provider.get_tracer("another-instrumentation")

report = {}
with tcc.run(name="rule") as r:
    r.prompt("q").response("a")
    report["run_id"] = r.run_id
    s = r.step().prompt("a prompt, no response")
    try:
        s.end()
    except ValueError as e:
        report["end_error"] = str(e)
    s.response("the response came after all").end()  # the same step, now complete: a success
    report["complete"] = s.step_id
    # Step spans that end without their content, made outside tcc's records.
    for i, content in enumerate(
        [{"gen_ai.input.messages": '[{"role": "user", "parts": []}]'},
         {"gen_ai.output.messages": '[{"role": "assistant", "parts": []}]'},
         {}]
    ):
        with tracer.start_as_current_span(f"chat raw-{i}") as span:
            span.set_attributes({"gen_ai.operation.name": "chat", "tcc.step.id": f"raw-{i}", **content})
print("REPORT", json.dumps(report), flush=True)
assert tcc.flush(10_000)
"""


def test_a_step_without_its_response_arrives_as_an_error() -> None:
    """On the wire, a step never shows as a success without its prompt and its response: end() without
    the response raises at the call naming it (and sends nothing), and a step span that ends without
    them anyway arrives as an error naming what was missing."""
    with OTLPReceiver(port=0) as receiver:
        result = run_script(STEP_RULE.replace("ENDPOINT", receiver.endpoint), {})
        assert result.returncode == 0, result.stderr
        report = json.loads(result.stdout.split("REPORT ", 1)[1].splitlines()[0])
        spans = _spans(receiver, 5)
    assert "response" in report["end_error"] and "s.response" in report["end_error"], report
    steps = {s.attributes["tcc.step.id"]: s for s in spans if "tcc.step.id" in s.attributes}
    assert set(steps) == {report["complete"], "raw-0", "raw-1", "raw-2"}, "the step that raised sent nothing"
    complete = steps[report["complete"]]
    assert complete.status_code != 2
    assert json.loads(complete.attributes["gen_ai.output.messages"])[0]["parts"][0]["content"] == (
        "the response came after all"
    )
    for step_id, missing in (("raw-0", "response"), ("raw-1", "prompt"), ("raw-2", "prompt and response")):
        span = steps[step_id]
        assert span.status_code == 2, f"{step_id} arrived as a success without its {missing}"
        assert span.status_message == f"step ended without {missing}"
        assert span.attributes["error.type"] == "tcc.incomplete_step"
