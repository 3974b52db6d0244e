"""tcc's own MeterProvider over the real OTLP/HTTP metrics exporter, against a collector on loopback."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
from opentelemetry.sdk.metrics import MeterProvider

from contextcompany import _metrics
from contextcompany import _semconv as sc
from tests.reliability.collector import FaultyCollector

SECOND = 1_000_000_000


@pytest.fixture
def collector() -> Iterator[FaultyCollector]:
    with FaultyCollector() as c:
        yield c


def _own(
    collector: FaultyCollector, interval_millis: float = 60_000, temporality: str | None = None
) -> tuple[MeterProvider, _metrics.Recorder]:
    endpoint = _metrics.metrics_endpoint(None, collector.endpoint)
    exporter = _metrics.LazyExporter(
        lambda: _metrics.otlp_exporter(endpoint, {"x-test": "1"}), _metrics.temporality_from_env(temporality)
    )
    provider = _metrics.own_provider(exporter, interval_millis=interval_millis)
    return provider, _metrics.recorder_for(provider, "test")


def _chat(cost: float) -> dict[str, object]:
    return {
        sc.OPERATION_NAME: sc.OP_CHAT,
        sc.REQUEST_MODEL: "gpt-4o",
        sc.USAGE_INPUT_TOKENS: 100,
        sc.USAGE_OUTPUT_TOKENS: 20,
        sc.COST_USD: cost,
        sc.COST_SOURCE: sc.COST_SOURCE_COMPUTED,
    }


def test_own_provider_exports_the_instruments_over_otlp(collector: FaultyCollector) -> None:
    provider, recorder = _own(collector)
    try:
        for _ in range(3):
            recorder.record(_chat(0.25), 0, SECOND)
        assert provider.force_flush(10_000)
        points = collector.metrics
        assert {p.scope for p in points} == {"contextcompany"}
        cost = [p for p in points if p.name == "tcc.client.cost.usd"]
        assert sum(p.value for p in cost) == pytest.approx(0.75)
        assert all(p.temporality == 2 for p in cost)  # cumulative unless the preference says otherwise
        tokens = [p for p in points if p.name == "gen_ai.client.token.usage"]
        assert {p.attributes[sc.TOKEN_TYPE]: (p.value, p.count) for p in tokens} == {
            "input": (300, 3),
            "output": (60, 3),
        }
        assert collector.requests[-1].headers["x-test"] == "1"
    finally:
        provider.shutdown(timeout_millis=5_000)


def test_delta_temporality_preference(collector: FaultyCollector) -> None:
    provider, recorder = _own(collector, temporality="delta")
    try:
        recorder.record(_chat(0.5), 0, SECOND)
        assert provider.force_flush(10_000)
        recorder.record(_chat(0.5), 0, SECOND)
        assert provider.force_flush(10_000)
        cost = [p for p in collector.metrics if p.name == "tcc.client.cost.usd"]
        assert [p.value for p in cost] == [0.5, 0.5]  # each export carries only what is new
        assert all(p.temporality == 1 for p in cost)
    finally:
        provider.shutdown(timeout_millis=5_000)


def test_periodic_export_runs_on_its_own(collector: FaultyCollector) -> None:
    provider, recorder = _own(collector, interval_millis=100)
    try:
        recorder.record(_chat(1.0), 0, SECOND)
        collector.wait_for_requests(lambda rs: any(r.metrics for r in rs if r.status == 200), timeout=10)
    finally:
        provider.shutdown(timeout_millis=5_000)


@pytest.mark.parametrize("fault", ["hang", "refuse", "503"])
def test_shutdown_is_bounded_whatever_the_collector_does(collector: FaultyCollector, fault: str) -> None:
    provider, recorder = _own(collector, interval_millis=50)
    if fault == "hang":
        collector.hang()
    elif fault == "refuse":
        collector.refuse()
    else:
        collector.status(503)
    for _ in range(100):
        recorder.record(_chat(0.01), 0, SECOND)  # recording never touches the network
    time.sleep(0.2)  # let the reader's thread start an export into the fault
    started = time.perf_counter()
    provider.shutdown(timeout_millis=1_000)
    assert time.perf_counter() - started < 3.0  # the 1 s bound, and some slack for a busy machine
