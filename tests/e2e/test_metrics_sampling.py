"""Cost and token metrics stay exact under trace sampling (issue 10), end to end in fresh interpreters.

The child records runs with the public API against a collector on loopback that decodes both
``/v1/traces`` and ``/v1/metrics``; the expected prices come from genai-prices itself, in the child.
"""

from __future__ import annotations

import math
from collections import defaultdict

import pytest

from tests.reliability.collector import FaultyCollector, MetricPoint, spawn

RUNS = 200

# Two priced steps per run, with cache reads and writes, reasoning, and counts that differ per run. The
# expected cost is genai-prices' own price of each call, summed in the child.
PROOF = """
import json
import contextcompany as tcc
from genai_prices import Usage, calc_price

MODELS = (("gpt-4o", "openai"), ("claude-sonnet-4-5", "anthropic"))
expected = 0.0
tokens = {"input": 0, "output": 0, "cache_read": 0, "cache_write": 0, "reasoning": 0}
for i in range(%(runs)d):
    r = tcc.run(name="proof")
    r.prompt("q")
    for j, (model, provider) in enumerate(MODELS):
        uncached, cached, write, out, reasoning = 1000 + i, 200 + j, 30 * j, 80 + i %% 13, 10 + j
        (
            r.step()
            .prompt("p")
            .response("a")
            .model(model)
            .tokens(uncached, cached, out, cache_write=write, reasoning=reasoning)
            .end()
        )
        usage = Usage(
            input_tokens=uncached + cached + write,
            cache_read_tokens=cached,
            cache_write_tokens=write,
            output_tokens=out,
            output_reasoning_tokens=reasoning,
        )
        expected += float(calc_price(usage, model_ref=model, provider_id=provider).total_price)
        tokens["input"] += uncached + cached + write
        tokens["output"] += out
        tokens["cache_read"] += cached
        tokens["cache_write"] += write
        tokens["reasoning"] += reasoning
    r.response("done").end()
print("RESULT " + json.dumps({"expected": expected, "tokens": tokens}))
"""


def _sum(points: list[MetricPoint], name: str, **attributes: str) -> float:
    wanted = {key.replace("__", "."): value for key, value in attributes.items()}
    return sum(
        p.value for p in points if p.name == name and all(p.attributes.get(k) == v for k, v in wanted.items())
    )


@pytest.mark.slow
def test_cost_and_tokens_are_exact_under_traceidratio_sampling() -> None:
    with FaultyCollector() as collector:
        env = {
            "OTEL_EXPORTER_OTLP_ENDPOINT": collector.endpoint,
            "OTEL_TRACES_SAMPLER": "traceidratio",
            "OTEL_TRACES_SAMPLER_ARG": "0.1",
            # Each export carries what is new since the last: the sums below add every request up.
            "OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE": "delta",
        }
        with spawn(PROOF % {"runs": RUNS}, env) as child:
            result = child.expect("RESULT", timeout=120)
            assert child.wait(60) == 0, child.stderr
        points = collector.metrics
        runs = {s.span_id for s in collector.spans if s.name.startswith("invoke_agent")}
    assert "Traceback" not in child.stderr, child.stderr

    # About a tenth of the runs' spans arrive (binomial: 20 +- 4.2; these bounds are over 3.5 sigma)...
    assert 5 <= len(runs) <= 40, len(runs)
    # ...and every run is in the metrics, to the cent and to the token.
    cost = _sum(points, "tcc.client.cost.usd", tcc__origin="tcc")
    assert math.isclose(cost, result["expected"], rel_tol=1e-9), (cost, result["expected"])
    assert {p.attributes.get("tcc.cost.source") for p in points if p.name == "tcc.client.cost.usd"} == {
        "computed"
    }
    tokens = result["tokens"]
    usage = "gen_ai.client.token.usage"
    assert _sum(points, usage, gen_ai__token__type="input") == tokens["input"]
    assert _sum(points, usage, gen_ai__token__type="output") == tokens["output"]
    counts = defaultdict(int)
    for p in points:
        if p.name == usage:
            counts[p.attributes["gen_ai.token.type"]] += p.count or 0
    assert counts == {"input": 2 * RUNS, "output": 2 * RUNS}
    parts = "tcc.client.token.parts"
    assert _sum(points, parts, tcc__token__part="cache_read") == tokens["cache_read"]
    assert _sum(points, parts, tcc__token__part="cache_write") == tokens["cache_write"]
    assert _sum(points, parts, tcc__token__part="reasoning") == tokens["reasoning"]
    assert _sum(points, parts) == tokens["input"] + tokens["output"]
    # Every run and step is timed, under its agent's name.
    duration = [p for p in points if p.name == "gen_ai.client.operation.duration"]
    by_operation: dict[str, int] = defaultdict(int)
    for p in duration:
        assert "gen_ai.operation.name" in p.attributes, p
        by_operation[p.attributes["gen_ai.operation.name"]] += p.count or 0
        assert p.attributes.get("gen_ai.agent.name") == "proof"
    assert by_operation == {"invoke_agent": RUNS, "chat": 2 * RUNS}


HOST = """
import json
from opentelemetry import metrics
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
import contextcompany as tcc

reader = InMemoryMetricReader()
metrics.set_meter_provider(MeterProvider(metric_readers=[reader]))
for _ in range(3):
    r = tcc.run(name="host")
    r.prompt("q")
    r.step().prompt("p").response("a").model("gpt-4o").tokens(100, 0, 10).end()
    r.response("a").end()
assert tcc.flush(10_000)
found = {}
for rm in reader.get_metrics_data().resource_metrics:
    for sm in rm.scope_metrics:
        for m in sm.metrics:
            for p in m.data.data_points:
                key = sm.scope.name + " " + m.name
                found[key] = found.get(key, 0) + (p.sum if hasattr(p, "bucket_counts") else p.value)
print("FOUND " + json.dumps(found))
"""


@pytest.mark.slow
def test_a_host_meter_provider_gets_the_instruments() -> None:
    with FaultyCollector() as collector:
        env = {"OTEL_EXPORTER_OTLP_ENDPOINT": collector.endpoint}
        with spawn(HOST, env) as child:
            found = child.expect("FOUND", timeout=60)
            assert child.wait(60) == 0, child.stderr
        # The host's provider is used instead of tcc's own: nothing reaches the collector's /v1/metrics.
        assert collector.metrics == []
    assert found["contextcompany gen_ai.client.token.usage"] == 3 * 110
    assert found["contextcompany tcc.client.cost.usd"] > 0
    assert "contextcompany gen_ai.client.operation.duration" in found


NONE = """
import contextcompany as tcc
for _ in range(5):
    r = tcc.run()
    r.prompt("q")
    r.step().prompt("p").response("a").model("gpt-4o").tokens(100, 0, 10).end()
    r.response("a").end()
assert tcc.flush(10_000)
print("DONE {}")
"""


@pytest.mark.slow
def test_metrics_exporter_none_exports_nothing_and_raises_nothing() -> None:
    with FaultyCollector() as collector:
        env = {"OTEL_EXPORTER_OTLP_ENDPOINT": collector.endpoint, "OTEL_METRICS_EXPORTER": "none"}
        with spawn(NONE, env) as child:
            child.expect("DONE", timeout=60)
            assert child.wait(60) == 0, child.stderr
        paths = {r.path for r in collector.all_requests}
        spans = collector.spans
    assert child.stderr == ""
    assert paths == {"/v1/traces"}  # no metrics request at all
    assert len(spans) == 10  # the spans still go
