"""Where tcc's spans go: provider discovery, routing, the exporters, and delivery at exit.

    >>> tracer, router = target(None)          # what a record starts its span with (the pipeline is built
    >>> tracer, router = target(destination)   # on first use); router: the processor to route it through
    >>> flush(5000); stats(); shutdown()

Nothing here runs at import. The first record (``tcc.run()``, ``tcc.step()``, ...) builds the pipeline
from ``configure()`` and the environment (``_settings``):

- ``OTEL_SDK_DISABLED=true``: a no-op tracer; the API still validates, nothing is sent.
- ``configure(tracer_provider=...)``, or a ``TracerProvider`` the process already set globally: tcc
  spans are made through it, so they nest under the service's spans and reach the service's exporters
  (once each).
- Otherwise tcc builds its own provider (not set globally, so it never fights the service for that
  slot): resource from ``OTEL_SERVICE_NAME`` / ``OTEL_RESOURCE_ATTRIBUTES``, a ``SpanProcessor`` of ours
  in front of the standard OTLP/HTTP exporter configured by ``OTEL_EXPORTER_OTLP_*``, and an exit hook
  that delivers what is queued within a bounded time.

A record given its own ``api_key`` / ``tcc_url`` is routed, with its children, to that destination
(``_destinations``): one exporter per destination, created once, inside a tcc-owned pipeline.

Threads: ``target()`` runs on the caller's thread (one global read once built); building the pipeline
happens there too, once, under a lock. The exporters are built and used on the export worker (``_Lazy``).
``flush()`` / ``shutdown()`` / the exit hook run on whichever thread calls them, each wait bounded.
Layers: this module uses ``_settings``, ``_destinations`` and ``_export``; none of them imports it.
"""

from __future__ import annotations

import atexit
import functools
import logging
import os
import sys
import threading
import time
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Final
from urllib.parse import urlsplit

from opentelemetry import trace
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import SERVICE_NAME, Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult

from . import _diag as diag
from . import _forksafe as forksafe
from . import _ids, _metrics, _settings, _sigterm
from . import _semconv as sc
from ._destinations import Destination, default_destination, insecure_reason
from ._export import SpanProcessor, Stats
from ._export._exporter_logs import final, note
from ._settings import Config, is_loopback

if TYPE_CHECKING:
    import requests

logger = logging.getLogger("contextcompany")

_VERSION = "3.0.0"


# --- the exporters --------------------------------------------------------------------------------------


class _Refusing(SpanExporter):
    """Stands in for an exporter tcc must not use: every export fails with the reason (tcc.stats()).
    ``said``: a warning at setup already told the user, so the first failure adds none."""

    def __init__(self, reason: str, *, said: bool = False) -> None:
        self.reason = reason
        self.said = said

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        return SpanExportResult.FAILURE


class _Lazy(SpanExporter):
    """Builds the real exporter on first use, on the export thread, and again after ``fork()``.

    Building the OTLP exporter imports requests and opens a session (about 0.1 s) which the first record
    on the caller's thread should not pay; and a forked child must not share the parent's pooled HTTP
    connections, whose bytes would interleave on one socket.
    """

    def __init__(
        self, make: Callable[[], SpanExporter], dest: Destination | None = None, *, watch_global: bool = False
    ) -> None:
        self._make = make
        self._dest = dest
        self._watch_global = watch_global  # tcc's own pipeline, chosen because no global provider was set
        self._exporter: SpanExporter | None = None
        self._pid = os.getpid()
        self._stopped: str | None = None  # why exports stopped being tried (stop_retrying at shutdown)

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

    @property
    def endpoint(self) -> str | None:
        return self._dest.endpoint if self._dest is not None else None

    def explain(self, cause: str) -> str | None:
        """The warning for the first failure of an outage (None: it was said at setup already)."""
        exporter = self._get()
        if isinstance(exporter, _Refusing):
            return None if exporter.said else f"{exporter.reason}; spans are dropped"
        return _explain(self._dest, cause)

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        if self._watch_global:
            _check_late_provider(self._dest)
        if self._stopped is not None:
            note(self._stopped)
            return SpanExportResult.FAILURE
        return self._get().export(spans)

    def stop_retrying(self, cause: str | None) -> None:
        """At shutdown, for a destination that is failing: stop the export that is waiting to retry, and
        fail the next ones at once (the exporter is shut down; nothing more is tried)."""
        if cause is None or "refused" not in cause:
            return  # a hung or overloaded collector keeps its chance, within the shutdown bound
        if self._exporter is not None and self._pid == os.getpid() and self._stopped is None:
            self._stopped = f"not sent at shutdown: the destination was failing ({cause or 'unknown cause'})"
            self._exporter.shutdown()

    def shutdown(self) -> None:
        if self._exporter is not None and self._pid == os.getpid() and self._stopped is None:
            self._stopped = "tcc's exporter is shut down"
            self._exporter.shutdown()

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return True


