"""RunTreePrinter: runs built with the OpenTelemetry SDK, sent through a real receiver, printed."""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from opentelemetry import trace
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.trace import NonRecordingSpan, Span, SpanContext, Status, StatusCode, TraceFlags
from rich.console import Console

from contextcompany import _semconv as sc
from contextcompany.dev import OTLPReceiver, ReceivedSpan, RunTreePrinter
from contextcompany.dev._tree import format_cost, format_duration, message_preview

NS = 1_000_000  # one millisecond in nanoseconds
T0 = 1_700_000_000_000_000_000


@dataclass
class Pipeline:
    receiver: OTLPReceiver
    printer: RunTreePrinter
    tracer: trace.Tracer
    buffer: io.StringIO

    def text(self) -> str:
        return self.buffer.getvalue()

    def span(
        self,
        name: str,
        attributes: dict[str, Any],
        *,
        parent: Span | None = None,
        start_ms: float,
        error: str | None = None,
    ) -> Span:
        """A finished span with exact times, so durations in the tree are known."""
        context = trace.set_span_in_context(parent) if parent is not None else None
        span = self.tracer.start_span(
            name, context=context, attributes=attributes, start_time=T0 + int(start_ms * NS)
        )
        if error is not None:
            span.set_status(Status(StatusCode.ERROR, error))
        return span


@pytest.fixture
def pipe() -> Iterator[Pipeline]:
    buffer = io.StringIO()
    printer = RunTreePrinter(Console(file=buffer, width=120))
    with OTLPReceiver(port=0, on_spans=printer) as receiver:
        provider = TracerProvider(shutdown_on_exit=False)
        # SimpleSpanProcessor: each span is received (and printed) before end() returns.
        provider.add_span_processor(
            SimpleSpanProcessor(OTLPSpanExporter(endpoint=receiver.traces_url, timeout=5))
        )
        yield Pipeline(receiver, printer, provider.get_tracer(sc.INSTRUMENTATION_NAME), buffer)
        provider.shutdown()


def end(span: Span, at_ms: float) -> None:
    span.end(end_time=T0 + int(at_ms * NS))


def weather_run(pipe: Pipeline, run_id: str = "run-0001") -> Span:
    """A run with two steps (the second fails), a tool call under the first step, and run totals."""
    run = pipe.span(
        "invoke_agent weather_agent",
        {
            sc.OPERATION_NAME: sc.OP_INVOKE_AGENT,
            sc.AGENT_NAME: "weather_agent",
            sc.RUN_ID: run_id,
            sc.INPUT_MESSAGES: sc.text_messages("user", "What is the weather in Paris?"),
        },
        start_ms=0,
    )
    step = pipe.span(
        "chat gpt-4o-mini",
        {
            sc.OPERATION_NAME: sc.OP_CHAT,
            sc.REQUEST_MODEL: "gpt-4o-mini",
            sc.RESPONSE_MODEL: "gpt-4o-mini-2024-07-18",
            sc.USAGE_INPUT_TOKENS: 12_345,
            sc.USAGE_CACHE_READ_INPUT_TOKENS: 2_048,
            sc.USAGE_OUTPUT_TOKENS: 321,
            sc.COST_USD: 0.0075,
            sc.COST_SOURCE: sc.COST_SOURCE_COMPUTED,
            sc.RESPONSE_FINISH_REASONS: ("tool_calls",),
        },
        parent=run,
        start_ms=1,
    )
    tool = pipe.span(
        "execute_tool get_weather",
        {
            sc.OPERATION_NAME: sc.OP_EXECUTE_TOOL,
            sc.TOOL_NAME: "get_weather",
            sc.TOOL_CALL_ARGUMENTS: json.dumps({"city": "Paris"}, indent=2),
            sc.TOOL_CALL_RESULT: '{"temp_c": 21, "sky": "sunny"}',
        },
        parent=step,
        start_ms=900,
    )
    end(tool, 912.3)
    end(step, 1_000)
    failed = pipe.span(
        "chat my-local-llm",
        {
            sc.OPERATION_NAME: sc.OP_CHAT,
            sc.REQUEST_MODEL: "my-local-llm",
            sc.USAGE_INPUT_TOKENS: 1_500,
            sc.USAGE_OUTPUT_TOKENS: 0,
            sc.COST_SOURCE: sc.COST_SOURCE_NO_PRICE,
        },
        parent=run,
        start_ms=1_100,
        error="RateLimitError: 429 Too Many Requests",
    )
    end(failed, 1_150)
    assert run_id not in pipe.text()  # steps and tools are held until their run ends
    run.set_attributes(
        {
            sc.OUTPUT_MESSAGES: sc.text_messages("assistant", "It is 21 °C and sunny in Paris.", "stop"),
            sc.RUN_INPUT_TOKENS: 13_845,
            sc.RUN_CACHE_READ_TOKENS: 2_048,
            sc.RUN_OUTPUT_TOKENS: 321,
            sc.RUN_COST_USD: 0.0075,
            sc.RUN_LLM_CALLS: 2,
            sc.RUN_UNPRICED_CALLS: 1,
        }
    )
    end(run, 1_200)
    return run


