"""The tcc span processor: a batching exporter with a small enrichment pipeline in front of it.

    >>> provider.add_span_processor(SpanProcessor(OTLPSpanExporter()))  # instead of BatchSpanProcessor(...)

On the caller's thread, ``on_end`` only appends the span to a bounded queue. A worker thread takes
batches off the queue, passes every span through the stages below, and hands the batch to the
exporter. Like structlog's processors, each stage is a tiny callable that does one thing:

1. ``StepRule``: a step span (``tcc.step.id``) never leaves as a success without a prompt and a
   response; it is shipped as an error that names what was missing.
2. ``Pricing``: any span with a GenAI model and token usage gets ``tcc.cost.usd`` and
   ``tcc.cost.source``; a span that reports its own ``tcc.cost.usd`` gets ``tcc.cost.source=reported``.
3. ``RollUp``: totals of tokens and cost bubble up the span tree; every ``invoke_agent`` span carries
   the totals of all LLM calls beneath it.

Why the enrichment runs on the worker and not in ``on_end``: pricing with genai-prices costs 100-230 µs
a call and its first import about half a second, more than a whole span costs the caller. On the worker
it costs the caller nothing, and spans arrive there in the order they ended (a run's steps before the
run), which is all the roll-up needs.

Why not the SDK's ``BatchSpanProcessor``: its ``force_flush`` ignores its timeout and ``shutdown`` waits up
to 30 s, so a hung collector would hang ``tcc.flush()`` and interpreter exit; it logs each dropped span;
and it counts nothing the application can read. This one bounds both waits, counts exports, drops
and failures (``stats()``), and keeps the SDK's behaviour otherwise: the same ``OTEL_BSP_*`` settings,
oldest spans dropped first when the queue is full, a fresh worker after ``fork()``, instrumentation
suppressed while exporting.
"""

from __future__ import annotations

import logging
import os
import threading
from collections import deque
from collections.abc import Callable, Hashable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final, Protocol

from opentelemetry import context as otel_context
from opentelemetry import trace as trace_api
from opentelemetry.sdk.trace import ReadableSpan, Span
from opentelemetry.sdk.trace import SpanProcessor as _SdkSpanProcessor
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult
from opentelemetry.trace import Status, StatusCode
from opentelemetry.util.types import AttributeValue

from . import _diag as diag
from . import _forksafe as forksafe
from . import _semconv as sc
from ._content import WITHHELD, Pending
from ._pricing import PriceBook
from ._redact import redact

logger = logging.getLogger("contextcompany")

_DEFAULT_SCHEDULE_DELAY_MILLIS = 5000
_DEFAULT_MAX_QUEUE_SIZE = 2048
_DEFAULT_MAX_EXPORT_BATCH_SIZE = 512
_DEFAULT_SHUTDOWN_TIMEOUT_MILLIS = 5000
# A batch is cut before its spans' text passes this many bytes, so a request stays inside the 4 MiB a
# collector's gRPC receiver accepts by default (HTTP receivers take more), whatever the batch size.
_MAX_REQUEST_BYTES = 3 * 1024 * 1024
# Long content held for queued spans, to be finished by the worker (see SpanProcessor.can_defer): 32 Mi
# characters, a few times what one request carries, so a full queue of long prompts stays bounded.
_MAX_DEFERRED_CHARS = 32 * 1024 * 1024


def _env_int(name: str, default: int) -> int:
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError:
        logger.warning("contextcompany: %s=%r is not an integer; using %d", name, raw, default)
        return default
    if value <= 0:
        logger.warning("contextcompany: %s=%r must be positive; using %d", name, raw, default)
        return default
    return value


_DEFAULTS: Final = {
    "OTEL_BSP_MAX_QUEUE_SIZE": _DEFAULT_MAX_QUEUE_SIZE,
    "OTEL_BSP_SCHEDULE_DELAY": _DEFAULT_SCHEDULE_DELAY_MILLIS,
    "OTEL_BSP_MAX_EXPORT_BATCH_SIZE": _DEFAULT_MAX_EXPORT_BATCH_SIZE,
}


