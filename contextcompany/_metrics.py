"""GenAI client metrics and tcc's cost counter, recorded from one ended span's final attributes.

    >>> recorder = Recorder(meter_provider.get_meter("contextcompany"))
    >>> recorder.record(span_attributes, start_ns, end_ns, failed=False, own=True)

Why metrics at all: services sample traces, so any total built from spans (spend, tokens) is a fraction
of the real one. Metrics are recorded for every call tcc sees, sampled or not, and a counter's sum over
any window is the spend in that window.

The instruments (names from ``opentelemetry-semantic-conventions`` where the convention has them):

- ``gen_ai.client.token.usage``: histogram of tokens per call, one point per ``gen_ai.token.type``
  (``input``, ``output``), exactly as the convention says. ``input`` counts every input token, cache
  reads and writes included; ``output`` counts reasoning tokens too. Its sum per type is the total.
- ``tcc.client.token.parts``: a counter that splits the same tokens into disjoint parts
  (``tcc.token.part``: ``uncached``, ``cache_read``, ``cache_write`` of the input; ``response``,
  ``reasoning`` of the output; ``unknown`` where a call's parts exceed its total). The parts of a type sum
  to that type's total, so no sum over this counter counts a token twice. It carries the same tokens as
  the histogram: a dashboard uses one or the other, never adds them.
- ``gen_ai.client.operation.duration``: seconds, per operation (chat, execute_tool, invoke_agent, ...).
- ``gen_ai.client.operation.time_to_first_chunk``: seconds, where a span carries
  ``gen_ai.response.time_to_first_chunk``.
- ``tcc.client.cost.usd``: a counter of USD, from ``tcc.cost.usd`` after pricing.

Cardinality is bounded by construction: metric attributes are built from an explicit allow-list of keys
(``DIMENSIONS``), never by copying a span's attributes, and each key keeps at most ``_MAX_VALUES``
distinct values (later ones read ``_OTHER``), so a run id, session id or message can never become a
metric attribute, even one passed by mistake as a model or agent name.
"""

from __future__ import annotations

import logging
import math
import threading
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Final, cast

from opentelemetry import metrics
from opentelemetry.metrics import CallbackOptions, Meter, MeterProvider, Observation
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.util.instrumentation import InstrumentationScope
from opentelemetry.semconv._incubating.metrics import gen_ai_metrics as _gm
from opentelemetry.trace import Status, StatusCode
from opentelemetry.util.types import AttributeValue

if TYPE_CHECKING:
    from opentelemetry.sdk.metrics import MeterProvider as SdkMeterProvider

from . import _diag as diag
from . import _forksafe as forksafe
from . import _semconv as sc
from ._usage import Usage

__all__ = ["DIMENSIONS", "Recorder"]

logger = logging.getLogger("contextcompany")

# Bucket boundaries the GenAI metrics convention advises (ExplicitBucketBoundaries).
TOKEN_BUCKETS: Final = (
    1,
    4,
    16,
    64,
    256,
    1024,
    4096,
    16384,
    65536,
    262144,
    1048576,
    4194304,
    16777216,
    67108864,
)
SECONDS_BUCKETS: Final = (
    0.01,
    0.02,
    0.04,
    0.08,
    0.16,
    0.32,
    0.64,
    1.28,
    2.56,
    5.12,
    10.24,
    20.48,
    40.96,
    81.92,
)

TOKEN_USAGE: Final = _gm.GEN_AI_CLIENT_TOKEN_USAGE
OPERATION_DURATION: Final = _gm.GEN_AI_CLIENT_OPERATION_DURATION
TIME_TO_FIRST_CHUNK: Final = _gm.GEN_AI_CLIENT_OPERATION_TIME_TO_FIRST_CHUNK
TOKEN_PARTS: Final = "tcc.client.token.parts"
COST: Final = "tcc.client.cost.usd"

