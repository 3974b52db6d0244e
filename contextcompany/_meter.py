"""tcc's own MeterProvider: a periodic reader on its own thread over the OTLP/HTTP metrics exporter.

    >>> provider = own_provider(Plan(endpoint="http://localhost:4318/v1/metrics", interval_millis=60_000))
    >>> provider.get_meter("contextcompany")

Imported by ``_metrics.Metrics`` on the export worker, the first time a span is recorded and no service
MeterProvider is there: the metrics SDK (about 0.1 s to import) and the reader's thread cost neither
``import contextcompany`` nor the caller's first record.

The exporter is the standard one. It still reads ``OTEL_EXPORTER_OTLP_METRICS_HEADERS``, ``_TIMEOUT``,
``_COMPRESSION`` and the certificate variables itself; the reader reads ``OTEL_METRIC_EXPORT_TIMEOUT``.
Its log lines during tcc's exports are kept as the failure's reason (``_export._exporter_logs``) and tcc
says once per outage that metrics are not getting through, as it does for spans.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Mapping
from typing import Any, Final

from opentelemetry.sdk.environment_variables import OTEL_METRICS_EXEMPLAR_FILTER
from opentelemetry.sdk.metrics import (
    AlwaysOffExemplarFilter,
    Counter,
    ExemplarFilter,
    Histogram,
    ObservableCounter,
    ObservableGauge,
    ObservableUpDownCounter,
    UpDownCounter,
)
from opentelemetry.sdk.metrics import MeterProvider as SdkMeterProvider
from opentelemetry.sdk.metrics.export import (
    AggregationTemporality,
    MetricExporter,
    MetricExportResult,
    MetricsData,
    PeriodicExportingMetricReader,
)
from opentelemetry.sdk.resources import Resource

from . import _forksafe as forksafe
from ._export._exporter_logs import capturing
from ._metrics import Plan, shared
from ._redact import redact

__all__ = ["LazyExporter", "own_provider", "temporality"]

logger = logging.getLogger("contextcompany")

_CUMULATIVE: Final = AggregationTemporality.CUMULATIVE
_DELTA: Final = AggregationTemporality.DELTA


def temporality(preference: str) -> dict[type, AggregationTemporality]:
    """The temporality per instrument for ``cumulative``, ``delta`` or ``lowmemory``, with the meanings
    the OpenTelemetry specification gives ``OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE``.

    >>> temporality("delta")[Counter]
    <AggregationTemporality.DELTA: 1>
    """
    sums = _DELTA if preference in ("delta", "lowmemory") else _CUMULATIVE
    return {
        Counter: sums,
        Histogram: sums,
        ObservableCounter: _DELTA if preference == "delta" else _CUMULATIVE,
        UpDownCounter: _CUMULATIVE,
        ObservableUpDownCounter: _CUMULATIVE,
        ObservableGauge: _CUMULATIVE,
    }


class LazyExporter(MetricExporter):
    """The OTLP/HTTP metrics exporter, built on the reader's thread at its first export.

    Building it imports requests and opens a session. Its failures are said once per outage, on the
    ``contextcompany`` logger, with the cause; the exporter's own lines are kept as that cause.

    It exports only in the process that made it. A forked child inherits a copy of the provider with
    the parent's aggregations, and the SDK restarts that copy's reader thread in the child: whatever the
    copy would send is the parent's, which the parent sends itself. The child gets a provider of its own
    (``_metrics.Metrics`` forgets the parent's after fork), with an exporter of its own.
    """

    def __init__(
        self, make: Callable[[], MetricExporter], preferred_temporality: dict[type, AggregationTemporality]
    ) -> None:
        super().__init__(preferred_temporality=preferred_temporality)
        self._make = make
        self._exporter: MetricExporter | None = None
        self._pid = os.getpid()
        self._failing = False

    def _get(self) -> MetricExporter:
        if self._exporter is None:
            with forksafe.importing():  # a fork must not split the imports its first use does
                self._exporter = self._make()
        return self._exporter

    def export(
        self, metrics_data: MetricsData, timeout_millis: float = 10_000, **kwargs: Any
    ) -> MetricExportResult:
        if self._pid != os.getpid():
            return MetricExportResult.SUCCESS  # the parent's data, in a forked child: the parent sends it
        error: str | None = None
        try:
            with capturing() as notes:
                result = self._get().export(metrics_data, timeout_millis=timeout_millis)
            if result is not MetricExportResult.SUCCESS:
                error = notes[-1] if notes else "the exporter reported a failure"
        except Exception as exc:
            result, error = MetricExportResult.FAILURE, f"{type(exc).__name__}: {exc}"
        if error is not None and shared.closing:
            pass  # shutting down: what the last export could not deliver is not worth a line at exit
        elif error is not None and not self._failing:
            self._failing = True
            logger.warning(
                "contextcompany: exporting metrics failed (%s); they are dropped until exports succeed again "
                "(OTEL_METRICS_EXPORTER=none turns tcc's metrics off, for a collector that takes none)",
                redact(error),
            )
        elif error is None and self._failing:
            self._failing = False
            logger.warning("contextcompany: exporting metrics works again")
        return result

    def force_flush(self, timeout_millis: float = 10_000) -> bool:
        return True

    def shutdown(self, timeout_millis: float = 30_000, **kwargs: Any) -> None:
        if self._exporter is not None and self._pid == os.getpid():
            self._exporter.shutdown(timeout_millis=timeout_millis)


def otlp_exporter(endpoint: str, headers: Mapping[str, str] | None) -> MetricExporter:
    """The standard OTLP/HTTP metrics exporter, to ``endpoint`` with ``headers``."""
    from opentelemetry.exporter.otlp.proto.http.metric_exporter import (  # noqa: PLC0415
        OTLPMetricExporter,
    )

    return OTLPMetricExporter(endpoint=endpoint, headers=dict(headers) if headers else None)


def exemplar_filter() -> ExemplarFilter | None:
    """The exemplar filter of tcc's own provider: never one by default; None lets the SDK read
    ``OTEL_METRICS_EXEMPLAR_FILTER`` when it says something other than its default.

    The SDK's default, ``trace_based``, keeps an exemplar only for a measurement made under a sampled
    span. tcc records its metrics on its export worker, whose context holds no span (a thread starts
    with an empty context, and the worker sets no span in it; ``tests/test_metrics_export.py`` checks
    that no exemplar comes out): ``trace_based`` never keeps one there, yet asks the context for a span
    at each of the three histogram points per call. ``always_off`` exports the same data without asking.
    (Where a new thread inherits its starter's context, as on free-threaded Python 3.14, the worker could
    hold whatever span was current where it started: an exemplar would point at an unrelated trace.)

    >>> type(exemplar_filter()).__name__    # OTEL_METRICS_EXEMPLAR_FILTER unset
    'AlwaysOffExemplarFilter'
    """
    if os.environ.get(OTEL_METRICS_EXEMPLAR_FILTER, "trace_based") == "trace_based":
        return AlwaysOffExemplarFilter()
    return None  # always_on, always_off, or a value the SDK refuses as it would for any provider


def own_provider(plan: Plan) -> SdkMeterProvider:
    """tcc's own MeterProvider for ``plan``: a periodic reader (its own thread) over the OTLP exporter.

    Not set globally, so it never fights the service for that slot; not shut down by the SDK at exit,
    which tcc does within its own bound.
    """
    endpoint, headers = plan.endpoint, dict(plan.headers)
    exporter = LazyExporter(lambda: otlp_exporter(endpoint, headers), temporality(plan.temporality))
    reader = PeriodicExportingMetricReader(exporter, export_interval_millis=plan.interval_millis)
    return SdkMeterProvider(
        metric_readers=[reader],
        resource=plan.resource or Resource.create(),
        shutdown_on_exit=False,
        exemplar_filter=exemplar_filter(),
    )
