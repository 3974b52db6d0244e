"""tcc beside the instrumentations a service already runs: each provider call counted once, priced right.

Real parts only: the ``openai`` and ``anthropic`` packages, their OpenTelemetry instrumentations, the
anthropic SDK's own spans, tcc.SpanProcessor on the service's TracerProvider exporting over OTLP/HTTP,
and a fake provider on loopback (tests/fakes/provider.py) whose answers carry cached, cache-write and
reasoning tokens. Each scenario runs in a fresh interpreter (tests/interop/app.py): instrumentations
patch the SDKs for the whole process.

Expected numbers come from the responses themselves and from genai-prices called directly, never from
tcc: a run of three provider calls must report three calls, the tokens the three responses reported,
and what genai-prices charges for them.
"""

from __future__ import annotations

from typing import Any

import pytest
from genai_prices import Usage, calc_price

from contextcompany.dev._receiver import ReceivedSpan
from tests.fakes.provider import FakeProvider
from tests.interop.conftest import Outcome, run_service

pytestmark = pytest.mark.slow

# (api, instrumentation): every combination that describes a call with more than one span, plus the
# anthropic SDK's own span alone.
SERVICES = [
    ("openai", "genai-openai"),
    ("anthropic", "none"),  # the anthropic SDK's own span only
    ("anthropic", "genai-anthropic"),  # nests the SDK's span under its own
    ("anthropic", "traceloop-anthropic"),  # its span and the SDK's side by side, same response id
]


def price(api: str, call: dict[str, Any]) -> float:
    usage = Usage(
        input_tokens=call["input"],
        cache_read_tokens=call["cache_read"],
        cache_write_tokens=call["cache_write"],
        output_tokens=call["output"],
    )
    return float(calc_price(usage, call["model"], provider_id=api).total_price)


def span_price(api: str, span: ReceivedSpan) -> float:
    """What genai-prices charges for the usage one span reports (either cache-write name)."""
    a = span.attributes
    written = a.get(
        "gen_ai.usage.cache_write.input_tokens", a.get("gen_ai.usage.cache_creation.input_tokens")
    )
    usage = Usage(
        input_tokens=a.get("gen_ai.usage.input_tokens", 0),
        cache_read_tokens=a.get("gen_ai.usage.cache_read.input_tokens", 0),
        cache_write_tokens=written or 0,
        output_tokens=a.get("gen_ai.usage.output_tokens", 0),
    )
    model = a.get("gen_ai.response.model") or a["gen_ai.request.model"]
    return float(calc_price(usage, model, provider_id=api).total_price)


@pytest.fixture(scope="module", params=[False, True], ids=["whole", "streamed"])
def stream(request: pytest.FixtureRequest) -> bool:
    return bool(request.param)


_services: dict[tuple[str, str], dict[bool, Outcome]] = {}


def outcome(fake: FakeProvider, api: str, instrumentation: str, stream: bool) -> Outcome:
    """One service process per (api, instrumentation), shared by the tests that look at its runs."""
    key = (api, instrumentation)
    if key not in _services:
        _services[key] = run_service(fake, {"api": api, "instrumentation": instrumentation})
    return _services[key][stream]


@pytest.mark.parametrize(("api", "instrumentation"), SERVICES)
def test_each_provider_call_counts_once(
    fake: FakeProvider, api: str, instrumentation: str, stream: bool
) -> None:
    got = outcome(fake, api, instrumentation, stream)
    assert got.provider_calls == 3 == len(got.calls)
    run = got.run().attributes
    totals = {k: v for k, v in run.items() if k.startswith("tcc.run.")}
    assert run["tcc.run.llm_calls"] == 3, totals
    assert run["tcc.run.unpriced_llm_calls"] == 0, totals
    assert run["tcc.run.usage.input_tokens"] == sum(c["input"] for c in got.calls)
    assert run["tcc.run.usage.cache_read.input_tokens"] == sum(c["cache_read"] for c in got.calls)
    assert run["tcc.run.usage.cache_creation.input_tokens"] == sum(c["cache_write"] for c in got.calls)
    assert run["tcc.run.usage.output_tokens"] == sum(c["output"] for c in got.calls)
    assert run["tcc.run.usage.reasoning.output_tokens"] == sum(c["reasoning"] for c in got.calls)


@pytest.mark.parametrize(("api", "instrumentation"), SERVICES)
def test_the_run_costs_what_genai_prices_charges(
    fake: FakeProvider, api: str, instrumentation: str, stream: bool
) -> None:
    got = outcome(fake, api, instrumentation, stream)
    expected = sum(price(api, c) for c in got.calls)
    assert expected > 0
    assert got.run().attributes["tcc.run.cost.usd"] == pytest.approx(expected, rel=1e-9)


@pytest.mark.parametrize(("api", "instrumentation"), SERVICES)
def test_every_usage_span_keeps_its_own_price_and_names_its_provider(
    fake: FakeProvider, api: str, instrumentation: str, stream: bool
) -> None:
    got = outcome(fake, api, instrumentation, stream)
    spans = got.usage_spans()
    assert len(spans) >= 2  # at least the SDK's or instrumentation's spans and the step with tokens
    for span in spans:
        a = span.attributes
        assert a.get("gen_ai.provider.name") == api, (span.scope_name, a)
        assert a["tcc.cost.source"] == "computed", (span.scope_name, a)
        # cache writes priced as cache writes, whichever name the span used
        assert a["tcc.cost.usd"] == pytest.approx(span_price(api, span), rel=1e-9), (span.scope_name, a)


def test_the_fake_answers_carry_every_kind_of_token(fake: FakeProvider) -> None:
    """The scenarios prove something only if the usage they price has cache reads, cache writes (Anthropic)
    and reasoning (OpenAI) in it."""
    openai_run = outcome(fake, "openai", "genai-openai", False)
    anthropic_run = outcome(fake, "anthropic", "none", False)
    assert all(c["cache_read"] > 0 and c["reasoning"] > 0 for c in openai_run.calls)
    assert all(c["cache_read"] > 0 and c["cache_write"] > 0 for c in anthropic_run.calls)
