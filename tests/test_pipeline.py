"""Pipeline set-up: nothing at import, OTEL_SDK_DISABLED, drop-in into a service's own provider."""

from __future__ import annotations

import logging
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Sequence

import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import (
    BatchSpanProcessor,
    SimpleSpanProcessor,
    SpanExporter,
    SpanExportResult,
)
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import StatusCode

import contextcompany as tcc
from contextcompany import _destinations, _pipeline, _settings


def run_python(
    code: str, env: dict[str, str] | None = None, timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    import os

    full_env = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "TCC_"))}
    full_env.update(env or {})
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        capture_output=True,
        text=True,
        env=full_env,
        timeout=timeout,
        check=False,
    )


def test_import_does_no_io_and_starts_no_thread() -> None:
    result = run_python(
        """
        import sys, threading
        events = []
        def hook(event, args):
            if event.startswith(("socket.", "subprocess.", "os.system", "os.fork")):
                events.append(event)
            if event == "open" and len(args) > 1 and isinstance(args[1], str) and set(args[1]) & set("wax+"):
                events.append(f"open for writing: {args[0]}")
        sys.addaudithook(hook)
        import contextcompany
        assert events == [], events
        assert threading.active_count() == 1, threading.enumerate()
        assert "genai_prices" not in sys.modules
        print("ok")
        """
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "ok"


def test_sdk_disabled_still_validates_and_sends_nothing(
    fresh_pipeline: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OTEL_SDK_DISABLED", "true")
    r = tcc.run()
    with pytest.raises(ValueError, match=r"Call r\.prompt"):
        r.end()
    with pytest.raises(TypeError, match=r"s\.tokens\(completion=\.\.\.\)"):
        r.step().tokens(completion="25")
    s = r.step().prompt("p").response("r")
    s.end()
    with pytest.raises(RuntimeError):
        s.end()
    r.prompt("q").end()
    pipeline = _pipeline.get()
    assert isinstance(pipeline.tracer, trace.NoOpTracer)
    assert pipeline.processor is None and tcc.stats() == tcc.Stats(0, 0, 0, 0, 0, None)
    assert tcc.flush() is True


def test_drop_in_uses_the_services_provider(fresh_pipeline: None) -> None:
    exporter = InMemorySpanExporter()
    provider = TracerProvider(shutdown_on_exit=False)
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    trace.set_tracer_provider(provider)
    tracer = trace.get_tracer("service")
    with tracer.start_as_current_span("POST /ask") as request:
        r = tcc.run()
        r.step().prompt("p").response("r").model("gpt-4o").tokens(10, 0, 2).end()
        r.prompt("q").end()
    spans = exporter.get_finished_spans()
    assert [s.name for s in spans] == ["chat gpt-4o", "invoke_agent", "POST /ask"]  # each exactly once
    step, run, _ = spans
    assert run.parent is not None and run.parent.span_id == request.get_span_context().span_id
    assert step.parent is not None and step.parent.span_id == run.context.span_id
    assert {s.context.trace_id for s in spans} == {request.get_span_context().trace_id}
    assert _pipeline.get().provider is provider and not _pipeline.get().owned
    assert "tcc.cost.usd" not in (step.attributes or {})  # no tcc processor in this service's pipeline
    assert tcc.flush() is True
    tcc.shutdown()  # must not shut the service's provider down
    with tracer.start_as_current_span("still works"):
        pass
    assert exporter.get_finished_spans()[-1].name == "still works"


def test_drop_in_with_the_tcc_processor_in_front(fresh_pipeline: None) -> None:
    exporter = InMemorySpanExporter()
    provider = TracerProvider(shutdown_on_exit=False)
    provider.add_span_processor(tcc.SpanProcessor(exporter))  # the one documented line
    trace.set_tracer_provider(provider)
    r = tcc.run()
    r.step().prompt("p").response("r").model("gpt-4o").tokens(1_000_000, 0, 0).end()
    r.step().prompt("only a prompt").error("model overloaded")
    r.prompt("q").end()
    assert tcc.flush()
    step, failed, run = exporter.get_finished_spans()
    assert tcc.stats().spans_exported == 3  # the service's tcc processor is the one counted
    assert (step.attributes or {})["tcc.cost.usd"] == pytest.approx(2.5)
    assert failed.status.status_code is StatusCode.ERROR
    assert (run.attributes or {})["tcc.run.cost.usd"] == pytest.approx(2.5)
    provider.shutdown()


class HangingExporter(SpanExporter):
    """An exporter stuck like an HTTP request to a collector that accepts and never answers."""

    def __init__(self) -> None:
        self.release = threading.Event()

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        self.release.wait(30)
        return SpanExportResult.SUCCESS


def test_flush_is_bounded_with_a_host_provider_that_hangs(fresh_pipeline: None) -> None:
    # The service's own BatchSpanProcessor ignores the timeout of force_flush: tcc.flush() must not.
    exporter = HangingExporter()
    provider = TracerProvider(shutdown_on_exit=False)
    provider.add_span_processor(BatchSpanProcessor(exporter, schedule_delay_millis=10))
    trace.set_tracer_provider(provider)
    try:
        tcc.run().prompt("q").end()
        time.sleep(0.1)  # the service's worker is now stuck in export()
        tcc.run().prompt("q").end()
        started = time.monotonic()
        assert tcc.flush(timeout_millis=300) is False
        assert time.monotonic() - started < 2.0
        started = time.monotonic()
        tcc.shutdown()  # flushes the service's provider (never shuts it down), within the shutdown bound
        assert time.monotonic() - started < 5 + 2.0
    finally:
        exporter.release.set()
        provider.shutdown()


# --- destinations and routing ----------------------------------------------------------------------------


def test_records_with_their_own_destination_are_routed_with_their_children(fresh_pipeline: None) -> None:
    default, elsewhere = InMemorySpanExporter(), InMemorySpanExporter()
    made: list[object] = []

    def exporter_for(dest: object) -> InMemorySpanExporter:
        made.append(dest)
        return elsewhere

    from contextcompany._export import SpanProcessor

    processor = SpanProcessor(default, exporter_for=exporter_for)  # type: ignore[arg-type]
    provider = TracerProvider(shutdown_on_exit=False)
    provider.add_span_processor(processor)
    _pipeline.install(
        _pipeline.Pipeline(
            tracer=provider.get_tracer("contextcompany"),
            provider=provider,
            processor=processor,
            owned=True,
            default=_destinations.default_destination(_settings.config),
        )
    )
    routed = tcc.run(api_key="tenant-key", tcc_url="https://tenant.example.com")
    routed.step().prompt("p").response("r").end()
    tcc.step(run_id=routed.run_id).prompt("p").response("r").end()  # inherits the run's destination
    routed.prompt("q").end()
    routed.feedback(score="thumbs_up")
    tcc.run(api_key="tenant-key", tcc_url="https://tenant.example.com").prompt("again").end()
    tcc.run().prompt("default").end()
    assert processor.force_flush()
    assert [s.name for s in elsewhere.get_finished_spans()] == [
        "chat",
        "chat",
        "invoke_agent",
        "feedback",
        "invoke_agent",
    ]
    assert [s.name for s in default.get_finished_spans()] == ["invoke_agent"]
    assert made == [
        _destinations.Destination("https://tenant.example.com/v1/traces", "tenant-key")
    ]  # created once
    processor.shutdown()


def test_routed_records_leave_the_services_provider_alone(fresh_pipeline: None) -> None:
    exporter = InMemorySpanExporter()
    provider = TracerProvider(shutdown_on_exit=False)
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tcc.configure(tracer_provider=provider)
    with trace.get_tracer("svc", tracer_provider=provider).start_as_current_span("request") as request:
        routed = tcc.run(api_key="k", tcc_url="http://127.0.0.1:9")
        routed.prompt("q").end()
        tcc.run().prompt("q").end()
    names = [s.name for s in exporter.get_finished_spans()]
    assert names == ["invoke_agent", "request"]  # the routed run went to tcc's own pipeline only
    routing = _pipeline.get().routing
    assert routing is not None and routing.processor is not None
    assert routed._handle.span().parent is not None
    assert routed._handle.span().parent.span_id == request.get_span_context().span_id  # still nested by ids


def test_an_insecure_environment_drops_instead_of_raising(
    fresh_pipeline: None, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv("TCC_API_KEY", "tcc_live_secret")
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "http://collector.example.com:4318")
    with caplog.at_level(logging.WARNING, logger="contextcompany"):
        tcc.run().prompt("q").end()  # never raises: the environment, not this call, is at fault
        assert tcc.flush() is False  # nothing could be delivered
    stats = tcc.stats()
    assert stats is not None and stats.spans_dropped == 1 and stats.spans_exported == 0
    assert "tcc_live_secret" not in caplog.text
    assert len([r for r in caplog.records if "plain http" in r.getMessage()]) == 1  # said once
