"""Totals of the GenAI metrics the dev receiver got: tokens by type and cost, per model.

Token counts come from the convention's ``gen_ai.client.token.usage`` histogram (its sum, split by
``gen_ai.token.type``); cost from any counter whose unit is US dollars (tcc's cost counter has a
``tcc.`` name: the convention has none yet). Cumulative streams report their running total on every
export, so the latest value of each stream counts; delta streams add up.

Example::

    totals = MetricTotals()
    receiver = OTLPReceiver(on_metrics=totals)
    ...
    for line in totals.lines():
        print(line)        # "gpt-4o: 1,436 input · 18 output tokens · $0.003770"
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, Final

from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceRequest
from opentelemetry.proto.metrics.v1.metrics_pb2 import AggregationTemporality
from opentelemetry.semconv._incubating.attributes.gen_ai_attributes import GEN_AI_TOKEN_TYPE
from opentelemetry.semconv._incubating.metrics.gen_ai_metrics import GEN_AI_CLIENT_TOKEN_USAGE

from contextcompany import _semconv as sc
from contextcompany.dev._receiver import _attributes
from contextcompany.dev._text import format_cost

__all__ = ["MetricTotals", "ModelTotals"]

UNKNOWN_MODEL: Final = "(no model)"
_CUMULATIVE: Final = AggregationTemporality.AGGREGATION_TEMPORALITY_CUMULATIVE


@dataclass(slots=True)
class ModelTotals:
    """What one model used: tokens by token type (``input``, ``output``...) and cost in USD."""

    tokens: dict[str, float] = field(default_factory=dict)
    cost: float | None = None


def _is_cost(name: str, unit: str) -> bool:
    return "usd" in unit.lower() or (name.startswith("tcc.") and "cost" in name)


class MetricTotals:
    """Keeps the totals of every ``ExportMetricsServiceRequest`` it is called with (thread-safe)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        # stream -> (time of the latest point, its value); a stream is one series of one exporter.
        self._cumulative: dict[tuple[str, ...], tuple[int, float]] = {}
        self._delta: dict[tuple[str, ...], float] = {}
        self.requests = 0
        self.points = 0

    def __call__(self, request: ExportMetricsServiceRequest) -> None:
        with self._lock:
            self.requests += 1
            for resource_metrics in request.resource_metrics:
                resource = json.dumps(
                    _attributes(resource_metrics.resource.attributes), sort_keys=True, default=str
                )
                for scope_metrics in resource_metrics.scope_metrics:
                    for metric in scope_metrics.metrics:
                        self._metric(resource, scope_metrics.scope.name, metric)

    def _metric(self, resource: str, scope: str, metric: Any) -> None:
        name, unit = metric.name, metric.unit
        if name == GEN_AI_CLIENT_TOKEN_USAGE:
            what = "tokens"
        elif _is_cost(name, unit):
            what = "cost"
        else:
            return
        data = metric.WhichOneof("data")
        if data == "histogram":
            points, temporality = metric.histogram.data_points, metric.histogram.aggregation_temporality
        elif data == "sum":
            points, temporality = metric.sum.data_points, metric.sum.aggregation_temporality
        else:
            return
        for point in points:
            attributes = _attributes(point.attributes)
            model = attributes.get(sc.RESPONSE_MODEL) or attributes.get(sc.REQUEST_MODEL) or UNKNOWN_MODEL
            kind = str(attributes.get(GEN_AI_TOKEN_TYPE, "tokens")) if what == "tokens" else "cost"
            if data == "histogram":
                value = float(point.sum)
            else:
                value = float(point.as_int if point.WhichOneof("value") == "as_int" else point.as_double)
            key = (
                str(model),
                kind,
                resource,
                scope,
                name,
                json.dumps(attributes, sort_keys=True, default=str),
                str(point.start_time_unix_nano),
            )
            self.points += 1
            if temporality == _CUMULATIVE:
                previous = self._cumulative.get(key)
                if previous is None or point.time_unix_nano >= previous[0]:
                    self._cumulative[key] = (point.time_unix_nano, value)
            else:
                self._delta[key] = self._delta.get(key, 0.0) + value

    def by_model(self) -> dict[str, ModelTotals]:
        """Totals per model, models in name order."""
        with self._lock:
            values: Iterable[tuple[tuple[str, ...], float]] = [
                *((k, v) for k, (_, v) in self._cumulative.items()),
                *self._delta.items(),
            ]
            out: dict[str, ModelTotals] = {}
            for key, value in values:
                model, kind = key[0], key[1]
                totals = out.setdefault(model, ModelTotals())
                if kind == "cost":
                    totals.cost = (totals.cost or 0.0) + value
                else:
                    totals.tokens[kind] = totals.tokens.get(kind, 0.0) + value
        return dict(sorted(out.items()))

    def lines(self) -> list[str]:
        """One line per model, for the summary the dev command prints when it stops."""
        out = []
        for model, totals in self.by_model().items():
            parts = []
            if totals.tokens:
                counts = " · ".join(f"{int(n):,} {kind}" for kind, n in sorted(totals.tokens.items()))
                parts.append(f"{counts} tokens")
            if totals.cost is not None:
                parts.append(format_cost(totals.cost))
            out.append(f"{model}: " + " · ".join(parts))
        return out

    def as_dict(self) -> dict[str, Any]:
        """The totals as JSON-ready data, for the viewer."""
        return {
            "requests": self.requests,
            "models": {m: {"tokens": t.tokens, "cost": t.cost} for m, t in self.by_model().items()},
        }
