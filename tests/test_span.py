"""_span: one handle that starts a span now or later and finishes it without ever raising."""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

import pytest
from opentelemetry.context import Context
from opentelemetry.sdk.trace import ReadableSpan, Span, SpanProcessor, TracerProvider
from opentelemetry.trace import SpanKind, StatusCode

from contextcompany import _diag, _pipeline, _settings
from contextcompany import _semconv as sc
from contextcompany._span import SpanHandle

from .conftest import Captured


def attrs(span: ReadableSpan) -> dict[str, Any]:
    return dict(span.attributes or {})


def test_a_span_started_now_gets_the_rest_at_finish(captured: Captured) -> None:
    handle = SpanHandle.start("run", "invoke_agent", None, SpanKind.INTERNAL, {sc.RUN_ID: "r1"})
    assert handle.started and handle.span().is_recording()
    handle.finish({sc.AGENT_NAME: "weather"}, name="invoke_agent weather", status=StatusCode.OK)
    (span,) = captured.spans()
    assert span.name == "invoke_agent weather"
    assert attrs(span) == {sc.RUN_ID: "r1", sc.AGENT_NAME: "weather"}
    assert span.status.status_code is StatusCode.OK and span.status.description is None


def test_a_deferred_span_starts_at_finish_back_dated_with_everything(captured: Captured) -> None:
    start = time.time_ns() - 5_000_000_000
    handle = SpanHandle.later("step", "chat", None, SpanKind.CLIENT, {sc.STEP_ID: "s1"}, start_ns=start)
    assert not handle.started and handle.start_ns == start
    assert captured.spans() == []
    handle.finish(
        {sc.REQUEST_MODEL: "gpt-4o"}, name="chat gpt-4o", status=StatusCode.ERROR, description="boom"
    )
    (span,) = captured.spans()
    assert span.name == "chat gpt-4o" and span.kind is SpanKind.CLIENT
    assert span.start_time == start
    assert attrs(span) == {sc.STEP_ID: "s1", sc.REQUEST_MODEL: "gpt-4o"}
    assert (span.status.status_code, span.status.description) == (StatusCode.ERROR, "boom")


def test_a_deferred_span_starts_once_whichever_thread_asks_first(captured: Captured) -> None:
    handle = SpanHandle.later("step", "chat", None, SpanKind.CLIENT, {}, lock=threading.Lock())
    spans: list[object] = []
    barrier = threading.Barrier(8)

    def ask() -> None:
        barrier.wait()
        spans.append(handle.span())

    threads = [threading.Thread(target=ask) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len({id(span) for span in spans}) == 1
    handle.finish({"k": "v"})
    (span,) = captured.spans()
    assert attrs(span) == {"k": "v"}


def test_finish_applies_the_content_policy_to_the_content_keys(
    captured: Captured, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(_settings.settings, "capture_content", False)
    handle = SpanHandle.later("feedback", "feedback", None, SpanKind.INTERNAL, {})
    handle.finish({sc.EVALUATION_EXPLANATION: "secret", sc.RUN_ID: "r"}, content=(sc.EVALUATION_EXPLANATION,))
    (span,) = captured.spans()
    assert attrs(span) == {sc.RUN_ID: "r", sc.CONTENT_WITHHELD: (sc.EVALUATION_EXPLANATION,)}


def test_an_end_before_a_future_start_is_never_written(captured: Captured) -> None:
    future = time.time_ns() + 3_600_000_000_000
    SpanHandle.start("tool call", "execute_tool", None, SpanKind.INTERNAL, {}, start_ns=future).finish({})
    (span,) = captured.spans()
    assert span.start_time == span.end_time == future


class Exploding(SpanProcessor):
    def __init__(self, on: str) -> None:
        self.on = on

    def on_start(self, span: Span, parent_context: Context | None = None) -> None:
        if self.on == "start":
            raise RuntimeError("a service's processor failed on start")

    def on_end(self, span: ReadableSpan) -> None:
        if self.on == "end":
            raise RuntimeError("a service's processor failed on end")


@pytest.mark.parametrize(
    ("on", "logged"), [("start", "starting the step span failed"), ("end", "failed to end")]
)
def test_finish_never_raises_and_says_so_once(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture, on: str, logged: str
) -> None:
    monkeypatch.setattr(_diag, "_process", _diag.Once())
    provider = TracerProvider()
    provider.add_span_processor(Exploding(on))
    previous = _pipeline.install(_pipeline.Pipeline(tracer=provider.get_tracer("t"), provider=provider))
    try:
        with caplog.at_level(logging.ERROR, logger="contextcompany"):
            for _ in range(3):
                handle = SpanHandle.later("step", "chat", None, SpanKind.CLIENT, {})
                handle.finish({"k": 1}, status=StatusCode.ERROR, description="x")
    finally:
        _pipeline.install(previous)
    assert sum(logged in r.getMessage() for r in caplog.records) == 1, [
        r.getMessage() for r in caplog.records
    ]