def _setting(value: float | None, name: str, env: str) -> float:
    """An explicit batching setting (which must be positive, as the SDK's BatchSpanProcessor requires),
    else the environment variable, else the SDK's default."""
    if value is None:
        return _env_int(env, _DEFAULTS[env])
    if isinstance(value, bool) or not isinstance(value, int | float) or not value > 0:
        raise ValueError(f"[TCC] SpanProcessor({name}=...) expects a number > 0, got {value!r}")
    return value


# --- what the exporter says while it works for us ----------------------------------------------------

# The OTLP exporter logs every failed batch and every retry on its own loggers. For tcc's exports those
# lines would repeat what tcc says once per outage, so while the worker exports they are kept as the
# failure's reason (``stats().last_error``) instead of printed. Other exporters in the process, which log
# from their own threads, are not affected.
_EXPORTER_LOGGERS: Final = (
    "opentelemetry.exporter.otlp.proto.http.trace_exporter",
    "opentelemetry.exporter.otlp.common.http",
    "opentelemetry.exporter.otlp.proto.http",
)
_exporting = threading.local()
# The exporter's closing line after retries names no cause; the lines before it (and note()) do.
_GENERIC_FAILURE: Final = "due to timeout, max retries or shutdown"


def note(message: str) -> None:
    """Tell the export under way on this thread why it is failing (tcc's own HTTP session does)."""
    notes: list[str] | None = getattr(_exporting, "notes", None)
    if notes is not None:
        notes.append(message)


