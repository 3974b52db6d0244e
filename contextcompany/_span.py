"""One span handle: it starts a record's span now or later, and finishes it without ever raising.

    >>> handle = SpanHandle.start("run", "invoke_agent", None, SpanKind.INTERNAL, {"tcc.run.id": rid})
    >>> handle = SpanHandle.later("step", "chat", parent, SpanKind.CLIENT, {"tcc.step.id": sid}, now, lock=lk)
    >>> handle.span()                       # the span (a deferred one starts here, with its first attributes)
    >>> handle.finish(attributes, name="chat gpt-4o", status=StatusCode.OK)

A deferred span starts at ``finish()``, back-dated to the time given to ``later()``, with its first
attributes, the finish attributes and its final name at once: the SDK checks each attribute it is given
after the start, so starting with all of them is a third less of the SDK's work on the caller's thread.
Whatever needs the span earlier (a ``with`` block, a child, an exception event) calls ``span()``, which
starts it then, once, whichever thread asks first.

On tcc's own provider, where tcc's span processor is the only one (``_pipeline.handoff``), a deferred span
never asked for is not started on the caller's thread at all: ``finish()`` hands the record to that
processor (one queue append), whose export worker starts and ends the span with the same parent, times,
attributes and status, and finishes its content there. Nothing else sees that provider's spans, so only
the caller's thread can tell: it no longer pays for the SDK's span start (sampler, ids, attribute checks),
about as much as the rest of a step costs it.

The tracer and the router are taken when the handle is made: a record ends through the pipeline of the
moment it was made (not one set up after a ``shutdown()``, say).

Nothing here raises into the application. A sampler or span processor of the service that raises while
a span starts, is written or ends is logged once (``_diag.error_once``) and the record goes on: a span
that failed to start is the invalid span, which records nothing.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Final, TypeAlias

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.trace import SpanKind, StatusCode
from opentelemetry.util.types import AttributeValue

from . import _content, _destinations, _pipeline, _settings
from . import _diag as diag
from ._export import Handed
from ._metrics import Unsampled

if TYPE_CHECKING:
    from ._export import SpanProcessor

Attributes: TypeAlias = dict[str, AttributeValue]
Target: TypeAlias = "tuple[trace.Tracer, SpanProcessor | None]"
# A span to start: name, parent, kind, first attributes, start (epoch ns; None: now), tracer and router, and
# the destination the router sends it to.
Start: TypeAlias = (
    "tuple[str, Context | None, SpanKind, Attributes, int | None, Target, _destinations.Destination | None]"
)

_NO_KEYS: Final[tuple[str, ...]] = ()


def _long_content_worker(
    draft: _content.Draft, content: Sequence[str], dest: _destinations.Destination | None
) -> SpanProcessor | None:
    """Where a started span's long content is finished: on the export worker when a tcc span processor
    alone sees the span (else on the caller's thread, as short content is), while the worker holds
    little enough of it; None: here."""
    if not _content.worth_deferring(draft, content):
        return None
    try:
        worker = _pipeline.content_worker(dest)
    except Exception:
        return None
    return worker if worker is not None and worker.can_defer(_content.content_size(draft)) else None


_NOT_RECORDED: Final[Target] = (trace.NoOpTracer(), None)


class SpanHandle:
    """A record's span, started now (``start``) or at the latest at ``finish`` (``later``)."""

    __slots__ = ("_first", "_given_start", "_lock", "_pending", "_span", "_started", "_what")

    _span: trace.Span | None

    def __init__(self, what: str, lock: threading.Lock | None, given_start: int | None) -> None:
        self._what = what  # "run", "step", "tool call", "feedback": for the log line when something fails
        self._lock = lock  # guards the deferred start; None: one thread only ever uses this handle
        self._given_start = given_start  # a start the application gave: the end is never before it
        self._pending: Start | None = None
        self._span = None
        # For a span started now that is not sampled: when it began, and its first attributes, which such
        # a span does not keep (tcc's span processor counts it from these: _unsampled).
        self._started: int | None = None
        self._first: Attributes | None = None

    @classmethod
    def start(
        cls,
        what: str,
        name: str,
        parent: Context | None,
        kind: SpanKind,
        attributes: Attributes,
        *,
        start_ns: int | None = None,
        dest: _destinations.Destination | None = None,
    ) -> SpanHandle:
        """A handle whose span starts now (at ``start_ns`` when given)."""
        handle = cls(what, None, start_ns)
        started = time.time_ns() if start_ns is None else start_ns
        span = handle._span = handle._open(
            (name, parent, kind, attributes, start_ns, handle._target(dest), dest)
        )
        if not span.is_recording():
            handle._started, handle._first = started, attributes
        return handle

    @classmethod
    def later(
        cls,
        what: str,
        name: str,
        parent: Context | None,
        kind: SpanKind,
        attributes: Attributes,
        *,
        start_ns: int | None = None,
        dest: _destinations.Destination | None = None,
        lock: threading.Lock | None = None,
    ) -> SpanHandle:
        """A handle whose span starts at ``finish()`` (or ``span()``), back-dated to ``start_ns`` (default:
        now, when the handle is made).

        ``lock`` (the record's own, to spare a lock per handle) makes the start happen once when several
        threads may ask for the span; without one, a single thread must use the handle."""
        handle = cls(what, lock, start_ns)
        start = time.time_ns() if start_ns is None else start_ns
        try:
            target = _pipeline.target(dest)  # inline rather than _target(): this runs for every step
        except Exception:
            target = handle._target(dest)
        handle._pending = (name, parent, kind, attributes, start, target, dest)
        return handle

    def _target(self, dest: _destinations.Destination | None) -> Target:
        try:
            return _pipeline.target(dest)
        except Exception:
            diag.error_once(
                "start", "contextcompany: starting the %s span failed; it is not recorded", self._what
            )
            return _NOT_RECORDED

    # -- the span --

    def _open(
        self, pending: Start, extra: Attributes | None = None, final_name: str | None = None
    ) -> trace.Span:
        """Start the span ``pending`` describes, with ``extra`` attributes and ``final_name`` when given."""
        name, parent, kind, attributes, start_ns, (tracer, router), dest = pending
        try:
            span = tracer.start_span(
                final_name or name,
                context=parent,
                kind=kind,
                attributes={**attributes, **extra} if extra else attributes,
                start_time=start_ns,
            )
            if router is not None:
                router.route(span, dest)
            return span
        except Exception:
            # A sampler or span processor of the service raised: the application must not see it.
            diag.error_once(
                "start", "contextcompany: starting the %s span failed; it is not recorded", self._what
            )
            return trace.INVALID_SPAN

    def _start_pending(self, attributes: Attributes | None, name: str | None) -> trace.Span | None:
        """Start a deferred span with ``attributes`` added to its first ones; None when it was started."""
        lock = self._lock
        if lock is None:
            return self._start_once(attributes, name)
        with lock:  # one start, whichever thread needs the span first
            return self._start_once(attributes, name)

    def _start_once(self, attributes: Attributes | None, name: str | None) -> trace.Span | None:
        pending, self._pending = self._pending, None
        if pending is None:
            return None  # started already
        span = self._span = self._open(pending, attributes, name)
        if attributes is None and not span.is_recording():
            # Started early (span()) and not sampled: finish() hands its record to tcc's processor with
            # these first attributes (operation, ids), which such a span does not keep.
            self._started, self._first = pending[4], pending[3]
        return span

    def span(self) -> trace.Span:
        """The span; a deferred one starts now, with its first attributes."""
        span = self._span
        if span is None:
            span = self._start_pending(None, None)
            if span is None:  # another thread started it a moment ago
                span = self._span
                assert span is not None
        return span

    @property
    def started(self) -> bool:
        return self._span is not None

    @property
    def start_ns(self) -> int | None:
        """When the span starts (a deferred one) or started (None when the SDK does not say)."""
        pending = self._pending
        if pending is not None:
            return pending[4]
        start: object = getattr(self._span, "start_time", None)
        return start if isinstance(start, int) else None

    def is_recording(self) -> bool:
        """False when nothing will be exported (tcc disabled, not sampled, or the start failed).

        A deferred span counts as recording: whether it will be is decided when it starts."""
        span = self._span
        return span is None or span.is_recording()

    # -- finishing --

    def _unsampled(
        self,
        attributes: Attributes,
        name: str,
        status: StatusCode,
        *,
        end_ns: int | None,
        agent: str | None,
        pending: Start | None,
    ) -> None:
        """Hand a record no span processor will see to tcc's: one queue append (nothing when tcc is
        disabled or has no span processor)."""
        try:
            count = _pipeline.unsampled_sink()
            if count is None:
                return
            first = pending[3] if pending is not None else self._first
            start = pending[4] if pending is not None else self._started
            end = time.time_ns() if end_ns is None else end_ns
            merged = {**first, **attributes} if first else attributes
            count(Unsampled(name, merged, start, end, status is StatusCode.ERROR, agent))
        except Exception:
            diag.error_once(
                "unsampled", "contextcompany: counting a %s that was not sampled failed", self._what
            )

    def _end(self, end_ns: int | None) -> int:
        """The end time: ``end_ns`` when given, else now, or the start if that is in the future."""
        if end_ns is not None:
            return end_ns
        now = time.time_ns()
        given = self._given_start
        return given if given is not None and given > now else now  # never an end before the start

    def _build(
        self, draft: _content.Draft, content: Sequence[str], *, defer: bool
    ) -> tuple[Attributes, _content.Pending | None] | None:
        """The end attributes with the content policy applied (``defer``: content left for the export
        worker, see ``_content.finish``); None when building them failed (a bug, logged once): the span
        is then sent as it is."""
        policy = _settings.settings
        try:
            return _content.finish(
                draft,
                tuple(content),
                capture=policy.capture_content,
                mask=policy.mask,
                limit=policy.value_limit,
                defer=defer,
            )
        except Exception:
            diag.error_once(
                "build", "contextcompany: building the %s span failed; it is sent as it is", self._what
            )
            return None

    def _hand_off(
        self,
        worker: SpanProcessor,
        draft: _content.Draft,
        *,
        name: str | None,
        status: StatusCode,
        description: str | None,
        end_ns: int | None,
        content: Sequence[str],
        agent: str | None,
    ) -> bool:
        """Hand a span never started to ``worker``, which starts and ends it on the export worker with
        everything it carries; its content too is finished there. False when another thread started the
        span meanwhile (it is then finished here, as any started span). Never raises."""
        lock = self._lock
        if lock is None:
            start, self._pending = self._pending, None
        else:
            with lock:
                start, self._pending = self._pending, None
                if start is not None:
                    # From now on the span is the worker's: a late span() gets one that records nothing.
                    self._span = trace.INVALID_SPAN
        if start is None:
            return False
        self._span = trace.INVALID_SPAN
        if start[1] is None:  # no parent given: the caller's current context, as starting it here would
            start = (start[0], otel_context.get_current(), *start[2:])
        end = self._end(end_ns)
        policy = _settings.settings
        defer = policy.capture_content and worker.can_defer(_content.content_size(draft))
        built = self._build(draft, content, defer=defer)
        attributes, pending = built if built is not None else ({}, None)
        text = _content.fit(description, policy.value_limit) if status is StatusCode.ERROR else None
        try:
            final = name if built is not None else None
            worker.hand(Handed(start, attributes, final, status, text, end, pending, agent))
        except Exception:
            diag.error_once("hand", "contextcompany: handing the %s span to the worker failed", self._what)
        return True

    def finish(
        self,
        draft: _content.Draft,
        *,
        name: str | None = None,
        status: StatusCode = StatusCode.UNSET,
        description: str | None = None,
        end_ns: int | None = None,
        content: Sequence[str] = _NO_KEYS,
        dest: _destinations.Destination | None = None,
        agent: str | None = None,
    ) -> None:
        """Write ``attributes`` (the content policy applied to the ``content`` keys) and ``name``, set the
        status (``description`` only on an error) and end the span at ``end_ns`` (default: now, or the start
        if that is in the future). Never raises.

        A span that was not sampled reaches no span processor, so its record is handed to tcc's (priced
        and counted in the metrics on its worker; ``agent`` is the name of the run it belongs to)."""
        deferred = self._pending  # the start not made yet, if any: an unsampled record's first attributes
        if deferred is not None:
            worker = _pipeline.handoff(deferred[5][0])
            if worker is not None and self._hand_off(
                worker,
                draft,
                name=name,
                status=status,
                description=description,
                end_ns=end_ns,
                content=content,
                agent=agent,
            ):
                return
        policy = _settings.settings
        worker = _long_content_worker(draft, content, dest) if policy.capture_content else None
        built = self._build(draft, content, defer=worker is not None)
        attributes, pending = built if built is not None else ({}, None)
        name = name if built is not None else None
        # A deferred span starts now with everything at once; a started one gets the rest written.
        span = self._span
        if span is None:
            span = self._start_pending(attributes, name)
            written = span is not None
            if span is None:
                span = self._span
                assert span is not None
        else:
            written = False
        try:
            if not written:
                span.set_attributes(attributes)
                if name is not None:
                    span.update_name(name)
            if status is not StatusCode.UNSET:
                text = description if status is StatusCode.ERROR else None
                span.set_status(status, _content.fit(text, policy.value_limit))
        except Exception:
            diag.error_once(
                "attributes", "contextcompany: writing the %s span failed; it is sent as it is", self._what
            )
        recording = span.is_recording()
        if pending is not None and worker is not None and recording:
            worker.defer(span, pending)  # a span not sampled never reaches the worker: nothing to finish
        if end_ns is None:
            end_ns = self._end(None)
        if not recording:
            if pending is not None:
                # Content left for the worker is never built for a span not sampled, but it was there:
                # the step rule must not take the record for one without a prompt or response.
                attributes = {**attributes, **dict.fromkeys(pending.keys(), "")}
            self._unsampled(attributes, name or "", status, end_ns=end_ns, agent=agent, pending=deferred)
        try:
            span.end(end_time=end_ns)
        except Exception:
            # A span processor of the service raised on end: the application must not see it.
            diag.error_once("end", "contextcompany: a span processor failed to end the %s span", self._what)
