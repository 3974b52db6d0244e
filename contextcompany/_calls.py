"""The LLM calls beneath a span, each counted once however many spans describe it.

    >>> run = Calls()
    >>> run.add(Calls.of(Call(Usage(input=1200, output=300), cost=0.004, ids=frozenset({"msg_1"}))))
    >>> run.add(Calls.of(Call(Usage(input=1200, output=301), cost=0.0041, ids=frozenset({"msg_1"}))))
    >>> run.totals().llm_calls    # one response id: one call, the first description kept
    1

One provider call is often described by several spans: a tcc step the application recorded around
it, an instrumentation's span, and the provider SDK's own span (the anthropic SDK emits one), nested
or side by side. The roll-up counts calls, not spans, by two rules:

1. **Nested**: spans that describe a call and sit beneath another span that describes a call describe
   that same call. The outermost one wins: its token counts, if it reports any, else the counts of the
   spans beneath it; its cost, if it has one, else theirs. The outermost span is the account closest
   to the application: a step whose tokens the application took from the response, or billed with
   ``s.cost()``; an instrumentation's span around the SDK's. The spans beneath it are lower layers of
   the same request and only fill in what it lacks.
2. **Side by side**: spans that carry the same ``gen_ai.response.id`` describe the same call (an
   instrumentation and the provider SDK each wrap the call without nesting). The first one to end
   wins, with what it lacks filled in from the other; the innermost wrapper ends first, and it read
   the usage straight off the response.

Each span keeps its own attributes and its own price; only the totals change. A span "describes a
call" when it reports token usage or a cost and its ``gen_ai.operation.name`` is not an agent, tool or
workflow operation. Rule 1 stops at those: a run nested in a step, or a tool that calls a model, makes
calls of its own, not the step's. Their own usage, when they report any, counts as one call more.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Final

from . import _semconv as sc
from ._usage import Usage

__all__ = ["NOT_CALLS", "Call", "Calls", "Totals", "beside", "outermost"]

# Operations whose spans may carry usage but are not one LLM call (they sum the calls beneath them).
NOT_CALLS: Final = frozenset({sc.OP_INVOKE_AGENT, sc.OP_EXECUTE_TOOL, "create_agent", "invoke_workflow"})


@dataclass(slots=True)
class Call:
    """One LLM call: its usage (None when no span reported tokens), its cost in USD (None: unpriced),
    and the response ids that name it."""

    usage: Usage | None
    cost: float | None
    ids: frozenset[str] = frozenset()

    def fill(self, other: Call) -> Call:
        """This call, with what it lacks taken from ``other`` (another description of the same call)."""
        return Call(
            self.usage if self.usage is not None else other.usage,
            self.cost if self.cost is not None else other.cost,
            self.ids | other.ids,
        )


@dataclass(slots=True)
class Totals:
    """What a run reports for the calls beneath it."""

    usage: Usage = field(default_factory=Usage)
    cost_usd: float = 0.0
    llm_calls: int = 0
    unpriced_llm_calls: int = 0

    def count(self, call: Call) -> None:
        """Add one call: its tokens, and its cost or, without one, one more unpriced call."""
        self.llm_calls += 1
        if call.usage is not None:
            self.usage = self.usage + call.usage
        if call.cost is None:
            self.unpriced_llm_calls += 1
        else:
            self.cost_usd += call.cost


class _Set:
    """Calls, each counted once: those named by a response id kept one by one (so a later description
    of the same call is recognised), the others only summed."""

    __slots__ = ("anonymous", "by_id", "named")

    def __init__(self) -> None:
        self.named: list[Call] = []
        self.by_id: dict[str, int] = {}  # response id -> index in named
        self.anonymous = Totals()

    def put(self, call: Call) -> None:
        if not call.ids:
            self.anonymous.count(call)
            return
        known = [self.by_id[i] for i in call.ids if i in self.by_id]
        if known:
            index = min(known)  # the description that arrived first wins
            merged = self.named[index].fill(call)
            self.named[index] = merged
        else:
            index = len(self.named)
            self.named.append(call)
            merged = call
        for i in merged.ids:
            self.by_id[i] = index

    def add(self, other: _Set) -> None:
        a, b = self.anonymous, other.anonymous
        a.usage = a.usage + b.usage
        a.cost_usd += b.cost_usd
        a.llm_calls += b.llm_calls
        a.unpriced_llm_calls += b.unpriced_llm_calls
        for call in other.named:
            self.put(call)

    def totals(self) -> Totals:
        a = self.anonymous
        t = Totals(a.usage, a.cost_usd, a.llm_calls, a.unpriced_llm_calls)
        for call in self.named:
            t.count(call)
        return t

    def as_one(self) -> Call | None:
        t = self.totals()
        if t.llm_calls == 0:
            return None
        has_usage = any(c.usage is not None for c in self.named) or self.anonymous.usage != Usage()
        cost = None if t.unpriced_llm_calls else t.cost_usd
        return Call(t.usage if has_usage else None, cost, frozenset(self.by_id))


class Calls:
    """The calls beneath one span, merged as children end (on the export worker only).

    ``loose`` calls have no agent or tool span between them and this span: a span that describes a
    call absorbs them (rule 1). ``sealed`` calls sit under an agent or tool span: an agent's own calls,
    never the same call as one around the agent.
    """

    __slots__ = ("loose", "sealed")

    def __init__(self) -> None:
        self.loose = _Set()
        self.sealed = _Set()

    @classmethod
    def of(cls, call: Call) -> Calls:
        calls = cls()
        calls.loose.put(call)
        return calls

    def add(self, other: Calls) -> None:
        """Merge the calls beneath a sibling span into these."""
        self.loose.add(other.loose)
        self.sealed.add(other.sealed)

    def seal(self) -> None:
        """These calls now sit under an agent or tool span."""
        self.sealed.add(self.loose)
        self.loose = _Set()

    def totals(self) -> Totals:
        merged = _Set()
        merged.add(self.sealed)
        merged.add(self.loose)
        return merged.totals()


def outermost(own: Call, below: Calls | None) -> Calls:
    """The calls a span that describes a call passes up: that one call, filled in from the loose calls
    beneath it (rule 1), beside the sealed ones."""
    calls = Calls()
    inner = below.loose.as_one() if below is not None else None
    calls.loose.put(own if inner is None else own.fill(inner))
    if below is not None:
        calls.sealed = below.sealed
    return calls


def beside(own: Call | None, below: Calls | None) -> Calls | None:
    """The calls an agent, tool or workflow span passes up: those beneath it, sealed, and the span's own
    usage, when it reports any, as one call more (it may be the agent's own work)."""
    if own is None and below is None:
        return None
    calls = below if below is not None else Calls()
    if own is not None:
        calls.loose.put(own)
    calls.seal()
    return calls
