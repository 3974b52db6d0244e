"""Where tcc's spans go: configuration, provider discovery, destinations, and delivery at exit.

Nothing here runs at import. The first record (``tcc.run()``, ``tcc.step()``, ...) sets up the pipeline
from ``configure()`` and the environment:

- ``OTEL_SDK_DISABLED=true``: a no-op tracer; the API still validates, nothing is sent.
- ``configure(tracer_provider=...)``, or a ``TracerProvider`` the process already set globally: tcc
  spans are made through it, so they nest under the service's spans and reach the service's exporters
  (once each).
- Otherwise tcc builds its own provider (not set globally, so it never fights the service for that
  slot): resource from ``OTEL_SERVICE_NAME`` / ``OTEL_RESOURCE_ATTRIBUTES``, a ``SpanProcessor`` of ours
  in front of the standard OTLP/HTTP exporter configured by ``OTEL_EXPORTER_OTLP_*``, and an exit hook
  that delivers what is queued within a bounded time.

A record given its own ``api_key`` / ``tcc_url`` is routed, with its children, to that destination: one
exporter per destination, created once, inside a tcc-owned pipeline.
"""

from __future__ import annotations

import atexit
import enum
import functools
import ipaddress
import logging
import math
import os
import sys
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any, Final
from urllib.parse import urlsplit

from opentelemetry import trace
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import SERVICE_NAME, Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace import SpanProcessor as SdkSpanProcessor
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult

from . import _checks as checks
from . import _content, _ids
from . import _diag as diag
from . import _forksafe as forksafe
from . import _semconv as sc
from ._processor import _DEFAULT_SHUTDOWN_TIMEOUT_MILLIS, SpanProcessor, Stats, note

if TYPE_CHECKING:
    import requests

logger = logging.getLogger("contextcompany")

_VERSION = "3.0.0"
_DEFAULT_ENDPOINT: Final = "http://localhost:4318"
_LOOPBACK_NAMES: Final = frozenset({"localhost", "localhost.localdomain", "ip6-localhost"})


# --- settings ---------------------------------------------------------------------------------------------


@dataclass(slots=True)
class Settings:
    """What ``configure()`` can change at any time; records read it when they start or end."""

    run_timeout: float = 20 * 60.0  # seconds; 0 disables
    capture_content: bool = True
    mask: Callable[[str], str] | None = None
    value_limit: int = _content.DEFAULT_VALUE_LIMIT  # characters per content attribute


@dataclass(frozen=True, slots=True)
class Config:
    """What decides how the pipeline is built; fixed once the first record set it up."""

    service_name: str | None = None
    endpoint: str | None = None  # a base URL or a full .../v1/traces URL
    headers: Mapping[str, str] = field(default_factory=dict)
    api_key: str | None = None
    span_processors: tuple[SdkSpanProcessor, ...] = ()
    tracer_provider: trace.TracerProvider | None = None
    shutdown_timeout_millis: float | None = None
    allow_insecure_http: bool | None = None

    def __repr__(self) -> str:  # the key and header values are secrets: never in a log line or a repr
        return (
            f"Config(service_name={self.service_name!r}, endpoint={self.endpoint!r}, "
            f"headers={sorted(self.headers)}, api_key={'set' if self.api_key else None}, "
            f"span_processors={len(self.span_processors)}, tracer_provider={self.tracer_provider!r})"
        )


def _env_true(name: str) -> bool:
    return os.environ.get(name, "").strip().lower() == "true"


def _env_content_capture() -> bool:
    # The GenAI instrumentations' own switch; tcc captures content unless it says false.
    raw = os.environ.get("OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT", "").strip().lower()
    return raw not in ("false", "0", "no", "off")


settings = Settings(capture_content=_env_content_capture(), value_limit=_content.value_limit_from_env())
_config = Config()


# --- destinations ---------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Destination:
    """Where a tcc-owned exporter sends: a full OTLP traces URL and the bearer key, if any."""

    endpoint: str
    api_key: str | None

    def __repr__(self) -> str:  # never print the key
        return f"Destination({self.endpoint!r}, api_key={'set' if self.api_key else None})"


def traces_endpoint(url: str) -> str:
    """The OTLP traces URL for a base or full URL: used as is when it ends in ``/v1/traces``, else that
    is appended, like ``OTEL_EXPORTER_OTLP_ENDPOINT``.

    >>> traces_endpoint("https://collector.example.com:4318")
    'https://collector.example.com:4318/v1/traces'
    """
    url = url.rstrip("/")
    return url if url.endswith("/v1/traces") else url + "/v1/traces"