def test_run_tree(pipe: Pipeline) -> None:
    weather_run(pipe)
    text = pipe.text()
    assert pipe.printer.runs_printed == 1
    lines = text.splitlines()

    assert lines[0].startswith("✔ invoke_agent weather_agent")
    assert "run-0001" in lines[0] and "1.20 s" in lines[0]
    assert "prompt    What is the weather in Paris?" in text
    assert "response  It is 21 °C and sunny in Paris." in text
    # Every step counted, and how many are priced (issue 12: not "2 LLM calls", which skipped none here
    # but skips steps without tokens in general).
    assert "13,845 in · 2,048 cached · 321 out · $0.007500 · 2 steps, 1 priced" in text

    (step,) = [line for line in lines if "gpt-4o-mini" in line]
    assert "gpt-4o-mini-2024-07-18" in step  # the response model wins over the requested one
    assert "12,345 in / 2,048 cached / 321 out" in step
    assert "$0.007500 (computed)" in step and "tool_calls" in step and "999.0 ms" in step

    (tool,) = [line for line in lines if "get_weather" in line]
    assert 'tool get_weather({"city":"Paris"})' in tool  # multi-line JSON arguments flattened
    assert '→ {"temp_c":21,"sky":"sunny"}' in tool and "12.3 ms" in tool
    # The tool call sits under the step, one level deeper than the steps.
    assert tool.index("✔") > step.index("✔")

    (failed,) = [line for line in lines if "my-local-llm" in line]
    assert failed.lstrip("│├└─ ").startswith("✘")
    assert "1,500 in / 0 out" in failed and "no price" in failed
    assert "RateLimitError: 429 Too Many Requests" in failed and "50.0 ms" in failed

    # Children in start order: step, its tool call, then the failed step.
    assert text.index("gpt-4o-mini") < text.index("get_weather") < text.index("my-local-llm")
    assert pipe.printer.pending_span_count == 0


def test_late_feedback_is_a_note(pipe: Pipeline) -> None:
    run = weather_run(pipe)
    printed = pipe.text()
    feedback = {
        sc.EVALUATION_NAME: sc.FEEDBACK_EVALUATION_NAME,
        sc.EVALUATION_SCORE_LABEL: "thumbs_up",
        sc.EVALUATION_SCORE_VALUE: 1.0,
        sc.EVALUATION_EXPLANATION: "Spot on",
        sc.RUN_ID: "run-0001",
    }
    # In the run's trace, under the run span: how tcc.submit_feedback records it.
    end(pipe.span(sc.FEEDBACK_SPAN_NAME, feedback, parent=run, start_ms=5_000), 5_000)
    note = pipe.text()[len(printed) :]
    assert note.count("\n") == 1
    assert "for run run-0001" in note and "feedback" in note and "thumbs_up" in note and '"Spot on"' in note

    # In a trace of its own, found by its run id.
    lone = NonRecordingSpan(
        SpanContext(trace_id=0xABC, span_id=0xDEF, is_remote=True, trace_flags=TraceFlags(TraceFlags.SAMPLED))
    )
    end(
        pipe.span(
            sc.FEEDBACK_SPAN_NAME,
            {**feedback, sc.EVALUATION_SCORE_LABEL: "thumbs_down"},
            parent=lone,
            start_ms=6_000,
        ),
        6_000,
    )
    assert "for run run-0001" in pipe.text().splitlines()[-1] and "thumbs_down" in pipe.text()
    assert pipe.printer.runs_printed == 1


