"""The tcc span processor: the enrichment stages in front of a batching exporter.

    >>> provider.add_span_processor(SpanProcessor(OTLPSpanExporter()))  # instead of BatchSpanProcessor(...)

It joins the two halves of this package: ``_stages`` (the rule guard, pricing, roll-up: plain callables
over an ``Edit``) and ``_batcher`` (the queue and the export worker). On the caller's thread, ``on_start``
notes the span as open for the roll-up and ``on_end`` appends it to the batcher's bounded queue; that is
all. On the export worker, each span passes through the stages and goes to its destination's exporter.

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

Threads: ``on_start``, ``on_end`` and ``route`` run on the caller's thread and stay cheap; ``_prepare``
and ``_exporter_for_key`` run on the export worker; ``force_flush``, ``shutdown`` and ``stats`` on any.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Final

from opentelemetry import context as otel_context
from opentelemetry import trace as trace_api
from opentelemetry.sdk.trace import ReadableSpan, Span
from opentelemetry.sdk.trace import SpanProcessor as _SdkSpanProcessor
from opentelemetry.sdk.trace.export import SpanExporter
from opentelemetry.trace import StatusCode
from opentelemetry.util.types import AttributeValue

from contextcompany import _diag as diag
from contextcompany import _forksafe as forksafe
from contextcompany import _metrics, _settings
from contextcompany._pricing import PriceBook

from ._batcher import Batcher, Stats, approximate_size
from ._stages import BackendCost, Edit, Pricing, RollUp, Stage, StepRule

if TYPE_CHECKING:  # finished here, built by the records above: no import back up the layers at runtime
    from contextcompany._content import Pending
    from contextcompany._span import Start

__all__ = ["SpanProcessor", "Stats"]

# Long content held for queued spans, to be finished by the worker (see SpanProcessor.can_defer): 32 Mi
# characters, a few times what one request carries, so a full queue of long prompts stays bounded.
_MAX_DEFERRED_CHARS: Final = 32 * 1024 * 1024

_BSP: Final = {
    "max_queue_size": _settings.BSP_MAX_QUEUE_SIZE,
    "schedule_delay_millis": _settings.BSP_SCHEDULE_DELAY,
    "max_export_batch_size": _settings.BSP_MAX_EXPORT_BATCH_SIZE,
}


def _batching(value: float | None, name: str) -> float:
    """An explicit batching setting (which must be positive, as the SDK's BatchSpanProcessor requires),
    else its ``OTEL_BSP_*`` variable, else the SDK's default."""
    if value is None:
        return _BSP[name].get()
    if isinstance(value, bool) or not isinstance(value, int | float) or not value > 0:
        raise ValueError(f"[TCC] SpanProcessor({name}=...) expects a number > 0, got {value!r}")
    return value


@dataclass(frozen=True, slots=True)
class Handed:
    """A tcc record's span to start and end on the export worker (``SpanProcessor.hand``): what the
    caller's thread knew when the record ended, attributes and content still to finish included."""

    start: Start  # name, parent, kind, first attributes, start time, (tracer, router), destination
    attributes: dict[str, AttributeValue]
    name: str | None  # the final name, when it differs from the first one
    status: StatusCode
    description: str | None
    end_ns: int
    content: Pending | None  # content attributes still to finish (the policy applied), if any
    agent: str | None  # the name of the run it belongs to, for the metrics of a span not sampled


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
        metrics: _metrics.MetricsStage | None = None,
    ) -> None:
        self._exporter = exporter
        self._exporter_for = exporter_for
        self._exporters: dict[Hashable, SpanExporter | None] = {}
        self._routes: dict[
            int, Hashable
        ] = {}  # span id -> destination key: set by route(), popped by the worker
        max_queue = int(_batching(max_queue_size, "max_queue_size"))
        delay = _batching(schedule_delay_millis, "schedule_delay_millis")
        batch = int(_batching(max_export_batch_size, "max_export_batch_size"))
        if shutdown_timeout_millis is not None and not shutdown_timeout_millis >= 0:
            raise ValueError(
                f"[TCC] SpanProcessor(shutdown_timeout_millis=...) expects a number >= 0, "
                f"got {shutdown_timeout_millis!r}"
            )
        if shutdown_timeout_millis is None:
            # The declared default, not the variable: TCC_SHUTDOWN_TIMEOUT_MILLIS is for tcc's own pipeline,
            # which passes it here.
            shutdown_timeout_millis = _settings.SHUTDOWN_TIMEOUT_MILLIS.default
        self._content: dict[int, Pending] = {}  # span id -> its long content, finished by the worker
        self._content_size = 0  # the characters self._content holds
        # Its own lock: _forget runs under the batcher's lock (dropping the oldest span), and takes this one.
        self._content_lock = threading.Lock()
        self._roll_up = RollUp()
        # After pricing, so metrics carry the cost; on this worker, so it costs the caller nothing.
        self._metrics = metrics if metrics is not None else _metrics.MetricsStage(_metrics.shared.recorder)
        # One price cache for the stages that price; the step rule and pricing also serve the records no
        # span carries (unsampled: _count_unsampled), whatever stages the spans go through.
        self._prices = PriceBook()
        self._step_rule, self._pricing = StepRule(), Pricing(self._prices)
        self._stages: tuple[Stage, ...] = tuple(stages) if stages is not None else self._default_stages()
        self._once = diag.Once()  # internal errors: once per processor, with the traceback
        self._batcher = Batcher(
            self._prepare,
            self._exporter_for_key,
            self._forget,
            max_queue=max_queue,
            max_batch=batch,
            delay_seconds=delay / 1000,
            shutdown_seconds=shutdown_timeout_millis / 1000,
            unsampled=self._count_unsampled,
        )
        self._put = self._batcher.put  # on_end's one call, bound once
        # While the worker ends a span it started (_start_handed): that span, handed back by on_end
        # instead of queued behind spans that ended after it.
        self._catching = False
        self._caught: list[ReadableSpan] = []
        forksafe.after_fork(self._forget_the_parents_spans, forksafe.Phase.STATE, weak=True)

    def _default_stages(self) -> tuple[Stage, ...]:
        return (self._step_rule, self._pricing, BackendCost(self._prices), self._roll_up, self._metrics)

    def _forget_the_parents_spans(self) -> None:
        # The child's batcher starts empty: the parent's open spans and routes are not the child's.
        self._roll_up.reset()
        self._metrics.reset()
        self._routes = {}
        self._content = {}
        self._content_size = 0
        self._content_lock = threading.Lock()  # another thread may have held it at fork time
        self._catching, self._caught = False, []  # the parent's worker may have been starting a span

    # -- the caller's side: must stay cheap and never block on I/O --

    def on_start(self, span: Span, parent_context: otel_context.Context | None = None) -> None:
        self._roll_up.on_start(span)
        self._metrics.on_start(span)

    def unsampled(self, record: _metrics.Unsampled) -> None:
        """A tcc record whose span was not sampled (the SDK calls no processor for it): priced and counted
        in the metrics on the worker, never exported. One queue append on the caller's thread."""
        self._batcher.unsampled(record)

    def hand(self, job: Handed) -> None:
        """Start and end a record's span on the worker: one queue append on the caller's thread, in the
        order spans end (a run's steps before the run). Only for spans of a provider this processor
        alone is on (``_pipeline.handoff``): starting a span costs about what the rest of a step costs
        the caller, and nothing else on that provider could tell the span started later."""
        content = job.content
        if content is not None:
            with self._content_lock:
                self._content_size += content.size
        self._put(job)

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

    def _forget(self, span: ReadableSpan | Handed) -> None:
        """An ended span that will not pass through the pipeline (not sampled, or dropped)."""
        if type(span) is Handed:
            self._release(span.content)  # never started: nothing else knows it
            return
        assert isinstance(span, ReadableSpan)
        self._roll_up.forget(span)
        self._metrics.forget(span)
        if span.context is not None:
            self._routes.pop(span.context.span_id, None)
            self._take_content(span.context.span_id)

    def on_end(self, span: ReadableSpan) -> None:
        context = span.context
        if context is None or not context.trace_flags.sampled:
            self._forget(span)
            return
        if self._catching and threading.current_thread() is self._batcher.worker:
            self._caught.append(span)  # a span the worker started: enriched and exported right away
            return
        self._put(span)

    # -- the worker --

    def _prepare(self, item: ReadableSpan | Handed) -> tuple[Hashable, ReadableSpan, int] | None:
        """The destination key, the enriched span and its size; None for a handed record that left no
        span to export (not sampled: it is counted in the metrics instead)."""
        if type(item) is Handed:
            started = self._start_handed(item)
            if started is None:
                return None
            span = started
        else:
            assert isinstance(item, ReadableSpan)
            span = item
        routes = self._routes
        key = routes.pop(span.context.span_id, None) if routes and span.context is not None else None
        ready, size = self._enrich(span)
        return key, ready, size

    def _release(self, content: Pending | None) -> None:
        if content is not None:
            with self._content_lock:
                self._content_size -= content.size

    def _start_handed(self, job: Handed) -> ReadableSpan | None:
        """On the worker: start and end a handed record's span as the caller would have (same parent,
        times, attributes, name and status); the ended span, or None when it was not sampled."""
        name, parent, kind, first, start, (tracer, router), dest = job.start
        attributes = {**first, **job.attributes}
        content = job.content
        if content is not None:
            self._release(content)
            try:
                attributes.update(content.resolve())
            except Exception:
                # Never sent unfinished: the span leaves without the content it could not finish.
                self._once.error("content", "contextcompany: could not finish the content of %r", name)
        final_name = job.name or name
        try:
            span = tracer.start_span(
                final_name, context=parent, kind=kind, attributes=attributes, start_time=start
            )
            if router is not None:
                router.route(span, dest)
            if job.status is not StatusCode.UNSET:
                span.set_status(job.status, job.description)
        except Exception:
            self._once.error("start", "contextcompany: could not start the span %r", final_name)
            return None
        if not span.is_recording():
            failed = job.status is StatusCode.ERROR
            self._count_unsampled(
                _metrics.Unsampled(final_name, attributes, start, job.end_ns, failed, job.agent)
            )
            return None
        caught = self._caught
        self._catching = True
        try:
            span.end(end_time=job.end_ns)
        except Exception:
            self._once.error("end", "contextcompany: could not end the span %r", final_name)
        finally:
            self._catching = False
        return caught.pop() if caught else None

    def _count_unsampled(self, record: _metrics.Unsampled) -> None:
        """On the worker: the step rule, pricing and metrics of a record no span carries."""
        try:
            edit = Edit(_metrics.unsampled_span(record))
            self._step_rule(edit)
            self._pricing(edit)
            self._metrics.record(edit, agent=record.agent)
        except Exception:
            self._once.error("unsampled", "contextcompany: counting a record that was not sampled failed")

    def _exporter_for_key(self, key: Hashable) -> SpanExporter | None:
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

    def _enrich(self, span: ReadableSpan) -> tuple[ReadableSpan, int]:
        """The span as the stages leave it, and its approximate size in a request."""
        try:
            edit = Edit(span)
        except Exception:
            self._once.error("edit", "contextcompany: could not read the attributes of span %r", span.name)
            return span, approximate_size(span.name, {})
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
        size = approximate_size(span.name, edit.attributes)
        try:
            return edit.result(), size
        except Exception:
            self._once.error("result", "contextcompany: could not build the enriched span %r", span.name)
            return span, size

    # -- lifecycle --

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        """Export everything queued so far. True when it was all delivered within the timeout; False when
        the timeout passed first, or some of it could not be delivered (see ``stats()``)."""
        return self._batcher.force_flush(timeout_millis)

    def shutdown(self, timeout_millis: float | None = None) -> None:
        """Export what is queued, then stop; waits at most the shutdown timeout."""
        if not self._batcher.shutdown(None if timeout_millis is None else timeout_millis / 1000):
            return
        for exporter in (self._exporter, *self._exporters.values()):
            if exporter is None:
                continue
            try:
                exporter.shutdown()
            except Exception:
                self._once.error("exporter.shutdown", "contextcompany: an exporter failed to shut down")

    def stats(self) -> Stats:
        return self._batcher.stats()
