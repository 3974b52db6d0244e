"""End to end: the real OTLP/HTTP exporter, real HTTP on loopback, a receiver that decodes protobuf."""

from __future__ import annotations

import json
import socket
import threading
import time
from pathlib import Path

import pytest

from contextcompany.dev import OTLPReceiver, ReceivedSpan

from .conftest import run_script

REPO = Path(__file__).resolve().parents[2]

SEED_EXAMPLE = """
import contextcompany as tcc
r = tcc.run()
r.prompt("What is the weather in London?")
s = r.step()                      # or: s = tcc.step(run_id=r.run_id)
s.prompt("You are a weather agent. The user asked: What is the weather in London?")
s.response("The weather in London is 15°C and cloudy.")
s.model(requested="gpt-4", used="gpt-4-0613")
s.tokens(prompt_uncached=150, prompt_cached=50, completion=25)
s.finish_reason("stop")
s.tool_definitions('[{"name": "get_weather", "description": "Get the weather for a location"}]')
s.end()
s2 = r.step()
s2.prompt("Calling weather API...")
try:
    raise TimeoutError("weather API timed out")
except Exception as e:
    s2.error(status_message=str(e))   # no prompt/response needed; the run still ends fine
tc = r.tool_call("get_weather")
tc.args({"city": "London"}).result({"temp_c": 15}).end()
r.response("It is 15°C and cloudy in London.")
r.end()
"""


def by_name(spans: list[ReceivedSpan]) -> dict[str, ReceivedSpan]:
    return {s.name: s for s in spans}


def test_seed_example_over_the_wire_without_flush(receiver: OTLPReceiver) -> None:
    """A script that never calls flush() still delivers every span, at interpreter exit."""
    result = run_script(
        SEED_EXAMPLE,
        {
            "OTEL_EXPORTER_OTLP_ENDPOINT": receiver.endpoint,
            "OTEL_SERVICE_NAME": "weather-agent",
            "OTEL_RESOURCE_ATTRIBUTES": "deployment.environment.name=test",
            "TCC_API_KEY": "tcc_test_key_123",
        },
    )
    assert result.returncode == 0, result.stderr
    spans = by_name(receiver.wait_for_spans(4))
    assert set(spans) == {"invoke_agent", "chat gpt-4", "chat", "execute_tool get_weather"}
    names = ("invoke_agent", "chat gpt-4", "chat", "execute_tool get_weather")
    run, step, failed, tool = (spans[n] for n in names)

    assert {s.trace_id for s in spans.values()} == {run.trace_id}
    assert run.parent_span_id is None
    for child in (step, failed, tool):
        assert child.parent_span_id == run.span_id
    assert run.resource["service.name"] == "weather-agent"
    assert run.resource["deployment.environment.name"] == "test"
    assert run.scope_name == "contextcompany"

    a = step.attributes
    assert step.kind == 3  # OTLP SPAN_KIND_CLIENT
    assert a["gen_ai.operation.name"] == "chat"
    assert a["gen_ai.request.model"] == "gpt-4"
    assert a["gen_ai.response.model"] == "gpt-4-0613"
    assert a["gen_ai.usage.input_tokens"] == 200
    assert a["gen_ai.usage.cache_read.input_tokens"] == 50
    assert a["gen_ai.usage.output_tokens"] == 25
    assert a["gen_ai.response.finish_reasons"] == ("stop",)
    assert json.loads(a["gen_ai.tool.definitions"])[0]["name"] == "get_weather"
    assert json.loads(a["gen_ai.input.messages"])[0]["role"] == "user"
    assert json.loads(a["gen_ai.output.messages"])[0]["parts"][0]["content"] == (
        "The weather in London is 15°C and cloudy."
    )
    assert a["tcc.run.id"] == run.attributes["tcc.run.id"]
    assert a["tcc.cost.source"] == "computed"
    assert a["tcc.cost.usd"] == pytest.approx(0.0075)

    assert failed.status_code == 2 and failed.status_message == "weather API timed out"
    assert failed.attributes["error.type"] == "_OTHER"
    assert tool.attributes["gen_ai.tool.name"] == "get_weather"
    assert json.loads(tool.attributes["gen_ai.tool.call.arguments"]) == {"city": "London"}
    assert json.loads(tool.attributes["gen_ai.tool.call.result"]) == {"temp_c": 15}

    r = run.attributes
    assert r["gen_ai.operation.name"] == "invoke_agent"
    assert r["tcc.run.usage.input_tokens"] == 200
    assert r["tcc.run.cost.usd"] == pytest.approx(0.0075)
    assert r["tcc.run.llm_calls"] == 1

    auth = {req.headers.get("authorization") for req in receiver.requests}
    assert auth == {"Bearer tcc_test_key_123"}


def test_api_key_tcc_url_headers_and_compression(receiver: OTLPReceiver) -> None:
    result = run_script(
        f"""
        import contextcompany as tcc
        r = tcc.run(api_key="key-from-code", tcc_url="{receiver.endpoint}")
        r.prompt("hi").end()
        assert tcc.flush(5000)
        """,
        {
            "OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:9",  # tcc_url wins over it
            "OTEL_EXPORTER_OTLP_HEADERS": "x-tenant=acme",
            "OTEL_EXPORTER_OTLP_COMPRESSION": "gzip",
        },
    )
    assert result.returncode == 0, result.stderr
    receiver.wait_for_spans(1)
    (request,) = receiver.requests
    assert request.headers["authorization"] == "Bearer key-from-code"
    assert request.headers["x-tenant"] == "acme"
    assert request.content_encoding == "gzip"