def test_feedback_inside_a_run_is_in_its_tree(pipe: Pipeline) -> None:
    run = pipe.span("invoke_agent", {sc.OPERATION_NAME: sc.OP_INVOKE_AGENT, sc.RUN_ID: "r-fb"}, start_ms=0)
    attributes = {sc.EVALUATION_SCORE_LABEL: "thumbs_down", sc.EVALUATION_EXPLANATION: "wrong city"}
    end(pipe.span(sc.FEEDBACK_SPAN_NAME, attributes, parent=run, start_ms=1), 1)
    other = pipe.span("retrieve_documents", {}, parent=run, start_ms=2)
    end(other, 4.5)
    assert pipe.text() == ""  # nothing until the run ends
    end(run, 10)
    text = pipe.text()
    assert '★ feedback · thumbs_down · "wrong city"' in text
    assert "retrieve_documents · 2.5 ms" in text
    assert "for run" not in text


def test_trace_without_run_is_not_printed(pipe: Pipeline) -> None:
    root = pipe.span("http request", {}, start_ms=0)
    end(pipe.span("db query", {}, parent=root, start_ms=1), 2)
    end(root, 3)
    pipe.receiver.wait_for_spans(2)
    assert pipe.text() == ""
    assert pipe.printer.pending_span_count == 2 and pipe.printer.spans_seen == 2


def test_nested_agent(pipe: Pipeline) -> None:
    outer = pipe.span(
        "invoke_agent planner", {sc.OPERATION_NAME: sc.OP_INVOKE_AGENT, sc.RUN_ID: "outer"}, start_ms=0
    )
    tool = pipe.span(
        "execute_tool research",
        {sc.OPERATION_NAME: sc.OP_EXECUTE_TOOL, sc.TOOL_NAME: "research"},
        parent=outer,
        start_ms=1,
    )
    inner = pipe.span(
        "invoke_agent researcher",
        {sc.OPERATION_NAME: sc.OP_INVOKE_AGENT, sc.RUN_ID: "inner"},
        parent=tool,
        start_ms=2,
    )
    end(
        pipe.span(
            "chat", {sc.OPERATION_NAME: sc.OP_CHAT, sc.REQUEST_MODEL: "inner-model"}, parent=inner, start_ms=3
        ),
        4,
    )
    end(inner, 5)
    # The inner agent ended first and was printed on its own (it could have been the whole story).
    assert pipe.printer.runs_printed == 1 and "inner-model" in pipe.text()
    end(tool, 6)
    end(
        pipe.span(
            "chat", {sc.OPERATION_NAME: sc.OP_CHAT, sc.REQUEST_MODEL: "outer-model"}, parent=outer, start_ms=7
        ),
        8,
    )
    end(outer, 9)
    text = pipe.text()
    outer_tree = text[text.index("invoke_agent planner") :]
    assert "tool research" in outer_tree and "outer-model" in outer_tree
    assert "invoke_agent researcher" in outer_tree and "(printed above)" in outer_tree
    assert "inner-model" not in outer_tree
    assert pipe.printer.runs_printed == 2 and pipe.printer.pending_span_count == 0


# --- without a receiver: spans made by hand -----------------------------------------------------


def received(
    name: str,
    trace_id: str,
    span_id: str,
    *,
    parent: str | None = None,
    attributes: dict[str, Any] | None = None,
    start_ms: float = 0,
) -> ReceivedSpan:
    return ReceivedSpan(
        name=name,
        trace_id=trace_id,
        span_id=span_id,
        parent_span_id=parent,
        kind=1,
        start_time_unix_nano=T0 + int(start_ms * NS),
        end_time_unix_nano=T0 + int(start_ms * NS) + NS,
        status_code=0,
        status_message="",
        attributes=attributes or {},
        events=(),
        resource={},
        scope_name="test",
    )


def run_span(trace_id: str, span_id: str, run_id: str, **attributes: Any) -> ReceivedSpan:
    return received(
        "invoke_agent",
        trace_id,
        span_id,
        attributes={sc.OPERATION_NAME: sc.OP_INVOKE_AGENT, sc.RUN_ID: run_id, **attributes},
    )