class _Exporters:
    """The exporter for each destination, as ``config`` says to build it (the processor's ``exporter_for``).

    >>> exporters = _Exporters(config)
    >>> exporters(Destination("https://c.example.com/v1/traces", "key"))   # built on its first export
    """

    def __init__(self, config: Config, *, watch_global: bool = False) -> None:
        self._config = config
        self._watch_global = watch_global

    def __call__(self, dest: Hashable) -> SpanExporter:
        assert isinstance(dest, Destination)
        return _Lazy(functools.partial(_exporter, dest, self._config), dest, watch_global=self._watch_global)


def _exporter(dest: Destination, config: Config) -> SpanExporter:
    problem = config.endpoint_problem()
    if problem is not None and dest.source == config.traces_source():
        # The endpoint variable is not a URL: sending to the default instead would reach a collector
        # nobody chose. Its warning at setup named the variable and the fix.
        return _Refusing(problem, said=True)
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
                cause = _describe(exc)
                note(cause, at_once=isinstance(exc, requests.ConnectionError))
                if final() and isinstance(exc, requests.ConnectionError):
                    # At shutdown a refused connection is not retried: the exporter retries connection
                    # errors for up to its timeout, and the process would wait for nothing. An error
                    # of another type is one it does not retry.
                    raise _NotRetriedError(cause) from exc
                raise
            if response.status_code >= 300:
                # 4xx other than 408 and 429 are not retried and not mended by waiting: warn at once.
                status = response.status_code
                at_once = 400 <= status < 500 and status not in (408, 429)
                note(f"HTTP {status} {response.reason} from {response.url}", at_once=at_once)
            return response

    return Session()


class _NotRetriedError(Exception):
    """A connection error at shutdown, raised as a type the OTLP exporter does not retry."""


def _describe(exc: BaseException) -> str:
    """A request's failure, short: the common causes named plainly, anything else as it came."""
    text = str(exc)
    if "Connection refused" in text or "ConnectionRefusedError" in text:
        return "connection refused (nothing is listening there)"
    if "Name or service not known" in text or "nodename nor servname" in text:
        return "the host name does not resolve"
    if "timed out" in text.lower() or "Timeout" in type(exc).__name__:
        return f"the request timed out ({type(exc).__name__})"
    return f"{type(exc).__name__}: {text}"


def _explain(dest: Destination | None, cause: str) -> str:
    """The warning for a destination's first failed export: the URL, where it came from, what failed,
    and the likely fix."""
    if dest is None:
        return f"exporting spans failed ({cause}); spans are dropped until exports succeed again"
    url, source = dest.endpoint, dest.source or "the default"
    return (
        f"exporting spans failed ({cause}), sending to {url} (from {source}). {_likely_fix(dest, cause)}"
        "Spans are dropped until exports succeed again."
    )


def _likely_fix(dest: Destination, cause: str) -> str:
    url, lowered = dest.endpoint, cause.lower()
    host = urlsplit(url).hostname or ""
    endpoint, traces = _settings.ENDPOINT.name, _settings.TRACES_ENDPOINT.name
    if "refused" in lowered or "failed to establish" in lowered or "does not resolve" in lowered:
        if is_loopback(host):
            return (
                "Start a collector there, or run `python -m contextcompany dev -- python your_app.py` "
                "to see your runs locally. "
            )
        return "Check that a collector runs at that host and port. "
    if "404" in cause:
        if url.rstrip("/").endswith("/v1/traces/v1/traces"):
            return (
                f"{endpoint} is a base URL and /v1/traces was appended to it: leave /v1/traces out of it, "
                f"or give the full URL in {traces}. "
            )
        if not url.rstrip("/").endswith("/v1/traces"):
            return "An OTLP/HTTP collector takes traces at /v1/traces: the URL most likely lacks that path. "
        return "Check the path the collector serves traces at. "
    if "401" in cause or "403" in cause:
        return (
            "The collector refused the credentials: check TCC_API_KEY (or configure(api_key=...)) and "
            "OTEL_EXPORTER_OTLP_HEADERS. "
        )
    if "timed out" in lowered or "timeout" in lowered:
        return "The collector did not answer in time (OTEL_EXPORTER_OTLP_TIMEOUT, default 10 s). "
    if "connection adapters" in lowered or "schema" in lowered:
        return "A URL needs http:// or https://. "
    return ""