class _ExporterLogs(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        notes: list[str] | None = getattr(_exporting, "notes", None)
        if notes is None:
            return True
        message = record.getMessage()
        if record.levelno >= logging.WARNING and _GENERIC_FAILURE not in message:
            notes.append(message)
        return False


_exporter_logs = _ExporterLogs()
for _name in _EXPORTER_LOGGERS:
    logging.getLogger(_name).addFilter(_exporter_logs)


# --- the enrichment pipeline ---------------------------------------------------------------------


class Edit:
    """What the stages change on one ended span; applied once, after the last stage.

    The stages read a copy of the span's attributes taken once: every read of
    ``ReadableSpan.attributes`` builds a new mapping proxy over the SDK's ``BoundedAttributes``, whose
    ``get`` is a pure-Python ``Mapping`` method, and the stages read about twenty keys per span. That
    copy is also the attribute dict of the enriched span, when there is one.
    """

    __slots__ = ("attributes", "changed", "span", "status")

    def __init__(self, span: ReadableSpan) -> None:
        self.span = span
        self.attributes: dict[str, AttributeValue] = dict(span.attributes or {})
        self.changed = False
        self.status: Status | None = None

    def get(self, key: str) -> Any:
        return self.attributes.get(key)

    def set(self, key: str, value: AttributeValue) -> None:
        self.attributes[key] = value
        self.changed = True

    def result(self) -> ReadableSpan:
        if not self.changed and self.status is None:
            return self.span
        return _EnrichedSpan(self.span, self.attributes, self.status or self.span.status)


class _EnrichedSpan(ReadableSpan):
    """An ended span plus the pipeline's attributes. The SDK freezes a span's attributes when it ends,
    so the enriched copy is a new ReadableSpan; it keeps the original's dropped-attribute count."""

    def __init__(self, span: ReadableSpan, attributes: dict[str, AttributeValue], status: Status) -> None:
        super().__init__(
            name=span.name,
            context=span.context,
            parent=span.parent,
            resource=span.resource,
            attributes=attributes,
            events=span.events,
            links=span.links,
            kind=span.kind,
            status=status,
            start_time=span.start_time,
            end_time=span.end_time,
            instrumentation_scope=span.instrumentation_scope,
        )
        self._original_dropped = span.dropped_attributes

    @property
    def dropped_attributes(self) -> int:
        return self._original_dropped


class Stage(Protocol):
    """One step of the pipeline: reads the span, records changes on the Edit."""

    def __call__(self, edit: Edit) -> None: ...


_STEP_CONTENT = ((sc.INPUT_MESSAGES, "prompt"), (sc.OUTPUT_MESSAGES, "response"))


class StepRule:
    """A tcc step span never reaches the exporter as a success without both prompt and response."""

    def __call__(self, edit: Edit) -> None:
        if edit.get(sc.STEP_ID) is None or edit.span.status.status_code is StatusCode.ERROR:
            return
        # Content withheld by the capture policy was there: the record checked it before ending.
        withheld = edit.get(WITHHELD) or ()
        missing = [name for key, name in _STEP_CONTENT if edit.get(key) is None and key not in withheld]
        if missing:
            edit.status = Status(StatusCode.ERROR, f"step ended without {' and '.join(missing)}")
            edit.set(sc.ERROR_TYPE, sc.ERROR_TYPE_INCOMPLETE_STEP)


def _approximate_size(name: str, attributes: Mapping[str, AttributeValue]) -> int:
    """About how many bytes a span adds to an OTLP request: its strings (UTF-8 can double non-ASCII
    text, which the slack of the limit absorbs) and a fixed cost for ids, times and keys."""
    size = 256 + len(name) + 16 * len(attributes)
    for key, value in attributes.items():
        size += len(key)
        if type(value) is str:
            size += len(value)
    return size


def _by_size(spans: list[tuple[ReadableSpan, int]]) -> Iterator[list[ReadableSpan]]:
    """``(span, size)`` pairs cut into requests of at most about ``_MAX_REQUEST_BYTES`` each (a span larger
    than that still goes, alone)."""
    request: list[ReadableSpan] = []
    size = 0
    for span, span_size in spans:
        if request and size + span_size > _MAX_REQUEST_BYTES:
            yield request
            request, size = [], 0
        request.append(span)
        size += span_size
    if request:
        yield request


def _count(value: object) -> int:
    """A token count read from any span; anything but a non-negative int counts as absent."""
    return value if type(value) is int and value >= 0 else 0


def _usd(value: object) -> float | None:
    """A cost read from any span: a number (not a bool), else None."""
    return value if isinstance(value, int | float) and not isinstance(value, bool) else None


class Pricing:
    """Prices every LLM call that does not report its own cost, from its model and token counts."""

    def __init__(self, prices: PriceBook | None = None) -> None:
        self._prices = prices or PriceBook()

    def __call__(self, edit: Edit) -> None:
        get = edit.attributes.get
        if get(sc.COST_SOURCE) is not None:
            return
        if _usd(get(sc.COST_USD)) is not None:
            # s.cost(): written here rather than on the caller's thread, where an attribute costs ~1 µs.
            edit.set(sc.COST_SOURCE, sc.COST_SOURCE_REPORTED)
            return
        input_tokens = get(sc.USAGE_INPUT_TOKENS)
        output_tokens = get(sc.USAGE_OUTPUT_TOKENS)
        if input_tokens is None and output_tokens is None:
            return
        provider = get(sc.PROVIDER_NAME) or get(sc.SYSTEM)
        used, requested = get(sc.RESPONSE_MODEL), get(sc.REQUEST_MODEL)
        cost = None
        for model in (used, requested) if requested != used else (used,):
            if isinstance(model, str) and model:
                cost = self._prices.cost_usd(
                    model,
                    input_tokens=_count(input_tokens),
                    output_tokens=_count(output_tokens),
                    cache_read_tokens=_count(get(sc.USAGE_CACHE_READ_INPUT_TOKENS)),
                    cache_write_tokens=_count(get(sc.USAGE_CACHE_CREATION_INPUT_TOKENS)),
                    reasoning_tokens=_count(get(sc.USAGE_REASONING_OUTPUT_TOKENS)),
                    provider=provider if isinstance(provider, str) else None,
                    at=edit.span.end_time or None,
                )
                if cost is not None:
                    break
        if cost is None:
            edit.set(sc.COST_SOURCE, sc.COST_SOURCE_NO_PRICE)
        else:
            edit.set(sc.COST_USD, cost)
            edit.set(sc.COST_SOURCE, sc.COST_SOURCE_COMPUTED)


@dataclass(slots=True)
class Totals:
    input_tokens: int = 0
    cache_read_tokens: int = 0
    cache_creation_tokens: int = 0
    output_tokens: int = 0
    reasoning_tokens: int = 0
    cost_usd: float = 0.0
    llm_calls: int = 0
    unpriced_llm_calls: int = 0

    def add(self, other: Totals) -> None:
        self.input_tokens += other.input_tokens
        self.cache_read_tokens += other.cache_read_tokens
        self.cache_creation_tokens += other.cache_creation_tokens
        self.output_tokens += other.output_tokens
        self.reasoning_tokens += other.reasoning_tokens
        self.cost_usd += other.cost_usd
        self.llm_calls += other.llm_calls
        self.unpriced_llm_calls += other.unpriced_llm_calls


class RollUp:
    """Totals bubble up the span tree; every run (invoke_agent) span carries those of its subtree.

    A span's totals go to its parent only while the parent is open in this pipeline (seen by
    ``on_start`` and not yet ended), so nothing waits for a parent that will never come: a parent in
    another process, a host span exported elsewhere, a parent that already ended.
    """

    def __init__(self) -> None:
        self._open: set[int] = set()
        self._pending: dict[int, Totals] = {}

    def on_start(self, span: Span) -> None:
        # set.add is atomic under the GIL; this runs on the caller's thread, the rest on the worker.
        self._open.add(span.context.span_id)

    def forget(self, span: ReadableSpan) -> None:
        """For an ended span that will not pass through the pipeline (not sampled, or dropped)."""
        if span.context is not None:
            self._open.discard(span.context.span_id)
            self._pending.pop(span.context.span_id, None)

    def reset(self) -> None:
        self._open = set()
        self._pending = {}

    def __call__(self, edit: Edit) -> None:
        span = edit.span
        context = span.context
        if context is None:
            return
        span_id = context.span_id
        self._open.discard(span_id)
        totals = self._pending.pop(span_id, None)
        get = edit.attributes.get
        input_tokens, output_tokens = get(sc.USAGE_INPUT_TOKENS), get(sc.USAGE_OUTPUT_TOKENS)
        parent = span.parent
        parent_id = parent.span_id if parent is not None and parent.span_id in self._open else None
        is_run = get(sc.OPERATION_NAME) == sc.OP_INVOKE_AGENT and get(sc.RUN_ID) is not None
        if input_tokens is not None or output_tokens is not None:
            if totals is None:
                totals = Totals()
            cost = _usd(get(sc.COST_USD))
            totals.input_tokens += _count(input_tokens)
            totals.cache_read_tokens += _count(get(sc.USAGE_CACHE_READ_INPUT_TOKENS))
            totals.cache_creation_tokens += _count(get(sc.USAGE_CACHE_CREATION_INPUT_TOKENS))
            totals.output_tokens += _count(output_tokens)
            totals.reasoning_tokens += _count(get(sc.USAGE_REASONING_OUTPUT_TOKENS))
            if cost is not None:
                totals.cost_usd += cost
            else:
                totals.unpriced_llm_calls += 1
            totals.llm_calls += 1
        if is_run:
            t = totals or Totals()
            edit.set(sc.RUN_INPUT_TOKENS, t.input_tokens)
            edit.set(sc.RUN_CACHE_READ_TOKENS, t.cache_read_tokens)
            edit.set(sc.RUN_CACHE_CREATION_TOKENS, t.cache_creation_tokens)
            edit.set(sc.RUN_OUTPUT_TOKENS, t.output_tokens)
            edit.set(sc.RUN_REASONING_TOKENS, t.reasoning_tokens)
            edit.set(sc.RUN_COST_USD, round(t.cost_usd, 12))
            edit.set(sc.RUN_LLM_CALLS, t.llm_calls)
            edit.set(sc.RUN_UNPRICED_CALLS, t.unpriced_llm_calls)
        if totals is not None and parent_id is not None:
            above = self._pending.get(parent_id)
            if above is None:
                self._pending[parent_id] = totals
            else:
                above.add(totals)


# --- statistics -------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Stats:
    """What the export pipeline did since it started (``tcc.stats()``).

    ``spans_dropped`` counts spans that will never be delivered: dropped because the queue was full,
    ended after shutdown, or in a batch whose export failed.
    """

    spans_queued: int
    spans_exported: int
    spans_dropped: int
    exports_failed: int
    queue_size: int
    last_error: str | None


# --- the processor ------------------------------------------------------------------------------------


class SpanProcessor(_SdkSpanProcessor):
    """Prices, checks and rolls up GenAI spans, then exports them in batches off the caller's thread.

    Use it wherever you would use the SDK's ``BatchSpanProcessor``:

        provider.add_span_processor(tcc.SpanProcessor(OTLPSpanExporter()))

    The queue, batch size and delay default to the ``OTEL_BSP_*`` environment variables.
    ``shutdown_timeout_millis`` bounds ``shutdown()`` (and so interpreter exit) even when the
    collector hangs; spans still queued then are counted as dropped.

    ``exporter_for`` lets single spans go elsewhere: ``route(span, key)`` sends that span to the
    exporter ``exporter_for(key)`` made (once per key) instead of ``exporter``.
    """

    def __init__(
        self,
        exporter: SpanExporter,
        *,
        max_queue_size: int | None = None,
        schedule_delay_millis: float | None = None,
        max_export_batch_size: int | None = None,
        shutdown_timeout_millis: float | None = None,
        stages: Sequence[Stage] | None = None,
        exporter_for: Callable[[Hashable], SpanExporter] | None = None,
    ) -> None:
        self._exporter = exporter
        self._exporter_for = exporter_for
        self._exporters: dict[Hashable, SpanExporter | None] = {}
        self._routes: dict[int, Hashable] = {}
        self._content: dict[int, Pending] = {}  # span id -> its long content, finished by the worker
        self._content_size = 0  # the characters self._content holds
        # Its own lock: _forget runs under self._lock (on_end dropping the oldest span), and takes this one.
        self._content_lock = threading.Lock()
        self._max_queue = int(_setting(max_queue_size, "max_queue_size", "OTEL_BSP_MAX_QUEUE_SIZE"))
        delay = _setting(schedule_delay_millis, "schedule_delay_millis", "OTEL_BSP_SCHEDULE_DELAY")
        self._delay = delay / 1000
        batch = _setting(max_export_batch_size, "max_export_batch_size", "OTEL_BSP_MAX_EXPORT_BATCH_SIZE")
        self._max_batch = min(int(batch), self._max_queue)
        if shutdown_timeout_millis is not None and not shutdown_timeout_millis >= 0:
            raise ValueError(
                f"[TCC] SpanProcessor(shutdown_timeout_millis=...) expects a number >= 0, "
                f"got {shutdown_timeout_millis!r}"
            )
        self._shutdown_timeout = (
            shutdown_timeout_millis
            if shutdown_timeout_millis is not None
            else _DEFAULT_SHUTDOWN_TIMEOUT_MILLIS
        ) / 1000
        self._roll_up = RollUp()
        self._stages: tuple[Stage, ...] = (
            tuple(stages) if stages is not None else (StepRule(), Pricing(), self._roll_up)
        )
        self._queued = 0
        self._exported = 0
        self._dropped = 0
        self._failed = 0
        self._last_error: str | None = None
        self._failing: set[Hashable] = set()
        self._once = diag.Once()  # internal errors: once per processor, with the traceback
        self._is_shutdown = False
        self._in_flight = 0
        self._gave_up = False
        self._overflowing = False  # set on the caller's thread, logged (once per episode) by the worker
        self._was_overflowing = False
        self._start_worker()
        forksafe.after_fork(self._after_fork_in_child, forksafe.Phase.WORKERS, weak=True)

    def _start_worker(self) -> None:
        self._lock = threading.Lock()
        self._queue: deque[ReadableSpan] = deque()
        self._wake = threading.Event()
        self._flush_waiters: list[threading.Event] = []
        self._worker = threading.Thread(target=self._work, name="contextcompany-export", daemon=True)
        self._worker.start()

    def _after_fork_in_child(self) -> None:
        # The parent keeps exporting what it queued; the child starts empty with a worker of its own
        # (threads do not survive fork, and a lock held at fork time would never be released).
        self._roll_up.reset()
        self._content = {}
        self._content_size = 0
        self._content_lock = threading.Lock()  # another thread may have held it at fork time
        if not self._is_shutdown:
            self._start_worker()

    # -- the caller's side: must stay cheap and never block on I/O --

    def on_start(self, span: Span, parent_context: otel_context.Context | None = None) -> None:
        self._roll_up.on_start(span)

    def route(self, span: trace_api.Span, key: Hashable) -> None:
        """Send ``span`` to the exporter for ``key`` (see ``exporter_for``) once it ends."""
        span_id = span.get_span_context().span_id
        if span_id:
            self._routes[span_id] = key  # one dict store; the worker pops it

    def can_defer(self, size: int) -> bool:
        """Whether the worker can take ``size`` more characters of content to finish: the long content it
        holds for queued spans stays under ``_MAX_DEFERRED_CHARS`` (with a slow or hung collector the
        queue fills; past that, the caller finishes long content itself, cutting it to the limit)."""
        return self._content_size + size <= _MAX_DEFERRED_CHARS

    def defer(self, span: trace_api.Span, pending: Pending) -> None:
        """Finish ``span``'s content on the worker, before the stages (see ``_content.Pending``). Only for a
        span this processor alone sees: no other processor would ever get that content."""
        span_id = span.get_span_context().span_id
        if span_id:
            with self._content_lock:
                self._content[span_id] = pending
                self._content_size += pending.size

    def _take_content(self, span_id: int) -> Pending | None:
        if not self._content:
            return None
        with self._content_lock:
            pending = self._content.pop(span_id, None)
            if pending is not None:
                self._content_size -= pending.size
        return pending

    def _forget(self, span: ReadableSpan) -> None:
        """An ended span that will not pass through the pipeline (not sampled, or dropped)."""
        self._roll_up.forget(span)
        if span.context is not None:
            self._routes.pop(span.context.span_id, None)
            self._take_content(span.context.span_id)

    def on_end(self, span: ReadableSpan) -> None:
        context = span.context
        if context is None or not context.trace_flags.sampled:
            self._forget(span)
            return
        with self._lock:
            if self._is_shutdown:
                self._dropped += 1
                return
            if len(self._queue) >= self._max_queue:
                self._forget(self._queue.popleft())
                self._dropped += 1
                self._overflowing = True
            self._queue.append(span)
            self._queued += 1
            wake = len(self._queue) >= self._max_batch
        if wake:
            self._wake.set()

    # -- the worker --

    def _work(self) -> None:
        while True:
            self._wake.wait(self._delay)
            with self._lock:
                self._wake.clear()
                waiters, self._flush_waiters = self._flush_waiters, []
                stopping = self._is_shutdown
                overflowed, self._overflowing = self._overflowing, False
            if overflowed and not self._was_overflowing and not self._failing:
                # Logged here, not on the caller's thread, where a log write could block. Not during an
                # outage either: its one warning already says spans are dropped until it ends.
                logger.warning(
                    "contextcompany: the export queue is full (%d spans): the oldest are dropped "
                    "until it drains",
                    self._max_queue,
                )
            self._was_overflowing = overflowed
            self._drain()
            for waiter in waiters:
                waiter.set()
            if stopping:
                return

    def _drain(self) -> None:
        while True:
            # Only the pops happen under the lock: the caller's on_end takes it too, and must never wait
            # while the worker enriches or measures spans.
            with self._lock:
                if not self._queue:
                    return
                pop = self._queue.popleft
                batch = [pop() for _ in range(min(len(self._queue), self._max_batch))]
                self._in_flight = len(batch)
            self._export(batch)

    def _export(self, batch: list[ReadableSpan]) -> None:
        groups: dict[Hashable, list[tuple[ReadableSpan, int]]] = {}
        routes = self._routes
        for span in batch:
            key = routes.pop(span.context.span_id, None) if routes and span.context is not None else None
            groups.setdefault(key, []).append(self._enrich(span))
        for key, spans in groups.items():
            for request in _by_size(spans):
                self._send(key, request)
                with self._lock:
                    self._in_flight -= len(request)

    def _destination(self, key: Hashable) -> SpanExporter | None:
        if key is None:
            return self._exporter
        if key not in self._exporters:
            exporter = None
            try:
                if self._exporter_for is not None:
                    exporter = self._exporter_for(key)
            except Exception:
                self._once.error(
                    f"destination {key!r}", "contextcompany: could not create an exporter for %r", key
                )
            self._exporters[key] = exporter
        return self._exporters[key]

    def _send(self, key: Hashable, spans: list[ReadableSpan]) -> None:
        exporter = self._destination(key)
        token = otel_context.attach(otel_context.set_value(otel_context._SUPPRESS_INSTRUMENTATION_KEY, True))
        notes: list[str] = []
        _exporting.notes = notes
        try:
            if exporter is None:
                error: str | None = "no exporter for this destination"
            else:
                result = exporter.export(spans)
                if result is SpanExportResult.SUCCESS:
                    error = None
                else:
                    reason = getattr(exporter, "reason", None)  # an exporter that refuses says why
                    error = notes[-1] if notes else reason or "the exporter reported a failure"
        except Exception as exc:
            error = f"{type(exc).__name__}: {exc}"
        finally:
            _exporting.notes = None
            otel_context.detach(token)
        if error is not None:
            error = redact(error)
        with self._lock:
            if self._gave_up:
                pass  # shutdown stopped waiting for this export and counted its spans as dropped
            elif error is None:
                self._exported += len(spans)
            else:
                self._dropped += len(spans)
                self._failed += 1
                self._last_error = error
        if error is not None and key not in self._failing:
            self._failing.add(key)
            logger.warning(
                "contextcompany: exporting spans failed (%s); spans are dropped until exports succeed again",
                error,
            )
        elif error is None and key in self._failing:
            self._failing.discard(key)
            logger.warning("contextcompany: exporting spans works again")

    def _enrich(self, span: ReadableSpan) -> tuple[ReadableSpan, int]:
        """The span as the stages leave it, and its approximate size in a request."""
        try:
            edit = Edit(span)
        except Exception:
            self._once.error("edit", "contextcompany: could not read the attributes of span %r", span.name)
            return span, _approximate_size(span.name, {})
        pending = self._take_content(span.context.span_id) if span.context is not None else None
        if pending is not None:
            try:
                for key, value in pending.resolve().items():
                    edit.set(key, value)
            except Exception:
                # Never sent unfinished: the span leaves without the content it could not finish.
                self._once.error("content", "contextcompany: could not finish the content of %r", span.name)
        for stage in self._stages:
            try:
                stage(edit)
            except Exception:
                # A bug in a stage must never cost the span: it leaves as the other stages made it.
                name = type(stage).__name__
                self._once.error(name, "contextcompany: the %s stage failed on span %r", name, span.name)
        size = _approximate_size(span.name, edit.attributes)
        try:
            return edit.result(), size
        except Exception:
            self._once.error("result", "contextcompany: could not build the enriched span %r", span.name)
            return span, size

    # -- lifecycle --

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        """Export everything queued so far. True when it was all delivered within the timeout; False when
        the timeout passed first, or some of it could not be delivered (see ``stats()``)."""
        done = threading.Event()
        with self._lock:
            dropped = self._dropped
            if self._is_shutdown or not self._worker.is_alive():
                return not self._queue
            self._flush_waiters.append(done)
        self._wake.set()
        finished = done.wait(max(timeout_millis, 0) / 1000)
        with self._lock:
            return finished and self._dropped == dropped

    def shutdown(self, timeout_millis: float | None = None) -> None:
        """Export what is queued, then stop; waits at most the shutdown timeout."""
        timeout = self._shutdown_timeout if timeout_millis is None else timeout_millis / 1000
        with self._lock:
            if self._is_shutdown:
                return
            self._is_shutdown = True
        self._wake.set()
        if self._worker.is_alive() and threading.current_thread() is not self._worker:
            self._worker.join(timeout)
        with self._lock:
            # Whatever the worker could not send in time is lost (queued, or in an export still hanging):
            # say so in the counts.
            self._dropped += len(self._queue) + self._in_flight
            self._gave_up = self._in_flight > 0
            self._queue.clear()
        for exporter in (self._exporter, *self._exporters.values()):
            if exporter is None:
                continue
            try:
                exporter.shutdown()
            except Exception:
                self._once.error("exporter.shutdown", "contextcompany: an exporter failed to shut down")

    def stats(self) -> Stats:
        with self._lock:
            return Stats(
                spans_queued=self._queued,
                spans_exported=self._exported,
                spans_dropped=self._dropped,
                exports_failed=self._failed,
                queue_size=len(self._queue),
                last_error=self._last_error,
            )
