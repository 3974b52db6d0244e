"""A local OTLP/HTTP trace receiver: what an exporter would send to a collector, decoded in memory.

It serves ``POST /v1/traces`` with protobuf bodies (plain, gzip or deflate), answers exactly like a
collector does, and keeps every decoded span and every request for inspection. The ``dev`` command
prints runs from it and stores them for its web viewer, and the end-to-end tests assert on it. Given
``on_metrics``, it also takes ``POST /v1/metrics``; given ``web``, it answers other GET requests with it
(the viewer's pages, on the same port).

Example::

    with OTLPReceiver(port=0) as rx:
        exporter = OTLPSpanExporter(endpoint=rx.traces_url)
        ...  # export spans
        spans = rx.wait_for_spans(3)
        assert spans[0].attributes["gen_ai.operation.name"] == "chat"
"""

from __future__ import annotations

import contextlib
import gzip
import logging
import socket
import socketserver
import threading
import time
import zlib
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any, Final

from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
    ExportMetricsServiceRequest,
    ExportMetricsServiceResponse,
)
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.trace.v1.trace_pb2 import Span

__all__ = ["OTLPReceiver", "ReceivedEvent", "ReceivedRequest", "ReceivedSpan", "WebHandler", "WebResponse"]

_logger = logging.getLogger(__name__)

TRACES_PATH: Final = "/v1/traces"
METRICS_PATH: Final = "/v1/metrics"
# A collector's default limit; it also bounds what a gzip bomb can inflate to.
MAX_BODY_BYTES: Final = 64 * 1024 * 1024
_PROTOBUF_CONTENT_TYPES: Final = frozenset({"application/x-protobuf", "application/protobuf"})
# google.rpc.Code values the OTLP spec asks error responses to carry in a Status message.
_RPC_INVALID_ARGUMENT: Final = 3
_RPC_NOT_FOUND: Final = 5
_RPC_RESOURCE_EXHAUSTED: Final = 8
_RPC_UNIMPLEMENTED: Final = 12


@dataclass(frozen=True, slots=True)
class ReceivedEvent:
    """One span event (for instance an exception), with its attributes decoded to Python values."""

    name: str
    time_unix_nano: int
    attributes: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class ReceivedSpan:
    """One span as the receiver decoded it from OTLP.

    ``kind`` is the OTLP enum (1 internal, 2 server, 3 client, 4 producer, 5 consumer), which is
    not the Python SDK's ``SpanKind`` numbering. ``status_code`` is 0 unset, 1 ok, 2 error. Attribute
    values are str, bool, int, float or bytes; arrays become tuples and key-value lists dicts.
    """

    name: str
    trace_id: str
    span_id: str
    parent_span_id: str | None
    kind: int
    start_time_unix_nano: int
    end_time_unix_nano: int
    status_code: int
    status_message: str
    attributes: dict[str, Any]
    events: tuple[ReceivedEvent, ...]
    resource: dict[str, Any]
    scope_name: str

    @property
    def duration_ms(self) -> float:
        """End minus start, in milliseconds (never negative)."""
        return max(0, self.end_time_unix_nano - self.start_time_unix_nano) / 1e6


@dataclass(frozen=True, slots=True)
class ReceivedRequest:
    """One HTTP request the receiver answered, whatever the outcome.

    Header names are lower-cased (repeated headers are joined with ", "). ``content_encoding`` is
    the lower-cased ``Content-Encoding`` or None, ``status`` the HTTP status the receiver answered.
    """

    path: str
    headers: dict[str, str]
    span_count: int
    content_encoding: str | None
    status: int = 200


@dataclass(frozen=True, slots=True)
class WebResponse:
    """What a ``web`` handler answers a GET with: status, body and headers (Content-Type included)."""

    status: int
    body: bytes
    headers: dict[str, str] = field(default_factory=dict)


# (path with query string, lower-cased request headers) -> the response; called on a server thread.
WebHandler = Callable[[str, dict[str, str]], WebResponse]


class _RequestError(Exception):
    """A request the receiver refuses; carries the HTTP status and the gRPC code for the reply."""

    def __init__(self, status: HTTPStatus, rpc_code: int, message: str, *, close: bool = False) -> None:
        super().__init__(message)
        self.status = status
        self.rpc_code = rpc_code
        self.message = message
        # The body was not read, so the connection cannot carry another request.
        self.close = close