def _default_destination(config: Config) -> Destination:
    if config.endpoint is not None:
        endpoint = traces_endpoint(config.endpoint)
    else:
        signal = os.environ.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "").strip()
        base = os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT", "").strip() or _DEFAULT_ENDPOINT
        endpoint = signal or base.rstrip("/") + "/v1/traces"
    return Destination(endpoint, config.api_key or os.environ.get("TCC_API_KEY") or None)


def _is_loopback(host: str) -> bool:
    if host.lower() in _LOOPBACK_NAMES:
        return True
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return False
    return address.is_loopback


def insecure_reason(destination: Destination, config: Config | None = None) -> str | None:
    """Why sending to ``destination`` would expose its key, if it would: a bearer key over plain http to
    a host that is not loopback, unless allowed (``TCC_ALLOW_INSECURE_HTTP=true``, or configure)."""
    if destination.api_key is None:
        return None
    parts = urlsplit(destination.endpoint)
    if parts.scheme != "http" or _is_loopback(parts.hostname or ""):
        return None
    allowed = (config or _config).allow_insecure_http
    if allowed if allowed is not None else _env_true("TCC_ALLOW_INSECURE_HTTP"):
        return None
    return (
        f"an API key would be sent over plain http to {parts.hostname}, where anyone on the path can read "
        "it: use https, or allow it with configure(allow_insecure_http=True) or "
        "TCC_ALLOW_INSECURE_HTTP=true"
    )


def check_url(url: str | None, where: str) -> None:
    """Raise at the call that passed a malformed URL (``where`` names it, e.g. ``tcc.run(tcc_url=...)``)."""
    if url is None:
        return
    if not isinstance(url, str):
        raise TypeError(f"[TCC] {where} expects a str URL or None, got {type(url).__name__}")
    try:
        parts = urlsplit(url)
        _ = parts.port  # raises for a port that is not a number from 0 to 65535
        ok = parts.scheme in ("http", "https") and bool(parts.hostname)
    except ValueError:  # e.g. "http://[" or a port out of range
        ok = False
    if not ok:
        raise ValueError(f"[TCC] {where} expects an http:// or https:// URL, got {checks.show(url)}")


def check_api_key(api_key: str | None, call: str) -> None:
    if api_key is not None and (not isinstance(api_key, str) or not api_key.strip()):
        raise TypeError(f"[TCC] {call}(api_key=...) expects a non-empty str or None")


def destination(api_key: str | None, tcc_url: str | None, call: str) -> Destination | None:
    """The destination a record with its own ``api_key`` / ``tcc_url`` goes to (None: the default).
    Checks both, and refuses at the call to send a key where it would be exposed."""
    if api_key is None and tcc_url is None:
        return None  # the common case, on every step and tool call: nothing to check
    check_api_key(api_key, call)
    check_url(tcc_url, f"{call}(tcc_url=...)")
    default = _default_destination(_config)
    dest = Destination(
        traces_endpoint(tcc_url) if tcc_url is not None else default.endpoint,
        api_key if api_key is not None else default.api_key,
    )
    reason = insecure_reason(dest)
    if reason is not None:
        raise ValueError(f"[TCC] {call}(api_key=..., tcc_url=...): {reason}")
    return dest


class _Refusing(SpanExporter):
    """Stands in for an exporter tcc must not use: every export fails with the reason (tcc.stats())."""

    def __init__(self, reason: str) -> None:
        self.reason = reason

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        return SpanExportResult.FAILURE


class _Lazy(SpanExporter):
    """Builds the real exporter on first use, on the export thread, and again after ``fork()``.

    Building the OTLP exporter imports requests and opens a session (about 0.1 s) which the first record
    on the caller's thread should not pay; and a forked child must not share the parent's pooled HTTP
    connections, whose bytes would interleave on one socket.
    """

    def __init__(self, make: Callable[[], SpanExporter]) -> None:
        self._make = make
        self._exporter: SpanExporter | None = None
        self._pid = os.getpid()

    def _get(self) -> SpanExporter:
        if self._exporter is None or self._pid != os.getpid():
            with (
                forksafe.importing()
            ):  # its first use imports requests: a fork must not split that (_forksafe)
                self._exporter, self._pid = self._make(), os.getpid()
                # ...and requests imports these on its first request (reading ~/.netrc)
                import netrc  # noqa: F401, PLC0415
                import shlex  # noqa: F401, PLC0415
        return self._exporter

    @property
    def reason(self) -> str | None:
        return getattr(self._get(), "reason", None)

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        return self._get().export(spans)

    def shutdown(self) -> None:
        if self._exporter is not None and self._pid == os.getpid():
            self._exporter.shutdown()

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return True


