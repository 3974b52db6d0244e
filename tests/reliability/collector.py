"""Test helpers for the reliability tests: a fault-injecting OTLP/HTTP collector, and child interpreters.

``FaultyCollector`` listens on 127.0.0.1 and decodes what the OTLP exporter sends. Its behaviour can be
switched at any time, and it keeps its port across outages so the endpoint a child process was given
stays valid:

- ``ok()``: decode and keep the spans, answer 200;
- ``refuse()``: nothing listens on the port (connections are refused) until another mode is set;
- ``hang()``: accept and read each request, never answer (until the mode changes or the collector closes,
  when the connection is dropped without an answer);
- ``status(code, retry_after=None, times=None)``: answer ``code`` (5xx, 429), with a ``Retry-After`` header
  when given; after ``times`` such answers it is back to ``ok``;
- ``slow(seconds)``: keep the spans and answer 200 after a delay (at once when the mode changes meanwhile).

Everything is bounded: handler threads are daemons, tracked and joined when their listening period ends
(``refuse()``, ``close()``), open connections are shut down, no wait lasts beyond ``close()``.

``Child`` runs code in a fresh interpreter, like ``tests/e2e/conftest.run_script`` (only the given
``OTEL_*`` / ``TCC_*`` variables), but can talk to it while it runs: read the lines it prints as they come
(``expect``) and answer on its stdin (``send``), so a test can change the collector between two phases of
the child.
"""

from __future__ import annotations

import contextlib
import gzip
import json
import os
import queue
import random
import socket
import socketserver
import subprocess
import sys
import textwrap
import threading
import time
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import TracebackType
from typing import Any, Literal

from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceRequest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceResponse

from contextcompany.dev import ReceivedSpan
from contextcompany.dev._receiver import decode_spans

REPO = Path(__file__).resolve().parents[2]
TRACES_PATH = "/v1/traces"
METRICS_PATH = "/v1/metrics"

ModeName = Literal["ok", "refuse", "hang", "status", "slow"]


@dataclass(frozen=True, slots=True)
class Mode:
    """How the collector treats the next request."""

    name: ModeName
    code: int = 200
    retry_after: str | None = None
    delay: float = 0.0
    times: int | None = None  # status: how many such answers before going back to ok


@dataclass(frozen=True, slots=True)
class CollectorRequest:
    """One request the collector read, and what it did with it.

    ``status`` is the HTTP status answered, None when it never answered (hang). ``received`` and ``answered``
    are ``time.monotonic()`` readings (``answered`` is None without an answer).
    """

    mode: ModeName
    status: int | None
    spans: tuple[ReceivedSpan, ...]
    headers: dict[str, str]
    received: float
    answered: float | None
    metrics: tuple[MetricPoint, ...] = ()  # the data points of a /v1/metrics request
    path: str = TRACES_PATH

    @property
    def span_ids(self) -> frozenset[str]:
        return frozenset(s.span_id for s in self.spans)


@dataclass(frozen=True, slots=True)
class MetricPoint:
    """One data point of an OTLP metrics request: ``value`` is a sum's value or a histogram's sum."""

    name: str
    scope: str
    unit: str
    attributes: dict[str, Any]
    value: float
    count: int | None  # a histogram's count; None for a sum
    temporality: int  # AggregationTemporality: 1 delta, 2 cumulative
    resource: dict[str, Any]


def _any_value(value: Any) -> Any:
    kind = value.WhichOneof("value")
    return getattr(value, kind) if kind is not None else None


def decode_metrics(body: bytes) -> list[MetricPoint]:
    """Decode a serialized ``ExportMetricsServiceRequest`` into its data points (sums and histograms)."""
    request = ExportMetricsServiceRequest()
    request.ParseFromString(body)
    points: list[MetricPoint] = []
    for resource_metrics in request.resource_metrics:
        resource = {a.key: _any_value(a.value) for a in resource_metrics.resource.attributes}
        for scope_metrics in resource_metrics.scope_metrics:
            scope = scope_metrics.scope.name
            for metric in scope_metrics.metrics:
                kind = metric.WhichOneof("data")
                data = getattr(metric, kind)
                for p in data.data_points:
                    attributes = {a.key: _any_value(a.value) for a in p.attributes}
                    if kind == "histogram":
                        value, count = p.sum, p.count
                    else:
                        value, count = getattr(p, p.WhichOneof("value") or "as_double"), None
                    points.append(
                        MetricPoint(
                            metric.name,
                            scope,
                            metric.unit,
                            attributes,
                            value,
                            count,
                            getattr(data, "aggregation_temporality", 0),
                            resource,
                        )
                    )
    return points