# --- decoding -----------------------------------------------------------------------------------


def _any_value(value: AnyValue) -> Any:
    kind = value.WhichOneof("value")
    if kind == "string_value":
        return value.string_value
    if kind == "bool_value":
        return value.bool_value
    if kind == "int_value":
        return value.int_value
    if kind == "double_value":
        return value.double_value
    if kind == "bytes_value":
        return value.bytes_value
    if kind == "array_value":
        return tuple(_any_value(v) for v in value.array_value.values)
    if kind == "kvlist_value":
        return _attributes(value.kvlist_value.values)
    return None  # an empty AnyValue, or a profiles-only string-table reference


def _attributes(pairs: Any) -> dict[str, Any]:
    out: dict[str, Any] = {}
    kv: KeyValue
    for kv in pairs:
        out[kv.key] = _any_value(kv.value)
    return out


def _span(span: Span, resource: dict[str, Any], scope_name: str) -> ReceivedSpan:
    return ReceivedSpan(
        name=span.name,
        trace_id=span.trace_id.hex(),
        span_id=span.span_id.hex(),
        parent_span_id=span.parent_span_id.hex() or None,
        kind=int(span.kind),
        start_time_unix_nano=span.start_time_unix_nano,
        end_time_unix_nano=span.end_time_unix_nano,
        status_code=int(span.status.code),
        status_message=span.status.message,
        attributes=_attributes(span.attributes),
        events=tuple(
            ReceivedEvent(name=e.name, time_unix_nano=e.time_unix_nano, attributes=_attributes(e.attributes))
            for e in span.events
        ),
        # Each span gets its own copy so one consumer mutating it cannot change another's view.
        resource=dict(resource),
        scope_name=scope_name,
    )


def decode_spans(body: bytes) -> list[ReceivedSpan]:
    """Decode a serialized ``ExportTraceServiceRequest`` into spans, in the order they were sent."""
    request = ExportTraceServiceRequest()
    request.ParseFromString(body)
    spans: list[ReceivedSpan] = []
    for resource_spans in request.resource_spans:
        resource = _attributes(resource_spans.resource.attributes)
        for scope_spans in resource_spans.scope_spans:
            scope_name = scope_spans.scope.name
            spans.extend(_span(s, resource, scope_name) for s in scope_spans.spans)
    return spans


def _inflate(data: bytes, wbits: int) -> bytes:
    # max_length bounds the output, so a small compressed body cannot exhaust memory.
    inflater = zlib.decompressobj(wbits)
    out = inflater.decompress(data, MAX_BODY_BYTES + 1)
    if len(out) > MAX_BODY_BYTES:
        raise _RequestError(
            HTTPStatus.REQUEST_ENTITY_TOO_LARGE, _RPC_RESOURCE_EXHAUSTED, "decompressed body too large"
        )
    if not inflater.eof:
        raise _RequestError(HTTPStatus.BAD_REQUEST, _RPC_INVALID_ARGUMENT, "truncated compressed body")
    return out


def _decompress(body: bytes, encoding: str | None) -> bytes:
    if encoding in (None, "", "identity", "none"):
        return body
    try:
        if encoding in ("gzip", "x-gzip"):
            return _inflate(body, 16 + zlib.MAX_WBITS)
        if encoding == "deflate":
            # HTTP "deflate" means zlib-wrapped data, but some clients send raw deflate: accept both.
            try:
                return _inflate(body, zlib.MAX_WBITS)
            except zlib.error:
                return _inflate(body, -zlib.MAX_WBITS)
    except (zlib.error, gzip.BadGzipFile, EOFError) as exc:
        raise _RequestError(
            HTTPStatus.BAD_REQUEST, _RPC_INVALID_ARGUMENT, f"cannot decompress {encoding} body: {exc}"
        ) from exc
    raise _RequestError(
        HTTPStatus.UNSUPPORTED_MEDIA_TYPE, _RPC_INVALID_ARGUMENT, f"unsupported Content-Encoding {encoding!r}"
    )


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        byte = n & 0x7F
        n >>= 7
        if n:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def _rpc_status(code: int, message: str) -> bytes:
    # google.rpc.Status{code = 1; message = 2}, which the OTLP spec asks 4xx/5xx bodies to be.
    # Encoded by hand because it is two fields and not worth a dependency on googleapis protos.
    text = message.encode("utf-8")
    return b"\x08" + _varint(code) + b"\x12" + _varint(len(text)) + text