def _exporter(dest: Destination, config: Config) -> SpanExporter:
    reason = insecure_reason(dest, config)
    if reason is not None:
        # The environment asked for it, so no call can be made to raise: refuse. The span processor says
        # why once (its warning per outage carries this reason) and counts the drops.
        return _Refusing(f"not sending to {dest.endpoint}: {reason}")
    headers = dict(config.headers)
    if dest.api_key:
        headers["authorization"] = f"Bearer {dest.api_key}"
    # OTEL_EXPORTER_OTLP_HEADERS / _TIMEOUT / _COMPRESSION / certificates are still read by the exporter.
    return OTLPSpanExporter(endpoint=dest.endpoint, headers=headers or None, session=_session())


def _session() -> requests.Session:
    """A requests session that tells the export under way why a request failed: the OTLP exporter
    reports only success or failure, and logs no cause when a request times out."""
    import requests  # noqa: PLC0415  (the exporter imports it anyway; not at tcc's import)

    class Session(requests.Session):
        def request(self, *args: Any, **kwargs: Any) -> requests.Response:
            try:
                response = super().request(*args, **kwargs)
            except Exception as exc:
                note(f"{type(exc).__name__}: {exc}")
                raise
            if response.status_code >= 300:
                note(f"HTTP {response.status_code} {response.reason} from {response.url}")
            return response

    return Session()


# --- the pipeline -----------------------------------------------------------------------------------------


@dataclass(slots=True)
class Pipeline:
    """The tracer tcc records through, and what tcc owns."""

    tracer: trace.Tracer
    provider: trace.TracerProvider | None = None
    processor: SpanProcessor | None = None  # tcc's own processor, when tcc built the provider
    owned: bool = False  # tcc built the provider, so tcc flushes and shuts it down
    default: Destination | None = None  # where tcc's own processor sends unrouted spans
    config: Config = field(default_factory=Config)
    routing: Pipeline | None = None  # with a host provider: tcc's own pipeline for routed records
    retired: tuple[SpanProcessor, ...] = ()  # after shutdown(): what stats() still reports

    def target(self, dest: Destination | None) -> tuple[trace.Tracer, SpanProcessor | None]:
        """The tracer to start a span with, and the processor to route it through (None: no routing)."""
        if dest is None or (self.processor is None and self.provider is None):
            return self.tracer, None  # the default destination, or tcc is disabled
        if self.processor is not None:
            return (self.tracer, None) if dest == self.default else (self.tracer, self.processor)
        routing = self.routing
        if routing is None:
            with _lock:
                if self.routing is None:
                    resource = getattr(self.provider, "resource", None)
                    self.routing = _own_pipeline(
                        self.config, resource if isinstance(resource, Resource) else None
                    )
                routing = self.routing
        return routing.tracer, routing.processor

    def owned_pipelines(self) -> list[Pipeline]:
        return [p for p in (self, self.routing) if p is not None and p.owned]


_lock = threading.Lock()
_pipeline: Pipeline | None = None
_exit_hooks: list[Callable[[], None]] = []
_exit_registered = False
_DISABLED: Final = Pipeline(tracer=trace.NoOpTracer())
_dry: ContextVar[bool] = ContextVar("contextcompany.dry_run", default=False)


def _renew_lock() -> None:
    global _lock
    _lock = threading.Lock()  # another thread may have held it at fork time


def _deliver_from_multiprocessing_exit() -> None:
    # A multiprocessing worker started by fork ends with os._exit(), which skips atexit: deliver from
    # multiprocessing's own exit path instead. Its registry is cleared after this hook runs, so the
    # finalizer is registered from its after-fork callbacks, which run later.
    util = sys.modules.get("multiprocessing.util")
    if util is not None and _pipeline is not None:
        util.register_after_fork(_AFTER_FORK, lambda _: util.Finalize(None, _at_exit, exitpriority=0))


