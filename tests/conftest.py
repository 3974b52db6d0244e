"""Shared fixtures: a tcc pipeline that exports into the SDK's InMemorySpanExporter, and a fresh one."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.util._once import Once

from contextcompany import _pipeline, _settings
from contextcompany._export import SpanProcessor
from contextcompany._ids import OwnRandomIds, RunIdGenerator


@dataclass
class Captured:
    """The spans a test's records produced, after the processor's pipeline ran on them."""

    exporter: InMemorySpanExporter
    processor: SpanProcessor
    provider: TracerProvider

    def spans(self) -> list[ReadableSpan]:
        assert self.processor.force_flush(10_000), "the pipeline did not flush in time"
        assert self.processor.stats().spans_dropped == 0, self.processor.stats()
        return list(self.exporter.get_finished_spans())

    def one(self, name: str) -> ReadableSpan:
        found = [s for s in self.spans() if s.name == name]
        assert len(found) == 1, f"expected one span named {name!r}, got {[s.name for s in self.spans()]}"
        return found[0]

    def by_op(self, operation: str) -> list[ReadableSpan]:
        return [s for s in self.spans() if (s.attributes or {}).get("gen_ai.operation.name") == operation]


@pytest.fixture
def captured() -> Iterator[Captured]:
    exporter = InMemorySpanExporter()
    processor = SpanProcessor(exporter, schedule_delay_millis=50, max_queue_size=100_000)
    provider = TracerProvider(shutdown_on_exit=False, id_generator=RunIdGenerator(OwnRandomIds()))
    provider.add_span_processor(processor)
    # As tcc's own pipeline is: its processor alone on its provider, so steps' spans start on its worker.
    pipeline = _pipeline.Pipeline(
        tracer=provider.get_tracer("contextcompany"),
        provider=provider,
        processor=processor,
        owned=True,
        alone=processor,
    )
    previous = _pipeline.install(pipeline)
    try:
        yield Captured(exporter, processor, provider)
    finally:
        _pipeline.install(previous)
        provider.shutdown()


@contextmanager
def sending_nothing() -> Iterator[None]:
    """Records made inside are checked as usual and send nothing (tcc's disabled pipeline)."""
    previous = _pipeline.install(_pipeline.Pipeline(tracer=trace.NoOpTracer()))
    try:
        yield
    finally:
        _pipeline.install(previous)


@pytest.fixture
def fresh_pipeline() -> Iterator[None]:
    """tcc sets itself up again on the next record, from defaults; the global provider is unset and
    configure() forgotten (test-only reset, restored afterwards)."""
    saved = (_pipeline._pipeline, _settings.config, dataclasses.replace(_settings.settings))
    saved_global = (trace._TRACER_PROVIDER, trace._TRACER_PROVIDER_SET_ONCE)
    _pipeline.reset_for_tests()
    trace._TRACER_PROVIDER = None
    trace._TRACER_PROVIDER_SET_ONCE = Once()
    try:
        yield
    finally:
        pipeline = _pipeline._pipeline
        if pipeline is not None:
            for own in pipeline.owned_pipelines():
                if own.processor is not None:
                    own.processor.shutdown(timeout_millis=100)  # its collector may not exist
        _pipeline._pipeline, _settings.config, settings = saved
        _settings.settings.run_timeout = settings.run_timeout
        _settings.settings.capture_content = settings.capture_content
        _settings.settings.mask = settings.mask
        trace._TRACER_PROVIDER, trace._TRACER_PROVIDER_SET_ONCE = saved_global