def _check_late_provider(dest: Destination | None) -> None:
    """On the export worker: a global TracerProvider set after tcc built its own pipeline gets one
    warning (tcc's spans do not go through it, and nothing else would say so)."""
    if isinstance(trace.get_tracer_provider(), trace.ProxyTracerProvider | trace.NoOpTracerProvider):
        return
    where = dest.endpoint if dest is not None else "tcc's exporter"
    diag.warn_once(
        "late global provider",
        "contextcompany: a global TracerProvider was set after tcc's first record, so tcc's spans do not "
        "go through it: they keep going to %s through tcc's own pipeline. To record through yours, set "
        "it before the first tcc record, or pass it with tcc.configure(tracer_provider=...) at startup.",
        where,
    )


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
    # tcc's processor when it is the only one on a provider tcc built (no configure(span_processors=...)):
    # nothing else sees that provider's spans, so its worker may start them (see handoff()).
    alone: SpanProcessor | None = None
    retired: tuple[SpanProcessor, ...] = ()  # after shutdown(): what stats() still reports
    # Where records whose span was not sampled go (a tcc processor's unsampled()); found once.
    sink: Callable[[_metrics.Unsampled], None] | None = None
    sink_found: bool = False

    def unsampled_sink(self) -> Callable[[_metrics.Unsampled], None] | None:
        """The tcc span processor that counts records no span carries: tcc's own, the routing pipeline's,
        or one the service added to its provider. Any will do: metrics are the process's."""
        if not self.sink_found:
            processors = [p for p in (self.processor, self.routing and self.routing.processor) if p]
            if not processors and self.provider is not None:
                processors = _processors_on(self.provider)
            self.sink = processors[0].unsampled if processors else None
            self.sink_found = True
        return self.sink

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
    """Run ``hook`` at interpreter exit (or SIGTERM), before the last delivery (records end their open
    spans, as ``exit_cause()`` says)."""
    _exit_hooks.append(hook)


@dataclass(frozen=True, slots=True)
class ExitCause:
    """Why the exit hooks are ending what is still open: the process exits, or SIGTERM stops it.

    >>> exit_cause().message("run")
    'the process exited before the run ended'
    """

    error_type: str
    what: str

    def message(self, kind: str) -> str:
        return f"{self.what} before the {kind} ended"


EXITED: Final = ExitCause(sc.ERROR_TYPE_PROCESS_EXIT, "the process exited")
TERMINATED: Final = ExitCause(sc.ERROR_TYPE_TERMINATED, "process terminated by SIGTERM")
_exit_cause = EXITED


def exit_cause() -> ExitCause:
    """What the exit hooks should write on what they end (read by the records' exit ending)."""
    return _exit_cause


def get() -> Pipeline:
    """The pipeline, set up on first use."""
    pipeline = _pipeline
    if pipeline is None:
        with _lock:
            pipeline = _pipeline
            if pipeline is None:
                # Marked built first: a configure() racing with this build then raises instead of being
                # silently ignored.
                pipeline = _set(_build(_settings.freeze()))
                if pipeline.config.handles_sigterm():
                    # Only here, once: on the main thread and when SIGTERM is still at its default.
                    _sigterm.install(_on_sigterm, _sigterm_bound)
    return pipeline


def target(dest: Destination | None) -> tuple[trace.Tracer, SpanProcessor | None]:
    """What a record starts its span with: see ``Pipeline.target``."""
    pipeline = _pipeline  # every record starts here: skip the call to get() once it is set up
    if pipeline is None:
        pipeline = get()
    return pipeline.target(dest)


def handoff(tracer: trace.Tracer) -> SpanProcessor | None:
    """The tcc span processor whose export worker may start and end the spans ``tracer`` starts, or None.

    Only for a provider tcc built with its processor alone on it: no other processor sees those spans,
    so none can tell when, or on which thread, they started. A service's provider keeps its spans on
    the caller's thread, where its processors expect them.

    >>> worker = handoff(tracer)   # then worker.hand(...) instead of tracer.start_span(...)
    """
    pipeline = _pipeline
    while pipeline is not None:
        if pipeline.tracer is tracer:
            return pipeline.alone
        pipeline = pipeline.routing
    return None