class _AfterFork:
    """A key object for multiprocessing.util.register_after_fork, which holds it weakly."""


_AFTER_FORK: Final = _AfterFork()


forksafe.after_fork(_renew_lock, forksafe.Phase.LOCKS)
forksafe.after_fork(_deliver_from_multiprocessing_exit, forksafe.Phase.WORKERS)


def on_exit(hook: Callable[[], None]) -> None:
    """Run ``hook`` at interpreter exit, before the last delivery (records end their open spans)."""
    _exit_hooks.append(hook)


@contextmanager
def dry_run() -> Iterator[None]:
    """Records made inside validate everything and send nothing, and leave no trace in this process
    (non-recording spans are not registered, timed or remembered): a first pass that checks a whole
    nested record before the real pass sends any of it.

    >>> with dry_run():
    ...     build(record)   # raises on the first bad field; nothing was sent
    >>> build(record)
    """
    token = _dry.set(True)
    try:
        yield
    finally:
        _dry.reset(token)


def get() -> Pipeline:
    """The pipeline, set up on first use."""
    if _dry.get():
        return _DISABLED
    pipeline = _pipeline
    if pipeline is None:
        with _lock:
            pipeline = _pipeline
            if pipeline is None:
                pipeline = _set(_build(_config))
    return pipeline


def target(dest: Destination | None) -> tuple[trace.Tracer, SpanProcessor | None]:
    """What a record starts its span with: see ``Pipeline.target``."""
    pipeline = _pipeline  # every record starts here: skip the call to get() once it is set up
    if pipeline is None or _dry.get():
        pipeline = get()
    return pipeline.target(dest)


def _set(pipeline: Pipeline) -> Pipeline:
    global _pipeline
    _pipeline = pipeline
    return pipeline


def _shutdown_timeout_millis(config: Config) -> float | None:
    """``configure(shutdown_timeout_millis=)``, else ``TCC_SHUTDOWN_TIMEOUT_MILLIS``."""
    if config.shutdown_timeout_millis is not None:
        return config.shutdown_timeout_millis
    raw = os.environ.get("TCC_SHUTDOWN_TIMEOUT_MILLIS", "").strip()
    if not raw:
        return None
    try:
        value = float(raw)
    except ValueError:
        value = -1.0
    if not value >= 0:  # also catches nan
        diag.warn_once("shutdown", "contextcompany: TCC_SHUTDOWN_TIMEOUT_MILLIS=%r is not a number >= 0", raw)
        return None
    return value


def _own_pipeline(config: Config, resource: Resource | None = None) -> Pipeline:
    default = _default_destination(config)
    processor = SpanProcessor(
        _Lazy(lambda: _exporter(default, config)),
        shutdown_timeout_millis=_shutdown_timeout_millis(config),
        exporter_for=lambda key: _Lazy(lambda: _exporter(key, config)),  # type: ignore[arg-type]
    )
    if resource is None:
        resource = Resource.create()
        if config.service_name is not None:
            resource = resource.merge(Resource({SERVICE_NAME: config.service_name}))
    provider = TracerProvider(
        resource=resource,
        shutdown_on_exit=False,  # _at_exit does it, within a bound
        id_generator=_ids.RunIdGenerator(_ids.OwnRandomIds()),
    )
    provider.add_span_processor(processor)
    for extra in config.span_processors:
        provider.add_span_processor(extra)
    return Pipeline(
        tracer=provider.get_tracer(sc.INSTRUMENTATION_NAME, _VERSION),
        provider=provider,
        processor=processor,
        owned=True,
        default=default,
        config=config,
    )


def _build(config: Config) -> Pipeline:
    global _exit_registered
    if not _exit_registered:
        # Registered after any provider the service made, so it runs before that provider's exit hook.
        atexit.register(_at_exit)
        _exit_registered = True
    if _env_true("OTEL_SDK_DISABLED"):
        return Pipeline(tracer=trace.NoOpTracer(), config=config)
    host = config.tracer_provider or trace.get_tracer_provider()
    if not isinstance(host, trace.ProxyTracerProvider | trace.NoOpTracerProvider):
        tracer = host.get_tracer(sc.INSTRUMENTATION_NAME, _VERSION)
        _ids.install(tracer)
        return Pipeline(tracer=tracer, provider=host, config=config)
    return _own_pipeline(config)