# The only span attributes that can become metric attributes. Everything else a span carries (ids,
# messages, metadata, tool arguments) is never read here.
DIMENSIONS: Final = (
    sc.OPERATION_NAME,
    sc.PROVIDER_NAME,
    sc.REQUEST_MODEL,
    sc.RESPONSE_MODEL,
    sc.AGENT_NAME,
)
# Distinct values kept per dimension; a service has tens of models and agents, not hundreds.
_MAX_VALUES: Final = 200
# A longer value is no model or agent name: most likely an id or a text passed by mistake.
_MAX_VALUE_CHARS: Final = 128
OTHER: Final = sc.ERROR_TYPE_OTHER  # "_OTHER", the convention's fallback value


class _Values:
    """The values one dimension has shown so far, at most ``_MAX_VALUES`` of them; later ones are
    ``_OTHER``. Called from one thread (the export worker); the lock keeps a second caller safe."""

    __slots__ = ("__weakref__", "_lock", "_seen")

    def __init__(self) -> None:
        self._seen: set[str] = set()
        self._lock = threading.Lock()
        forksafe.after_fork(self._renew_lock, forksafe.Phase.LOCKS, weak=True)

    def _renew_lock(self) -> None:
        self._lock = threading.Lock()  # the parent's worker may have held it at fork time

    def bounded(self, value: object) -> str | None:
        if type(value) is str and value in self._seen:
            return value  # the usual case: a name seen before
        if value is None:
            return None
        if type(value) is not str or not value or len(value) > _MAX_VALUE_CHARS:
            return OTHER
        with self._lock:
            if len(self._seen) >= _MAX_VALUES:
                return OTHER
            self._seen.add(value)
        return value


