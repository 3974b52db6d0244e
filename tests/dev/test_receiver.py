"""OTLPReceiver: real spans exported by the real OpenTelemetry SDK, decoded exactly."""

from __future__ import annotations

import gzip
import http.client
import logging
import threading
import urllib.error
import urllib.request
import zlib
from collections.abc import Iterator

import pytest
from opentelemetry.exporter.otlp.proto.http import Compression
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, ArrayValue, KeyValue, KeyValueList
from opentelemetry.proto.trace.v1.trace_pb2 import ResourceSpans, ScopeSpans, Span
from opentelemetry.proto.trace.v1.trace_pb2 import Status as ProtoStatus
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor, SpanExportResult
from opentelemetry.trace import SpanKind, Status, StatusCode, format_span_id, format_trace_id

from contextcompany.dev import OTLPReceiver, ReceivedEvent, ReceivedSpan

PROTOBUF = {"Content-Type": "application/x-protobuf"}


@pytest.fixture
def rx() -> Iterator[OTLPReceiver]:
    with OTLPReceiver(port=0) as receiver:
        yield receiver


def provider_for(
    receiver: OTLPReceiver,
    *,
    compression: Compression = Compression.NoCompression,
    headers: dict[str, str] | None = None,
    service: str = "receiver-test",
) -> TracerProvider:
    provider = TracerProvider(resource=Resource.create({"service.name": service}), shutdown_on_exit=False)
    exporter = OTLPSpanExporter(
        endpoint=receiver.traces_url, headers=headers, compression=compression, timeout=5
    )
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    return provider