def install(pipeline: Pipeline | None) -> Pipeline | None:
    """Replace the pipeline (tests); returns the previous one."""
    global _pipeline
    with _lock:
        previous, _pipeline = _pipeline, pipeline
    return previous


# --- configure() ------------------------------------------------------------------------------------------


class _Unset(enum.Enum):
    UNSET = enum.auto()  # configure(mask=None) removes the mask; leaving mask out keeps it


_UNSET: Final = _Unset.UNSET


def _check_str(value: object, name: str) -> None:
    if value is not None and (not isinstance(value, str) or not value.strip()):
        raise TypeError(
            f"[TCC] configure({name}=...) expects a non-empty str or None, got {checks.show(value)}"
        )


def configure(
    *,
    service_name: str | None = None,
    endpoint: str | None = None,
    headers: Mapping[str, str] | None = None,
    api_key: str | None = None,
    capture_content: bool | None = None,
    mask: Callable[[str], str] | _Unset | None = _UNSET,
    run_timeout: float | None = None,
    span_processors: Sequence[SdkSpanProcessor] | None = None,
    tracer_provider: trace.TracerProvider | None = None,
    shutdown_timeout_millis: float | None = None,
    allow_insecure_http: bool | None = None,
) -> None:
    """Set tcc up in code; every argument left out keeps its default (from the ``OTEL_*`` variables).

    ``capture_content``, ``mask`` and ``run_timeout`` apply at any time. The others decide how tcc's
    pipeline is built, so they must come before the first run, step or tool call; after it, the same
    values are accepted and different ones raise RuntimeError, changing nothing.

    >>> tcc.configure(service_name="support-bot", endpoint="https://otel.example.com", api_key="...")
    """
    _check_str(service_name, "service_name")
    _check_str(api_key, "api_key")
    check_url(endpoint, "configure(endpoint=...)")
    if headers is not None and (
        not isinstance(headers, Mapping)
        or not all(isinstance(k, str) and isinstance(v, str) for k, v in headers.items())
    ):
        raise TypeError("[TCC] configure(headers=...) expects a dict of str to str")
    for flag, name in ((capture_content, "capture_content"), (allow_insecure_http, "allow_insecure_http")):
        checks.optional_bool(flag, f"configure({name}=...)")
    if not isinstance(mask, _Unset) and mask is not None and not callable(mask):
        raise TypeError(
            f"[TCC] configure(mask=...) expects a function str -> str or None, got {checks.show(mask)}"
        )
    timeout = checks.seconds(run_timeout, "configure(run_timeout=...)")
    if shutdown_timeout_millis is not None and (
        isinstance(shutdown_timeout_millis, bool)
        or not isinstance(shutdown_timeout_millis, int | float)
        or not math.isfinite(shutdown_timeout_millis)
        or shutdown_timeout_millis < 0
    ):
        raise ValueError(
            "[TCC] configure(shutdown_timeout_millis=...) expects a number >= 0, "
            f"got {checks.show(shutdown_timeout_millis)}"
        )
    if span_processors is not None and (
        not isinstance(span_processors, Sequence)
        or not all(isinstance(p, SdkSpanProcessor) for p in span_processors)
    ):
        raise TypeError("[TCC] configure(span_processors=...) expects a list of OpenTelemetry SpanProcessors")
    if tracer_provider is not None and not isinstance(tracer_provider, trace.TracerProvider):
        raise TypeError("[TCC] configure(tracer_provider=...) expects an OpenTelemetry TracerProvider")
    if tracer_provider is not None and span_processors:
        raise ValueError(
            "[TCC] configure(span_processors=...) adds processors to tcc's own provider; with "
            "tracer_provider=..., add them to that provider instead"
        )

    global _config
    with _lock:
        changes: dict[str, object] = {
            name: value
            for name, value in (
                ("service_name", service_name),
                ("endpoint", endpoint),
                ("headers", dict(headers) if headers is not None else None),
                ("api_key", api_key),
                ("span_processors", tuple(span_processors) if span_processors is not None else None),
                ("tracer_provider", tracer_provider),
                ("shutdown_timeout_millis", shutdown_timeout_millis),
                ("allow_insecure_http", allow_insecure_http),
            )
            if value is not None
        }
        new = replace(_config, **changes)  # type: ignore[arg-type]
        if endpoint is not None or api_key is not None or allow_insecure_http is not None:
            reason = insecure_reason(_default_destination(new), new)
            if reason is not None:
                raise ValueError(f"[TCC] configure(): {reason}")
        if _pipeline is not None and new != _config:
            differing = sorted(name for name in changes if getattr(new, name) != getattr(_config, name))
            raise RuntimeError(
                f"[TCC] configure({', '.join(f'{n}=...' for n in differing)}) must come before the first "
                "run, step or tool call: tcc's pipeline is already built. Call configure() at startup."
            )
        _config = new
        # Everything is checked: from here on nothing can fail, so nothing half-applies.
        if capture_content is not None:
            settings.capture_content = capture_content
        if not isinstance(mask, _Unset):
            settings.mask = mask
        if timeout is not None:
            settings.run_timeout = timeout