class _Server(ThreadingHTTPServer):
    """One listening period of the collector; its handler threads and connections are its own, so an
    outage can end them without touching the next period's."""

    daemon_threads = True
    request_queue_size = 128
    collector: FaultyCollector

    def __init__(self, address: tuple[str, int], collector: FaultyCollector) -> None:
        self.collector = collector
        self.handler_threads: set[threading.Thread] = set()
        self.connections: set[socket.socket] = set()
        self.serve_thread: threading.Thread | None = None
        super().__init__(address, _Handler)

    def server_bind(self) -> None:
        # Skip HTTPServer's FQDN lookup, which can stall; loopback needs no name.
        socketserver.TCPServer.server_bind(self)
        host, port = self.server_address[:2]
        self.server_name = str(host)
        self.server_port = int(port)

    def process_request(self, request: Any, client_address: Any) -> None:
        thread = threading.Thread(
            target=self.process_request_thread,
            args=(request, client_address),
            name=f"faulty-collector-conn:{self.server_port}",
            daemon=True,
        )
        with self.collector._lock:
            self.handler_threads = {t for t in self.handler_threads if t.is_alive()}
            self.handler_threads.add(thread)
        thread.start()

    def handle_error(self, request: Any, client_address: Any) -> None:
        return  # a client hanging up mid-request is expected here; no traceback on stderr


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as the exporter's session expects
    server_version = "faulty-collector"
    timeout = 30  # an idle keep-alive connection does not hold its thread forever
    server: _Server

    def setup(self) -> None:
        super().setup()
        self.server.collector._track(self.server, self.connection)

    def finish(self) -> None:
        try:
            super().finish()
        finally:
            self.server.collector._untrack(self.server, self.connection)

    def log_message(self, format: str, *args: Any) -> None:
        return

    def _body(self) -> bytes:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length)
        encoding = (self.headers.get("Content-Encoding") or "").strip().lower()
        if encoding == "gzip":
            return gzip.decompress(body)
        if encoding == "deflate":
            return zlib.decompress(body)
        return body

    def _answer(self, status: int, extra: dict[str, str] | None = None) -> None:
        body = ExportTraceServiceResponse().SerializeToString()
        self.send_response(status)
        self.send_header("Content-Type", "application/x-protobuf")
        self.send_header("Content-Length", str(len(body)))
        for name, value in (extra or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(body)
        self.wfile.flush()

    def do_POST(self) -> None:
        collector = self.server.collector
        received = time.monotonic()
        headers = {k.lower(): v for k, v in self.headers.items()}
        body = self._body()
        path = self.path.split("?", 1)[0]
        if path not in (TRACES_PATH, METRICS_PATH):
            self.close_connection = True
            self._answer(404)
            return
        spans = tuple(decode_spans(body)) if path == TRACES_PATH else ()
        metrics = tuple(decode_metrics(body)) if path == METRICS_PATH else ()
        mode, release = collector._take_mode()
        if mode.name == "hang":
            collector._record(CollectorRequest("hang", None, spans, headers, received, None, metrics, path))
            release.wait()  # set when the mode changes or the collector closes
            self.close_connection = True  # never answered: the connection is dropped
            return
        if mode.name == "slow":
            release.wait(mode.delay)  # cut short by a mode change (answered 200 at once) or close()
        if mode.name == "refuse" or collector.closed:  # accepted as the listener closed, or closed since
            self.close_connection = True
            return
        # Recorded just before answering, so the record is there once the exporter has its answer.
        if mode.name == "status":
            collector._record(
                CollectorRequest(
                    "status", mode.code, spans, headers, received, time.monotonic(), metrics, path
                )
            )
            self._answer(
                mode.code, {"Retry-After": mode.retry_after} if mode.retry_after is not None else None
            )
            return
        collector._record(
            CollectorRequest(mode.name, 200, spans, headers, received, time.monotonic(), metrics, path)
        )
        self._answer(200)


def _free_port() -> int:
    """A free loopback port below the ephemeral range, so that while the collector is refusing, no
    outgoing connection on this machine can take the port as its source port and keep it from us."""
    try:
        low = int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        low = 32768
    for _ in range(200):
        port = random.randrange(max(1024, low - 12000), low)
        with socket.socket() as probe:
            try:
                probe.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError("no free loopback port found")


class FaultyCollector:
    """An OTLP/HTTP collector on 127.0.0.1 whose faults are switched at runtime (see the module doc).

    >>> with FaultyCollector() as collector:
    ...     collector.refuse()
    ...     ...  # the SDK exports into a closed port
    ...     collector.ok()  # back on the same port
    ...     collector.wait_for(lambda spans: any(s.name == "invoke_agent" for s in spans))
    """

    def __init__(self, port: int | None = None) -> None:
        self.host = "127.0.0.1"
        self.port = port if port is not None else _free_port()
        self._mode = Mode("ok")
        self._release = threading.Event()  # set to end the waits of hanging and slow requests
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)
        self._requests: list[CollectorRequest] = []
        self._server: _Server | None = None
        self._stopped: list[_Server] = []  # servers of past listening periods, kept until joined
        self._closed = False

    # -- lifecycle --

    def start(self) -> FaultyCollector:
        with self._lock:
            if self._closed:
                raise RuntimeError("the collector is closed")
            if self._mode.name != "refuse" and self._server is None:
                self._listen()
        return self

    def close(self) -> None:
        """Stop listening, drop every connection (answering nothing more), join every thread."""
        with self._lock:
            self._closed = True
            self._release.set()
            self._stop_listening()
        self._join_stopped()

    def __enter__(self) -> FaultyCollector:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    @property
    def closed(self) -> bool:
        return self._closed

    @property
    def endpoint(self) -> str:
        """The base URL for ``OTEL_EXPORTER_OTLP_ENDPOINT``; the same in every mode."""
        return f"http://{self.host}:{self.port}"

    @property
    def threads(self) -> list[threading.Thread]:
        """The collector's threads still alive (none after ``close()``)."""
        with self._lock:
            servers = [*self._stopped, *([self._server] if self._server is not None else [])]
            threads = [
                t for srv in servers for t in (*srv.handler_threads, srv.serve_thread) if t is not None
            ]
        return [t for t in threads if t.is_alive()]

    # -- modes --

    @property
    def mode(self) -> Mode:
        with self._lock:
            return self._mode

    def ok(self) -> None:
        self._set(Mode("ok"))

    def refuse(self) -> None:
        self._set(Mode("refuse"))

    def hang(self) -> None:
        self._set(Mode("hang"))

    def status(self, code: int, retry_after: float | str | None = None, times: int | None = None) -> None:
        if not 400 <= code <= 599:
            raise ValueError(f"status({code}): expects an error status (4xx or 5xx)")
        if retry_after is not None and not isinstance(retry_after, str):
            retry_after = f"{retry_after:g}"
        self._set(Mode("status", code=code, retry_after=retry_after, times=times))

    def slow(self, seconds: float) -> None:
        self._set(Mode("slow", delay=seconds))

    def _set(self, mode: Mode) -> None:
        with self._lock:
            if self._closed:
                raise RuntimeError("the collector is closed")
            self._mode = mode
            # Requests waiting under the old mode are let go: hung ones dropped, slow ones answered now.
            self._release.set()
            self._release = threading.Event()
            if mode.name == "refuse":
                self._stop_listening()
            elif self._server is None:
                self._listen()
            self._changed.notify_all()
        self._join_stopped()

    def _take_mode(self) -> tuple[Mode, threading.Event]:
        """The mode for one request (counting it against ``times``), and the event that ends its wait."""
        with self._lock:
            mode, release = self._mode, self._release
            if mode.name == "status" and mode.times is not None:
                left = mode.times - 1
                self._mode = (
                    Mode("ok") if left <= 0 else Mode("status", mode.code, mode.retry_after, times=left)
                )
            return mode, release

    # -- listening --

    def _listen(self) -> None:
        """Listen on the port again (with the lock held); retries briefly while the port is not free."""
        deadline = time.monotonic() + 5.0
        while True:
            try:
                server = _Server((self.host, self.port), self)  # SO_REUSEADDR: TIME_WAIT is no obstacle
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)
        thread = threading.Thread(
            target=server.serve_forever,
            kwargs={"poll_interval": 0.05},
            name=f"faulty-collector:{self.port}",
            daemon=True,
        )
        server.serve_thread = thread
        thread.start()
        self._server = server

    def _stop_listening(self) -> None:
        """With the lock held: close the listening socket at once (from now on connections are refused)
        and every open connection; the threads are joined by ``_join_stopped`` outside the lock."""
        server, self._server = self._server, None
        if server is None:
            return
        server.socket.close()
        for conn in server.connections:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)
        self._stopped.append(server)

    def _join_stopped(self) -> None:
        with self._lock:
            stopped, self._stopped = self._stopped, []
        for server in stopped:
            server.shutdown()  # its serve loop; the socket is already closed
            with contextlib.suppress(OSError):
                server.server_close()
            with self._lock:
                threads = list(server.handler_threads)
            for thread in threads:
                thread.join(5)

    def _track(self, server: _Server, conn: socket.socket) -> None:
        with self._lock:
            if server is not self._server:  # accepted just as the listener closed
                with contextlib.suppress(OSError):
                    conn.shutdown(socket.SHUT_RDWR)
            else:
                server.connections.add(conn)

    def _untrack(self, server: _Server, conn: socket.socket) -> None:
        with self._lock:
            server.connections.discard(conn)

    # -- what arrived --

    def _record(self, request: CollectorRequest) -> None:
        with self._lock:
            self._requests.append(request)
            self._changed.notify_all()

    @property
    def requests(self) -> list[CollectorRequest]:
        """Every traces request read so far, in order, whatever the answer."""
        with self._lock:
            return [r for r in self._requests if r.path == TRACES_PATH]

    @property
    def all_requests(self) -> list[CollectorRequest]:
        """Every request read so far, traces and metrics, in order, whatever the answer."""
        with self._lock:
            return list(self._requests)

    @property
    def spans(self) -> list[ReceivedSpan]:
        """The spans of the requests answered 200: what was delivered."""
        return [s for r in self.requests if r.status == 200 for s in r.spans]

    @property
    def metrics(self) -> list[MetricPoint]:
        """The metric data points of the requests answered 200, in order."""
        return [m for r in self.all_requests if r.status == 200 for m in r.metrics]

    def wait_for_requests(
        self,
        predicate: Callable[[list[CollectorRequest]], bool],
        timeout: float = 10.0,
        path: str = TRACES_PATH,
    ) -> list[CollectorRequest]:
        """Block until ``predicate(requests to path)`` holds; TimeoutError after ``timeout`` seconds."""
        deadline = time.monotonic() + timeout
        with self._lock:
            while True:
                snapshot = [r for r in self._requests if r.path == path]
                if predicate(snapshot):
                    return snapshot
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    summary = [(r.mode, r.status, len(r.spans)) for r in snapshot[-10:]]
                    raise TimeoutError(f"not met within {timeout:g} s; last requests: {summary}")
                self._changed.wait(remaining)

    def wait_for(
        self, predicate: Callable[[list[ReceivedSpan]], bool], timeout: float = 10.0
    ) -> list[ReceivedSpan]:
        """Block until ``predicate(delivered spans)`` holds and return those spans."""

        def delivered(requests: list[CollectorRequest]) -> bool:
            return predicate([s for r in requests if r.status == 200 for s in r.spans])

        requests = self.wait_for_requests(delivered, timeout)
        return [s for r in requests if r.status == 200 for s in r.spans]


