"""The metrics recorder: what one ended span records, and what can never become a metric attribute."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterator, Mapping
from typing import Any

import pytest
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import (
    AggregationTemporality,
    HistogramDataPoint,
    InMemoryMetricReader,
    NumberDataPoint,
)

from contextcompany import _metrics
from contextcompany import _semconv as sc
from contextcompany._metrics import Recorder

SECOND = 1_000_000_000


class Readings:
    """The data points an in-memory reader collected, by metric name."""

    def __init__(self, reader: InMemoryMetricReader) -> None:
        self.points: dict[str, list[Any]] = {}
        self.units: dict[str, str] = {}
        data = reader.get_metrics_data()
        for resource_metrics in data.resource_metrics if data is not None else ():
            for scope_metrics in resource_metrics.scope_metrics:
                assert scope_metrics.scope.name == "contextcompany"
                for metric in scope_metrics.metrics:
                    self.points.setdefault(metric.name, []).extend(metric.data.data_points)
                    self.units[metric.name] = metric.unit or ""

    def where(self, name: str, **attributes: object) -> list[Any]:
        wanted = {key.replace("__", "."): value for key, value in attributes.items()}
        return [
            p
            for p in self.points.get(name, [])
            if all(p.attributes.get(key) == value for key, value in wanted.items())
        ]

    def total(self, name: str, **attributes: object) -> float:
        return sum(
            p.sum if isinstance(p, HistogramDataPoint) else p.value for p in self.where(name, **attributes)
        )

    def count(self, name: str, **attributes: object) -> int:
        return sum(p.count for p in self.where(name, **attributes))


@pytest.fixture
def meter() -> Iterator[tuple[Recorder, InMemoryMetricReader]]:
    reader = InMemoryMetricReader()
    provider = MeterProvider(metric_readers=[reader], shutdown_on_exit=False)
    yield _metrics.recorder_for(provider, "test"), reader
    provider.shutdown()


def chat(**extra: Any) -> dict[str, Any]:
    attributes: dict[str, Any] = {
        sc.OPERATION_NAME: sc.OP_CHAT,
        sc.PROVIDER_NAME: "anthropic",
        sc.REQUEST_MODEL: "claude-sonnet-4-5",
        sc.RESPONSE_MODEL: "claude-sonnet-4-5-20250929",
        sc.USAGE_INPUT_TOKENS: 5000,
        sc.USAGE_CACHE_READ_INPUT_TOKENS: 4000,
        sc.USAGE_CACHE_WRITE_INPUT_TOKENS: 100,
        sc.USAGE_OUTPUT_TOKENS: 350,
        sc.USAGE_REASONING_OUTPUT_TOKENS: 200,
        sc.COST_USD: 0.0123,
        sc.COST_SOURCE: sc.COST_SOURCE_COMPUTED,
    }
    attributes.update(extra)
    return attributes


def test_a_chat_span_records_tokens_by_type_duration_and_cost(
    meter: tuple[Recorder, InMemoryMetricReader],
) -> None:
    recorder, reader = meter
    recorder.record(chat(), 10 * SECOND, 11 * SECOND + SECOND // 2)
    got = Readings(reader)

    # The convention's histogram: one point per call and type; input counts the cached tokens too.
    assert got.count("gen_ai.client.token.usage", gen_ai__token__type="input") == 1
    assert got.total("gen_ai.client.token.usage", gen_ai__token__type="input") == 5000
    assert got.total("gen_ai.client.token.usage", gen_ai__token__type="output") == 350
    assert got.units["gen_ai.client.token.usage"] == "{token}"
    # The parts split the same totals without counting a token twice.
    parts = "tcc.client.token.parts"
    assert got.total(parts, gen_ai__token__type="input") == 5000
    assert got.total(parts, tcc__token__part="uncached") == 900
    assert got.total(parts, tcc__token__part="cache_read") == 4000
    assert got.total(parts, tcc__token__part="cache_write") == 100
    assert got.total(parts, gen_ai__token__type="output") == 350
    assert got.total(parts, tcc__token__part="reasoning") == 200
    assert got.total(parts, tcc__token__part="response") == 150
    assert got.total(parts) == 5350
    # Duration in seconds, with the convention's bucket advice.
    (duration,) = got.where("gen_ai.client.operation.duration")
    assert duration.sum == pytest.approx(1.5)
    assert tuple(duration.explicit_bounds) == _metrics.SECONDS_BUCKETS
    assert got.units["gen_ai.client.operation.duration"] == "s"
    (tokens,) = got.where("gen_ai.client.token.usage", gen_ai__token__type="input")
    assert tuple(tokens.explicit_bounds) == _metrics.TOKEN_BUCKETS
    # The cost counter, in USD, with where the price came from.
    assert got.total("tcc.client.cost.usd", tcc__cost__source="computed") == pytest.approx(0.0123)
    assert got.units["tcc.client.cost.usd"] == "{USD}"
    assert duration.attributes == {
        sc.OPERATION_NAME: "chat",
        sc.PROVIDER_NAME: "anthropic",
        sc.REQUEST_MODEL: "claude-sonnet-4-5",
        sc.RESPONSE_MODEL: "claude-sonnet-4-5-20250929",
        sc.METRIC_ORIGIN: sc.ORIGIN_TCC,
    }
    # No time to first chunk on a span that did not record one.
    assert "gen_ai.client.operation.time_to_first_chunk" not in got.points


def test_costs_and_tokens_add_up_over_many_calls(meter: tuple[Recorder, InMemoryMetricReader]) -> None:
    recorder, reader = meter
    costs = [0.001 * n for n in range(1, 101)]
    for n, cost in enumerate(costs, 1):
        recorder.record(chat(**{sc.USAGE_INPUT_TOKENS: 5000 + n, sc.COST_USD: cost}), 0, SECOND)
    got = Readings(reader)
    assert got.total("tcc.client.cost.usd") == pytest.approx(sum(costs), rel=1e-12)
    assert got.total("gen_ai.client.token.usage", gen_ai__token__type="input") == sum(
        5000 + n for n in range(1, 101)
    )
    assert got.count("gen_ai.client.operation.duration") == 100


def test_time_to_first_chunk_where_a_span_carries_it(meter: tuple[Recorder, InMemoryMetricReader]) -> None:
    recorder, reader = meter
    recorder.record(chat(**{sc.RESPONSE_TIME_TO_FIRST_CHUNK: 0.25}), 0, SECOND)
    recorder.record(chat(**{sc.RESPONSE_TIME_TO_FIRST_CHUNK: float("nan")}), 0, SECOND)
    recorder.record(chat(**{sc.RESPONSE_TIME_TO_FIRST_CHUNK: "0.5"}), 0, SECOND)
    (point,) = Readings(reader).where("gen_ai.client.operation.time_to_first_chunk")
    assert point.count == 1 and point.sum == pytest.approx(0.25)
    assert tuple(point.explicit_bounds) == _metrics.SECONDS_BUCKETS


def test_duration_per_operation_and_error_type(meter: tuple[Recorder, InMemoryMetricReader]) -> None:
    recorder, reader = meter
    recorder.record({sc.OPERATION_NAME: sc.OP_INVOKE_AGENT, sc.AGENT_NAME: "support"}, 0, 3 * SECOND)
    recorder.record(
        {sc.OPERATION_NAME: sc.OP_EXECUTE_TOOL, sc.TOOL_NAME: "search", sc.ERROR_TYPE: "TimeoutError"},
        0,
        2 * SECOND,
        failed=True,
    )
    recorder.record({sc.OPERATION_NAME: sc.OP_EXECUTE_TOOL}, 0, SECOND, failed=True)
    recorder.record(
        {sc.OPERATION_NAME: sc.OP_CHAT, sc.REQUEST_MODEL: "gpt-4o"}, 0, SECOND, own=False, agent="support"
    )
    got = Readings(reader)
    name = "gen_ai.client.operation.duration"
    assert got.total(name, gen_ai__operation__name="invoke_agent", gen_ai__agent__name="support") == 3
    assert got.total(name, gen_ai__operation__name="execute_tool", error__type="TimeoutError") == 2
    assert got.total(name, gen_ai__operation__name="execute_tool", error__type="_OTHER") == 1
    (other,) = got.where(name, gen_ai__operation__name="chat")
    assert other.attributes[sc.METRIC_ORIGIN] == sc.ORIGIN_OTHER
    assert other.attributes[sc.AGENT_NAME] == "support"  # the agent of the run a step belongs to
    # A tool call or a run without usage records no tokens and no cost.
    assert "gen_ai.client.token.usage" not in got.points
    assert "tcc.client.cost.usd" not in got.points


def test_spans_that_are_not_genai_record_nothing(meter: tuple[Recorder, InMemoryMetricReader]) -> None:
    recorder, reader = meter
    recorder.record({"http.request.method": "GET", "url.full": "https://example.com"}, 0, SECOND)
    recorder.record({}, 0, SECOND, failed=True)
    assert Readings(reader).points == {}


def test_an_llm_span_without_an_operation_name_still_counts(
    meter: tuple[Recorder, InMemoryMetricReader],
) -> None:
    recorder, reader = meter
    recorder.record({sc.SYSTEM: "openai", sc.USAGE_INPUT_TOKENS: 10, sc.USAGE_OUTPUT_TOKENS: 3}, 0, SECOND)
    got = Readings(reader)
    assert got.total("gen_ai.client.token.usage", gen_ai__provider__name="openai") == 13
    # No cost known, no cost point; no cached or reasoning tokens, no such part.
    assert "tcc.client.cost.usd" not in got.points
    assert {p.attributes[sc.TOKEN_PART] for p in got.where("tcc.client.token.parts")} == {
        "uncached",
        "response",
    }


def test_parts_larger_than_their_total_are_not_split(meter: tuple[Recorder, InMemoryMetricReader]) -> None:
    recorder, reader = meter
    recorder.record(
        chat(
            **{
                sc.USAGE_INPUT_TOKENS: 100,
                sc.USAGE_CACHE_READ_INPUT_TOKENS: 400,
                sc.USAGE_REASONING_OUTPUT_TOKENS: 999,
            }
        ),
        0,
        SECOND,
    )
    got = Readings(reader)
    assert got.total("tcc.client.token.parts", gen_ai__token__type="input") == 100
    assert got.total("tcc.client.token.parts", gen_ai__token__type="output") == 350
    assert {p.attributes[sc.TOKEN_PART] for p in got.where("tcc.client.token.parts")} == {"unknown"}


def test_unpriced_calls_carry_their_cost_source_and_add_no_cost(
    meter: tuple[Recorder, InMemoryMetricReader],
) -> None:
    recorder, reader = meter
    attributes = chat(**{sc.COST_SOURCE: sc.COST_SOURCE_NO_PRICE})
    del attributes[sc.COST_USD]
    recorder.record(attributes, 0, SECOND)
    recorder.record(chat(**{sc.COST_USD: True, sc.COST_SOURCE: "made-up"}), 0, SECOND)
    got = Readings(reader)
    assert (
        got.count("gen_ai.client.token.usage", gen_ai__token__type="input", tcc__cost__source="no_price") == 1
    )
    assert "tcc.client.cost.usd" not in got.points
    # A cost source that is none of tcc's values is not a dimension.
    assert all(p.attributes.get(sc.COST_SOURCE) != "made-up" for p in got.where("gen_ai.client.token.usage"))


def _all_attribute_values(reader: InMemoryMetricReader) -> list[tuple[str, Mapping[str, Any]]]:
    got = Readings(reader)
    return [(name, point.attributes) for name, points in got.points.items() for point in points]


def test_no_id_or_content_can_become_a_metric_attribute(meter: tuple[Recorder, InMemoryMetricReader]) -> None:
    """Spans whose every attribute holds a unique marker: ids and content never reach a data point; the
    dimensions a service names itself (model, agent, provider, operation, error type) keep at most
    ``_MAX_VALUES`` distinct values each, and a value too long to be a name never appears at all."""
    recorder, reader = meter
    dimension_keys = {*_metrics.DIMENSIONS, sc.SYSTEM, sc.ERROR_TYPE}
    spans = 3 * _metrics._MAX_VALUES
    leaked_markers: set[str] = set()
    bounded_markers: dict[str, set[str]] = {key: set() for key in dimension_keys}
    long_markers: set[str] = set()
    for n in range(spans):
        attributes: dict[str, Any] = {}
        # Every key tcc writes or reads, every metadata key, and keys no convention knows.
        keys = [key + "customer" if key.endswith(".") else key for key in sc.ATTRIBUTES]
        keys += ["session.id", "user.id", "enduser.id", "gen_ai.agent.id", "gen_ai.response.id", "foo.bar"]
        for key in keys:
            marker = f"m{uuid.uuid4().hex}"
            if key in dimension_keys:
                if n % 10 == 0:  # now and then a long text where a name belongs
                    marker = marker + " " + "the user said something private " * 8
                    long_markers.add(marker)
                else:
                    bounded_markers[key].add(marker)
            else:
                leaked_markers.add(marker)
            attributes[key] = marker
        # Token counts stay numbers, so every instrument records and carries its attributes.
        attributes.update({sc.USAGE_INPUT_TOKENS: 10 + n, sc.USAGE_OUTPUT_TOKENS: 5, sc.COST_USD: 0.5})
        recorder.record(
            attributes, 0, SECOND, failed=n % 2 == 0, own=n % 3 == 0, agent=f"a{uuid.uuid4().hex}"
        )

    points = _all_attribute_values(reader)
    assert {name for name, _ in points} >= {
        "gen_ai.client.token.usage",
        "gen_ai.client.operation.duration",
        "tcc.client.token.parts",
        "tcc.client.cost.usd",
    }
    seen_per_key: dict[str, set[str]] = {}
    for _, attributes in points:
        for key, value in attributes.items():
            text = str(value)
            assert text not in leaked_markers, f"{key} carries an id or content from the span"
            assert text not in long_markers, f"{key} carries a text too long to be a name"
            assert len(text) <= 128
            seen_per_key.setdefault(key, set()).add(text)
    allowed = {
        *_metrics.DIMENSIONS,
        sc.ERROR_TYPE,
        sc.TOKEN_TYPE,
        sc.TOKEN_PART,
        sc.METRIC_ORIGIN,
        sc.COST_SOURCE,
    }
    assert set(seen_per_key) <= allowed
    for key, values in seen_per_key.items():
        assert len(values) <= _metrics._MAX_VALUES + 1, f"{key} has {len(values)} distinct values"
    # The bound is what held the markers back: each dimension filled up, then read _OTHER.
    assert _metrics.OTHER in seen_per_key[sc.REQUEST_MODEL]


def test_metrics_exporter_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    from contextcompany import _settings

    for raw, enabled in [(None, True), ("", True), ("otlp", True), ("none", False), (" None ", False)]:
        if raw is None:
            monkeypatch.delenv("OTEL_METRICS_EXPORTER", raising=False)
        else:
            monkeypatch.setenv("OTEL_METRICS_EXPORTER", raw)
        assert _settings.METRICS_EXPORTER.get() is enabled, raw


def test_an_exporter_tcc_does_not_build_is_said_once(caplog: pytest.LogCaptureFixture) -> None:
    from contextcompany import _settings

    with caplog.at_level(logging.WARNING, logger="contextcompany"):
        assert not _settings._metrics_exporter("prometheus")
        assert _settings._metrics_exporter("console,otlp")
    assert "OTLP only" in caplog.text


def test_metrics_endpoint(monkeypatch: pytest.MonkeyPatch) -> None:
    from contextcompany._settings import Config

    for name in ("OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_METRICS_ENDPOINT"):
        monkeypatch.delenv(name, raising=False)
    assert Config().metrics_url() == "http://localhost:4318/v1/metrics"
    assert (
        Config(endpoint="https://c.example.com/v1/traces").metrics_url() == "https://c.example.com/v1/metrics"
    )
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "https://c.example.com:4318/")
    assert Config().metrics_url() == "https://c.example.com:4318/v1/metrics"
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_METRICS_ENDPOINT", "https://m.example.com/custom")
    assert Config().metrics_url() == "https://m.example.com/custom"


def test_export_interval_setting(monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    from contextcompany import _settings

    monkeypatch.delenv("OTEL_METRIC_EXPORT_INTERVAL", raising=False)
    assert _settings.METRIC_EXPORT_INTERVAL.get() == 60_000
    monkeypatch.setenv("OTEL_METRIC_EXPORT_INTERVAL", "250")
    assert _settings.METRIC_EXPORT_INTERVAL.get() == 250
    monkeypatch.setenv("OTEL_METRIC_EXPORT_INTERVAL", "-5")
    with caplog.at_level(logging.WARNING, logger="contextcompany"):
        assert _settings.METRIC_EXPORT_INTERVAL.get() == 60_000
    assert "OTEL_METRIC_EXPORT_INTERVAL" in caplog.text


def test_temporality_preference(monkeypatch: pytest.MonkeyPatch) -> None:
    from opentelemetry.sdk.metrics import Counter, Histogram, UpDownCounter

    from contextcompany import _meter, _settings

    cumulative = _meter.temporality("cumulative")
    assert cumulative[Counter] is AggregationTemporality.CUMULATIVE
    delta = _meter.temporality("delta")
    assert delta[Counter] is delta[Histogram] is AggregationTemporality.DELTA
    assert delta[UpDownCounter] is AggregationTemporality.CUMULATIVE
    assert _meter.temporality("lowmemory")[Histogram] is AggregationTemporality.DELTA
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE", "DELTA")
    assert _settings.METRICS_TEMPORALITY.get() == "delta"
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE", "weekly")
    assert _settings.METRICS_TEMPORALITY.get() == "cumulative"


def test_a_host_meter_provider_is_found_only_once_set() -> None:
    explicit = MeterProvider(shutdown_on_exit=False)
    assert _metrics.host_provider(explicit) is explicit
    assert _metrics.host_provider(None) is None  # the API's proxy: nothing set in this test process


def test_number_points_are_ints_for_tokens(meter: tuple[Recorder, InMemoryMetricReader]) -> None:
    recorder, reader = meter
    recorder.record(chat(), 0, SECOND)
    for point in Readings(reader).where("tcc.client.token.parts"):
        assert isinstance(point, NumberDataPoint) and type(point.value) is int


def test_a_series_is_made_once_and_their_number_stays_bounded(
    meter: tuple[Recorder, InMemoryMetricReader], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The attributes and sum keys of a set of dimension values are made once and reused; past
    ``_MAX_SERIES`` sets, a span still records exactly, through a series that is not kept."""
    recorder, reader = meter
    monkeypatch.setattr(_metrics, "_MAX_SERIES", 5)
    for _ in range(3):
        recorder.record(chat(), 0, SECOND)
    assert len(recorder._series) == 1  # one set of dimension values, one series
    models = [f"model-{n}" for n in range(20)]
    for model in models:
        for _ in range(2):
            recorder.record(chat(**{sc.REQUEST_MODEL: model, sc.COST_USD: 0.5}), 0, SECOND)
    assert len(recorder._series) == 5
    got = Readings(reader)
    for model in models:  # the spans past the bound counted like the others
        assert got.count("gen_ai.client.operation.duration", gen_ai__request__model=model) == 2
        assert got.count("gen_ai.client.token.usage", gen_ai__request__model=model) == 4
        assert got.total("tcc.client.cost.usd", gen_ai__request__model=model) == 1.0
        assert got.total("tcc.client.token.parts", gen_ai__request__model=model) == 2 * 5350
    # A value past the dimension's bound shares its series with every other such value: _OTHER.
    monkeypatch.setattr(_metrics, "_MAX_SERIES", 2000)
    for n in range(3 * _metrics._MAX_VALUES):
        recorder.record(chat(**{sc.AGENT_NAME: f"agent-{n}"}), 0, SECOND)
    assert len(recorder._series) <= 5 + _metrics._MAX_VALUES + 1
    assert Readings(reader).count("gen_ai.client.operation.duration", gen_ai__agent__name=_metrics.OTHER) == (
        2 * _metrics._MAX_VALUES
    )


