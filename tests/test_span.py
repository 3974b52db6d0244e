"""_span: one handle that starts a span now or later and finishes it without ever raising."""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

import pytest
from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.sdk.trace import ReadableSpan, Span, SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.sdk.trace.sampling import ALWAYS_OFF
from opentelemetry.trace import SpanKind, StatusCode

import contextcompany as tcc
from contextcompany import _diag, _pipeline, _settings
from contextcompany import _semconv as sc
from contextcompany import _span as _span_module
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


# --- spans the export worker starts -------------------------------------------------------------------------


def _threads_starting(captured: Captured, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The name of the thread each span of ``captured`` starts on."""
    names: list[str] = []
    on_start = captured.processor.on_start

    def noting(span: Span, parent_context: Context | None = None) -> None:
        names.append(threading.current_thread().name)
        on_start(span, parent_context)

    monkeypatch.setattr(captured.processor, "on_start", noting)
    return names


def test_a_deferred_span_on_tccs_own_provider_starts_on_the_export_worker(
    captured: Captured, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The processor alone on tcc's provider: the caller hands the span over, the worker starts and ends
    it with the same start, end, parent, attributes, name and status the caller would have given it."""
    threads = _threads_starting(captured, monkeypatch)
    run = SpanHandle.start("run", "invoke_agent", None, SpanKind.INTERNAL, {sc.RUN_ID: "r"})
    parent = trace.set_span_in_context(run.span())
    start = time.time_ns() - 2_000_000_000
    handle = SpanHandle.later("step", "chat", parent, SpanKind.CLIENT, {sc.STEP_ID: "s"}, start_ns=start)
    before = time.time_ns()
    handle.finish({sc.REQUEST_MODEL: "gpt-4o"}, name="chat gpt-4o", status=StatusCode.ERROR, description="x")
    after = time.time_ns()
    run.finish({})
    step = captured.one("chat gpt-4o")
    assert threads == [threading.current_thread().name, "contextcompany-export"]
    assert step.parent is not None and step.parent.span_id == run.span().get_span_context().span_id
    assert step.start_time == start and step.end_time is not None and before <= step.end_time <= after
    assert attrs(step) == {sc.STEP_ID: "s", sc.REQUEST_MODEL: "gpt-4o"}
    assert (step.status.status_code, step.status.description) == (StatusCode.ERROR, "x")


def test_a_span_asked_for_before_finish_starts_on_the_callers_thread(
    captured: Captured, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A span something needs sooner (a ``with`` block, a child) starts where it is asked for."""
    threads = _threads_starting(captured, monkeypatch)
    handle = SpanHandle.later("step", "chat", None, SpanKind.CLIENT, {}, lock=threading.Lock())
    handle.span()
    handle.finish({"k": "v"})
    assert threads == [threading.current_thread().name]
    assert attrs(captured.one("chat")) == {"k": "v"}


def test_with_another_processor_on_the_provider_spans_start_on_the_callers_thread(
    captured: Captured, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Another processor sees the spans: they start on the caller's thread, as it expects."""
    threads = _threads_starting(captured, monkeypatch)
    assert _pipeline._pipeline is not None
    monkeypatch.setattr(_pipeline._pipeline, "alone", None)
    SpanHandle.later("step", "chat", None, SpanKind.CLIENT, {}).finish({"k": "v"})
    assert threads == [threading.current_thread().name]
    assert attrs(captured.one("chat")) == {"k": "v"}


def test_a_handed_span_without_a_parent_takes_the_callers_current_span(captured: Captured) -> None:
    tracer = captured.provider.get_tracer("service")
    with tracer.start_as_current_span("request") as request:
        SpanHandle.later("step", "chat", None, SpanKind.CLIENT, {}).finish({})
    step = captured.one("chat")
    assert step.parent is not None and step.parent.span_id == request.get_span_context().span_id


def test_a_runs_steps_handed_to_the_worker_roll_up_onto_the_run(captured: Captured) -> None:
    """The worker starts each step's span before it takes the run's, which ended after them: the run
    carries the totals of every step (the run ends right after its steps, with nothing in between)."""
    r = tcc.run()
    for i in range(5):
        r.step().prompt("p").response("a").model("gpt-4o").tokens(100 + i, 0, 10).end()
    r.prompt("q").response("a").end()
    run = captured.by_op(sc.OP_INVOKE_AGENT)[0]
    assert attrs(run)[sc.RUN_LLM_CALLS] == 5
    assert attrs(run)[sc.RUN_INPUT_TOKENS] == sum(100 + i for i in range(5))
    assert len(captured.by_op(sc.OP_CHAT)) == 5
    assert captured.processor.stats().spans_queued == 6


@pytest.mark.parametrize("started_by", ["worker", "caller"])
def test_a_step_not_sampled_is_counted_not_queued_and_its_content_released(started_by: str) -> None:
    """Not sampled: the step is priced and counted in the metrics on the worker (as a step that had its
    prompt and response, for the step rule), never counts as a queued span, and the long content set
    aside for the worker is released, whether the worker started the span or the caller did (a ``with``
    step)."""
    exporter = InMemorySpanExporter()
    processor = tcc.SpanProcessor(exporter, schedule_delay_millis=50)
    provider = TracerProvider(sampler=ALWAYS_OFF, shutdown_on_exit=False)
    provider.add_span_processor(processor)
    counted: list[tuple[str, Any, bool, str | None]] = []  # the metrics': name, operation, failed, agent
    record = processor._metrics.record

    def counting(edit: Any, *, agent: str | None) -> None:
        status = edit.status if edit.status is not None else edit.span.status
        failed = status.status_code is StatusCode.ERROR
        counted.append((edit.span.name, edit.get(sc.OPERATION_NAME), failed, agent))
        record(edit, agent=agent)

    processor._metrics.record = counting  # type: ignore[method-assign]
    previous = _pipeline.install(
        _pipeline.Pipeline(
            tracer=provider.get_tracer("contextcompany"),
            provider=provider,
            processor=processor,
            owned=True,
            alone=processor,
        )
    )
    try:
        r = tcc.run(name="weather")
        if started_by == "worker":
            r.step().prompt("x" * 40_000).response("a").model("gpt-4o").tokens(10, 0, 5).end()
        else:
            with r.step() as s:
                s.prompt("x" * 40_000).response("a").model("gpt-4o").tokens(10, 0, 5)
        r.prompt("q").response("a").end()
        assert processor.force_flush(10_000)
    finally:
        _pipeline.install(previous)
        provider.shutdown()
    assert exporter.get_finished_spans() == ()
    assert ("chat gpt-4o", sc.OP_CHAT, False, "weather") in counted, counted
    assert processor.stats().spans_queued == 0
    assert processor.can_defer(32 * 1024 * 1024), "the content held for it was released"


@pytest.mark.parametrize("alone", [True, False], ids=["worker-starts", "caller-starts"])
def test_a_span_whose_attributes_cannot_be_built_is_still_sent(
    captured: Captured, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture, alone: bool
) -> None:
    """Building the end attributes fails (a bug): the span still leaves, with its first attributes, and the
    failure is logged once; valid data already recorded is never lost to it."""
    assert _pipeline._pipeline is not None
    if not alone:
        monkeypatch.setattr(_pipeline._pipeline, "alone", None)
    monkeypatch.setattr(_diag, "_process", _diag.Once())

    def broken(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("a bug while building attributes")

    monkeypatch.setattr(_span_module._content, "finish", broken)
    with caplog.at_level(logging.ERROR, logger="contextcompany"):
        for i in range(2):
            SpanHandle.later("step", "chat", None, SpanKind.CLIENT, {sc.STEP_ID: f"s{i}"}).finish({"k": "v"})
        spans = captured.spans()
    assert sorted(attrs(s)[sc.STEP_ID] for s in spans) == ["s0", "s1"]
    assert all("k" not in attrs(s) for s in spans)
    assert sum("building the step span failed" in r.getMessage() for r in caplog.records) == 1
