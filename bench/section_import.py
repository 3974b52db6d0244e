"""The post-hoc import: ``tcc.send_run(...)`` of a complete run, against raw OpenTelemetry spans
carrying the same attributes.

- tcc:  ``tcc.send_run(**record)`` per run, each record what ``python -m contextcompany import`` hands it
        for one JSON line: a run with four steps (one of them priced from its reported cost, one given
        as chat messages), tool calls under the run and under steps, metadata, a session, feedback,
        times as ISO strings. Records are built (fresh ids each) outside the timed part.
- raw:  the SDK's TracerProvider + BatchSpanProcessor + OTLPSpanExporter replaying the spans tcc put on
        the wire for one such run (captured once from the sink): the same names, kinds, parents, times,
        status and attributes, roll-ups and computed costs included. JSON-valued attributes (messages,
        tool arguments and results) are encoded with json.dumps per span, as hand-written
        instrumentation converting the same record would.

Per span: the whole process's CPU from the first record until the flush that exported the round
(export included), and the caller thread's share, as medians of paired rounds.

    >>> report = post_hoc_import(Settings(steps=1500, rounds=15, endpoint="http://127.0.0.1:4318"))
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass, field
from functools import partial
from typing import Any

from harness import (
    Check,
    Report,
    Settings,
    Side,
    capture,
    medians,
    paired_ratios,
    paired_rounds,
    ratio_cell,
)
from rich.table import Table

TARGET = 1.3
BASE = "raw OTel spans, same attributes"
SYSTEM = "You are a weather agent. Use the tools to answer; be brief and cite your source."
TOOLS = [
    {"name": "get_weather", "description": "Get the current weather for a city"},
    {"name": "get_forecast", "description": "Get tomorrow's forecast for a city"},
]


def record() -> dict[str, Any]:
    """One run as a JSON line of an import holds it (times as ISO strings), with fresh ids."""

    def uid() -> str:
        return str(uuid.uuid4())

    tools = json.dumps(TOOLS)
    return {
        "run_id": uid(),
        "name": "weather",
        "prompt": {"user_prompt": "Weather in London today and tomorrow?", "system_prompt": SYSTEM},
        "response": "Today 15°C and cloudy; tomorrow 17°C with sun in the afternoon (Met Office).",
        "session_id": "chat-42",
        "conversational": True,
        "metadata": {"customer": "acme", "plan": "pro", "seats": 3},
        "start_time": "2025-01-01T12:00:00.000Z",
        "end_time": "2025-01-01T12:00:06.500Z",
        "steps": [
            {
                "step_id": uid(),
                "prompt": "Weather in London today and tomorrow?",
                "response": "Let me look that up.",
                "model_requested": "gpt-4o",
                "model_used": "gpt-4o-2024-08-06",
                "prompt_uncached_tokens": 180,
                "prompt_cached_tokens": 64,
                "completion_tokens": 22,
                "finish_reason": "tool_calls",
                "tool_definitions": tools,
                "start_time": "2025-01-01T12:00:00.100Z",
                "end_time": "2025-01-01T12:00:01.300Z",
                "tool_calls": [
                    {
                        "tool_call_id": uid(),
                        "tool_name": "get_weather",
                        "args": {"city": "London"},
                        "result": {"temp_c": 15, "sky": "cloudy", "source": "Met Office"},
                        "start_time": "2025-01-01T12:00:01.300Z",
                        "end_time": "2025-01-01T12:00:01.900Z",
                    }
                ],
            },
            {
                "step_id": uid(),
                "prompt": [
                    {"role": "system", "content": SYSTEM},
                    {"role": "user", "content": "Weather in London today and tomorrow?"},
                    {"role": "assistant", "content": "Today 15°C and cloudy. Checking tomorrow."},
                ],
                "response": "Checking the forecast.",
                "model": "gpt-4o",
                "prompt_uncached_tokens": 260,
                "prompt_cached_tokens": 180,
                "completion_tokens": 18,
                "real_total_cost": 0.00121,
                "finish_reason": "tool_calls",
                "tool_definitions": tools,
                "start_time": "2025-01-01T12:00:02.000Z",
                "end_time": "2025-01-01T12:00:03.100Z",
                "tool_calls": [
                    {
                        "tool_call_id": uid(),
                        "tool_name": "get_forecast",
                        "args": {"city": "London", "days": 1},
                        "result": {"temp_c": 17, "sky": "sunny afternoon"},
                        "start_time": "2025-01-01T12:00:03.100Z",
                        "end_time": "2025-01-01T12:00:03.700Z",
                    }
                ],
            },
            {
                "step_id": uid(),
                "prompt": "Summarise: today 15°C cloudy; tomorrow 17°C, sunny afternoon.",
                "response": "Today 15°C and cloudy; tomorrow 17°C with sun in the afternoon.",
                "model": "gpt-4o-mini",
                "prompt_uncached_tokens": 90,
                "completion_tokens": 30,
                "finish_reason": "stop",
                "start_time": "2025-01-01T12:00:03.800Z",
                "end_time": "2025-01-01T12:00:05.000Z",
            },
            {
                "step_id": uid(),
                "prompt": "Check the answer cites its source.",
                "status_code": 2,
                "status_message": "rate limited (429)",
                "start_time": "2025-01-01T12:00:05.100Z",
                "end_time": "2025-01-01T12:00:05.200Z",
            },
        ],
        "tool_calls": [
            {
                "tool_call_id": uid(),
                "name": "lookup_user",
                "args": {"user": "u-17"},
                "result": {"units": "metric", "city": "London"},
                "start_time": "2025-01-01T12:00:00.010Z",
                "end_time": "2025-01-01T12:00:00.090Z",
            }
        ],
        "feedback": {"score": "thumbs_up", "text": "Spot on, thanks"},
    }


def tcc_side() -> Side:
    import contextcompany as tcc

    pending: list[dict[str, Any]] = []

    def prepare(n: int) -> None:
        pending[:] = [record() for _ in range(n)]

    def send(n: int) -> None:
        send_run = tcc.send_run
        for r in pending[:n]:
            send_run(**r)

    return Side(send, tcc.flush, tcc.flush, prepare)


# --- the spans tcc sent, decoded, and replayed with the OpenTelemetry SDK ------------------------------


@dataclass
class _Span:
    span_id: bytes
    parent_id: bytes
    name: str
    kind: Any  # opentelemetry.trace.SpanKind
    start: int
    end: int
    fixed: dict[str, Any]  # attributes sent as they are
    encoded: dict[str, Any]  # JSON attributes, held decoded and encoded for each span
    status: tuple[int, str]
    events: list[tuple[str, dict[str, Any], int]]
    children: list[_Span] = field(default_factory=list)


def _value(any_value: Any) -> Any:
    kind = any_value.WhichOneof("value")
    if kind == "array_value":
        return tuple(_value(v) for v in any_value.array_value.values)
    if kind in ("string_value", "bool_value", "int_value", "double_value"):
        return getattr(any_value, kind)
    raise ValueError(f"bench: an attribute of kind {kind} cannot be replayed; extend _value()")


_dumps = partial(json.dumps, ensure_ascii=False, separators=(",", ":"))


def _split(attributes: Any) -> tuple[dict[str, Any], dict[str, Any]]:
    fixed, encoded = {}, {}
    for kv in attributes:
        value = _value(kv.value)
        if isinstance(value, str) and value[:1] in "[{":
            with_json = json.loads(value)
            if _dumps(with_json) == value:  # only what json.dumps writes back byte for byte
                encoded[kv.key] = with_json
                continue
        fixed[kv.key] = value
    return fixed, encoded


def decode(bodies: list[bytes]) -> list[_Span]:
    """The span trees in OTLP export requests, roots first, children in the order they were sent."""
    from opentelemetry import trace
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
    from opentelemetry.proto.trace.v1.trace_pb2 import Span as SpanProto

    spans: list[_Span] = []
    for body in bodies:
        for resource_spans in ExportTraceServiceRequest.FromString(body).resource_spans:
            for scope_spans in resource_spans.scope_spans:
                for s in scope_spans.spans:
                    if s.links:
                        raise ValueError("bench: tcc sent a span with links; extend decode() to replay them")
                    fixed, encoded = _split(s.attributes)
                    events = [
                        (e.name, {a.key: _value(a.value) for a in e.attributes}, e.time_unix_nano)
                        for e in s.events
                    ]
                    kind = trace.SpanKind[SpanProto.SpanKind.Name(s.kind).removeprefix("SPAN_KIND_")]
                    spans.append(
                        _Span(
                            s.span_id,
                            s.parent_span_id,
                            s.name,
                            kind,
                            s.start_time_unix_nano,
                            s.end_time_unix_nano,
                            fixed,
                            encoded,
                            (s.status.code, s.status.message),
                            events,
                        )
                    )
    by_id = {s.span_id: s for s in spans}
    roots = []
    for s in spans:
        if s.parent_id in by_id:
            by_id[s.parent_id].children.append(s)
        else:
            roots.append(s)
    return roots


def _count(spans: list[_Span]) -> int:
    return sum(1 + _count(s.children) for s in spans)


def raw_side(endpoint: str, roots: list[_Span]) -> Side:
    from opentelemetry import trace
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor
    from opentelemetry.trace import Status, StatusCode

    provider = TracerProvider(resource=Resource.create(), shutdown_on_exit=False)
    processor = BatchSpanProcessor(OTLPSpanExporter(endpoint=endpoint + "/v1/traces"))
    provider.add_span_processor(processor)
    tracer = provider.get_tracer("raw")
    set_in_context = trace.set_span_in_context

    def emit(node: _Span, context: Any) -> None:
        attributes = dict(node.fixed)
        for key, value in node.encoded.items():
            attributes[key] = _dumps(value)
        span = tracer.start_span(
            node.name, context=context, kind=node.kind, attributes=attributes, start_time=node.start
        )
        if node.children:
            inner = set_in_context(span)
            for child in node.children:
                emit(child, inner)
        for name, event_attributes, timestamp in node.events:
            span.add_event(name, event_attributes, timestamp)
        code, message = node.status
        if code:
            span.set_status(Status(StatusCode(code), message or None))
        span.end(end_time=node.end)

    def send(n: int) -> None:
        for _ in range(n):
            for root in roots:
                emit(root, None)

    return Side(send, processor.force_flush, provider.shutdown)


def post_hoc_import(settings: Settings) -> Report:
    """CPU per span of ``tcc.send_run`` against the same spans made with the OpenTelemetry SDK."""
    import contextcompany as tcc

    def send_one() -> None:
        tcc.send_run(**record())
        tcc.flush()

    tcc.flush()  # nothing of an earlier section in the capture
    roots = decode(capture(settings.endpoint, send_one))
    spans_per_run = _count(roots)
    # Rounds of about --steps spans: below the export queue's 2048, so no side drops any.
    runs = max(1, settings.steps // spans_per_run)
    sides = {BASE: raw_side(settings.endpoint, roots), "tcc.send_run": tcc_side()}
    before = tcc.stats()
    try:
        results = paired_rounds(sides, settings.rounds, runs, warm_up=max(1, runs // 3))
    finally:
        for side in sides.values():
            side.close()
    after = tcc.stats()
    warnings = []
    sent = (settings.rounds * runs + max(1, runs // 3)) * spans_per_run
    if after.spans_exported - before.spans_exported != sent or after.spans_dropped != before.spans_dropped:
        warnings.append(
            f"tcc exported {after.spans_exported - before.spans_exported} spans of {sent} sent and "
            f"dropped {after.spans_dropped - before.spans_dropped}: the numbers above are not per span"
        )

    # µs per run -> µs per span (the same spans on both sides; ratios are unchanged)
    micros = {name: (c / spans_per_run, t / spans_per_run) for name, (c, t) in medians(results).items()}
    ratios = paired_ratios(results, BASE)
    table = Table(
        title=f"Post-hoc import: medians over {settings.rounds} paired rounds x {runs} runs of "
        f"{spans_per_run} spans (µs per span)"
    )
    table.add_column("")
    table.add_column("all threads, export included", justify="right")
    table.add_column("ratio", justify="right")
    table.add_column("of which caller thread", justify="right")
    table.add_column("ratio", justify="right")
    checks = []
    for name in sides:
        (caller, total), (r_caller, r_total) = micros[name], ratios[name]
        if name == BASE:
            table.add_row(name, f"{total:.1f}", "1.00x", f"{caller:.1f}", "1.00x")
            continue
        checks.append(Check(f"{name}, all threads", r_total, TARGET))
        table.add_row(
            name, f"{total:.1f}", ratio_cell(r_total, TARGET), f"{caller:.1f}", ratio_cell(r_caller, None)
        )
    return Report(table, checks, f"target: at most {TARGET}x all threads.", warnings)