def _seconds(value: object) -> float | None:
    """A duration read from any span: a finite non-negative number (not a bool), else None."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value) if math.isfinite(value) and value >= 0 else None


def _usd(value: object) -> float | None:
    """A cost read from any span: a finite non-negative number (not a bool), else None."""
    return _seconds(value)


_SumKey = tuple[str, tuple[tuple[str, AttributeValue], ...]]  # (instrument, sorted attribute items)


def _sum_key(instrument: str, attributes: Mapping[str, AttributeValue]) -> _SumKey:
    return instrument, tuple(sorted(attributes.items()))


class _Sums:
    """Monotonic sums per instrument and attribute set, read by observable counters at each collection.

    ``add`` runs on the export worker, with keys made once per series (``_sum_key``); the observers run on
    the metric reader's thread. The number of keys is bounded by the dimensions' bounds (``_Values``).

    >>> sums.add([(_sum_key(COST, {"gen_ai.request.model": "gpt-4o"}), 0.25)])
    """

    __slots__ = ("__weakref__", "_lock", "_sums")

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._sums: dict[_SumKey, float] = {}
        forksafe.after_fork(self.reset, forksafe.Phase.STATE, weak=True)

    def add(self, amounts: Iterable[tuple[_SumKey, float]]) -> None:
        """Add each amount to its key's sum (one lock for a span's amounts, not one per amount)."""
        with self._lock:
            sums = self._sums
            for key, amount in amounts:
                sums[key] = sums.get(key, 0) + amount

    def observer(self, instrument: str) -> Callable[[CallbackOptions], Iterable[Observation]]:
        def observe(options: CallbackOptions) -> Iterable[Observation]:
            with self._lock:
                items = list(self._sums.items())
            return [Observation(value, dict(key[1])) for key, value in items if key[0] == instrument]

        return observe

    def reset(self) -> None:
        """After fork: the child counts from zero (the parent reports what it counted)."""
        self._lock = threading.Lock()
        self._sums = {}


# The parts of each token type, as tcc.token.part names them (see Recorder._record_tokens).
_PARTS: Final = (
    (sc.TOKEN_TYPE_INPUT, ("uncached", "cache_read", "cache_write", sc.TOKEN_PART_UNKNOWN)),
    (sc.TOKEN_TYPE_OUTPUT, ("response", "reasoning", sc.TOKEN_PART_UNKNOWN)),
)


class _Series:
    """Everything a span with one set of dimension values records under, made once and reused: the
    attributes of each histogram point and the keys of each sum.

    The dicts are handed to the instruments as they are, every time: the metrics API never changes the
    attributes it is given (the SDK copies and cleans them per measurement), and nor does tcc after this.
    """

    __slots__ = ("cost", "input", "output", "parts", "plain")

    def __init__(self, plain: dict[str, AttributeValue], cost_source: str | None) -> None:
        self.plain = plain  # duration, time to first chunk: the dimensions only
        priced = {**plain, sc.COST_SOURCE: cost_source} if cost_source is not None else plain
        self.input = {**priced, sc.TOKEN_TYPE: sc.TOKEN_TYPE_INPUT}
        self.output = {**priced, sc.TOKEN_TYPE: sc.TOKEN_TYPE_OUTPUT}
        self.cost = _sum_key(COST, priced)
        self.parts = {
            (token_type, part): _sum_key(
                TOKEN_PARTS, {**priced, sc.TOKEN_TYPE: token_type, sc.TOKEN_PART: part}
            )
            for token_type, parts in _PARTS
            for part in parts
        }


# Series kept per recorder. Their number is bounded already (by the bounded values of each dimension),
# but that bound is a product of bounds: past this many, a new series is made for its span and not kept.
_MAX_SERIES: Final = 2000


class Recorder:
    """Records one ended span's metrics: tokens, duration, time to first chunk, cost.

    A plain callable over final attributes (after pricing), so the export worker can run it as a stage
    on each span it has priced, and on the records whose span was not sampled. It never raises for
    what a span carries: a value of the wrong type is left out, as the span processor's stages do.

    >>> recorder = Recorder(MeterProvider(metric_readers=[reader]).get_meter("contextcompany"))
    >>> recorder.record({"gen_ai.operation.name": "chat", "gen_ai.usage.input_tokens": 12}, t0, t1)
    """

    def __init__(self, meter: Meter) -> None:
        self._tokens = meter.create_histogram(
            TOKEN_USAGE,
            unit="{token}",
            description="Number of input and output tokens used.",
            explicit_bucket_boundaries_advisory=list(TOKEN_BUCKETS),
        )
        # The two counters are summed here and observed at collection: an SDK measurement costs about as
        # much as the rest of a span's metrics together (it cleans, sorts and hashes the attributes each
        # time), and this work shares the process's cores, and the GIL, with the application.
        self._sums = _Sums()
        meter.create_observable_counter(
            TOKEN_PARTS,
            callbacks=[self._sums.observer(TOKEN_PARTS)],
            unit="{token}",
            description=(
                "Tokens of LLM calls in disjoint parts (tcc.token.part) of each gen_ai.token.type: "
                "the same tokens as gen_ai.client.token.usage, never to be added to it."
            ),
        )
        self._duration = meter.create_histogram(
            OPERATION_DURATION,
            unit="s",
            description="GenAI operation duration.",
            explicit_bucket_boundaries_advisory=list(SECONDS_BUCKETS),
        )
        self._first_chunk = meter.create_histogram(
            TIME_TO_FIRST_CHUNK,
            unit="s",
            description=(
                "Time to receive the first chunk, measured from when the client issues the generation "
                "request to when the first chunk is received in the response stream."
            ),
            explicit_bucket_boundaries_advisory=list(SECONDS_BUCKETS),
        )
        meter.create_observable_counter(
            COST,
            callbacks=[self._sums.observer(COST)],
            unit="{USD}",
            description="Cost of LLM calls in US dollars (tcc.cost.usd), priced with genai-prices.",
        )
        self._values: dict[str, _Values] = {key: _Values() for key in (*DIMENSIONS, sc.ERROR_TYPE)}
        # Keyed by bounded values only (never a span's raw ones), so its size has the dimensions' bound.
        self._series: dict[tuple[object, ...], _Series] = {}

    def _bounded(
        self, attributes: Mapping[str, Any], failed: bool, own: bool, agent: str | None
    ) -> tuple[str | None, ...]:
        """The bounded value of each dimension (None where a span has none): the identity of a series.
        Only these allow-listed keys are read, each through its ``_Values`` bound."""
        get = attributes.get
        values = self._values
        provider = get(sc.PROVIDER_NAME)
        if provider is None:
            provider = get(sc.SYSTEM)  # the older name, still sent by some instrumentations
        agent_name = get(sc.AGENT_NAME)
        if agent_name is None:
            agent_name = agent
        error = None
        if failed:
            error = values[sc.ERROR_TYPE].bounded(get(sc.ERROR_TYPE))
            if error is None:
                error = OTHER
        # In DIMENSIONS' order, then the origin and the error type.
        return (
            values[sc.OPERATION_NAME].bounded(get(sc.OPERATION_NAME)),
            values[sc.PROVIDER_NAME].bounded(provider),
            values[sc.REQUEST_MODEL].bounded(get(sc.REQUEST_MODEL)),
            values[sc.RESPONSE_MODEL].bounded(get(sc.RESPONSE_MODEL)),
            values[sc.AGENT_NAME].bounded(agent_name),
            sc.ORIGIN_TCC if own else sc.ORIGIN_OTHER,
            error,
        )

    @staticmethod
    def _plain(bounded: tuple[str | None, ...]) -> dict[str, AttributeValue]:
        """The attributes of a span's histogram points, from its bounded values (``_bounded``)."""
        *dimensions, origin, error = bounded
        out: dict[str, AttributeValue] = {sc.METRIC_ORIGIN: cast(str, origin)}
        for key, value in zip(DIMENSIONS, dimensions, strict=True):
            if value is not None:
                out[key] = value
        if error is not None:
            out[sc.ERROR_TYPE] = error
        return out

    def _series_of(self, bounded: tuple[str | None, ...], cost_source: str | None) -> _Series:
        key = (*bounded, cost_source)
        series = self._series.get(key)
        if series is None:
            series = _Series(self._plain(bounded), cost_source)
            if len(self._series) < _MAX_SERIES:
                self._series[key] = series
        return series

    def record(
        self,
        attributes: Mapping[str, Any],
        start_ns: int | None,
        end_ns: int | None,
        *,
        failed: bool = False,
        own: bool = True,
        agent: str | None = None,
    ) -> None:
        """Record the metrics of one ended span from its final attributes (after pricing).

        ``failed``: the span ended with an error status (``error.type`` is read from the attributes,
        ``_OTHER`` when absent). ``own``: a tcc record rather than another instrumentation's span
        (``tcc.origin``). ``agent``: the agent name when the span itself does not carry one (a step of a
        named run). Spans that are neither a GenAI operation nor an LLM call are ignored.
        """
        usage = Usage.from_attributes(attributes)
        if usage is None and attributes.get(sc.OPERATION_NAME) is None:
            return  # not a GenAI span: an HTTP or database span of the service passing through
        cost_source = attributes.get(sc.COST_SOURCE) if usage is not None else None
        series = self._series_of(
            self._bounded(attributes, failed, own, agent),
            cost_source if type(cost_source) is str and cost_source in _COST_SOURCES else None,
        )
        if isinstance(start_ns, int) and isinstance(end_ns, int) and end_ns >= start_ns:
            self._duration.record((end_ns - start_ns) / 1e9, series.plain)
        first_chunk = attributes.get(sc.RESPONSE_TIME_TO_FIRST_CHUNK)
        if first_chunk is not None and (first_chunk := _seconds(first_chunk)) is not None:
            self._first_chunk.record(first_chunk, series.plain)
        if usage is None:
            return
        amounts = self._record_tokens(usage, series)
        cost = _usd(attributes.get(sc.COST_USD))
        if cost is not None:
            amounts.append((series.cost, cost))
        if amounts:
            self._sums.add(amounts)

    def _record_tokens(self, usage: Usage, series: _Series) -> list[tuple[_SumKey, float]]:
        """Record the token histogram's points; return the token parts to add to the sums."""
        amounts: list[tuple[_SumKey, float]] = []
        parts = series.parts
        if usage.input is not None:
            self._tokens.record(usage.input, series.input)
            read, write = usage.cache_read or 0, usage.cache_write or 0
            split: tuple[tuple[str, int], ...]
            if read + write <= usage.input:
                split = (
                    ("uncached", usage.input - read - write),
                    ("cache_read", read),
                    ("cache_write", write),
                )
            else:  # a span that reports more cached than total input: its split is not to be trusted
                split = ((sc.TOKEN_PART_UNKNOWN, usage.input),)
            for part, tokens in split:
                if tokens:  # a zero adds nothing and would only add a series
                    amounts.append((parts[sc.TOKEN_TYPE_INPUT, part], tokens))
        if usage.output is not None:
            self._tokens.record(usage.output, series.output)
            reasoning = usage.reasoning or 0
            if reasoning <= usage.output:
                split = (("response", usage.output - reasoning), ("reasoning", reasoning))
            else:
                split = ((sc.TOKEN_PART_UNKNOWN, usage.output),)
            for part, tokens in split:
                if tokens:
                    amounts.append((parts[sc.TOKEN_TYPE_OUTPUT, part], tokens))
        return amounts


