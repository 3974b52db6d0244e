"""The enrichment stages called directly on an Edit: no processor, no thread, no exporter."""

from __future__ import annotations

from typing import Any

import pytest
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.trace import SpanContext, StatusCode, TraceFlags

from contextcompany import _semconv as sc
from contextcompany._export._stages import Edit, Pricing, RollUp, StepRule
from contextcompany._usage import Usage

TRACE_ID = 0x1234


def span(
    span_id: int, attributes: dict[str, Any], parent: int | None = None, name: str = "s"
) -> ReadableSpan:
    context = SpanContext(TRACE_ID, span_id, is_remote=False, trace_flags=TraceFlags(TraceFlags.SAMPLED))
    parent_context = None if parent is None else SpanContext(TRACE_ID, parent, is_remote=False)
    return ReadableSpan(name=name, context=context, parent=parent_context, attributes=attributes)


def test_an_untouched_span_is_returned_as_is() -> None:
    original = span(1, {"http.method": "GET"})
    edit = Edit(original)
    for stage in (StepRule(), Pricing(), RollUp()):
        stage(edit)
    assert edit.result() is original


def test_step_rule_names_what_is_missing() -> None:
    edit = Edit(span(1, {sc.STEP_ID: "s1", sc.INPUT_MESSAGES: "[]"}))
    StepRule()(edit)
    result = edit.result()
    assert result.status.status_code is StatusCode.ERROR
    assert result.status.description == "step ended without response"
    assert result.attributes[sc.ERROR_TYPE] == sc.ERROR_TYPE_INCOMPLETE_STEP


def test_pricing_reads_the_counts_through_usage() -> None:
    usage = Usage(input=1000, cache_read=200, cache_write=100, output=50, reasoning=10)
    edit = Edit(span(1, {sc.REQUEST_MODEL: "gpt-4o", **usage.to_attributes()}))
    Pricing()(edit)
    assert edit.get(sc.COST_SOURCE) == sc.COST_SOURCE_COMPUTED
    assert isinstance(edit.get(sc.COST_USD), float) and edit.get(sc.COST_USD) > 0
    assert edit.usage() == usage


def test_pricing_says_reported_for_a_cost_the_span_carries() -> None:
    edit = Edit(span(1, {sc.COST_USD: 0.5, sc.USAGE_INPUT_TOKENS: 3}))
    Pricing()(edit)
    assert edit.get(sc.COST_SOURCE) == sc.COST_SOURCE_REPORTED and edit.get(sc.COST_USD) == 0.5


def test_roll_up_writes_the_run_totals_with_usage() -> None:
    roll_up = RollUp()
    run = span(1, {sc.OPERATION_NAME: sc.OP_INVOKE_AGENT, sc.RUN_ID: "r1"}, name="invoke_agent")
    roll_up.on_start(run)  # type: ignore[arg-type]  # it reads only the context, as of a started Span
    first = Usage(input=100, cache_read=40, output=10)
    second = Usage(input=50, cache_write=5, output=5, reasoning=2)
    for span_id, usage, cost in ((2, first, 0.25), (3, second, None)):
        attributes: dict[str, Any] = usage.to_attributes()
        if cost is not None:
            attributes[sc.COST_USD] = cost
        roll_up(Edit(span(span_id, attributes, parent=1, name="chat")))
    edit = Edit(run)
    roll_up(edit)
    out = edit.result().attributes
    assert Usage.from_run_attributes(out) == Usage(
        input=150, cache_read=40, cache_write=5, output=15, reasoning=2
    )
    assert out[sc.RUN_COST_USD] == pytest.approx(0.25)
    assert out[sc.RUN_LLM_CALLS] == 2 and out[sc.RUN_UNPRICED_CALLS] == 1
    assert roll_up._pending == {} and roll_up._open == set()