# --- child interpreters ---------------------------------------------------------------------------------


@dataclass
class Child:
    """A fresh interpreter running ``code``, with only the given ``OTEL_*`` / ``TCC_*`` settings.

    Its stdout is read line by line as it comes (``expect``), its stderr kept whole; ``send`` writes a line
    to its stdin. ``wall`` is the time from start to exit, measured here.
    """

    code: str
    env: dict[str, str]
    process: subprocess.Popen[str] = field(init=False)
    started: float = field(init=False)
    wall: float | None = field(init=False, default=None)
    stdout_lines: list[str] = field(init=False, default_factory=list)
    stderr: str = field(init=False, default="")
    _lines: queue.Queue[str | None] = field(init=False, default_factory=queue.Queue)
    _readers: list[threading.Thread] = field(init=False, default_factory=list)
    _stderr_parts: list[str] = field(init=False, default_factory=list)

    def __post_init__(self) -> None:
        clean = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "TCC_"))}
        clean.update(self.env)
        clean["PYTHONUNBUFFERED"] = "1"
        self.started = time.monotonic()
        self.process = subprocess.Popen(
            [sys.executable, "-c", textwrap.dedent(self.code)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=clean,
            cwd=REPO,
        )
        out = threading.Thread(target=self._read_stdout, name="child-stdout", daemon=True)
        err = threading.Thread(target=self._read_stderr, name="child-stderr", daemon=True)
        self._readers = [out, err]
        out.start()
        err.start()

    def _read_stdout(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.stdout_lines.append(line.rstrip("\n"))
            self._lines.put(line.rstrip("\n"))
        self._lines.put(None)

    def _read_stderr(self) -> None:
        assert self.process.stderr is not None
        for chunk in self.process.stderr:
            self._stderr_parts.append(chunk)

    def expect(self, tag: str, timeout: float = 60.0) -> dict[str, Any]:
        """Wait for a line ``TAG {json}`` and return the JSON; fails with the child's stderr otherwise."""
        deadline = time.monotonic() + timeout
        while True:
            remaining = deadline - time.monotonic()
            try:
                line = self._lines.get(timeout=max(remaining, 0.0)) if remaining > 0 else None
            except queue.Empty:
                line = None
            if line is None:
                self.kill()
                raise AssertionError(
                    f"the child did not print {tag!r} within {timeout:g} s (exit {self.process.returncode});"
                    f"\nstdout: {self.stdout_lines}\nstderr: {self.stderr}"
                )
            if line.startswith(tag + " "):
                loaded: dict[str, Any] = json.loads(line[len(tag) + 1 :])
                return loaded

    def send(self, line: str) -> None:
        assert self.process.stdin is not None
        self.process.stdin.write(line + "\n")
        self.process.stdin.flush()

    def wait(self, timeout: float = 60.0) -> int:
        """Wait for exit (killing the child after ``timeout``); returns the exit code."""
        if self.process.stdin is not None:
            with contextlib.suppress(OSError):
                self.process.stdin.close()
        try:
            code = self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            raise
        finally:
            self._finish()
        return code

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)
        self._finish()

    def _finish(self) -> None:
        if self.wall is None and self.process.returncode is not None:
            self.wall = time.monotonic() - self.started
        for reader in self._readers:
            reader.join(10)
        self.stderr = "".join(self._stderr_parts)
        for stream in (self.process.stdin, self.process.stdout, self.process.stderr):
            if stream is not None:
                with contextlib.suppress(OSError):
                    stream.close()


@contextlib.contextmanager
def spawn(code: str, env: dict[str, str]) -> Iterator[Child]:
    """A ``Child`` that is killed (and its reader threads joined) however the block ends."""
    child = Child(code, env)
    try:
        yield child
    finally:
        child.kill()


@contextlib.contextmanager
def no_thread_leak() -> Iterator[None]:
    """Fail if threads started inside the block are still alive a moment after it."""
    before = set(threading.enumerate())
    yield
    deadline = time.monotonic() + 5.0
    while True:
        leaked = [t for t in threading.enumerate() if t not in before and t.is_alive()]
        if not leaked or time.monotonic() > deadline:
            break
        time.sleep(0.02)
    assert not leaked, f"threads left running: {[t.name for t in leaked]}"