_COST_SOURCES: Final = frozenset({sc.COST_SOURCE_COMPUTED, sc.COST_SOURCE_REPORTED, sc.COST_SOURCE_NO_PRICE})


# --- the meter: the service's, or tcc's own ------------------------------------------------------------

_DEFAULT_ENDPOINT: Final = "http://localhost:4318"
_METRICS_PATH: Final = "/v1/metrics"
_DEFAULT_INTERVAL_MILLIS: Final = 60_000.0


def host_provider(explicit: MeterProvider | None) -> MeterProvider | None:
    """The service's MeterProvider: ``configure(meter_provider=)``, else one set globally, else None."""
    if explicit is not None:
        return explicit
    provider = metrics.get_meter_provider()
    # Until the service sets one, the API hands out a proxy (or a no-op one): nothing would be exported.
    if isinstance(provider, metrics.NoOpMeterProvider) or type(provider).__name__ == "_ProxyMeterProvider":
        return None
    return provider


def recorder_for(provider: MeterProvider, version: str) -> Recorder:
    """tcc's instruments on ``provider``, under the meter (instrumentation scope) ``contextcompany``."""
    return Recorder(provider.get_meter(sc.INSTRUMENTATION_NAME, version))


# --- the stage on the export worker --------------------------------------------------------------------

