"""What the viewer shows of a span and of a run, read from attributes in one place.

The web page never reads attribute keys: the store hands it these views, whose fields are named for
what they mean (``model``, ``usage``, ``input``, ``error``...), with every key taken from ``_semconv``.
The raw attributes travel along for the page's "attributes" table.

Example::

    view = span_view(span, t0=run.start_ns)
    view["kind"], view["model"], view["usage"]          # "step", "gpt-4o", {"input": 1436, ...}
    summary = summarise(run, descendants)               # one row of the runs list
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

from opentelemetry.semconv.attributes import exception_attributes as _exc
from opentelemetry.semconv.attributes import service_attributes as _service

from contextcompany import _semconv as sc
from contextcompany._usage import Usage
from contextcompany.dev._text import message_preview, message_texts, number, parse_json

__all__ = ["StoredSpan", "Summary", "span_kind", "span_view", "summarise", "usage_dict"]

STATUS_ERROR: Final = 2
STATUS_OK: Final = 1
EXCEPTION_EVENT: Final = "exception"
PREVIEW_CHARS: Final = 160
# The search text of one run is capped: a 200-step agent resends its history on every step.
SEARCH_TEXT_CHARS: Final = 2_000_000


@dataclass(frozen=True, slots=True)
class StoredSpan:
    """A span as the store keeps it: ids, times, status and decoded attributes and events."""

    trace_id: str
    span_id: str
    parent_id: str | None
    name: str
    kind: int
    start_ns: int
    end_ns: int
    status_code: int
    status_message: str
    scope: str
    attributes: Mapping[str, Any]
    events: Sequence[Mapping[str, Any]]
    resource: Mapping[str, Any]


def span_kind(name: str, attributes: Mapping[str, Any]) -> str:
    """``run``, ``step``, ``tool``, ``feedback`` or ``other`` (another instrumentation's span)."""
    operation = attributes.get(sc.OPERATION_NAME)
    if operation == sc.OP_INVOKE_AGENT:
        return "run"
    if operation == sc.OP_CHAT:
        return "step"
    if operation == sc.OP_EXECUTE_TOOL:
        return "tool"
    if name == sc.FEEDBACK_SPAN_NAME:
        return "feedback"
    return "other"


def usage_dict(usage: Usage | None) -> dict[str, int | None] | None:
    if usage is None:
        return None
    return {
        "input": usage.input,
        "cache_read": usage.cache_read,
        "cache_write": usage.cache_write,
        "output": usage.output,
        "reasoning": usage.reasoning,
    }


def _text(value: Any) -> str | None:
    return None if value is None else str(value)


def _model(attributes: Mapping[str, Any]) -> str | None:
    # The model that answered is more precise than the one asked for ("gpt-4o-2024-08-06").
    return _text(attributes.get(sc.RESPONSE_MODEL) or attributes.get(sc.REQUEST_MODEL))


def _finish_reasons(attributes: Mapping[str, Any]) -> list[str]:
    reasons = attributes.get(sc.RESPONSE_FINISH_REASONS)
    if reasons is None:
        return []
    if isinstance(reasons, str):
        return [reasons]
    if isinstance(reasons, list | tuple):
        return [str(r) for r in reasons]
    return [str(reasons)]


def _error(span: StoredSpan) -> dict[str, Any] | None:
    exceptions = [
        {
            "type": _text(e.get("attributes", {}).get(_exc.EXCEPTION_TYPE)),
            "message": _text(e.get("attributes", {}).get(_exc.EXCEPTION_MESSAGE)),
            "stacktrace": _text(e.get("attributes", {}).get(_exc.EXCEPTION_STACKTRACE)),
        }
        for e in span.events
        if e.get("name") == EXCEPTION_EVENT
    ]
    if span.status_code != STATUS_ERROR and not exceptions:
        return None
    error_type = _text(span.attributes.get(sc.ERROR_TYPE))
    if error_type in (None, sc.ERROR_TYPE_OTHER) and exceptions and exceptions[-1]["type"]:
        error_type = exceptions[-1]["type"]
    return {
        "type": error_type,
        "message": span.status_message or (exceptions[-1]["message"] if exceptions else None),
        "exceptions": exceptions,
    }


def _prefixed(attributes: Mapping[str, Any], prefix: str) -> dict[str, Any]:
    return {k[len(prefix) :]: v for k, v in attributes.items() if k.startswith(prefix)}


def _cost(attributes: Mapping[str, Any], kind: str) -> float | None:
    value = number(attributes.get(sc.RUN_COST_USD if kind == "run" else sc.COST_USD))
    return None if value is None or not math.isfinite(value) else float(value)


def span_view(span: StoredSpan, t0: int) -> dict[str, Any]:
    """Everything the run page shows of one span; times in microseconds from ``t0`` (nanoseconds)."""
    a = span.attributes
    kind = span_kind(span.name, a)
    view: dict[str, Any] = {
        "id": span.span_id,
        "parent": span.parent_id,
        "trace": span.trace_id,
        "name": span.name,
        "kind": kind,
        "scope": span.scope,
        "service": _text(span.resource.get(_service.SERVICE_NAME)),
        "start_us": (span.start_ns - t0) / 1000,
        "duration_us": max(0, span.end_ns - span.start_ns) / 1000,
        "status": "error" if span.status_code == STATUS_ERROR else "ok",
        "error": _error(span),
        "run_id": _text(a.get(sc.RUN_ID)),
        "step_id": _text(a.get(sc.STEP_ID)),
        "agent": _text(a.get(sc.AGENT_NAME)),
        "session": _text(a.get(sc.CONVERSATION_ID)),
        "model": _model(a),
        "request_model": _text(a.get(sc.REQUEST_MODEL)),
        "response_model": _text(a.get(sc.RESPONSE_MODEL)),
        "provider": _text(a.get(sc.PROVIDER_NAME) or a.get(sc.SYSTEM)),
        "usage": usage_dict(Usage.from_run_attributes(a) if kind == "run" else Usage.from_attributes(a)),
        "cost": _cost(a, kind),
        "cost_source": _text(a.get(sc.COST_SOURCE)),
        "finish_reasons": _finish_reasons(a),
        "system": parse_json(a.get(sc.SYSTEM_INSTRUCTIONS)),
        "input": parse_json(a.get(sc.INPUT_MESSAGES)),
        "output": parse_json(a.get(sc.OUTPUT_MESSAGES)),
        "tool_definitions": parse_json(a.get(sc.TOOL_DEFINITIONS)),
        "metadata": _prefixed(a, sc.METADATA_PREFIX),
        "withheld": a.get(sc.CONTENT_WITHHELD),
        "truncated": _prefixed(a, sc.TRUNCATED_PREFIX),
        "attributes": dict(a),
        "events": [
            {
                "name": e.get("name"),
                "time_us": (int(e.get("time_unix_nano", t0)) - t0) / 1000,
                "attributes": e.get("attributes", {}),
            }
            for e in span.events
        ],
    }
    if kind == "run":
        view["llm_calls"] = number(a.get(sc.RUN_LLM_CALLS))
        view["unpriced"] = number(a.get(sc.RUN_UNPRICED_CALLS))
        view["full_input"] = parse_json(a.get(sc.RUN_FULL_INPUT))
        view["full_output"] = parse_json(a.get(sc.RUN_FULL_OUTPUT))
    if kind == "tool" or sc.TOOL_NAME in a:
        view["tool"] = {
            "name": _text(a.get(sc.TOOL_NAME)),
            "call_id": _text(a.get(sc.TOOL_CALL_ID)),
            "arguments": parse_json(a.get(sc.TOOL_CALL_ARGUMENTS)),
            "result": parse_json(a.get(sc.TOOL_CALL_RESULT)),
        }
    if kind == "feedback" or sc.EVALUATION_SCORE_LABEL in a or sc.EVALUATION_SCORE_VALUE in a:
        view["feedback"] = {
            "name": _text(a.get(sc.EVALUATION_NAME)),
            "label": _text(a.get(sc.EVALUATION_SCORE_LABEL)),
            "score": number(a.get(sc.EVALUATION_SCORE_VALUE)),
            "explanation": _text(a.get(sc.EVALUATION_EXPLANATION)),
        }
    return view


# --- a run's summary: one row of the runs list --------------------------------------------------


@dataclass(slots=True)
class Summary:
    """One run as the runs list shows it, and the text its search looks through."""

    run_id: str
    trace_id: str
    span_id: str
    name: str
    agent: str | None
    status: str
    error: str | None
    start_ns: int
    end_ns: int
    steps: int
    priced: int
    llm_calls: int
    tools: int
    errors: int
    usage: Usage
    cost: float | None
    unpriced: int
    session: str | None
    models: list[str]
    prompt: str | None
    response: str | None
    feedback: str | None
    parent_run: str | None
    search_text: str


def run_id_of(span: StoredSpan) -> str:
    """tcc's run id, or the span id for an agent span another instrumentation recorded."""
    value = span.attributes.get(sc.RUN_ID)
    return str(value) if value is not None else span.span_id


def _agent(span: StoredSpan) -> str | None:
    agent = span.attributes.get(sc.AGENT_NAME)
    if agent is not None:
        return str(agent)
    # "invoke_agent weather_agent": the convention's span name carries the agent's name.
    head, _, rest = span.name.partition(" ")
    return rest.strip() or None if head == sc.OP_INVOKE_AGENT else None


class _SearchText:
    """The text a run's search looks through: each distinct text once, up to a size cap."""

    def __init__(self) -> None:
        self.texts: dict[str, None] = {}
        self.size = 0

    def add(self, raw: Any) -> None:
        for text in message_texts(raw):
            if text not in self.texts and self.size < SEARCH_TEXT_CHARS:
                self.texts[text] = None
                self.size += len(text) + 1


def summarise(run: StoredSpan, below: Sequence[StoredSpan], parent_run: str | None) -> Summary:
    """The run's row: counts and totals over the spans ``below`` it (its descendants, in any order).

    Totals are the run's own ``tcc.run.*`` attributes when the span processor wrote them. Without
    them (another SDK's agent span), usage is summed over the LLM spans that have no LLM span above
    them within the run, so an instrumentation's span nested in a tcc step is not counted twice.
    """
    a = run.attributes
    by_id = {s.span_id: s for s in below}
    steps = priced = tools = errors = 0
    summed: Usage | None = None
    summed_cost: float | None = None
    models: dict[str, None] = {}
    feedback: str | None = None
    search = _SearchText()
    search.add(a.get(sc.INPUT_MESSAGES))
    search.add(a.get(sc.OUTPUT_MESSAGES))

    def under_step(span: StoredSpan) -> bool:
        parent = by_id.get(span.parent_id or "")
        hops = 0
        while parent is not None and hops < 1000:  # ids a span's own ancestor must not loop forever
            if span_kind(parent.name, parent.attributes) == "step":
                return True
            parent = by_id.get(parent.parent_id or "")
            hops += 1
        return False

    for span in sorted(below, key=lambda s: s.start_ns):
        attrs = span.attributes
        kind = span_kind(span.name, attrs)
        if span.status_code == STATUS_ERROR:
            errors += 1
        if kind == "step" and not under_step(span):
            steps += 1
            cost = _cost(attrs, kind)
            if cost is not None:
                priced += 1
                summed_cost = (summed_cost or 0.0) + cost
            usage = Usage.from_attributes(attrs)
            if usage is not None:
                summed = usage if summed is None else summed + usage
            model = _model(attrs)
            if model:
                models[model] = None
            for key in (sc.SYSTEM_INSTRUCTIONS, sc.INPUT_MESSAGES, sc.OUTPUT_MESSAGES):
                search.add(attrs.get(key))
        elif kind == "tool":
            tools += 1
        elif kind == "feedback":
            label = attrs.get(sc.EVALUATION_SCORE_LABEL)
            if label is not None:
                feedback = str(label)

    run_usage = Usage.from_run_attributes(a) or summed or Usage()
    run_cost = _cost(a, "run")
    llm_calls = number(a.get(sc.RUN_LLM_CALLS))
    unpriced = number(a.get(sc.RUN_UNPRICED_CALLS))
    error = None
    if run.status_code == STATUS_ERROR:
        error = run.status_message or _text(a.get(sc.ERROR_TYPE)) or "failed"
    return Summary(
        run_id=run_id_of(run),
        trace_id=run.trace_id,
        span_id=run.span_id,
        name=run.name,
        agent=_agent(run),
        status="error" if run.status_code == STATUS_ERROR else "ok",
        error=error,
        start_ns=run.start_ns,
        end_ns=run.end_ns,
        steps=steps,
        priced=priced,
        llm_calls=int(llm_calls) if llm_calls is not None else steps,
        tools=tools,
        errors=errors,
        usage=run_usage,
        cost=run_cost if run_cost is not None else summed_cost,
        unpriced=int(unpriced) if unpriced is not None else steps - priced,
        session=_text(a.get(sc.CONVERSATION_ID)),
        models=list(models),
        prompt=message_preview(a.get(sc.INPUT_MESSAGES), "user", PREVIEW_CHARS),
        response=message_preview(a.get(sc.OUTPUT_MESSAGES), None, PREVIEW_CHARS),
        feedback=feedback,
        parent_run=parent_run,
        search_text="\n".join(search.texts),
    )
