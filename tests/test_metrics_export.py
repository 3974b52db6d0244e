"""tcc's own MeterProvider over the real OTLP/HTTP metrics exporter, against a collector on loopback."""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator

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


def test_the_export_worker_records_under_no_span_so_trace_based_keeps_no_exemplar() -> None:
    """Why tcc's own provider uses no exemplar filter (``_meter.exemplar_filter``): recorded on the export
    worker, even for records made under a sampled span, no measurement sees a span, so the SDK's default
    filter (``trace_based``) never keeps an exemplar there; ``always_off`` exports the same data cheaper.
    The same recorder, used under a sampled span on the caller's thread, would keep exemplars."""
    from opentelemetry.sdk.metrics.export import HistogramDataPoint, InMemoryMetricReader
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    import contextcompany as tcc
    from contextcompany import _pipeline
    from contextcompany._export import SpanProcessor

    def exemplars(reader: InMemoryMetricReader) -> tuple[int, int]:
        data = reader.get_metrics_data()
        assert data is not None
        points = [
            p
            for rm in data.resource_metrics
            for sm in rm.scope_metrics
            for m in sm.metrics
            for p in m.data.data_points
            if isinstance(p, HistogramDataPoint)
        ]
        return sum(p.count for p in points), sum(len(p.exemplars or ()) for p in points)

    reader = InMemoryMetricReader()
    meters = MeterProvider(metric_readers=[reader], shutdown_on_exit=False)  # the SDK's default filter
    recorder = _metrics.recorder_for(meters, "test")
    processor = SpanProcessor(
        InMemorySpanExporter(), schedule_delay_millis=50, metrics=_metrics.MetricsStage(lambda: recorder)
    )
    traces = TracerProvider(shutdown_on_exit=False)
    traces.add_span_processor(processor)
    previous = _pipeline.install(
        _pipeline.Pipeline(tracer=traces.get_tracer("contextcompany"), provider=traces, processor=processor)
    )
    try:
        with traces.get_tracer("service").start_as_current_span("request"), tcc.run(name="agent") as run:
            run.prompt("q")
            run.step().prompt("p").response("a").model("gpt-4o").tokens(100, 0, 10).end()
            run.response("a")
        assert processor.force_flush(10_000)
        recorded, kept = exemplars(reader)
        assert recorded >= 4  # the run's duration, the step's duration and its two token points
        assert kept == 0
        # The premise holds: on a thread under a sampled span, the same filter keeps exemplars.
        with traces.get_tracer("service").start_as_current_span("request"):
            recorder.record(_chat(0.25), 0, SECOND)
        assert exemplars(reader)[1] > 0
    finally:
        _pipeline.install(previous)
        traces.shutdown()
        meters.shutdown()


def test_own_provider_keeps_no_exemplars_unless_the_variable_asks(monkeypatch: pytest.MonkeyPatch) -> None:
    from opentelemetry.sdk.metrics import AlwaysOffExemplarFilter, AlwaysOnExemplarFilter

    plan = _metrics.Plan(endpoint="http://127.0.0.1:9/v1/metrics")
    for setting, expected in [
        (None, AlwaysOffExemplarFilter),
        ("trace_based", AlwaysOffExemplarFilter),
        ("always_on", AlwaysOnExemplarFilter),
        ("always_off", AlwaysOffExemplarFilter),
    ]:
        if setting is None:
            monkeypatch.delenv("OTEL_METRICS_EXEMPLAR_FILTER", raising=False)
        else:
            monkeypatch.setenv("OTEL_METRICS_EXEMPLAR_FILTER", setting)
        provider = _meter.own_provider(plan)
        try:
            assert type(provider._sdk_config.exemplar_filter) is expected, setting
        finally:
            provider.shutdown(timeout_millis=1_000)


def _in_child(check: Callable[[], bool]) -> int:
    """Fork, run ``check`` in the child, return the child's exit status (0: it held)."""
    pid = os.fork()
    if pid == 0:
        code = 1
        try:
            code = 0 if check() else 3
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status)


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork()")
def test_after_fork_a_child_makes_its_own_provider_and_keeps_the_services() -> None:
    """tcc's own provider holds the parent's histograms: a child forgets it and makes its own at its next
    record, so what it reports is its own. A service's provider is the service's: the child keeps it."""
    from opentelemetry.sdk.metrics.export import InMemoryMetricReader

    readers: list[InMemoryMetricReader] = []

    def in_memory(plan: _metrics.Plan) -> MeterProvider:
        readers.append(InMemoryMetricReader())
        return MeterProvider(metric_readers=[readers[-1]], shutdown_on_exit=False)

    def duration_count(reader: InMemoryMetricReader) -> int:
        data = reader.get_metrics_data()
        return sum(
            p.count
            for rm in (data.resource_metrics if data is not None else ())
            for sm in rm.scope_metrics
            for m in sm.metrics
            if m.name == "gen_ai.client.operation.duration"
            for p in m.data.data_points
        )

    own = _metrics.Metrics()
    own.planner = lambda: _metrics.Plan(own=in_memory)
    stage = _metrics.MetricsStage(own.recorder)
    parent = stage.recorder()
    assert parent is not None
    for _ in range(3):
        parent.record(_chat(0.25), 0, SECOND)

    def child_reports_its_own() -> bool:
        recorder = stage.recorder()
        assert recorder is not None and recorder is not parent and len(readers) == 2
        recorder.record(_chat(0.25), 0, SECOND)
        return duration_count(readers[1]) == 1

    assert _in_child(child_reports_its_own) == 0
    assert duration_count(readers[0]) == 3 and len(readers) == 1  # the parent's, untouched

    reader = InMemoryMetricReader()
    host = MeterProvider(metric_readers=[reader], shutdown_on_exit=False)
    service = _metrics.Metrics()
    service.planner = lambda: _metrics.Plan(host=host)
    recorder = service.recorder()
    assert _in_child(lambda: service.recorder() is recorder and service._host is host) == 0
    own.shutdown(1_000)
    host.shutdown()