_AGENT_SPAN_PREFIX: Final = sc.OP_INVOKE_AGENT + " "


class MetricsStage:
    """Records each span's metrics on the export worker, after pricing: a stage over an ``Edit``.

    The recorder is made on first use, on the worker (``make`` builds tcc's meter or finds the service's,
    and returns None when metrics are off): the metrics SDK's import and the reader's thread cost the
    caller's first record nothing.

    A step carries no agent name; its run does, in its span name (``invoke_agent {name}``, as the
    convention names it). ``on_start`` notes the names of agent spans as they start (a string test on the
    caller's thread), so a step or tool call beneath one is counted under its agent.

    >>> stage = MetricsStage(lambda: Recorder(meter))
    >>> stage(edit)            # on the export worker, after Pricing
    """

    def __init__(self, make: Callable[[], Recorder | None]) -> None:
        self._make = make
        self._recorder: Recorder | None = None
        self._made = False
        self._lock = threading.Lock()
        self._agents: dict[int, str] = {}
        forksafe.after_fork(self._renew_lock, forksafe.Phase.LOCKS, weak=True)
        forksafe.after_fork(self._forget_recorder, forksafe.Phase.STATE, weak=True)

    def _renew_lock(self) -> None:
        # The parent's worker may have been building the recorder at fork time, holding the lock.
        self._lock = threading.Lock()

    def _forget_recorder(self) -> None:
        # The child asks ``make`` again: tcc's own recorder is the parent's (``Metrics._forget_own``).
        self._recorder, self._made = None, False

    def recorder(self) -> Recorder | None:
        if not self._made:
            # Building it imports the metrics SDK and its exporter: a fork waits until that is done
            # (_forksafe), so a child never inherits a half-done import or a held lock.
            with forksafe.importing(), self._lock:
                if not self._made:
                    try:
                        self._recorder = self._make()
                    finally:
                        self._made = True  # a factory that failed is not retried on every span
        return self._recorder

    def on_start(self, span: Any) -> None:
        """On the caller's thread: remember an agent span's name for the spans beneath it."""
        name = span.name
        if name.startswith(_AGENT_SPAN_PREFIX):
            self._agents[span.context.span_id] = name[len(_AGENT_SPAN_PREFIX) :]

    def forget(self, span: Any) -> None:
        """An ended span that will not pass through the pipeline."""
        if span.context is not None:
            self._agents.pop(span.context.span_id, None)

    def reset(self) -> None:
        self._agents = {}

    def __call__(self, edit: Any) -> None:
        span = edit.span
        context, parent = span.context, span.parent
        agent = None
        if context is not None and edit.attributes.get(sc.OPERATION_NAME) == sc.OP_INVOKE_AGENT:
            # An agent span ends after what it contains: its name is needed no longer.
            agent = self._agents.pop(context.span_id, None)
        elif parent is not None:
            agent = self._agents.get(parent.span_id)
        self.record(edit, agent=agent)

    def record(self, edit: Any, *, agent: str | None) -> None:
        """Record the metrics of the span an Edit holds, as the stages before this one left it."""
        recorder = self.recorder()
        if recorder is None:
            return
        span = edit.span
        status = edit.status if edit.status is not None else span.status
        scope = span.instrumentation_scope
        recorder.record(
            edit.attributes,
            span.start_time,
            span.end_time,
            failed=status.status_code is StatusCode.ERROR,
            own=scope is not None and scope.name == sc.INSTRUMENTATION_NAME,
            agent=agent,
        )


