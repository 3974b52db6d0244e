"""The enrichment stages: plain callables over an ``Edit`` of one ended span.

    >>> edit = Edit(span)                  # a copy of the span's attributes, taken once
    >>> for stage in (StepRule(), Pricing(), RollUp()):
    ...     stage(edit)
    >>> edit.result()                      # the span itself when nothing changed, else an enriched copy

Like structlog's processors, each stage does one thing:

1. ``StepRule``: a step span (``tcc.step.id``) never leaves as a success without a prompt and a
   response; it is shipped as an error that names what was missing.
2. ``Pricing``: any span with a GenAI model and token usage gets ``tcc.cost.usd`` and
   ``tcc.cost.source``; a span that reports its own ``tcc.cost.usd`` gets ``tcc.cost.source=reported``.
3. ``RollUp``: totals of tokens and cost bubble up the span tree; every ``invoke_agent`` span carries
   the totals of all LLM calls beneath it.

Threads: the stages run on the span processor's export worker, one span at a time, in the order the
spans ended (a run's steps before the run, which is all the roll-up needs). Only ``RollUp.on_start``
runs on the caller's thread, and it is one set insertion. Nothing here starts a thread, so each stage can
be tested by calling it on an ``Edit``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Final, Protocol

from opentelemetry.sdk.trace import ReadableSpan, Span
from opentelemetry.trace import Status, StatusCode
from opentelemetry.util.types import AttributeValue

from contextcompany import _semconv as sc
from contextcompany._pricing import PriceBook
from contextcompany._usage import Usage

# The attributes Usage reads: setting one of them makes an Edit read its usage again.
_USAGE_KEYS: Final = frozenset(
    {
        sc.USAGE_INPUT_TOKENS,
        sc.USAGE_OUTPUT_TOKENS,
        sc.USAGE_CACHE_READ_INPUT_TOKENS,
        sc.USAGE_CACHE_CREATION_INPUT_TOKENS,
        sc.USAGE_CACHE_WRITE_INPUT_TOKENS,
        sc.USAGE_REASONING_OUTPUT_TOKENS,
    }
)
_NO_USAGE: Final = Usage()  # shared: read, never changed (Usage has no setters; sums are new objects)


class Edit:
    """What the stages change on one ended span; applied once, after the last stage.

    The stages read a copy of the span's attributes taken once: every read of
    ``ReadableSpan.attributes`` builds a new mapping proxy over the SDK's ``BoundedAttributes``, whose
    ``get`` is a pure-Python ``Mapping`` method, and the stages read about twenty keys per span. That
    copy is also the attribute dict of the enriched span, when there is one.

    >>> edit = Edit(span)
    >>> edit.set("tcc.cost.usd", 0.002)
    >>> edit.result().attributes["tcc.cost.usd"]
    0.002
    """

    __slots__ = ("_usage", "attributes", "changed", "span", "status")

    def __init__(self, span: ReadableSpan) -> None:
        self.span = span
        self.attributes: dict[str, AttributeValue] = dict(span.attributes or {})
        self.changed = False
        self.status: Status | None = None
        self._usage: Usage | bool | None = False  # False: not read yet

    def get(self, key: str) -> Any:
        return self.attributes.get(key)

    def set(self, key: str, value: AttributeValue) -> None:
        self.attributes[key] = value
        self.changed = True
        if key in _USAGE_KEYS:
            self._usage = False

    def update(self, attributes: dict[str, AttributeValue]) -> None:
        self.attributes.update(attributes)
        self.changed = True
        if not _USAGE_KEYS.isdisjoint(attributes):
            self._usage = False

    def reports_usage(self) -> bool:
        """The span names a token count, even one that is not a usable count: an LLM call."""
        get = self.attributes.get
        return get(sc.USAGE_INPUT_TOKENS) is not None or get(sc.USAGE_OUTPUT_TOKENS) is not None

    def usage(self) -> Usage:
        """The span's token counts (read once per Edit, shared by the stages; counts it does not report
        are None)."""
        usage = self._usage
        if usage is False:
            usage = self._usage = Usage.from_attributes(self.attributes) or _NO_USAGE
        assert isinstance(usage, Usage)
        return usage

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


_STEP_CONTENT: Final = ((sc.INPUT_MESSAGES, "prompt"), (sc.OUTPUT_MESSAGES, "response"))


class StepRule:
    """A tcc step span never reaches the exporter as a success without both prompt and response.

    >>> StepRule()(edit)    # a step without a response: edit.status is now ERROR
    """

    def __call__(self, edit: Edit) -> None:
        if edit.get(sc.STEP_ID) is None or edit.span.status.status_code is StatusCode.ERROR:
            return
        # Content withheld by the capture policy was there: the record checked it before ending.
        withheld = edit.get(sc.CONTENT_WITHHELD) or ()
        missing = [name for key, name in _STEP_CONTENT if edit.get(key) is None and key not in withheld]
        if missing:
            edit.status = Status(StatusCode.ERROR, f"step ended without {' and '.join(missing)}")
            edit.set(sc.ERROR_TYPE, sc.ERROR_TYPE_INCOMPLETE_STEP)


def _usd(value: object) -> float | None:
    """A cost read from any span: a number (not a bool), else None."""
    return value if isinstance(value, int | float) and not isinstance(value, bool) else None


class Pricing:
    """Prices every LLM call that does not report its own cost, from its model and token counts.

    >>> Pricing()(edit)     # edit now carries tcc.cost.usd and tcc.cost.source
    """

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
        if not edit.reports_usage():
            return
        usage = edit.usage()
        provider = get(sc.PROVIDER_NAME) or get(sc.SYSTEM)
        used, requested = get(sc.RESPONSE_MODEL), get(sc.REQUEST_MODEL)
        cost = None
        for model in (used, requested) if requested != used else (used,):
            if isinstance(model, str) and model:
                cost = self._prices.cost_usd(
                    model,
                    input_tokens=usage.input or 0,
                    output_tokens=usage.output or 0,
                    cache_read_tokens=usage.cache_read or 0,
                    cache_write_tokens=usage.cache_write or 0,
                    reasoning_tokens=usage.reasoning or 0,
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
    """What the LLM calls beneath one span add up to."""

    usage: Usage = field(default_factory=Usage)
    cost_usd: float = 0.0
    llm_calls: int = 0
    unpriced_llm_calls: int = 0

    def add(self, other: Totals) -> None:
        self.usage = self.usage + other.usage
        self.cost_usd += other.cost_usd
        self.llm_calls += other.llm_calls
        self.unpriced_llm_calls += other.unpriced_llm_calls


_NO_TOTALS: Final = Totals()


class RollUp:
    """Totals bubble up the span tree; every run (invoke_agent) span carries those of its subtree.

    A span's totals go to its parent only while the parent is open in this pipeline (seen by
    ``on_start`` and not yet ended), so nothing waits for a parent that will never come: a parent in
    another process, a host span exported elsewhere, a parent that already ended.

    >>> roll_up = RollUp()
    >>> roll_up.on_start(run_span); roll_up(Edit(step)); roll_up(Edit(run))   # the run gets the totals
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
        parent = span.parent
        parent_id = parent.span_id if parent is not None and parent.span_id in self._open else None
        is_run = get(sc.OPERATION_NAME) == sc.OP_INVOKE_AGENT and get(sc.RUN_ID) is not None
        if edit.reports_usage():
            if totals is None:
                totals = Totals(edit.usage())
            else:
                totals.usage = totals.usage + edit.usage()
            cost = _usd(get(sc.COST_USD))
            if cost is not None:
                totals.cost_usd += cost
            else:
                totals.unpriced_llm_calls += 1
            totals.llm_calls += 1
        if is_run:
            t = totals or _NO_TOTALS
            edit.update(t.usage.to_run_attributes())
            edit.set(sc.RUN_COST_USD, round(t.cost_usd, 12))
            edit.set(sc.RUN_LLM_CALLS, t.llm_calls)
            edit.set(sc.RUN_UNPRICED_CALLS, t.unpriced_llm_calls)
        if totals is not None and parent_id is not None:
            above = self._pending.get(parent_id)
            if above is None:
                self._pending[parent_id] = totals
            else:
                above.add(totals)