def reset_for_tests() -> None:
    """Forget configure() and the pipeline (tests only)."""
    global _config, _pipeline
    with _lock:
        _config = Config()
        _pipeline = None
        settings.run_timeout = 20 * 60.0
        settings.capture_content = _env_content_capture()
        settings.mask = None
        settings.value_limit = _content.value_limit_from_env()


# --- lifecycle --------------------------------------------------------------------------------------------


def _at_exit() -> None:
    for hook in _exit_hooks:
        try:
            hook()
        except Exception:
            logger.exception("contextcompany: an exit hook failed")
    pipeline = _pipeline
    if pipeline is not None:
        for own in pipeline.owned_pipelines():
            # Bounded: SpanProcessor.shutdown waits at most its shutdown timeout, even for a hung collector.
            if isinstance(own.provider, TracerProvider):
                own.provider.shutdown()


def flush(timeout_millis: int) -> bool:
    pipeline = _pipeline
    if pipeline is None:
        return True
    ok = True
    for provider in {
        id(p.provider): p.provider for p in (pipeline, pipeline.routing) if p is not None
    }.values():
        force_flush: Callable[[int], object] | None = getattr(provider, "force_flush", None)
        if force_flush is not None:
            ok = _bounded(functools.partial(force_flush, timeout_millis), timeout_millis) and ok
    return ok


def _bounded(flush: Callable[[], object], timeout_millis: float) -> bool:
    """Call ``flush`` and wait for it at most ``timeout_millis``; False when it failed or took longer.

    A provider's force_flush reaches every span processor on it, and the SDK's BatchSpanProcessor does
    not honour the timeout it is given: with a hung collector, a service's own processor (or one passed
    to configure(span_processors=...)) would hold tcc.flush() for as long as its exporter retries. So the
    flush runs on a daemon thread, which finishes on its own whenever the exporter gives up.
    """
    done: list[bool] = []

    def run() -> None:
        try:
            done.append(bool(flush()))
        except Exception:
            logger.exception("contextcompany: a span processor failed to flush")
            done.append(False)

    thread = threading.Thread(target=run, name="contextcompany-flush", daemon=True)
    try:
        thread.start()
    except RuntimeError:  # no new threads at interpreter shutdown: flush on this one
        run()
    else:
        thread.join(timeout_millis / 1000)
    return bool(done) and done[0]


def shutdown() -> None:
    """Deliver what is queued and stop sending. Later records still validate but send nothing. A
    provider that belongs to the host service is flushed, never shut down."""
    with _lock:
        pipeline = _pipeline
        owned = pipeline.owned_pipelines() if pipeline is not None else []
        retired = tuple(p.processor for p in owned if p.processor is not None)
        _set(Pipeline(tracer=trace.NoOpTracer(), config=_config, retired=retired))
    if pipeline is None:
        return
    for own in pipeline.owned_pipelines():
        if isinstance(own.provider, TracerProvider):
            own.provider.shutdown()
    if not pipeline.owned and pipeline.provider is not None:
        force_flush = getattr(pipeline.provider, "force_flush", None)
        if force_flush is not None:
            # The service's provider stays up; tcc waits for it no longer than for its own.
            limit = _shutdown_timeout_millis(pipeline.config)
            limit = _DEFAULT_SHUTDOWN_TIMEOUT_MILLIS if limit is None else limit
            _bounded(lambda: force_flush(int(limit)), limit)