def unsampled_sink() -> Callable[[_metrics.Unsampled], None] | None:
    """Where a record whose span was not sampled goes, if anywhere (see ``Pipeline.unsampled_sink``)."""
    pipeline = _pipeline
    return pipeline.unsampled_sink() if pipeline is not None else None


def _set(pipeline: Pipeline) -> Pipeline:
    global _pipeline
    _pipeline = pipeline
    return pipeline


def _own_pipeline(config: Config, resource: Resource | None = None) -> Pipeline:
    default = default_destination(config)
    exporters = _Exporters(config, watch_global=resource is None and config.tracer_provider is None)
    advice = config.endpoint_advice()
    if advice is not None:
        diag.warn_once("endpoint advice", "contextcompany: %s", advice)
    processor = SpanProcessor(
        exporters(default), shutdown_timeout_millis=config.shutdown_millis(), exporter_for=exporters
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
        alone=None if config.span_processors else processor,
    )


def _build(config: Config) -> Pipeline:
    global _exit_registered
    if not _exit_registered:
        # Registered after any provider the service made, so it runs before that provider's exit hook.
        atexit.register(_at_exit)
        _exit_registered = True
    if _settings.SDK_DISABLED.get():
        return Pipeline(tracer=trace.NoOpTracer(), config=config)
    host = config.tracer_provider or trace.get_tracer_provider()
    if not isinstance(host, trace.ProxyTracerProvider | trace.NoOpTracerProvider):
        tracer = host.get_tracer(sc.INSTRUMENTATION_NAME, _VERSION)
        _ids.install(tracer)
        return Pipeline(tracer=tracer, provider=host, config=config)
    return _own_pipeline(config)


def install(pipeline: Pipeline | None) -> Pipeline | None:
    """Replace the pipeline (tests); returns the previous one. configure() may change the configuration
    again while there is none."""
    global _pipeline
    with _lock:
        previous, _pipeline = _pipeline, pipeline
        if pipeline is None:
            _settings.thaw()
        else:
            _settings.freeze()
    return previous


def reset_for_tests() -> None:
    """Forget configure() and the pipeline (tests only)."""
    global _pipeline
    with _lock:
        _pipeline = None
        _settings.reset()
    _metrics.shared.reset()


# --- metrics -----------------------------------------------------------------------------------------------


def _own_meter(plan: _metrics.Plan) -> Any:
    from . import _meter  # noqa: PLC0415  (the metrics SDK, imported on the export worker when first needed)

    return _meter.own_provider(plan)


def metrics_plan() -> _metrics.Plan:
    """Where the process's metrics go (``_metrics.shared`` asks on the export worker, once): the service's
    MeterProvider (configure, else the global one), else tcc's own to the metrics URL with the same key
    and headers as the spans, unless OTEL_METRICS_EXPORTER or OTEL_SDK_DISABLED says otherwise."""
    config = _settings.config
    host = _metrics.host_provider(config.meter_provider)
    enabled = not _settings.SDK_DISABLED.get() and _settings.METRICS_EXPORTER.get()
    endpoint = config.metrics_url()
    key = config.key()
    headers = dict(config.headers)
    if key:
        headers["authorization"] = f"Bearer {key}"
    refused = _settings.exposure(endpoint, key, config.insecure_http_allowed())
    pipeline = _pipeline
    resource = getattr(pipeline.provider, "resource", None) if pipeline is not None else None
    if not isinstance(resource, Resource):
        resource = Resource.create()
        if config.service_name is not None:
            resource = resource.merge(Resource({SERVICE_NAME: config.service_name}))
    return _metrics.Plan(
        host=host,
        enabled=enabled,
        endpoint=endpoint,
        headers=headers,
        interval_millis=_settings.METRIC_EXPORT_INTERVAL.get(),
        temporality=_settings.METRICS_TEMPORALITY.get(),
        resource=resource,
        refused=refused,
        refusal_told=refused is not None
        and _settings.exposure(config.traces_url(), key, config.insecure_http_allowed()) is not None,
        version=_VERSION,
        own=_own_meter,
    )


_metrics.shared.planner = metrics_plan

# At exit, metrics keep this share of the bound (at most 500 ms): they are recorded by the span worker, so
# they are collected after it, and a hung traces collector must not leave them no time at all.
_METRICS_SHARE: Final = 0.2
_METRICS_SHARE_MAX_MILLIS: Final = 500.0


# --- flush, shutdown, stats, exit ------------------------------------------------------------------------


