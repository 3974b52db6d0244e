"""The tcc SpanProcessor: rule guard, pricing, roll-ups, and a batching export that never blocks."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Sequence
from typing import Any

import pytest
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import Status, StatusCode

import contextcompany as tcc
from contextcompany._export import SpanProcessor
from contextcompany._export._stages import Edit
from tests.conftest import Captured


def attrs(span: ReadableSpan) -> dict[str, Any]:
    return dict(span.attributes or {})


def pipeline(exporter: SpanExporter, **kwargs: Any) -> tuple[TracerProvider, SpanProcessor]:
    processor = SpanProcessor(exporter, **kwargs)
    provider = TracerProvider(shutdown_on_exit=False)
    provider.add_span_processor(processor)
    return provider, processor


class BlockingExporter(SpanExporter):
    """An exporter stuck like an HTTP call to a collector that accepts and never answers."""

    def __init__(self) -> None:
        self.release = threading.Event()
        self.entered = threading.Event()
        self.exported: list[ReadableSpan] = []

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        self.entered.set()
        self.release.wait(30)
        self.exported.extend(spans)
        return SpanExportResult.SUCCESS


class FailingExporter(SpanExporter):
    def __init__(self) -> None:
        self.fail = True
        self.exported: list[ReadableSpan] = []

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        if self.fail:
            return SpanExportResult.FAILURE
        self.exported.extend(spans)
        return SpanExportResult.SUCCESS


def test_step_span_without_content_is_shipped_as_error() -> None:
    """However a step span ended, it never reaches the exporter as a success without both."""
    exporter = InMemorySpanExporter()
    provider, processor = pipeline(exporter)
    tracer = provider.get_tracer("elsewhere")
    with tracer.start_as_current_span(
        "chat", attributes={"tcc.step.id": "s1", "gen_ai.input.messages": "[]"}
    ):
        pass
    with tracer.start_as_current_span("chat", attributes={"tcc.step.id": "s2"}) as span:
        span.set_status(Status(StatusCode.OK))
    processor.force_flush()
    first, second = exporter.get_finished_spans()
    assert first.status.status_code is StatusCode.ERROR
    assert first.status.description == "step ended without response"
    assert attrs(first)["error.type"] == "tcc.incomplete_step"
    assert second.status.description == "step ended without prompt and response"
    provider.shutdown()


def test_failed_step_keeps_its_own_error() -> None:
    exporter = InMemorySpanExporter()
    provider, processor = pipeline(exporter)
    with provider.get_tracer("t").start_as_current_span("chat", attributes={"tcc.step.id": "s"}) as span:
        span.set_status(Status(StatusCode.ERROR, "timeout"))
    processor.force_flush()
    (span_out,) = exporter.get_finished_spans()
    assert span_out.status.description == "timeout"
    assert "error.type" not in attrs(span_out)
    provider.shutdown()


def test_prices_spans_of_other_genai_instrumentations() -> None:
    exporter = InMemorySpanExporter()
    provider, processor = pipeline(exporter)
    tracer = provider.get_tracer("opentelemetry.instrumentation.openai_v2")
    with tracer.start_as_current_span(
        "invoke_agent", attributes={"tcc.run.id": "r", "gen_ai.operation.name": "invoke_agent"}
    ):
        with tracer.start_as_current_span(
            "chat gpt-4o-mini",
            attributes={
                "gen_ai.operation.name": "chat",
                "gen_ai.provider.name": "openai",
                "gen_ai.request.model": "gpt-4o-mini",
                "gen_ai.response.model": "gpt-4o-mini-2024-07-18",
                "gen_ai.usage.input_tokens": 1000,
                "gen_ai.usage.cache_read.input_tokens": 400,
                "gen_ai.usage.output_tokens": 200,
            },
        ):
            pass
        with tracer.start_as_current_span("http GET", attributes={"http.method": "GET"}):
            pass
    processor.force_flush()
    chat, http, run = exporter.get_finished_spans()
    # gpt-4o-mini: $0.15 input, $0.075 cached input, $0.60 output per million tokens
    expected = 600 * 0.15e-6 + 400 * 0.075e-6 + 200 * 0.6e-6
    assert attrs(chat)["tcc.cost.usd"] == pytest.approx(expected, rel=1e-9)
    assert attrs(chat)["tcc.cost.source"] == "computed"
    assert "tcc.cost.usd" not in attrs(http) and "tcc.cost.source" not in attrs(http)
    assert attrs(run)["tcc.run.cost.usd"] == pytest.approx(expected, rel=1e-9)
    assert attrs(run)["tcc.run.usage.input_tokens"] == 1000
    assert attrs(run)["tcc.run.usage.cache_read.input_tokens"] == 400
    assert attrs(run)["tcc.run.llm_calls"] == 1
    provider.shutdown()


def test_falls_back_to_requested_model_when_used_one_is_unknown(captured: Captured) -> None:
    r = tcc.run()
    r.step().prompt("p").response("r").model(requested="gpt-4o", used="gpt-4o-internal-build-77").tokens(
        1_000_000, 0, 0
    ).end()
    r.prompt("q").end()
    a = attrs(captured.by_op("chat")[0])
    assert a["tcc.cost.source"] == "computed"
    assert a["tcc.cost.usd"] == pytest.approx(2.5)


def test_garbage_usage_attributes_break_nothing() -> None:
    exporter = InMemorySpanExporter()
    provider, processor = pipeline(exporter)
    tracer = provider.get_tracer("weird")
    with tracer.start_as_current_span(
        "chat", attributes={"gen_ai.request.model": "gpt-4o", "gen_ai.usage.input_tokens": "lots"}
    ):
        pass
    with tracer.start_as_current_span("chat", attributes={"gen_ai.usage.output_tokens": -5}):
        pass
    processor.force_flush()
    first, second = exporter.get_finished_spans()
    assert attrs(first)["gen_ai.usage.input_tokens"] == "lots"
    assert attrs(second)["tcc.cost.source"] == "no_price"  # no model at all
    provider.shutdown()


def test_roll_up_counts_the_whole_subtree_including_nested_runs(captured: Captured) -> None:
    outer = tcc.run()
    outer.step().prompt("p").response("r").model("gpt-4o").tokens(100, 0, 10).end()
    # a nested run whose span is a child of the outer run's step
    step = outer.step()
    host = captured.provider.get_tracer("host")
    from opentelemetry import trace

    with trace.use_span(trace.get_current_span(step.context()), end_on_exit=False):
        inner = tcc.run()
    inner.step().prompt("p").response("r").model("gpt-4o").tokens(1000, 0, 100).end()
    inner.step().prompt("p").response("r").model("unknown-model-x").tokens(5, 0, 5).end()
    inner.prompt("q").end()
    step.prompt("p").response("r").model("gpt-4o").tokens(1, 0, 1).end()
    with host.start_as_current_span("unrelated"):
        pass
    outer.prompt("q").end()
    runs = {attrs(s)["tcc.run.id"]: attrs(s) for s in captured.by_op("invoke_agent")}
    i, o = runs[inner.run_id], runs[outer.run_id]
    assert i["tcc.run.llm_calls"] == 2 and i["tcc.run.unpriced_llm_calls"] == 1
    assert i["tcc.run.usage.input_tokens"] == 1005
    assert o["tcc.run.llm_calls"] == 4 and o["tcc.run.unpriced_llm_calls"] == 1
    assert o["tcc.run.usage.input_tokens"] == 1106
    assert o["tcc.run.usage.output_tokens"] == 116
    gpt4o = (1101 * 2.5 + 111 * 10) / 1e6
    assert o["tcc.run.cost.usd"] == pytest.approx(gpt4o, rel=1e-9)


def test_agent_span_with_its_own_usage_counts_it_once_and_passes_it_up() -> None:
    # Another instrumentation's agent span may carry usage of its own: it is the agent's subtree total,
    # the span's own counts plus its children's, and the run above gets that total once.
    exporter = InMemorySpanExporter()
    provider, processor = pipeline(exporter)
    tracer = provider.get_tracer("some.agent.framework")
    usage = {"gen_ai.request.model": "gpt-4o", "gen_ai.operation.name": "chat"}
    with tracer.start_as_current_span(
        "invoke_agent outer", attributes={"tcc.run.id": "outer", "gen_ai.operation.name": "invoke_agent"}
    ):
        with (
            tracer.start_as_current_span(
                "invoke_agent inner",
                attributes={
                    "tcc.run.id": "inner",
                    "gen_ai.operation.name": "invoke_agent",
                    "gen_ai.usage.input_tokens": 7,
                    "gen_ai.usage.output_tokens": 3,
                },
            ),
            tracer.start_as_current_span(
                "chat",
                attributes={**usage, "gen_ai.usage.input_tokens": 100, "gen_ai.usage.output_tokens": 10},
            ),
        ):
            pass
        with tracer.start_as_current_span(
            "chat", attributes={**usage, "gen_ai.usage.input_tokens": 1000, "gen_ai.usage.output_tokens": 1}
        ):
            pass
    processor.force_flush()
    runs = {
        attrs(s)["tcc.run.id"]: attrs(s) for s in exporter.get_finished_spans() if "tcc.run.id" in attrs(s)
    }
    assert runs["inner"]["tcc.run.usage.input_tokens"] == 107
    assert runs["inner"]["tcc.run.usage.output_tokens"] == 13
    assert runs["inner"]["tcc.run.llm_calls"] == 2
    assert runs["outer"]["tcc.run.usage.input_tokens"] == 1107
    assert runs["outer"]["tcc.run.usage.output_tokens"] == 14
    assert runs["outer"]["tcc.run.llm_calls"] == 3
    assert processor._roll_up._pending == {} and processor._roll_up._open == set()
    provider.shutdown()


def test_run_without_llm_calls_carries_zero_totals(captured: Captured) -> None:
    tcc.run().prompt("q").end()
    a = attrs(captured.one("invoke_agent"))
    assert a["tcc.run.llm_calls"] == 0 and a["tcc.run.cost.usd"] == 0.0


def test_roll_up_forgets_spans_whose_parent_is_gone(captured: Captured) -> None:
    r = tcc.run()
    r.prompt("q").end()
    tcc.step(r.run_id).prompt("late").response("x").model("gpt-4o").tokens(1, 0, 1).end()
    captured.spans()
    assert captured.processor._roll_up._pending == {}
    assert captured.processor._roll_up._open == set()


def test_end_does_not_wait_for_a_hung_exporter() -> None:
    exporter = BlockingExporter()
    provider, processor = pipeline(exporter, max_export_batch_size=1, shutdown_timeout_millis=200)
    tracer = provider.get_tracer("t")
    tracer.start_span("first").end()
    assert exporter.entered.wait(5)  # the worker is now stuck in export
    start = time.perf_counter()
    for _ in range(100):
        tracer.start_span("more").end()
    assert time.perf_counter() - start < 1.0  # generous: the point is it is not 30 s
    assert processor.force_flush(timeout_millis=100) is False
    start = time.perf_counter()
    processor.shutdown()
    assert time.perf_counter() - start < 2.0
    stats = processor.stats()
    assert stats.spans_dropped == 101  # 100 still queued and 1 in the export shutdown gave up on
    exporter.release.set()


def test_full_queue_drops_oldest_and_counts(caplog: pytest.LogCaptureFixture) -> None:
    exporter = BlockingExporter()
    provider, processor = pipeline(exporter, max_queue_size=10, max_export_batch_size=1)
    tracer = provider.get_tracer("t")
    tracer.start_span("first").end()
    assert exporter.entered.wait(5)
    for i in range(25):
        tracer.start_span(f"s{i}").end()
    stats = processor.stats()
    assert stats.spans_dropped == 15 and stats.queue_size == 10
    exporter.release.set()
    assert processor.force_flush(5000)
    names = [s.name for s in exporter.exported]
    assert names == ["first"] + [f"s{i}" for i in range(15, 25)]
    assert processor.stats().spans_exported == 11
    processor.shutdown()


def test_failed_exports_are_counted_and_warned_once_per_outage(caplog: pytest.LogCaptureFixture) -> None:
    exporter = FailingExporter()
    provider, processor = pipeline(exporter)
    tracer = provider.get_tracer("t")
    with caplog.at_level(logging.WARNING, logger="contextcompany"):
        for _ in range(3):
            tracer.start_span("lost").end()
            processor.force_flush()
        exporter.fail = False
        tracer.start_span("kept").end()
        processor.force_flush()
    stats = processor.stats()
    assert stats.exports_failed == 3 and stats.spans_dropped == 3 and stats.spans_exported == 1
    assert stats.last_error == "the exporter reported a failure"
    messages = [r.getMessage() for r in caplog.records if r.name == "contextcompany"]
    assert len([m for m in messages if "failed" in m]) == 1
    assert len([m for m in messages if "works again" in m]) == 1
    assert [s.name for s in exporter.exported] == ["kept"]
    processor.shutdown()


def test_exporter_exception_never_reaches_the_caller() -> None:
    class Exploding(SpanExporter):
        def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
            raise ConnectionError("collector gone")

    provider, processor = pipeline(Exploding())
    provider.get_tracer("t").start_span("s").end()
    assert processor.force_flush(5000) is False  # drained, but nothing was delivered
    assert processor.stats().last_error == "ConnectionError: collector gone"
    processor.shutdown()


def test_a_broken_stage_costs_no_span(caplog: pytest.LogCaptureFixture) -> None:
    def broken(edit: Edit) -> None:
        raise KeyError("bug")

    def tag(edit: Edit) -> None:
        edit.set("tagged", True)

    exporter = InMemorySpanExporter()
    provider, processor = pipeline(exporter, stages=[broken, tag])
    with caplog.at_level(logging.ERROR, logger="contextcompany"):
        for _ in range(3):
            provider.get_tracer("t").start_span("s").end()
        processor.force_flush()
    spans = exporter.get_finished_spans()
    assert len(spans) == 3 and all(attrs(s)["tagged"] is True for s in spans)
    assert len([r for r in caplog.records if "stage failed" in r.getMessage()]) == 1
    processor.shutdown()


def test_enriched_copy_keeps_everything_else() -> None:
    exporter = InMemorySpanExporter()
    provider, processor = pipeline(exporter)
    tracer = provider.get_tracer("t", "1.2")
    with tracer.start_as_current_span(
        "chat", attributes={"gen_ai.request.model": "gpt-4o", "gen_ai.usage.input_tokens": 10}
    ) as span:
        span.add_event("thinking", {"n": 1})
    processor.force_flush()
    (out,) = exporter.get_finished_spans()
    assert out.name == "chat" and out.instrumentation_scope is not None
    assert out.instrumentation_scope.version == "1.2"
    assert [e.name for e in out.events] == ["thinking"]
    assert out.start_time is not None and out.end_time is not None and out.end_time >= out.start_time
    assert attrs(out)["gen_ai.request.model"] == "gpt-4o" and "tcc.cost.usd" in attrs(out)
    processor.shutdown()


def test_unsampled_spans_are_not_exported() -> None:
    from opentelemetry.sdk.trace.sampling import ALWAYS_OFF

    exporter = InMemorySpanExporter()
    processor = SpanProcessor(exporter)
    provider = TracerProvider(sampler=ALWAYS_OFF, shutdown_on_exit=False)
    provider.add_span_processor(processor)
    provider.get_tracer("t").start_span("s").end()
    processor.force_flush()
    assert exporter.get_finished_spans() == ()
    processor.shutdown()


def test_flush_after_shutdown_and_spans_after_shutdown() -> None:
    exporter = InMemorySpanExporter()
    provider, processor = pipeline(exporter)
    provider.get_tracer("t").start_span("before").end()
    processor.shutdown()
    assert [s.name for s in exporter.get_finished_spans()] == ["before"]
    provider.get_tracer("t").start_span("after").end()
    assert processor.force_flush() is True
    assert processor.stats().spans_dropped == 1
    processor.shutdown()  # idempotent


def test_bsp_settings_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OTEL_BSP_MAX_QUEUE_SIZE", "7")
    monkeypatch.setenv("OTEL_BSP_MAX_EXPORT_BATCH_SIZE", "3")
    monkeypatch.setenv("OTEL_BSP_SCHEDULE_DELAY", "not-a-number")
    processor = SpanProcessor(InMemorySpanExporter())
    assert (
        processor._batcher.max_queue == 7
        and processor._batcher.max_batch == 3
        and processor._batcher.delay == 5.0
    )
    processor.shutdown()
