"""The LLM calls beneath a span, each counted once however many spans describe it.

    >>> below = Calls()
    >>> below.add(Calls.of(Call(Usage(input=1200, output=300), cost=0.004, ids=frozenset({"msg_1"}))))
    >>> below.add(Calls.of(Call(Usage(input=1200, output=301), cost=0.0041, ids=frozenset({"msg_1"}))))
    >>> below.totals().llm_calls    # one response id: one call, the first description kept
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
workflow operation (some frameworks put their children's usage on those; they are sums, not calls).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Final

from . import _semconv as sc
from ._usage import Usage

__all__ = ["NOT_CALLS", "Call", "Calls", "Totals"]

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


class Calls:
    """The calls beneath one span, merged as children end (on the export worker only).

    Calls named by a response id are kept one by one, so a later description of the same call can be
    recognised; the others are only summed.
    """

    __slots__ = ("_anonymous", "_by_id", "_named")

    def __init__(self) -> None:
        self._named: list[Call] = []
        self._by_id: dict[str, int] = {}  # response id -> index in _named
        self._anonymous = Totals()

    @classmethod
    def of(cls, call: Call) -> Calls:
        calls = cls()
        calls._put(call)
        return calls

    def _put(self, call: Call) -> None:
        known = {self._by_id[i] for i in call.ids if i in self._by_id}
        if not call.ids:
            t = self._anonymous
            t.llm_calls += 1
            if call.usage is not None:
                t.usage = t.usage + call.usage
            if call.cost is None:
                t.unpriced_llm_calls += 1
            else:
                t.cost_usd += call.cost
            return
        if known:
            index = min(known)  # the description that arrived first wins
            merged = self._named[index].fill(call)
            self._named[index] = merged
        else:
            index = len(self._named)
            self._named.append(call)
            merged = call
        for i in merged.ids:
            self._by_id[i] = index

    def add(self, other: Calls) -> None:
        """Merge the calls beneath a sibling span into these."""
        a, b = self._anonymous, other._anonymous
        a.usage = a.usage + b.usage
        a.cost_usd += b.cost_usd
        a.llm_calls += b.llm_calls
        a.unpriced_llm_calls += b.unpriced_llm_calls
        for call in other._named:
            self._put(call)

    def as_one(self) -> Call | None:
        """Everything beneath a span that describes a call, as one description of that call (rule 1):
        the usage and cost summed, every response id kept. None when nothing is beneath."""
        t = self.totals()
        if t.llm_calls == 0:
            return None
        ids: frozenset[str] = frozenset(self._by_id)
        has_usage = any(c.usage is not None for c in self._named) or self._anonymous.usage != Usage()
        return Call(t.usage if has_usage else None, None if t.unpriced_llm_calls else t.cost_usd, ids)

    def totals(self) -> Totals:
        t = Totals(
            self._anonymous.usage,
            self._anonymous.cost_usd,
            self._anonymous.llm_calls,
            self._anonymous.unpriced_llm_calls,
        )
        for call in self._named:
            t.llm_calls += 1
            if call.usage is not None:
                t.usage = t.usage + call.usage
            if call.cost is None:
                t.unpriced_llm_calls += 1
            else:
                t.cost_usd += call.cost
        return t


def outermost(own: Call, below: Calls | None) -> Calls:
    """The calls a span that describes a call passes up: just that one call (rule 1)."""
    inner = below.as_one() if below is not None else None
    return Calls.of(own if inner is None else own.fill(inner))