# --- HTTP ---------------------------------------------------------------------------------------


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    # socketserver's default backlog of 5 makes a burst of parallel exporters wait a second for a SYN
    # retry; a collector-like backlog keeps them instant.
    request_queue_size = 128
    receiver: OTLPReceiver

    def server_bind(self) -> None:
        # HTTPServer.server_bind resolves the host's FQDN, which can stall on a slow resolver;
        # a loopback receiver never needs that name.
        socketserver.TCPServer.server_bind(self)
        host, port = self.server_address[:2]
        self.server_name = str(host)
        self.server_port = int(port)

    def handle_error(self, request: Any, client_address: Any) -> None:
        # The base class prints a traceback to stderr, e.g. when a client hangs up mid-reply.
        _logger.debug("OTLPReceiver: error serving %s", client_address, exc_info=True)


class _Server6(_Server):
    address_family = socket.AF_INET6


class _Handler(BaseHTTPRequestHandler):
    # HTTP/1.1 lets an exporter keep its connection open between batches.
    protocol_version = "HTTP/1.1"
    server_version = "contextcompany-dev"
    # An idle keep-alive connection does not hold its thread forever.
    timeout = 60
    server: _Server

    def setup(self) -> None:
        super().setup()
        self.server.receiver._track(self.connection)

    def finish(self) -> None:
        try:
            super().finish()
        finally:
            self.server.receiver._untrack(self.connection)

    def log_message(self, format: str, *args: Any) -> None:
        # Quiet: a dev tool printing one line per export would drown the run trees.
        return

    def _headers(self) -> dict[str, str]:
        out: dict[str, str] = {}
        for name, value in self.headers.items():
            key = name.lower()
            out[key] = f"{out[key]}, {value}" if key in out else value
        return out

    def _read_body(self) -> bytes:
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            return self._read_chunked()
        raw_length = self.headers.get("Content-Length")
        try:
            length = int(raw_length) if raw_length is not None else 0
        except ValueError:
            raise _RequestError(
                HTTPStatus.BAD_REQUEST, _RPC_INVALID_ARGUMENT, "invalid Content-Length", close=True
            ) from None
        if length < 0:
            raise _RequestError(
                HTTPStatus.BAD_REQUEST, _RPC_INVALID_ARGUMENT, "invalid Content-Length", close=True
            )
        if length > MAX_BODY_BYTES:
            raise _RequestError(
                HTTPStatus.REQUEST_ENTITY_TOO_LARGE, _RPC_RESOURCE_EXHAUSTED, "body too large", close=True
            )
        body = self.rfile.read(length)
        if len(body) != length:
            raise _RequestError(HTTPStatus.BAD_REQUEST, _RPC_INVALID_ARGUMENT, "truncated body", close=True)
        return body

    def _read_chunked(self) -> bytes:
        chunks: list[bytes] = []
        total = 0
        while True:
            line = self.rfile.readline(1024)
            try:
                size = int(line.split(b";", 1)[0].strip(), 16)
            except ValueError:
                raise _RequestError(
                    HTTPStatus.BAD_REQUEST, _RPC_INVALID_ARGUMENT, "invalid chunked body", close=True
                ) from None
            if size == 0:
                # Skip trailers up to the blank line that ends the message.
                while self.rfile.readline(1024) not in (b"\r\n", b"\n", b""):
                    pass
                return b"".join(chunks)
            total += size
            if total > MAX_BODY_BYTES:
                raise _RequestError(
                    HTTPStatus.REQUEST_ENTITY_TOO_LARGE, _RPC_RESOURCE_EXHAUSTED, "body too large", close=True
                )
            chunk = self.rfile.read(size)
            if len(chunk) != size:
                raise _RequestError(
                    HTTPStatus.BAD_REQUEST, _RPC_INVALID_ARGUMENT, "truncated chunked body", close=True
                )
            chunks.append(chunk)
            self.rfile.readline(1024)  # the CRLF after each chunk

    def _path(self) -> str:
        return self.path.split("?", 1)[0]

    def _reply(self, status: HTTPStatus, body: bytes, *, close: bool = False) -> None:
        self.send_response(status)
        self.send_header("Content-Type", "application/x-protobuf")
        self.send_header("Content-Length", str(len(body)))
        if close:
            self.send_header("Connection", "close")
            self.close_connection = True
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)
        self.wfile.flush()

    def _refuse(self, error: _RequestError, headers: dict[str, str], encoding: str | None) -> None:
        self.server.receiver._record(
            ReceivedRequest(self._path(), headers, 0, encoding, int(error.status)), None
        )
        self._reply(error.status, _rpc_status(error.rpc_code, error.message), close=error.close)

    def do_POST(self) -> None:
        headers = self._headers()
        encoding = headers.get("content-encoding", "").strip().lower() or None
        receiver = self.server.receiver
        metrics = self._path() == METRICS_PATH and receiver._on_metrics is not None
        try:
            if self._path() != TRACES_PATH and not metrics:
                raise _RequestError(
                    HTTPStatus.NOT_FOUND, _RPC_NOT_FOUND, f"no such path {self._path()!r}", close=True
                )
            content_type = headers.get("content-type", "").split(";", 1)[0].strip().lower()
            if content_type not in _PROTOBUF_CONTENT_TYPES:
                raise _RequestError(
                    HTTPStatus.UNSUPPORTED_MEDIA_TYPE,
                    _RPC_INVALID_ARGUMENT,
                    f"unsupported Content-Type {content_type or '(none)'!r}; send application/x-protobuf",
                    close=True,
                )
            body = _decompress(self._read_body(), encoding)
            if metrics:
                self._metrics(body, headers, encoding)
                return
            try:
                spans = decode_spans(body)
            except Exception as exc:  # protobuf raises DecodeError, but any failure means a bad body
                raise _RequestError(
                    HTTPStatus.BAD_REQUEST, _RPC_INVALID_ARGUMENT, f"cannot decode body: {exc}"
                ) from exc
        except _RequestError as error:
            self._refuse(error, headers, encoding)
            return
        # Delivered before answering, so an exporter that flushed at exit has been handled when it exits.
        self.server.receiver._accept(ReceivedRequest(TRACES_PATH, headers, len(spans), encoding), spans)
        self._reply(HTTPStatus.OK, ExportTraceServiceResponse().SerializeToString())

    def _metrics(self, body: bytes, headers: dict[str, str], encoding: str | None) -> None:
        request = ExportMetricsServiceRequest()
        try:
            request.ParseFromString(body)
        except Exception as exc:  # protobuf raises DecodeError, but any failure means a bad body
            raise _RequestError(
                HTTPStatus.BAD_REQUEST, _RPC_INVALID_ARGUMENT, f"cannot decode body: {exc}"
            ) from exc
        self.server.receiver._accept_metrics(ReceivedRequest(METRICS_PATH, headers, 0, encoding), request)
        self._reply(HTTPStatus.OK, ExportMetricsServiceResponse().SerializeToString())

    def _web(self) -> bool:
        web = self.server.receiver._web
        if web is None or self._path() in (TRACES_PATH, METRICS_PATH):
            return False
        try:
            response = web(self.path, self._headers())
        except Exception:
            _logger.exception("OTLPReceiver web handler failed")
            response = WebResponse(500, b"internal error\n", {"Content-Type": "text/plain; charset=utf-8"})
        self.send_response(response.status)
        for name, value in response.headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(response.body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(response.body)
        self.wfile.flush()
        return True

    def _not_allowed(self) -> None:
        headers = self._headers()
        encoding = headers.get("content-encoding", "").strip().lower() or None
        if self._path() == TRACES_PATH or (
            self._path() == METRICS_PATH and self.server.receiver._on_metrics is not None
        ):
            error = _RequestError(
                HTTPStatus.METHOD_NOT_ALLOWED, _RPC_UNIMPLEMENTED, "only POST is supported", close=True
            )
        else:
            error = _RequestError(
                HTTPStatus.NOT_FOUND, _RPC_NOT_FOUND, f"no such path {self._path()!r}", close=True
            )
        self._refuse(error, headers, encoding)

    def do_GET(self) -> None:
        if not self._web():
            self._not_allowed()

    def do_HEAD(self) -> None:
        if not self._web():
            self._not_allowed()

    def do_PUT(self) -> None:
        self._not_allowed()

    def do_PATCH(self) -> None:
        self._not_allowed()

    def do_DELETE(self) -> None:
        self._not_allowed()

    def do_OPTIONS(self) -> None:
        self._not_allowed()


# --- the receiver -------------------------------------------------------------------------------


class OTLPReceiver:
    """An OTLP/HTTP trace receiver on a local port, keeping what it receives in memory.

    ``port=0`` picks a free port. ``on_spans`` is called on a server thread with each request's
    spans before the response is sent; calls never overlap, and an exception in it is logged.
    ``max_kept_spans`` keeps only the most recent spans (and as many requests) in memory; the
    default keeps everything, which is what tests want. ``on_metrics`` (called like ``on_spans``, with
    each decoded ``ExportMetricsServiceRequest``) turns on ``POST /v1/metrics``; ``web`` answers GET and
    HEAD requests for any other path.

    Example::

        with OTLPReceiver(port=0) as rx:
            os.environ["OTEL_EXPORTER_OTLP_ENDPOINT"] = rx.endpoint
            run_my_agent()
            run_span = rx.wait_for(lambda spans: any(s.name.startswith("invoke_agent") for s in spans))
    """

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 4318,
        on_spans: Callable[[list[ReceivedSpan]], None] | None = None,
        *,
        max_kept_spans: int | None = None,
        on_metrics: Callable[[ExportMetricsServiceRequest], None] | None = None,
        web: WebHandler | None = None,
    ) -> None:
        self._host = host
        self._port = port
        self._on_spans = on_spans
        self._on_metrics = on_metrics
        self._web = web
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self._cond = threading.Condition()
        # A long-lived server (the dev command) bounds what it keeps; tests keep everything.
        self._spans: deque[ReceivedSpan] = deque(maxlen=max_kept_spans)
        self._requests: deque[ReceivedRequest] = deque(maxlen=max_kept_spans)
        self._version = 0  # bumped on every change, so waiters know to look again
        # Serializes on_spans, so a callback with state (the tree printer) needs no locking of its own.
        self._deliver_lock = threading.Lock()
        self._connections: set[socket.socket] = set()
        self._connections_lock = threading.Lock()
        self._closing = False
        self._lifecycle_lock = threading.Lock()

    # -- lifecycle --

    def start(self) -> OTLPReceiver:
        """Bind the port and serve on a daemon thread; raises OSError if the port is taken."""
        with self._lifecycle_lock:
            if self._server is not None:
                return self
            server_class = _Server6 if ":" in self._host else _Server
            server = server_class((self._host, self._port), _Handler)
            server.receiver = self
            with self._connections_lock:
                self._closing = False
            # A short poll interval makes stop() return quickly.
            thread = threading.Thread(
                target=server.serve_forever,
                kwargs={"poll_interval": 0.05},
                name=f"otlp-receiver:{server.server_port}",
                daemon=True,
            )
            thread.start()
            self._server, self._thread = server, thread
            return self

    def stop(self) -> None:
        """Stop serving and close open connections; safe to call more than once."""
        with self._lifecycle_lock:
            server, thread = self._server, self._thread
            if server is None:
                return
            self._server = self._thread = None
            # Keep the bound port readable (endpoint, messages) after the server is gone.
            self._port = server.server_port
            server.shutdown()
            server.server_close()
            # Keep-alive connections would otherwise keep their handler threads serving.
            with self._connections_lock:
                self._closing = True  # a connection accepted just before shutdown is closed on arrival
                connections = list(self._connections)
            for conn in connections:
                with contextlib.suppress(OSError):
                    conn.shutdown(socket.SHUT_RDWR)
            if thread is not None:
                thread.join(timeout=5)

    def __enter__(self) -> OTLPReceiver:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    @property
    def running(self) -> bool:
        return self._server is not None

    @property
    def host(self) -> str:
        return self._host

    @property
    def port(self) -> int:
        """The bound port (the one the system picked when constructed with ``port=0``)."""
        server = self._server
        if server is not None:
            return server.server_port
        if self._port == 0:
            raise RuntimeError("OTLPReceiver(port=0) has no port until start()")
        return self._port

    @property
    def endpoint(self) -> str:
        """Base URL for ``OTEL_EXPORTER_OTLP_ENDPOINT``, e.g. ``http://127.0.0.1:4318``."""
        # A wildcard bind is reached through loopback; IPv6 literals need brackets in a URL.
        host = {"0.0.0.0": "127.0.0.1", "": "127.0.0.1", "::": "::1"}.get(self._host, self._host)
        if ":" in host:
            host = f"[{host}]"
        return f"http://{host}:{self.port}"

    @property
    def traces_url(self) -> str:
        """Full URL of the traces endpoint, for ``OTLPSpanExporter(endpoint=...)``."""
        return self.endpoint + TRACES_PATH

    # -- what arrived --

    @property
    def spans(self) -> list[ReceivedSpan]:
        """A snapshot of every span received so far, in arrival order."""
        with self._cond:
            return list(self._spans)

    @property
    def requests(self) -> list[ReceivedRequest]:
        """A snapshot of every request answered so far, in order."""
        with self._cond:
            return list(self._requests)

    def clear(self) -> None:
        """Forget the spans and requests received so far."""
        with self._cond:
            self._spans.clear()
            self._requests.clear()
            self._version += 1
            self._cond.notify_all()

    def wait_for(
        self, predicate: Callable[[list[ReceivedSpan]], bool], timeout: float = 10.0
    ) -> list[ReceivedSpan]:
        """Block until ``predicate(spans)`` holds and return that snapshot; TimeoutError otherwise."""
        deadline = time.monotonic() + timeout
        while True:
            with self._cond:
                snapshot = list(self._spans)
                seen = self._version
            # Evaluated without the lock, so a predicate may itself read the receiver.
            if predicate(snapshot):
                return snapshot
            with self._cond:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise TimeoutError(self._timeout_message(timeout, snapshot))
                if self._version == seen:  # nothing new since the snapshot: wait for a change
                    self._cond.wait(remaining)

    def wait_for_spans(self, count: int, timeout: float = 10.0) -> list[ReceivedSpan]:
        """Block until at least ``count`` spans have arrived and return them all."""
        return self.wait_for(lambda spans: len(spans) >= count, timeout=timeout)

    def _timeout_message(self, timeout: float, spans: list[ReceivedSpan]) -> str:
        names = [s.name for s in spans[:20]]  # enough to see what did arrive without a wall of text
        more = f" and {len(spans) - 20} more" if len(spans) > 20 else ""
        refused = sum(1 for r in self._requests if r.status != HTTPStatus.OK)
        return (
            f"condition not met within {timeout:g} s on {self.traces_url}: "
            f"{len(spans)} span(s) arrived in {len(self._requests)} request(s)"
            + (f" ({refused} refused)" if refused else "")
            + (f": {names}{more}" if spans else "")
        )

    # -- called by the handler --

    def _accept(self, request: ReceivedRequest, spans: list[ReceivedSpan]) -> None:
        # One lock around callback and recording keeps the callback order and `spans` order the same,
        # and recording after the callback means wait_for() returns only once the callback is done.
        with self._deliver_lock:
            if self._on_spans is not None and spans:
                try:
                    self._on_spans(spans)
                except Exception:
                    _logger.exception("OTLPReceiver on_spans callback failed; the receiver keeps serving")
            self._record(request, spans)

    def _accept_metrics(self, request: ReceivedRequest, metrics: ExportMetricsServiceRequest) -> None:
        with self._deliver_lock:
            if self._on_metrics is not None:
                try:
                    self._on_metrics(metrics)
                except Exception:
                    _logger.exception("OTLPReceiver on_metrics callback failed; the receiver keeps serving")
            self._record(request, None)

    def _record(self, request: ReceivedRequest, spans: list[ReceivedSpan] | None) -> None:
        with self._cond:
            self._requests.append(request)
            if spans:
                self._spans.extend(spans)
            self._version += 1
            self._cond.notify_all()

    def _track(self, conn: socket.socket) -> None:
        with self._connections_lock:
            if self._closing:
                with contextlib.suppress(OSError):
                    conn.shutdown(socket.SHUT_RDWR)
            else:
                self._connections.add(conn)

    def _untrack(self, conn: socket.socket) -> None:
        with self._connections_lock:
            self._connections.discard(conn)
