"""Pipeline set-up: nothing at import, OTEL_SDK_DISABLED, drop-in into a service's own provider."""

from __future__ import annotations

import logging
import subprocess
import sys
import textwrap
from collections.abc import Iterator

import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import StatusCode
from opentelemetry.util._once import Once

import contextcompany as tcc
from contextcompany import _config


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


@pytest.fixture
def fresh_pipeline() -> Iterator[None]:
    """tcc sets itself up again on the next record; the global provider is unset (test-only reset)."""
    previous = _config.install(None)
    saved = (trace._TRACER_PROVIDER, trace._TRACER_PROVIDER_SET_ONCE)
    trace._TRACER_PROVIDER = None
    trace._TRACER_PROVIDER_SET_ONCE = Once()
    try:
        yield
    finally:
        pipeline = _config.install(previous)
        if pipeline is not None and pipeline.processor is not None:
            pipeline.processor.shutdown(timeout_millis=100)  # its collector may not exist
        trace._TRACER_PROVIDER, trace._TRACER_PROVIDER_SET_ONCE = saved


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
    pipeline = _config.get()
    assert isinstance(pipeline.tracer, trace.NoOpTracer)
    assert pipeline.processor is None and tcc.stats() is None
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
    assert _config.get().provider is provider and not _config.get().owned
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
    assert (step.attributes or {})["tcc.cost.usd"] == pytest.approx(2.5)
    assert failed.status.status_code is StatusCode.ERROR
    assert (run.attributes or {})["tcc.run.cost.usd"] == pytest.approx(2.5)
    provider.shutdown()


def test_first_destination_wins_and_later_ones_warn_once(
    fresh_pipeline: None, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(_config, "_warned", set())
    r = tcc.run(api_key="key-one", tcc_url="http://127.0.0.1:9/")
    pipeline = _config.get()
    assert pipeline.api_key == "key-one" and pipeline.owned
    assert pipeline.processor is not None
    assert pipeline.processor._exporter._endpoint == "http://127.0.0.1:9/v1/traces"  # type: ignore[attr-defined]
    with caplog.at_level(logging.WARNING, logger="contextcompany"):
        tcc.run(api_key="key-two").prompt("q").end()
        tcc.run(tcc_url="http://127.0.0.1:8").prompt("q").end()
    assert len([rec for rec in caplog.records if "first destination" in rec.getMessage()]) == 1
    r.prompt("q").end()


def test_traces_endpoint() -> None:
    assert _config.traces_endpoint("http://c:4318") == "http://c:4318/v1/traces"
    assert _config.traces_endpoint("http://c:4318/") == "http://c:4318/v1/traces"
    assert _config.traces_endpoint("https://c/otlp/v1/traces") == "https://c/otlp/v1/traces"
    assert _config.traces_endpoint("https://c/otlp") == "https://c/otlp/v1/traces"


def test_2_0_0_helpers_are_still_exported(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("TCC_API_KEY", raising=False)
    monkeypatch.delenv("OTEL_EXPORTER_OTLP_ENDPOINT", raising=False)
    with pytest.raises(ValueError, match="TCC_API_KEY"):
        tcc.get_api_key()
    assert tcc.get_api_key("k") == "k"
    monkeypatch.setenv("TCC_API_KEY", "env-key")
    assert tcc.get_api_key() == "env-key"
    assert tcc.get_url("/v1/traces") == "http://localhost:4318/v1/traces"
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "https://otel.example.com/")
    assert tcc.get_url("v1/traces", api_key="k") == "https://otel.example.com/v1/traces"