def test_sdk_disabled_sends_nothing(receiver: OTLPReceiver) -> None:
    result = run_script(
        SEED_EXAMPLE + "\nimport threading; assert threading.active_count() == 1\nprint('ran')",
        {"OTEL_EXPORTER_OTLP_ENDPOINT": receiver.endpoint, "OTEL_SDK_DISABLED": "true"},
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "ran"
    time.sleep(0.3)
    assert receiver.spans == [] and receiver.requests == []


class HungCollector:
    """Accepts connections and reads requests, never answers."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.port = self.sock.getsockname()[1]
        self.conns: list[socket.socket] = []
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._accept, daemon=True)
        self.thread.start()

    def _accept(self) -> None:
        self.sock.settimeout(0.1)
        while not self.stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            self.conns.append(conn)

    def close(self) -> None:
        self.stop.set()
        self.thread.join()
        for conn in self.conns:
            conn.close()
        self.sock.close()


def test_hung_collector_blocks_neither_end_nor_exit() -> None:
    hung = HungCollector()
    try:
        started = time.monotonic()
        result = run_script(
            """
            import time, contextcompany as tcc
            worst = 0.0
            r = tcc.run()
            for i in range(600):
                s = r.step().prompt("p").response("r").model("gpt-4o").tokens(10, 0, 5)
                t = time.perf_counter()
                s.end()
                worst = max(worst, time.perf_counter() - t)
            r.prompt("q").end()
            print(f"{worst:.6f}")
            """,
            {
                "OTEL_EXPORTER_OTLP_ENDPOINT": f"http://127.0.0.1:{hung.port}",
                "OTEL_BSP_MAX_EXPORT_BATCH_SIZE": "100",  # the worker is stuck in an export early on
                "TCC_SHUTDOWN_TIMEOUT_MILLIS": "2000",
            },
        )
        elapsed = time.monotonic() - started
    finally:
        hung.close()
    assert result.returncode == 0, result.stderr
    # end() never waits for the collector: the worst of 600 calls is far below one export timeout (10 s)
    assert float(result.stdout) < 1.0
    # exit waits the configured 2 s, not the exporter's 10 s timeout or the SDK's 30 s shutdown
    assert elapsed < 8.0


def test_drop_in_documented_line_over_the_wire(receiver: OTLPReceiver) -> None:
    result = run_script(
        """
        from opentelemetry import trace
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
        from opentelemetry.sdk.trace import TracerProvider
        import contextcompany as tcc

        provider = TracerProvider()
        provider.add_span_processor(tcc.SpanProcessor(OTLPSpanExporter()))  # the one line
        trace.set_tracer_provider(provider)

        with trace.get_tracer("service").start_as_current_span("POST /ask"):
            r = tcc.run()
            r.step().prompt("p").response("r").model("gpt-4o-mini").tokens(1000, 0, 100).end()
            r.prompt("q").end()
        """,
        {"OTEL_EXPORTER_OTLP_ENDPOINT": receiver.endpoint},
    )
    assert result.returncode == 0, result.stderr
    spans = receiver.wait_for_spans(3)
    assert sorted(s.name for s in spans) == ["POST /ask", "chat gpt-4o-mini", "invoke_agent"]  # once each
    named = by_name(spans)
    assert named["invoke_agent"].parent_span_id == named["POST /ask"].span_id
    assert named["chat gpt-4o-mini"].attributes["tcc.cost.source"] == "computed"
    expected = (1000 * 0.15 + 100 * 0.6) / 1e6
    assert named["invoke_agent"].attributes["tcc.run.cost.usd"] == pytest.approx(expected)


def test_runs_route_to_their_own_destination(receiver: OTLPReceiver) -> None:
    with OTLPReceiver(port=0) as tenant:
        result = run_script(
            f"""
            import contextcompany as tcc
            with tcc.run(api_key="tenant-key", tcc_url="{tenant.endpoint}") as r:
                r.prompt("q")
                with r.step() as s:
                    s.prompt("p").response("r").model("gpt-4o")
            r.feedback(score="thumbs_down")
            with tcc.run() as other:
                other.prompt("default destination")
            """,
            {"OTEL_EXPORTER_OTLP_ENDPOINT": receiver.endpoint, "TCC_API_KEY": "default-key"},
        )
        assert result.returncode == 0, result.stderr
        routed = tenant.wait_for_spans(3)
        assert sorted(s.name for s in routed) == ["chat gpt-4o", "feedback", "invoke_agent"]
        assert {r.headers["authorization"] for r in tenant.requests} == {"Bearer tenant-key"}
    default = receiver.wait_for_spans(1)
    assert [s.name for s in default] == ["invoke_agent"]
    assert {r.headers["authorization"] for r in receiver.requests} == {"Bearer default-key"}