def _at_exit() -> None:
    for hook in _exit_hooks:
        try:
            hook()
        except Exception:
            logger.exception("contextcompany: an exit hook failed")
    pipeline = _pipeline
    if pipeline is not None:
        before = _dropped(pipeline.owned_pipelines())
        _shutdown_within(pipeline, pipeline.config.shutdown_millis())
        _report_undelivered(pipeline.owned_pipelines(), before)


def _dropped(owned: Sequence[Pipeline]) -> int:
    return sum(p.processor.stats().spans_dropped for p in owned if p.processor is not None)


def _report_undelivered(owned: Sequence[Pipeline], before: int) -> None:
    """After tcc's own pipelines shut down: say how many spans the shutdown could not deliver, and the
    last cause (drops of an earlier outage were told when it began)."""
    stats = [p.processor.stats() for p in owned if p.processor is not None]
    lost = sum(s.spans_dropped for s in stats) - before
    if lost <= 0:
        return
    causes = [s.last_error for s in stats if s.last_error]
    logger.warning(
        "contextcompany: %d span%s not delivered (%s)",
        lost,
        " was" if lost == 1 else "s were",
        causes[-1] if causes else "dropped",
    )


def _sigterm_bound() -> float:
    """How long the SIGTERM handler waits for delivery: the shutdown timeout, plus a little for ending
    the open records and reporting."""
    pipeline = _pipeline
    config = pipeline.config if pipeline is not None else _settings.config
    return config.shutdown_millis() / 1000 + 0.25


def _on_sigterm() -> None:
    """On the SIGTERM handler's helper thread: end what is open as terminated, deliver within the bound."""
    global _exit_cause
    _exit_cause = TERMINATED
    pipeline = _pipeline
    _at_exit()
    if pipeline is not None and not pipeline.owned and pipeline.provider is not None:
        _flush_host(pipeline)


def _flush_host(pipeline: Pipeline) -> None:
    """The service's provider stays up; tcc waits for it no longer than for its own."""
    force_flush = getattr(pipeline.provider, "force_flush", None)
    if force_flush is not None:
        limit = pipeline.config.shutdown_millis()
        _bounded(lambda: force_flush(int(limit)), limit)


def _shutdown_within(pipeline: Pipeline, bound_millis: float) -> None:
    """Shut tcc's own providers down, spans then metrics, all within ``bound_millis``.

    The spans' worker records the metrics of what it processes, so the metrics are collected after it;
    they keep a small share of the bound, so a hung traces collector still leaves them time.
    """
    deadline = time.monotonic() + bound_millis / 1000
    reserve = min(bound_millis * _METRICS_SHARE, _METRICS_SHARE_MAX_MILLIS)
    for own in pipeline.owned_pipelines():
        # Bounded: SpanProcessor.shutdown waits at most the time given, even for a hung collector.
        if own.processor is not None:
            left = max((deadline - time.monotonic()) * 1000 - reserve, 0.0)
            own.processor.shutdown(timeout_millis=left)
        if isinstance(own.provider, TracerProvider):
            own.provider.shutdown()
    # One small request to a collector that answers takes milliseconds; one that does not is not waited
    # for beyond the reserve (the spans' warning already says it is unreachable).
    left = min(max((deadline - time.monotonic()) * 1000, 0.0), reserve)
    _bounded(lambda: _metrics.shared.shutdown(left), left)


def flush(timeout_millis: int) -> bool:
    pipeline = _pipeline
    if pipeline is None:
        return True
    deadline = time.monotonic() + timeout_millis / 1000
    ok = True
    for provider in {
        id(p.provider): p.provider for p in (pipeline, pipeline.routing) if p is not None
    }.values():
        force_flush: Callable[[int], object] | None = getattr(provider, "force_flush", None)
        if force_flush is not None:
            ok = _bounded(functools.partial(force_flush, timeout_millis), timeout_millis) and ok
    # Then the metrics, which the span worker has just recorded, in what is left of the time. The result
    # stays the spans' (a collector that takes no metrics is said once by the metrics exporter).
    left = min(max((deadline - time.monotonic()) * 1000, 0.0), _METRICS_SHARE_MAX_MILLIS)
    if left > 0:
        _bounded(lambda: _metrics.shared.flush(left), left)
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
        _set(Pipeline(tracer=trace.NoOpTracer(), config=_settings.config, retired=retired))
    if pipeline is None:
        return
    before = _dropped(pipeline.owned_pipelines())
    _shutdown_within(pipeline, pipeline.config.shutdown_millis())
    _report_undelivered(pipeline.owned_pipelines(), before)
    if not pipeline.owned and pipeline.provider is not None:
        _flush_host(pipeline)


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
    if pipeline is None:
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