def post(url: str, body: bytes, headers: dict[str, str]) -> tuple[int, bytes]:
    request = urllib.request.Request(url, data=body, headers=headers, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        with error:  # holds the connection until closed
            return error.code, error.read()


def any_value(**kwargs: object) -> AnyValue:
    return AnyValue(**kwargs)  # type: ignore[arg-type]


def hand_made_request() -> ExportTraceServiceRequest:
    """A request with the value shapes the Python SDK never sends: kvlists, bytes, nested arrays."""
    span = Span(
        trace_id=bytes(range(16)),
        span_id=bytes(range(8)),
        parent_span_id=b"",
        name="hand-made",
        kind=Span.SPAN_KIND_CLIENT,
        start_time_unix_nano=1_000_000_000,
        end_time_unix_nano=1_012_300_000,
        attributes=[
            KeyValue(key="bytes", value=any_value(bytes_value=b"\x00\x01")),
            KeyValue(
                key="kv",
                value=any_value(
                    kvlist_value=KeyValueList(
                        values=[
                            KeyValue(key="a", value=any_value(int_value=1)),
                            KeyValue(
                                key="nested",
                                value=any_value(
                                    array_value=ArrayValue(
                                        values=[any_value(string_value="x"), any_value(double_value=2.5)]
                                    )
                                ),
                            ),
                        ]
                    )
                ),
            ),
            KeyValue(key="empty", value=AnyValue()),
        ],
    )
    span.status.code = ProtoStatus.STATUS_CODE_ERROR
    span.status.message = "boom"
    request = ExportTraceServiceRequest(
        resource_spans=[ResourceSpans(scope_spans=[ScopeSpans(spans=[span])])]
    )
    request.resource_spans[0].resource.attributes.append(
        KeyValue(key="service.name", value=any_value(string_value="hand"))
    )
    request.resource_spans[0].scope_spans[0].scope.name = "hand-scope"
    return request


def test_decodes_sdk_spans_exactly(rx: OTLPReceiver) -> None:
    provider = provider_for(rx, headers={"Authorization": "Bearer test-key"}, compression=Compression.Gzip)
    tracer = provider.get_tracer("receiver-scope")
    with tracer.start_as_current_span("parent", kind=SpanKind.SERVER) as parent:
        parent.set_attributes(
            {
                "str": "héllo",
                "int": 42,
                "float": 0.25,
                "bool": True,
                "strs": ["a", "b"],
                "ints": [1, 2, 3],
                "floats": [0.5, 1.5],
                "bools": [True, False],
            }
        )
        parent.add_event("checkpoint", {"step": 1, "label": "first"})
        with tracer.start_as_current_span("child", kind=SpanKind.CLIENT) as child:
            child.set_status(Status(StatusCode.ERROR, "it broke"))
        parent.set_status(Status(StatusCode.OK))
    provider.shutdown()

    spans = rx.wait_for_spans(2)
    assert [s.name for s in spans] == ["child", "parent"]  # arrival order: the child ended first
    got_child, got_parent = spans
    assert isinstance(got_parent, ReceivedSpan)

    parent_ctx, child_ctx = parent.get_span_context(), child.get_span_context()
    assert got_parent.trace_id == format_trace_id(parent_ctx.trace_id)
    assert len(got_parent.trace_id) == 32 and len(got_parent.span_id) == 16
    assert got_parent.span_id == format_span_id(parent_ctx.span_id)
    assert got_parent.parent_span_id is None
    assert got_child.trace_id == got_parent.trace_id
    assert got_child.span_id == format_span_id(child_ctx.span_id)
    assert got_child.parent_span_id == got_parent.span_id

    assert got_parent.attributes == {
        "str": "héllo",
        "int": 42,
        "float": 0.25,
        "bool": True,
        "strs": ("a", "b"),
        "ints": (1, 2, 3),
        "floats": (0.5, 1.5),
        "bools": (True, False),
    }
    assert type(got_parent.attributes["int"]) is int and type(got_parent.attributes["bool"]) is bool
    assert got_parent.events == (
        ReceivedEvent("checkpoint", got_parent.events[0].time_unix_nano, {"step": 1, "label": "first"}),
    )
    assert (
        got_parent.start_time_unix_nano
        <= got_parent.events[0].time_unix_nano
        <= got_parent.end_time_unix_nano
    )

    # OTLP enums, not the Python SDK's: SERVER is 2, CLIENT 3; status 1 ok, 2 error.
    assert (got_parent.kind, got_child.kind) == (2, 3)
    assert (got_parent.status_code, got_parent.status_message) == (1, "")
    assert (got_child.status_code, got_child.status_message) == (2, "it broke")
    assert got_parent.duration_ms == (got_parent.end_time_unix_nano - got_parent.start_time_unix_nano) / 1e6
    assert got_parent.duration_ms >= got_child.duration_ms >= 0

    assert got_parent.resource["service.name"] == "receiver-test"
    assert got_parent.resource["telemetry.sdk.language"] == "python"
    assert got_parent.scope_name == "receiver-scope"

    requests = rx.requests
    assert len(requests) == 2 and [r.span_count for r in requests] == [1, 1]
    for request in requests:
        assert request.path == "/v1/traces"
        assert request.status == 200
        assert request.headers["authorization"] == "Bearer test-key"
        assert request.headers["content-type"] == "application/x-protobuf"
        assert request.content_encoding == "gzip"
        assert all(name == name.lower() for name in request.headers)


@pytest.mark.parametrize(
    ("compression", "encoding"), [(Compression.Deflate, "deflate"), (Compression.NoCompression, None)]
)
def test_other_compressions(rx: OTLPReceiver, compression: Compression, encoding: str | None) -> None:
    provider = provider_for(rx, compression=compression)
    with provider.get_tracer("t").start_as_current_span("one", attributes={"k": "v"}):
        pass
    provider.shutdown()
    (span,) = rx.wait_for_spans(1)
    assert (span.name, span.attributes) == ("one", {"k": "v"})
    assert rx.requests[0].content_encoding == encoding


def test_batch_processor_many_spans_one_request(rx: OTLPReceiver) -> None:
    provider = TracerProvider(shutdown_on_exit=False)
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(endpoint=rx.traces_url)))
    tracer = provider.get_tracer("t")
    for i in range(50):
        with tracer.start_as_current_span(f"span-{i}"):
            pass
    assert provider.force_flush(5_000)
    spans = rx.wait_for_spans(50)
    assert sorted(s.name for s in spans) == sorted(f"span-{i}" for i in range(50))
    assert sum(r.span_count for r in rx.requests) == 50
    provider.shutdown()


def test_decodes_kvlists_bytes_and_empty_values(rx: OTLPReceiver) -> None:
    body = hand_made_request().SerializeToString()
    status, reply = post(rx.traces_url, body, PROTOBUF)
    assert status == 200
    assert reply == ExportTraceServiceResponse().SerializeToString()

    (span,) = rx.spans
    assert span.attributes == {"bytes": b"\x00\x01", "kv": {"a": 1, "nested": ("x", 2.5)}, "empty": None}
    assert span.trace_id == bytes(range(16)).hex() and span.span_id == bytes(range(8)).hex()
    assert span.parent_span_id is None
    assert (span.kind, span.status_code, span.status_message) == (3, 2, "boom")
    assert span.duration_ms == pytest.approx(12.3)
    assert (span.resource, span.scope_name) == ({"service.name": "hand"}, "hand-scope")