# --- records whose span was not sampled ------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Unsampled:
    """What a tcc record hands its span processor when its span was not sampled: enough to price it
    and count it in the metrics on the worker. Made on the caller's thread from what the record already
    has (no copy): the final attributes, the times, the status, and the agent (its run's name)."""

    name: str
    attributes: Mapping[str, Any]
    start_ns: int | None
    end_ns: int
    error: bool
    agent: str | None = None


_SCOPE: Final = InstrumentationScope(sc.INSTRUMENTATION_NAME)
_NO_RESOURCE: Final = Resource.get_empty()  # without one, each ReadableSpan runs the resource detectors
_OK: Final = Status(StatusCode.UNSET)
_ERROR: Final = Status(StatusCode.ERROR)


def unsampled_span(record: Unsampled) -> ReadableSpan:
    """An ended span made from a record that has none, for the stages (on the worker; never exported)."""
    return ReadableSpan(
        name=record.name,
        attributes=record.attributes,
        status=_ERROR if record.error else _OK,
        start_time=record.start_ns if record.start_ns is not None else record.end_ns,
        end_time=record.end_ns,
        instrumentation_scope=_SCOPE,
        resource=_NO_RESOURCE,
    )


# --- the process's metrics: one recorder, on the service's meter or on tcc's own -----------------------


@dataclass(frozen=True, slots=True)
class Plan:
    """Where the process's metrics go, decided from configure() and the environment (cheap to make)."""

    host: MeterProvider | None = None  # the service's provider: configure(meter_provider=) or the global one
    enabled: bool = True  # tcc may build its own (OTEL_METRICS_EXPORTER is not none, the SDK not disabled)
    endpoint: str = _DEFAULT_ENDPOINT + _METRICS_PATH
    headers: Mapping[str, str] = field(default_factory=dict)
    interval_millis: float = _DEFAULT_INTERVAL_MILLIS
    temporality: str = "cumulative"  # OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE
    resource: Resource | None = None
    refused: str | None = None  # why tcc must not send there (an API key over plain http), if it must not
    refusal_told: bool = False  # the spans' refusal already says it (same key, same kind of URL)
    version: str = ""  # tcc's version, the meter's (instrumentation scope's) version
    # Builds tcc's own provider for this plan (``_meter.own_provider``, which the pipeline passes so that
    # this module never imports the metrics SDK); None: tcc builds none.
    own: Callable[[Plan], SdkMeterProvider] | None = None