def stats() -> Stats:
    """Counts summed over the tcc span processors spans go through: tcc's own pipelines (and those retired
    by shutdown()), or in drop-in use the ``tcc.SpanProcessor`` instances on the service's provider. All
    zeros when there is none (not set up yet, disabled, or a service pipeline without one)."""
    pipeline = _pipeline
    processors: list[SpanProcessor] = []
    if pipeline is not None:
        processors += [p.processor for p in pipeline.owned_pipelines() if p.processor is not None]
        processors += pipeline.retired
        if not pipeline.owned and pipeline.provider is not None:
            processors += _processors_on(pipeline.provider)
    all_stats = [processor.stats() for processor in dict.fromkeys(processors)]
    last_errors = [s.last_error for s in all_stats if s.last_error]
    return Stats(
        spans_queued=sum(s.spans_queued for s in all_stats),
        spans_exported=sum(s.spans_exported for s in all_stats),
        spans_dropped=sum(s.spans_dropped for s in all_stats),
        exports_failed=sum(s.exports_failed for s in all_stats),
        queue_size=sum(s.queue_size for s in all_stats),
        last_error=last_errors[-1] if last_errors else None,
    )


def content_worker(dest: Destination | None) -> SpanProcessor | None:
    """The tcc span processor that alone sees every span to ``dest`` (the only processor on its provider),
    on whose worker a record's long content can be finished; None when another processor would see the
    span first or besides (a service's own, or ``configure(span_processors=...)``).

    >>> worker = content_worker(record._dest)
    """
    pipeline = _pipeline
    if pipeline is None or _dry.get():
        return None
    _, router = pipeline.target(dest)
    if router is not None:  # a routed destination: tcc's own pipeline for it
        owner = next(
            (p for p in (pipeline, pipeline.routing) if p is not None and p.processor is router), None
        )
        provider = owner.provider if owner is not None else None
    else:
        provider = pipeline.provider
    if provider is None:
        return None
    leaves = _leaf_processors(provider)
    only = leaves[0] if len(leaves) == 1 else None
    return only if isinstance(only, SpanProcessor) else None


def _leaf_processors(provider: trace.TracerProvider) -> list[object]:
    """Every span processor on an SDK provider (see ``_processors_on``); [] when they cannot be read."""
    found: list[object] = []
    pending: list[object] = [getattr(provider, "_active_span_processor", None)]
    while pending:
        item = pending.pop()
        children = getattr(item, "_span_processors", None)
        if isinstance(children, tuple | list):
            pending.extend(children)
        elif item is not None:
            found.append(item)
    return found


def _processors_on(provider: trace.TracerProvider) -> list[SpanProcessor]:
    """The tcc span processors a service added to its SDK provider.

    The SDK offers no public way to list a provider's span processors, so this reads the private
    ``_active_span_processor._span_processors`` of its multi-processor, read-only and defensively: where
    the SDK changes that, drop-in stats read as zeros and nothing else is affected.
    """
    found: list[SpanProcessor] = []
    pending: list[object] = [getattr(provider, "_active_span_processor", None)]
    while pending:
        item = pending.pop()
        if isinstance(item, SpanProcessor):
            found.append(item)
        else:
            children = getattr(item, "_span_processors", None)
            if isinstance(children, tuple | list):
                pending.extend(children)
    return found


# --- kept from contextcompany 2.0.0, whose __all__ exported them ------------------------------------


def get_api_key(api_key: str | None = None) -> str:
    """The API key tcc sends as ``Authorization: Bearer``: ``api_key``, else ``TCC_API_KEY``.

    Raises ValueError when neither is set (as in 2.0.0). tcc itself sends without a key then.

    >>> get_api_key("tcc_live_123")
    'tcc_live_123'
    """
    key = api_key or _config.api_key or os.environ.get("TCC_API_KEY")
    if not key:
        raise ValueError("[TCC] No API key: set the TCC_API_KEY environment variable or pass api_key=...")
    return key


def get_url(path: str, api_key: str | None = None) -> str:
    """``path`` joined to the OTLP base endpoint (``configure(endpoint=)``, ``OTEL_EXPORTER_OTLP_ENDPOINT``,
    else the OTLP default). ``api_key`` is accepted for compatibility with 2.0.0 and changes nothing.

    >>> get_url("/v1/traces")
    'http://localhost:4318/v1/traces'
    """
    base = _config.endpoint or os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT", "").strip() or _DEFAULT_ENDPOINT
    base = base.rstrip("/").removesuffix("/v1/traces")
    return base + "/" + path.lstrip("/")