def test_memory_is_capped_for_traces_that_never_finish() -> None:
    buffer = io.StringIO()
    printer = RunTreePrinter(Console(file=buffer, width=120), max_pending_traces=3, max_pending_spans=10)
    for t in range(20):
        printer(
            [
                received(f"orphan-{t}-{i}", f"{t:032x}", f"{t:08x}{i:08x}", parent=f"{t:016x}")
                for i in range(2)
            ]
        )
    assert printer.pending_span_count == 6  # three traces of two spans
    assert printer.spans_seen == 40

    # The newest traces were kept: a run arriving for one of them prints with its children.
    printer([run_span(f"{19:032x}", f"{19:016x}", "run-19")])
    text = buffer.getvalue()
    assert "run-19" in text and "orphan-19-0" in text and "orphan-19-1" in text
    # An evicted trace's run prints alone: its early spans are gone.
    printer([run_span(f"{0:032x}", f"{0:016x}", "run-0")])
    assert "run-0" in buffer.getvalue() and "orphan-0-" not in buffer.getvalue()

    # One huge trace keeps only its newest spans.
    printer([received(f"big-{i}", "f" * 32, f"{i:016x}", parent="e" * 16) for i in range(25)])
    assert printer.pending_span_count == 10
    printer([run_span("f" * 32, "e" * 16, "run-big")])
    assert (
        "big-15" in buffer.getvalue() and "big-24" in buffer.getvalue() and "big-14" not in buffer.getvalue()
    )
    assert printer.pending_span_count == 0


def test_printed_spans_are_forgotten() -> None:
    printer = RunTreePrinter(Console(file=io.StringIO(), width=120))
    for t in range(100):
        trace_id = f"{t:032x}"
        printer(
            [
                received("chat", trace_id, f"{t:08x}{1:08x}", parent=f"{t:016x}"),
                run_span(trace_id, f"{t:016x}", f"run-{t}"),
            ]
        )
    assert printer.runs_printed == 100
    assert printer.pending_span_count == 0


def test_missing_and_invalid_attributes_still_print() -> None:
    buffer = io.StringIO()
    printer = RunTreePrinter(Console(file=buffer, width=120))
    trace_id = "a" * 32
    printer(
        [
            received("chat", trace_id, "2" * 16, parent="1" * 16, attributes={sc.OPERATION_NAME: sc.OP_CHAT}),
            received(
                "execute_tool",
                trace_id,
                "3" * 16,
                parent="1" * 16,
                attributes={sc.OPERATION_NAME: sc.OP_EXECUTE_TOOL},
            ),
            received(
                "invoke_agent",
                trace_id,
                "1" * 16,
                attributes={
                    sc.OPERATION_NAME: sc.OP_INVOKE_AGENT,
                    sc.INPUT_MESSAGES: "{not json",
                    sc.OUTPUT_MESSAGES: "[1, 2]",
                    sc.RUN_COST_USD: "n/a",
                },
            ),
        ]
    )
    text = buffer.getvalue()
    assert "invoke_agent" in text and "prompt    {not json" in text
    assert "response" not in text and "totals" not in text
    assert "✔ chat · 1.0 ms" in text and "tool execute_tool · 1.0 ms" in text


def test_ascii_console() -> None:
    class AsciiFile(io.StringIO):
        encoding = "ascii"

    buffer = AsciiFile()
    printer = RunTreePrinter(Console(file=buffer, width=120))
    printer(
        [
            run_span(
                "b" * 32,
                "1" * 16,
                "run-ascii",
                **{sc.INPUT_MESSAGES: sc.text_messages("user", "café → " + "x" * 200)},
            )
        ]
    )
    text = buffer.getvalue()
    text.encode("ascii")  # no glyph the file cannot take
    assert text.startswith("ok invoke_agent") and "x..." in text
    assert "caf? ? xxx" in text  # the user's text, with what ASCII cannot hold replaced


def test_message_preview() -> None:
    messages = json.dumps(
        [
            {"role": "system", "parts": [{"type": "text", "content": "Be brief."}]},
            {"role": "user", "parts": [{"type": "text", "content": "first\nquestion"}]},
            {"role": "assistant", "parts": [{"type": "tool_call", "name": "lookup", "arguments": {}}]},
            {"role": "user", "parts": [{"type": "text", "content": "second   question"}]},
        ]
    )
    assert message_preview(messages, "user", 80) == "second question"
    assert (
        message_preview(messages, None, 80) == "Be brief. first question [tool_call lookup] second question"
    )
    assert message_preview(messages, None, 20) == "Be brief. first que…"
    assert message_preview(None, "user", 80) is None
    assert message_preview("", "user", 80) is None
    assert message_preview("plain text", "user", 80) == "plain text"
    assert message_preview('{"role": "user"}', "user", 80) == '{"role": "user"}'
    assert message_preview("[]", "user", 80) is None
    assert message_preview('[{"role": "user", "content": "old shape"}]', "user", 80) == "old shape"


def test_formats() -> None:
    assert format_duration(12.34) == "12.3 ms"
    assert format_duration(1_200) == "1.20 s"
    assert format_duration(0) == "0.0 ms"
    assert format_cost(0.0075) == "$0.007500"
    assert format_cost(12) == "$12.000000"