@pytest.mark.parametrize(
    ("encoding", "compress"),
    [
        ("gzip", gzip.compress),
        ("deflate", zlib.compress),
        ("deflate", lambda data: zlib.compress(data)[2:-4]),  # raw deflate, as some clients send it
        ("identity", lambda data: data),
    ],
)
def test_content_encodings(rx: OTLPReceiver, encoding: str, compress: object) -> None:
    assert callable(compress)
    body = compress(hand_made_request().SerializeToString())
    status, _ = post(rx.traces_url, body, {**PROTOBUF, "Content-Encoding": encoding})
    assert status == 200
    assert [s.name for s in rx.spans] == ["hand-made"]


def test_response_is_protobuf(rx: OTLPReceiver) -> None:
    request = urllib.request.Request(
        rx.traces_url, data=ExportTraceServiceRequest().SerializeToString(), headers=PROTOBUF, method="POST"
    )
    with urllib.request.urlopen(request, timeout=5) as response:
        assert response.status == 200
        assert response.headers["Content-Type"] == "application/x-protobuf"
        assert response.read() == b""
    assert rx.requests[0].span_count == 0


def test_bad_bodies_are_400_and_the_server_keeps_serving(rx: OTLPReceiver) -> None:
    assert post(rx.traces_url, b"\xff\xff\xff\xff", PROTOBUF)[0] == 400
    assert post(rx.traces_url, b"not gzip at all", {**PROTOBUF, "Content-Encoding": "gzip"})[0] == 400
    truncated = gzip.compress(hand_made_request().SerializeToString())[:20]
    assert post(rx.traces_url, truncated, {**PROTOBUF, "Content-Encoding": "gzip"})[0] == 400
    status, reply = post(rx.traces_url, b"\xff\xff", PROTOBUF)
    assert status == 400 and b"cannot decode" in reply  # a google.rpc.Status with a readable message
    assert rx.spans == []
    assert [r.status for r in rx.requests] == [400, 400, 400, 400]

    provider = provider_for(rx)
    with provider.get_tracer("t").start_as_current_span("after-bad"):
        pass
    provider.shutdown()
    assert [s.name for s in rx.wait_for_spans(1)] == ["after-bad"]


def test_wrong_path_method_and_content_type(rx: OTLPReceiver) -> None:
    body = hand_made_request().SerializeToString()
    assert post(rx.endpoint + "/v1/metrics", body, PROTOBUF)[0] == 404
    assert post(rx.endpoint + "/", body, PROTOBUF)[0] == 404
    assert post(rx.traces_url, body, {"Content-Type": "application/json"})[0] == 415
    assert post(rx.traces_url, body, {**PROTOBUF, "Content-Encoding": "br"})[0] == 415
    with pytest.raises(urllib.error.HTTPError) as info:
        urllib.request.urlopen(rx.traces_url, timeout=5)
    assert info.value.code == 405
    info.value.close()
    assert rx.spans == []
    assert [(r.path, r.status) for r in rx.requests] == [
        ("/v1/metrics", 404),
        ("/", 404),
        ("/v1/traces", 415),
        ("/v1/traces", 415),
        ("/v1/traces", 405),
    ]
    assert (
        post(rx.traces_url + "?x=1", body, {**PROTOBUF, "Content-Type": "application/x-protobuf; v=1"})[0]
        == 200
    )


def test_chunked_body_and_keep_alive(rx: OTLPReceiver) -> None:
    body = hand_made_request().SerializeToString()
    conn = http.client.HTTPConnection("127.0.0.1", rx.port, timeout=5)
    try:
        conn.request(
            "POST", "/v1/traces", body=iter([body[:10], body[10:]]), headers=PROTOBUF, encode_chunked=True
        )
        assert conn.getresponse().read() == b""
        # Same connection, second request: HTTP/1.1 keep-alive works.
        conn.request("POST", "/v1/traces", body=body, headers=PROTOBUF)
        response = conn.getresponse()
        assert response.status == 200
        response.read()
        assert len(rx.spans) == 2

        rx.stop()

        # Stopping closes open keep-alive connections: nothing more is received on them.
        def send_again() -> None:
            conn.request("POST", "/v1/traces", body=body, headers=PROTOBUF)
            conn.getresponse().read()

        with pytest.raises((ConnectionError, http.client.HTTPException, OSError)):
            send_again()
        assert len(rx.spans) == 2
    finally:
        conn.close()


def test_wait_for_timeout_names_what_arrived(rx: OTLPReceiver) -> None:
    post(rx.traces_url, hand_made_request().SerializeToString(), PROTOBUF)
    assert (
        rx.wait_for(lambda spans: any(s.name == "hand-made" for s in spans), timeout=1)[0].name == "hand-made"
    )
    with pytest.raises(TimeoutError, match=r"1 span\(s\) arrived.*'hand-made'"):
        rx.wait_for_spans(2, timeout=0.2)
    rx.clear()
    assert rx.spans == [] and rx.requests == []
    with pytest.raises(TimeoutError, match=r"0 span\(s\) arrived"):
        rx.wait_for(bool, timeout=0.1)


