"""Shared fixtures: a tcc pipeline that exports into the SDK's InMemorySpanExporter."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from contextcompany import _pipeline
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
    pipeline = _pipeline.Pipeline(
        tracer=provider.get_tracer("contextcompany"), provider=provider, processor=processor, owned=True
    )
    previous = _pipeline.install(pipeline)
    try:
        yield Captured(exporter, processor, provider)
    finally:
        _pipeline.install(previous)
        provider.shutdown()
