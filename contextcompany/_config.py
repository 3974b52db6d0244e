"""Where tcc's spans go: provider discovery, the OTLP exporter, and delivery at interpreter exit.

Nothing here runs at import. The first record (``tcc.run()``, ``tcc.step()``, ...) sets up the pipeline:

- ``OTEL_SDK_DISABLED=true``: a no-op tracer; the API still validates, nothing is sent.
- The process already set an OpenTelemetry ``TracerProvider``: tcc spans are made through it, so they
  nest under the service's spans and reach the service's exporters (once each).
- Otherwise tcc builds its own provider (not set globally, so it never fights the service for that
  slot): resource from ``OTEL_SERVICE_NAME`` / ``OTEL_RESOURCE_ATTRIBUTES``, a ``SpanProcessor`` of ours
  in front of the standard OTLP/HTTP exporter configured by ``OTEL_EXPORTER_OTLP_*``, and an exit hook
  that delivers what is queued within a bounded time.
"""

from __future__ import annotations

import atexit
import logging
import os
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Final
from urllib.parse import urlsplit

from opentelemetry import trace
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.id_generator import RandomIdGenerator

from . import _ids
from . import _semconv as sc
from ._processor import SpanProcessor, Stats

logger = logging.getLogger("contextcompany")

_VERSION = "3.0.0"


@dataclass(frozen=True, slots=True)
class Pipeline:
    """The tracer tcc records through, and what it owns."""

    tracer: trace.Tracer
    provider: trace.TracerProvider | None = None
    processor: SpanProcessor | None = None
    owned: bool = False  # tcc built the provider, so tcc flushes and shuts it down
    api_key: str | None = None
    tcc_url: str | None = None


@dataclass(slots=True)
class Settings:
    """What ``configure()`` can change while tcc runs."""

    run_timeout: float = 20 * 60.0  # seconds; 0 disables


settings = Settings()
_lock = threading.Lock()
_pipeline: Pipeline | None = None
_warned: set[str] = set()
_exit_hooks: list[Callable[[], None]] = []
_exit_registered = False


def on_exit(hook: Callable[[], None]) -> None:
    """Run ``hook`` at interpreter exit, before the last delivery (records end their open spans)."""
    _exit_hooks.append(hook)


def _after_fork_in_child() -> None:
    global _lock
    _lock = threading.Lock()  # another thread may have held it at fork time


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)


def _env_true(name: str) -> bool:
    return os.environ.get(name, "").strip().lower() == "true"


def traces_endpoint(tcc_url: str) -> str:
    """The OTLP traces URL for a ``tcc_url``: used as is when it ends in ``/v1/traces``, else that is
    appended, like ``OTEL_EXPORTER_OTLP_ENDPOINT``.

    >>> traces_endpoint("https://collector.example.com:4318")
    'https://collector.example.com:4318/v1/traces'
    """
    url = tcc_url.rstrip("/")
    return url if url.endswith("/v1/traces") else url + "/v1/traces"


def check_tcc_url(tcc_url: str | None, call: str) -> None:
    """Raise at the call that passed a malformed ``tcc_url``."""
    if tcc_url is None:
        return
    if not isinstance(tcc_url, str):
        raise TypeError(f"[TCC] {call}(tcc_url=...) expects a str URL or None, got {type(tcc_url).__name__}")
    parts = urlsplit(tcc_url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"[TCC] {call}(tcc_url=...) expects an http:// or https:// URL, got {tcc_url!r}")


def check_api_key(api_key: str | None, call: str) -> None:
    if api_key is not None and (not isinstance(api_key, str) or not api_key.strip()):
        raise TypeError(f"[TCC] {call}(api_key=...) expects a non-empty str or None")


def _shutdown_timeout_millis() -> float | None:
    """``TCC_SHUTDOWN_TIMEOUT_MILLIS``: how long shutdown and interpreter exit may wait for delivery."""
    raw = os.environ.get("TCC_SHUTDOWN_TIMEOUT_MILLIS", "").strip()
    if not raw:
        return None
    try:
        value = float(raw)
    except ValueError:
        value = -1.0
    if not value >= 0:  # also catches nan
        _warn_once("shutdown", "contextcompany: TCC_SHUTDOWN_TIMEOUT_MILLIS=%r is not a number >= 0", raw)
        return None
    return value


def _warn_once(key: str, message: str, *args: object) -> None:
    if key not in _warned:
        _warned.add(key)
        logger.warning(message, *args)


_DRY_RUN: Final = Pipeline(tracer=trace.NoOpTracer())
_dry: ContextVar[bool] = ContextVar("contextcompany.dry_run", default=False)


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


def get(api_key: str | None = None, tcc_url: str | None = None) -> Pipeline:
    """The pipeline, set up on first use. ``api_key`` / ``tcc_url`` apply process-wide, first seen wins."""
    if _dry.get():
        return _DRY_RUN
    pipeline = _pipeline
    if pipeline is None:
        pipeline = _setup(api_key, tcc_url)
    elif (api_key is not None and api_key != pipeline.api_key) or (
        tcc_url is not None and tcc_url != pipeline.tcc_url
    ):
        _warn_once(
            "destination",
            "contextcompany: api_key/tcc_url differ from the ones in use since the first call; "
            "this process keeps sending everything to its first destination",
        )
    return pipeline