def test_wait_for_wakes_on_arrival(rx: OTLPReceiver) -> None:
    body = hand_made_request().SerializeToString()
    timer = threading.Timer(0.1, post, (rx.traces_url, body, PROTOBUF))
    timer.start()
    try:
        assert [s.name for s in rx.wait_for_spans(1, timeout=10)] == ["hand-made"]
    finally:
        timer.join()


def test_on_spans_runs_before_the_response(caplog: pytest.LogCaptureFixture) -> None:
    seen: list[list[str]] = []

    def on_spans(spans: list[ReceivedSpan]) -> None:
        seen.append([s.name for s in spans])
        if spans[0].name == "explode":
            raise RuntimeError("callback bug")

    with OTLPReceiver(port=0, on_spans=on_spans) as receiver:
        exporter = OTLPSpanExporter(endpoint=receiver.traces_url, timeout=5)
        provider = TracerProvider(shutdown_on_exit=False)
        tracer = provider.get_tracer("t")
        with tracer.start_as_current_span("first") as first:
            pass
        assert exporter.export([first]) is SpanExportResult.SUCCESS  # type: ignore[list-item]
        # No waiting: the callback ran before the exporter got its answer.
        assert seen == [["first"]]

        with caplog.at_level(logging.ERROR, logger="contextcompany.dev._receiver"):
            with tracer.start_as_current_span("explode") as explode:
                pass
            assert exporter.export([explode]) is SpanExportResult.SUCCESS  # type: ignore[list-item]
        assert "callback bug" in caplog.text
        assert [s.name for s in receiver.spans] == ["first", "explode"]

        with tracer.start_as_current_span("still-serving") as last:
            pass
        assert exporter.export([last]) is SpanExportResult.SUCCESS  # type: ignore[list-item]
        assert seen[-1] == ["still-serving"]
        exporter.shutdown()  # type: ignore[no-untyped-call]


def test_concurrent_exports(rx: OTLPReceiver) -> None:
    body = hand_made_request().SerializeToString()
    threads = [threading.Thread(target=post, args=(rx.traces_url, body, PROTOBUF)) for _ in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(rx.wait_for_spans(16)) == 16
    assert len(rx.requests) == 16


def test_max_kept_spans_keeps_the_newest() -> None:
    with OTLPReceiver(port=0, max_kept_spans=2) as receiver:
        for _ in range(3):
            post(receiver.traces_url, hand_made_request().SerializeToString(), PROTOBUF)
        assert len(receiver.spans) == 2 and len(receiver.requests) == 2


def test_lifecycle_and_urls() -> None:
    receiver = OTLPReceiver(port=0)
    with pytest.raises(RuntimeError, match="port=0"):
        _ = receiver.endpoint
    receiver.start()
    receiver.start()  # idempotent
    try:
        port = receiver.port
        assert port > 0
        assert receiver.endpoint == f"http://127.0.0.1:{port}"
        assert receiver.traces_url == f"http://127.0.0.1:{port}/v1/traces"
        # The port is really taken: a second receiver cannot bind it.
        with pytest.raises(OSError, match="in use"):
            OTLPReceiver(port=port).start()
    finally:
        receiver.stop()
        receiver.stop()  # idempotent
    assert not receiver.running
    assert receiver.endpoint == f"http://127.0.0.1:{port}"  # still known after stopping
    assert OTLPReceiver("0.0.0.0", 4318).endpoint == "http://127.0.0.1:4318"
    assert OTLPReceiver("::1", 4318).traces_url == "http://[::1]:4318/v1/traces"


def test_a_refused_request_is_logged_once_with_the_path_expected(caplog: pytest.LogCaptureFixture) -> None:
    with OTLPReceiver(port=0) as rx:
        for _ in range(3):
            request = urllib.request.Request(
                rx.endpoint + "/v1/trace", data=b"x", headers={"Content-Type": "application/x-protobuf"}
            )
            with pytest.raises(urllib.error.HTTPError) as refused:
                urllib.request.urlopen(request, timeout=5)
            assert refused.value.code == 404
    warnings = [r.getMessage() for r in caplog.records if "refused POST /v1/trace " in r.getMessage()]
    assert len(warnings) == 1, warnings
    assert "with 404" in warnings[0] and "OTLP/HTTP traces go to /v1/traces" in warnings[0]
