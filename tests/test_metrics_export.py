"""tcc's own MeterProvider over the real OTLP/HTTP metrics exporter, against a collector on loopback."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
from opentelemetry.sdk.metrics import MeterProvider

from contextcompany import _meter, _metrics
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
    plan = _metrics.Plan(
        endpoint=collector.endpoint + "/v1/metrics",
        headers={"x-test": "1"},
        interval_millis=interval_millis,
        temporality=temporality or "cumulative",
    )
    provider = _meter.own_provider(plan)
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
        assert collector.all_requests[-1].headers["x-test"] == "1"
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
        collector.wait_for_requests(
            lambda rs: any(r.metrics for r in rs if r.status == 200), timeout=10, path="/v1/metrics"
        )
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


def test_the_process_metrics_follow_the_plan(
    collector: FaultyCollector, caplog: pytest.LogCaptureFixture
) -> None:
    from opentelemetry.sdk.metrics.export import InMemoryMetricReader

    # The service's provider first.
    reader = InMemoryMetricReader()
    host = MeterProvider(metric_readers=[reader], shutdown_on_exit=False)
    metrics = _metrics.Metrics()
    metrics.planner = lambda: _metrics.Plan(host=host, version="3.0.0")
    recorder = metrics.recorder()
    assert recorder is not None and metrics.recorder() is recorder
    recorder.record(_chat(0.5), 0, SECOND)
    assert metrics.flush(5_000)
    data = reader.get_metrics_data()
    assert data is not None
    assert {sm.scope.version for rm in data.resource_metrics for sm in rm.scope_metrics} == {"3.0.0"}
    metrics.shutdown(1_000)  # the service's provider is flushed, never shut down
    recorder.record(_chat(0.5), 0, SECOND)
    assert reader.get_metrics_data() is not None
    host.shutdown()

    # Off: no recorder, nothing raised, flush and shutdown have nothing to do.
    off = _metrics.Metrics()
    off.planner = lambda: _metrics.Plan(enabled=False)
    assert off.recorder() is None and off.flush(1_000)
    off.shutdown(1_000)

    # An API key that would go over plain http: refused, said once.
    refused = _metrics.Metrics()
    refused.planner = lambda: _metrics.Plan(refused="an API key would be sent over plain http")
    with caplog.at_level("WARNING", logger="contextcompany"):
        assert refused.recorder() is None
    assert "not sending metrics" in caplog.text

    # tcc's own, over OTLP/HTTP to the collector.
    own = _metrics.Metrics()
    own.planner = lambda: _metrics.Plan(
        endpoint=collector.endpoint + "/v1/metrics",
        headers={"authorization": "Bearer k"},
        own=_meter.own_provider,
    )
    recorder = own.recorder()
    assert recorder is not None
    recorder.record(_chat(0.25), 0, SECOND)
    assert own.flush(10_000)
    assert sum(p.value for p in collector.metrics if p.name == "tcc.client.cost.usd") == pytest.approx(0.25)
    assert collector.all_requests[-1].headers["authorization"] == "Bearer k"
    own.shutdown(5_000)


def test_a_planner_that_raises_costs_nothing_but_metrics(caplog: pytest.LogCaptureFixture) -> None:
    def broken() -> _metrics.Plan:
        raise RuntimeError("boom")

    metrics = _metrics.Metrics()
    metrics.planner = broken
    assert metrics.recorder() is None
    assert metrics.recorder() is None  # not retried