# --- the stage on the export worker ----------------------------------------------------------------


def _span(
    name: str,
    attributes: dict[str, Any],
    span_id: int,
    parent: int | None,
    *,
    scope: str = "contextcompany",
    error: bool = False,
) -> Any:
    from opentelemetry.sdk.trace import ReadableSpan
    from opentelemetry.sdk.util.instrumentation import InstrumentationScope
    from opentelemetry.trace import SpanContext, Status, StatusCode, TraceFlags

    def context(sid: int) -> SpanContext:
        return SpanContext(7, sid, is_remote=False, trace_flags=TraceFlags(TraceFlags.SAMPLED))

    return ReadableSpan(
        name=name,
        context=context(span_id),
        parent=context(parent) if parent is not None else None,
        attributes=attributes,
        status=Status(StatusCode.ERROR if error else StatusCode.UNSET),
        start_time=0,
        end_time=2 * SECOND,
        instrumentation_scope=InstrumentationScope(scope),
    )


def test_the_stage_records_after_pricing_under_the_runs_agent(
    meter: tuple[Recorder, InMemoryMetricReader],
) -> None:
    from contextcompany._export._stages import Edit, Pricing, StepRule

    recorder, reader = meter
    stage = _metrics.MetricsStage(lambda: recorder)
    run = _span("invoke_agent support", {sc.OPERATION_NAME: sc.OP_INVOKE_AGENT, sc.RUN_ID: "r1"}, 1, None)
    stage.on_start(run)
    step = _span(
        "chat gpt-4o",
        {
            sc.OPERATION_NAME: sc.OP_CHAT,
            sc.STEP_ID: "s1",
            sc.REQUEST_MODEL: "gpt-4o",
            sc.RESPONSE_MODEL: "gpt-4o",
            sc.USAGE_INPUT_TOKENS: 1000,
            sc.USAGE_OUTPUT_TOKENS: 100,
            sc.OUTPUT_MESSAGES: "[]",
        },
        2,
        1,
    )
    foreign = _span(
        "chat",
        {sc.OPERATION_NAME: sc.OP_CHAT, sc.REQUEST_MODEL: "gpt-4o", sc.USAGE_INPUT_TOKENS: 5},
        3,
        1,
        scope="openai",
    )
    for span in (step, foreign, run):
        edit = Edit(span)
        for each in (StepRule(), Pricing(), stage):
            each(edit)
    got = Readings(reader)
    # The step had no prompt: the step rule failed it, and the metric says so.
    (priced,) = got.where("tcc.client.cost.usd", tcc__origin="tcc")
    assert priced.value > 0
    assert priced.attributes[sc.AGENT_NAME] == "support"
    assert priced.attributes[sc.ERROR_TYPE] == sc.ERROR_TYPE_INCOMPLETE_STEP
    assert priced.attributes[sc.COST_SOURCE] == sc.COST_SOURCE_COMPUTED
    (other,) = got.where("gen_ai.client.token.usage", tcc__origin="other")
    assert other.sum == 5 and other.attributes[sc.AGENT_NAME] == "support"
    (agent,) = got.where("gen_ai.client.operation.duration", gen_ai__operation__name="invoke_agent")
    assert agent.attributes[sc.AGENT_NAME] == "support" and agent.sum == 2
    assert stage._agents == {}  # the run ended: its name is forgotten


def test_the_stage_makes_its_recorder_once_and_records_nothing_when_off() -> None:
    from contextcompany._export._stages import Edit

    made: list[int] = []

    def off() -> Recorder | None:
        made.append(1)
        return None

    stage = _metrics.MetricsStage(off)
    for n in range(3):
        stage(Edit(_span("chat", {sc.OPERATION_NAME: "chat"}, 10 + n, None)))
    assert made == [1]