# Stopping the parent's provider in a forked child: its reader's thread is not running there, so nothing
# waits; a bound all the same, since it runs in the child's after-fork hooks.
_FORGOTTEN_SHUTDOWN_MILLIS: Final = 100.0


class Metrics:
    """The process's metrics: made on first use, on the export worker that records them.

    ``planner`` says where they go (the pipeline sets it); the recorder is then made on the service's
    MeterProvider when there is one, else on tcc's own (a periodic reader over OTLP/HTTP), else there is
    none. ``flush`` and ``shutdown`` reach only what exists; the caller bounds them.

    >>> shared.planner = lambda: Plan(endpoint="http://localhost:4318/v1/metrics")
    >>> shared.recorder()      # on the export worker
    """

    def __init__(self) -> None:
        self.planner: Callable[[], Plan] = Plan
        self._lock = threading.Lock()
        self._made = False
        self._recorder: Recorder | None = None
        self._own: SdkMeterProvider | None = None
        self._host: MeterProvider | None = None
        self._once = diag.Once()
        self.closing = False
        forksafe.after_fork(self._renew_lock, forksafe.Phase.LOCKS, weak=True)
        forksafe.after_fork(self._forget_own, forksafe.Phase.STATE, weak=True)

    def _renew_lock(self) -> None:
        self._lock = threading.Lock()

    def _forget_own(self) -> None:
        """After fork: a child does not report through tcc's own provider of the parent.

        That provider's histograms hold the parent's values, which the parent reports: recorded on in the
        child and exported from there, they would be counted twice. So the child forgets it and its
        recorder, and makes its own at its next record. The parent's copy is stopped, not flushed: its
        exporter sends nothing outside the process that made it (``_meter.LazyExporter``), and stopping
        it ends the reader thread the SDK restarts in the child. A service's provider stays: the service
        decides what its child reports.
        """
        own, self._own = self._own, None
        if own is None:
            return
        self._recorder, self._made = None, False
        if not self.closing:
            try:
                # The reader's thread is the parent's, dead here: the join does not wait.
                own.shutdown(timeout_millis=_FORGOTTEN_SHUTDOWN_MILLIS)
            except Exception:
                logger.debug("contextcompany: stopping the parent's metrics in a child failed", exc_info=True)

    def recorder(self) -> Recorder | None:
        if self._made:
            return self._recorder
        with self._lock:
            if not self._made:
                try:
                    self._recorder = self._make(self.planner())
                except Exception:
                    diag.error_once("metrics", "contextcompany: setting up metrics failed; none are recorded")
                finally:
                    self._made = True  # a setup that failed is not retried on every span
            return self._recorder

    def _make(self, plan: Plan) -> Recorder | None:
        version = plan.version
        if plan.host is not None:
            self._host = plan.host
            return recorder_for(plan.host, version)
        if not plan.enabled:
            return None
        if plan.refused is not None:
            if not plan.refusal_told:
                self._once.warning(
                    "refused", "contextcompany: not sending metrics to %s: %s", plan.endpoint, plan.refused
                )
            return None
        if plan.own is None:
            return None
        self._own = plan.own(plan)
        return recorder_for(self._own, version)

    def flush(self, timeout_millis: float) -> bool:
        """Export what was recorded: tcc's own provider, or the service's (flushed, never shut down)."""
        provider: Any = self._own or self._host
        force_flush = getattr(provider, "force_flush", None)
        if force_flush is None:
            return True
        return bool(force_flush(timeout_millis=timeout_millis))

    def shutdown(self, timeout_millis: float) -> None:
        """Export what was recorded and stop tcc's own provider (the reader's join is bounded)."""
        self.closing = True  # a failure from here on is the exit's, which the spans' report covers
        own = self._own
        if own is not None:
            own.shutdown(timeout_millis=timeout_millis)
        elif self._host is not None:
            self.flush(timeout_millis)

    def reset(self) -> None:
        """Forget the recorder and the providers (tests; tcc's own is shut down first)."""
        own, self._own = self._own, None
        if own is not None:
            own.shutdown(timeout_millis=1000)
        self._host, self._recorder, self._made, self.closing = None, None, False, False


shared: Final = Metrics()