def _setup(api_key: str | None, tcc_url: str | None) -> Pipeline:
    global _pipeline
    with _lock:
        if _pipeline is not None:
            return _pipeline
        _pipeline = _build(api_key, tcc_url)
        return _pipeline


def _build(api_key: str | None, tcc_url: str | None) -> Pipeline:
    global _exit_registered
    if not _exit_registered:
        # Registered after any provider the service made, so it runs before that provider's exit hook.
        atexit.register(_at_exit)
        _exit_registered = True
    if _env_true("OTEL_SDK_DISABLED"):
        return Pipeline(tracer=trace.NoOpTracer(), api_key=api_key, tcc_url=tcc_url)
    host = trace.get_tracer_provider()
    if not isinstance(host, trace.ProxyTracerProvider | trace.NoOpTracerProvider):
        tracer = host.get_tracer(sc.INSTRUMENTATION_NAME, _VERSION)
        _ids.install(tracer)
        return Pipeline(tracer=tracer, provider=host, api_key=api_key, tcc_url=tcc_url)
    key = api_key or os.environ.get("TCC_API_KEY") or None
    exporter = OTLPSpanExporter(
        endpoint=traces_endpoint(tcc_url) if tcc_url else None,
        headers={"authorization": f"Bearer {key}"} if key else None,
    )
    processor = SpanProcessor(exporter, shutdown_timeout_millis=_shutdown_timeout_millis())
    provider = TracerProvider(
        resource=Resource.create(),
        shutdown_on_exit=False,  # _at_exit does it, within a bound
        id_generator=_ids.RunIdGenerator(RandomIdGenerator()),
    )
    provider.add_span_processor(processor)
    return Pipeline(
        tracer=provider.get_tracer(sc.INSTRUMENTATION_NAME, _VERSION),
        provider=provider,
        processor=processor,
        owned=True,
        api_key=api_key,
        tcc_url=tcc_url,
    )


def install(pipeline: Pipeline | None) -> Pipeline | None:
    """Replace the pipeline (tests, and later ``configure()``); returns the previous one."""
    global _pipeline
    with _lock:
        previous, _pipeline = _pipeline, pipeline
    return previous


def _at_exit() -> None:
    for hook in _exit_hooks:
        try:
            hook()
        except Exception:
            logger.exception("contextcompany: an exit hook failed")
    # Bounded: SpanProcessor.shutdown waits at most its shutdown timeout, even for a hung collector.
    pipeline = _pipeline
    if pipeline is not None and pipeline.owned and isinstance(pipeline.provider, TracerProvider):
        pipeline.provider.shutdown()


def flush(timeout_millis: int) -> bool:
    pipeline = _pipeline
    if pipeline is None or pipeline.provider is None:
        return True
    force_flush = getattr(pipeline.provider, "force_flush", None)
    return bool(force_flush(timeout_millis)) if force_flush is not None else True


def shutdown() -> None:
    """Deliver what is queued and stop sending. Later records still validate but send nothing. A
    provider that belongs to the host service is flushed, never shut down."""
    global _pipeline
    with _lock:
        pipeline = _pipeline
        _pipeline = Pipeline(tracer=trace.NoOpTracer())
    if pipeline is None or pipeline.provider is None:
        return
    if pipeline.owned and isinstance(pipeline.provider, TracerProvider):
        pipeline.provider.shutdown()
    else:
        flush(30000)


def stats() -> Stats | None:
    pipeline = _pipeline
    return pipeline.processor.stats() if pipeline is not None and pipeline.processor is not None else None


# --- kept from contextcompany 2.0.0, whose __all__ exported them ------------------------------------


def get_api_key(api_key: str | None = None) -> str:
    """The API key tcc sends as ``Authorization: Bearer``: ``api_key``, else ``TCC_API_KEY``.

    Raises ValueError when neither is set (as in 2.0.0). tcc itself sends without a key then.

    >>> get_api_key("tcc_live_123")
    'tcc_live_123'
    """
    key = api_key or os.environ.get("TCC_API_KEY")
    if not key:
        raise ValueError("[TCC] No API key: set the TCC_API_KEY environment variable or pass api_key=...")
    return key


def get_url(path: str, api_key: str | None = None) -> str:
    """``path`` joined to the OTLP base endpoint (``OTEL_EXPORTER_OTLP_ENDPOINT``, else the OTLP default).

    ``api_key`` is accepted for compatibility with 2.0.0 and does not change the URL.

    >>> get_url("/v1/traces")
    'http://localhost:4318/v1/traces'
    """
    base = os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT", "").strip() or "http://localhost:4318"
    return base.rstrip("/") + "/" + path.lstrip("/")
