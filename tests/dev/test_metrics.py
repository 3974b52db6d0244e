"""MetricTotals behind the receiver's /v1/metrics: the real metrics SDK and OTLP exporter, decoded."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter
from opentelemetry.sdk.metrics import Counter, Histogram, MeterProvider
from opentelemetry.sdk.metrics.export import (
    AggregationTemporality,
    InMemoryMetricReader,
    PeriodicExportingMetricReader,
)
from opentelemetry.semconv._incubating.attributes.gen_ai_attributes import GEN_AI_TOKEN_TYPE
from opentelemetry.semconv._incubating.metrics.gen_ai_metrics import GEN_AI_CLIENT_TOKEN_USAGE

from contextcompany import _semconv as sc
from contextcompany.dev import MetricTotals, OTLPReceiver


@pytest.fixture
def receiver() -> Iterator[tuple[OTLPReceiver, MetricTotals]]:
    totals = MetricTotals()
    with OTLPReceiver(port=0, on_metrics=totals) as rx:
        yield rx, totals


def record(provider: MeterProvider) -> None:
    meter = provider.get_meter("test")
    tokens = meter.create_histogram(GEN_AI_CLIENT_TOKEN_USAGE, unit="{token}")
    cost = meter.create_counter("tcc.cost", unit="USD")
    other = meter.create_counter("http.requests")
    for model, n_in, n_out, usd in (
        ("gpt-4o", 1000, 20, 0.0027),
        ("gpt-4o", 500, 10, 0.0013),
        ("mini", 300, 5, 0.0001),
    ):
        tokens.record(n_in, {GEN_AI_TOKEN_TYPE: "input", sc.REQUEST_MODEL: model})
        tokens.record(n_out, {GEN_AI_TOKEN_TYPE: "output", sc.REQUEST_MODEL: model})
        cost.add(usd, {sc.REQUEST_MODEL: model})
        other.add(1)


@pytest.mark.parametrize("temporality", ["cumulative", "delta"])
def test_totals_by_model(receiver: tuple[OTLPReceiver, MetricTotals], temporality: str) -> None:
    rx, totals = receiver
    preferred = (
        {Counter: AggregationTemporality.DELTA, Histogram: AggregationTemporality.DELTA}
        if temporality == "delta"
        else None
    )
    exporter = OTLPMetricExporter(
        endpoint=rx.endpoint + "/v1/metrics", preferred_temporality=preferred, timeout=5
    )
    reader = PeriodicExportingMetricReader(exporter, export_interval_millis=3_600_000)
    provider = MeterProvider(metric_readers=[reader], shutdown_on_exit=False)
    # Cumulative: two exports repeat the same totals, which must not count twice. Delta: two exports
    # each carry what was recorded since the one before, which add up.
    rounds = 2 if temporality == "delta" else 1
    for _ in range(rounds):
        record(provider)
        reader.force_flush()
    reader.force_flush()
    provider.shutdown()
    assert totals.requests >= 2
    models = totals.by_model()
    assert list(models) == ["gpt-4o", "mini"]
    assert models["gpt-4o"].tokens == {"input": 1500 * rounds, "output": 30 * rounds}
    assert models["gpt-4o"].cost == pytest.approx(0.004 * rounds)
    assert models["mini"].tokens == {"input": 300 * rounds, "output": 5 * rounds}
    assert totals.lines() == [
        f"gpt-4o: {1500 * rounds:,} input · {30 * rounds} output tokens · ${0.004 * rounds:.6f}",
        f"mini: {300 * rounds} input · {5 * rounds} output tokens · ${0.0001 * rounds:.6f}",
    ]
    assert [(r.path, r.status) for r in rx.requests][:2] == [("/v1/metrics", 200), ("/v1/metrics", 200)]


def test_without_on_metrics_the_path_is_not_found() -> None:
    with OTLPReceiver(port=0) as rx:
        exporter = OTLPMetricExporter(endpoint=rx.endpoint + "/v1/metrics", timeout=5)
        reader = InMemoryMetricReader()
        provider = MeterProvider(metric_readers=[reader], shutdown_on_exit=False)
        record(provider)
        data = reader.get_metrics_data()
        assert data is not None
        exporter.export(data)
        provider.shutdown()
        assert [(r.path, r.status) for r in rx.requests] == [("/v1/metrics", 404)]


def test_a_bad_metrics_body_is_refused(receiver: tuple[OTLPReceiver, MetricTotals]) -> None:
    import urllib.error
    import urllib.request

    rx, totals = receiver
    request = urllib.request.Request(
        rx.endpoint + "/v1/metrics",
        data=b"\xff\x00garbage",
        headers={"Content-Type": "application/x-protobuf"},
    )
    with pytest.raises(urllib.error.HTTPError) as info:
        urllib.request.urlopen(request, timeout=5)
    assert info.value.code == 400
    info.value.close()
    assert totals.requests == 0 and totals.lines() == []
