"""Each record's fields, defined once: the name the import takes, the setter that takes it, its check,
the slot it is kept in and the attribute it becomes.

    >>> COMPLETION_TOKENS.name, COMPLETION_TOKENS.where, COMPLETION_TOKENS.attribute
    ('completion_tokens', 's.tokens(completion=...)', 'gen_ai.usage.output_tokens')
    >>> COMPLETION_TOKENS.check(25, COMPLETION_TOKENS.where)
    25

``name`` is the keyword of ``send_run`` / ``send_step`` / ``send_tool_call`` and the key of a nested dict
or a JSONL record; ``where`` is how errors name the setter argument that takes the same value, so a bad
value gets the same message from the setter and from the import. The setters stay hand-written (their
signatures and docstrings are the public API) and read ``check`` and ``where`` from here; ``_import``
derives its key sets and what it stores from the tuples at the bottom (``STEP_FIELDS``, ...).

``store`` keeps a checked value on a record the way the setter does (the import builds records from
checked values, without calling the setters a second time); it is None for what is not a setter's: ids,
times, status, nested records, given to the constructor or handled by ``_import`` itself.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final

from . import _checks as checks
from . import _messages as messages
from . import _semconv as sc

Check = Callable[[Any, str], Any]
Store = Callable[[Any, Any], None]


@dataclass(frozen=True, slots=True)
class Field:
    name: str  # send_*'s keyword, a nested dict's key
    where: str  # the setter argument that takes it, as its errors name it
    check: Check  # check(value, where): the checked value; raises TypeError/ValueError naming `where`
    attribute: str | None = None  # the span attribute it becomes (None: several, or none of its own)
    store: Store | None = None  # store(record, checked): keep it as the setter does


def into(slot: str) -> Store:
    """Keep the checked value in the record's ``slot``."""

    def store(record: Any, value: Any) -> None:
        setattr(record, slot, value)

    return store


def _no_check(value: Any, where: str) -> Any:
    return value  # checked by _import where it is read: nested records, the run's prompt dict


# --- checks that are more than one call ------------------------------------------------------------


def response(value: object, where: str) -> tuple[str | None, str | None, str | None]:
    """A step's response: (plain text, or GenAI output messages JSON and the finish reason found in it)."""
    if isinstance(value, str):
        return checks.text(value, where), None, None
    structured, found = messages.output_messages(value, None, where)
    return None, structured, found


def metadata(value: object, where: str) -> dict[str, Any]:
    return checks.metadata(value, {}, where)


def reasoning_within_completion(reasoning: int | None, completion: int | None) -> None:
    """Reasoning tokens are part of the completion: never more than it."""
    if reasoning is not None and completion is not None and reasoning > completion:
        raise ValueError(
            f"[TCC] s.tokens(reasoning=...) counts part of the completion and cannot exceed it: "
            f"reasoning={reasoning}, completion={completion}"
        )


def missing(kind: str, var: str, setter: str) -> ValueError:
    """The error of end() when ``setter`` was not called."""
    return ValueError(
        f"[TCC] Cannot end {kind}: {setter} is required. Call {var}.{setter}(...) before {var}.end()"
    )


def _store_response(step: Any, value: tuple[str | None, str | None, str | None]) -> None:
    step._response, step._response_json, step._response_reason = value


def _store_model(step: Any, value: str) -> None:
    # As s.model(value): the model asked for, and the one that answered unless that is given.
    step._model_requested = value
    if step._model_used is None:
        step._model_used = value


def _store_user_prompt(run: Any, value: str) -> None:
    run._prompt = sc.text_messages("user", value)


def _store_metadata(run: Any, value: dict[str, Any]) -> None:
    run._metadata = value


# --- every record's fields ---------------------------------------------------------------------------


def _times(var: str, call: str) -> tuple[Field, ...]:
    return (
        Field("start_time", f"{call}(start_time=...)", checks.timestamp),
        Field("end_time", f"{var}.end_time(t=...)", checks.timestamp),
        Field("status_code", f"{var}.status", checks.status_code),
        Field("status_message", f"{var}.status(message=...)", checks.optional_text),
    )


# The step (s = r.step(), tcc.step(), send_step).
STEP_RUN_ID: Final = Field("run_id", "tcc.step(run_id=...)", checks.identifier, sc.RUN_ID)
STEP_ID: Final = Field("step_id", "tcc.step(step_id=...)", checks.new_id, sc.STEP_ID)
STEP_PROMPT: Final = Field(
    "prompt", "s.prompt(text=...)", messages.input_messages, sc.INPUT_MESSAGES, into("_prompt")
)
STEP_RESPONSE: Final = Field(
    "response", "s.response(text=...)", response, sc.OUTPUT_MESSAGES, _store_response
)
MODEL: Final = Field("model", "s.model(requested=...)", checks.text, sc.REQUEST_MODEL, _store_model)
MODEL_REQUESTED: Final = Field(
    "model_requested", "s.model(requested=...)", checks.text, sc.REQUEST_MODEL, _store_model
)
MODEL_USED: Final = Field(
    "model_used", "s.model(used=...)", checks.text, sc.RESPONSE_MODEL, into("_model_used")
)
# Token counts, as the GenAI convention writes them (_usage.Usage): input counts all three prompt counts.
UNCACHED_TOKENS: Final = Field(
    "prompt_uncached_tokens",
    "s.tokens(prompt_uncached=...)",
    checks.token_count,
    sc.USAGE_INPUT_TOKENS,
    into("_uncached"),
)
CACHED_TOKENS: Final = Field(
    "prompt_cached_tokens",
    "s.tokens(prompt_cached=...)",
    checks.token_count,
    sc.USAGE_CACHE_READ_INPUT_TOKENS,
    into("_cached"),
)
CACHE_WRITE_TOKENS: Final = Field(
    "cache_write_tokens",
    "s.tokens(cache_write=...)",
    checks.token_count,
    sc.USAGE_CACHE_CREATION_INPUT_TOKENS,
    into("_cache_write"),
)
COMPLETION_TOKENS: Final = Field(
    "completion_tokens",
    "s.tokens(completion=...)",
    checks.token_count,
    sc.USAGE_OUTPUT_TOKENS,
    into("_completion"),
)
REASONING_TOKENS: Final = Field(
    "reasoning_tokens",
    "s.tokens(reasoning=...)",
    checks.token_count,
    sc.USAGE_REASONING_OUTPUT_TOKENS,
    into("_reasoning"),
)
COST: Final = Field("real_total_cost", "s.cost(real_total=...)", checks.cost, sc.COST_USD, into("_cost"))
FINISH_REASON: Final = Field(
    "finish_reason",
    "s.finish_reason(reason=...)",
    checks.text,
    sc.RESPONSE_FINISH_REASONS,
    into("_finish_reason"),
)
TOOL_DEFINITIONS: Final = Field(
    "tool_definitions",
    "s.tool_definitions(definitions=...)",
    messages.tool_definitions,
    sc.TOOL_DEFINITIONS,
    into("_tool_definitions"),
)

# The tool call (tc = r.tool_call(), s.tool_call(), tcc.tool_call(), send_tool_call).
TOOL_CALL_RUN_ID: Final = Field("run_id", "tcc.tool_call(run_id=...)", checks.identifier, sc.RUN_ID)
TOOL_CALL_ID: Final = Field("tool_call_id", "tcc.tool_call(tool_call_id=...)", checks.new_id, sc.TOOL_CALL_ID)
TOOL_NAME: Final = Field("tool_name", "tcc.tool_call(tool_name=...)", checks.identifier, sc.TOOL_NAME)
NAME: Final = Field("name", "tc.name(tool_name=...)", checks.identifier, sc.TOOL_NAME, into("_tool_name"))
ARGS: Final = Field("args", "tc.args(value=...)", checks.json_or_text, sc.TOOL_CALL_ARGUMENTS, into("_args"))
RESULT: Final = Field(
    "result", "tc.result(value=...)", checks.json_or_text, sc.TOOL_CALL_RESULT, into("_result")
)

# The run (r = tcc.run(), send_run).
RUN_ID: Final = Field("run_id", "tcc.run(run_id=...)", checks.new_id, sc.RUN_ID)
SESSION_ID: Final = Field("session_id", "tcc.run(session_id=...)", checks.identifier, sc.CONVERSATION_ID)
CONVERSATIONAL: Final = Field(
    "conversational", "tcc.run(conversational=...)", checks.optional_bool, sc.CONVERSATIONAL
)
AGENT_NAME: Final = Field("name", "tcc.run(name=...)", checks.identifier, sc.AGENT_NAME)
# send_run's prompt is a str (the user prompt) or {"user_prompt": ..., "system_prompt": ...}.
RUN_PROMPT: Final = Field("prompt", "r.prompt(user_prompt=...)", _no_check, sc.INPUT_MESSAGES)
USER_PROMPT: Final = Field(
    "user_prompt", "r.prompt(user_prompt=...)", checks.text, sc.INPUT_MESSAGES, _store_user_prompt
)
SYSTEM_PROMPT: Final = Field(
    "system_prompt",
    "r.prompt(system_prompt=...)",
    messages.system_instructions,
    sc.SYSTEM_INSTRUCTIONS,
    into("_system_prompt"),
)
FULL_INPUT: Final = Field(
    "full_input", "r.prompt(full_input=...)", checks.json_or_text, sc.RUN_FULL_INPUT, into("_full_input")
)
RUN_RESPONSE: Final = Field(
    "response", "r.response(text=...)", checks.text, sc.OUTPUT_MESSAGES, into("_response")
)
FULL_OUTPUT: Final = Field(
    "full_output",
    "r.response(full_output=...)",
    checks.json_or_text,
    sc.RUN_FULL_OUTPUT,
    into("_full_output"),
)
METADATA: Final = Field("metadata", "r.metadata", metadata, sc.METADATA_PREFIX, _store_metadata)

# Feedback on a run (tcc.submit_feedback, r.feedback, send_run's feedback dict); checked by _feedback.
SCORE: Final = Field("score", "tcc.submit_feedback(score=...)", _no_check, sc.EVALUATION_SCORE_LABEL)
FEEDBACK_TEXT: Final = Field(
    "text", "tcc.submit_feedback(text=...)", checks.optional_text, sc.EVALUATION_EXPLANATION
)

# Nested records: checked by _import, one record at a time.
TOOL_CALLS: Final = Field("tool_calls", "tool_calls", _no_check)
STEPS: Final = Field("steps", "steps", _no_check)
FEEDBACK: Final = Field("feedback", "feedback", _no_check)

# In the order the import applies them (the order the setters were called in before).
TOOL_CALL_FIELDS: Final = (
    TOOL_CALL_RUN_ID,
    TOOL_CALL_ID,
    TOOL_NAME,
    NAME,
    ARGS,
    RESULT,
    *_times("tc", "tcc.tool_call"),
)
STEP_FIELDS: Final = (
    STEP_RUN_ID,
    STEP_ID,
    STEP_PROMPT,
    STEP_RESPONSE,
    MODEL,
    MODEL_REQUESTED,
    MODEL_USED,
    UNCACHED_TOKENS,
    CACHED_TOKENS,
    CACHE_WRITE_TOKENS,
    COMPLETION_TOKENS,
    REASONING_TOKENS,
    COST,
    FINISH_REASON,
    TOOL_DEFINITIONS,
    *_times("s", "tcc.step"),
    TOOL_CALLS,
)
RUN_FIELDS: Final = (
    RUN_ID,
    SESSION_ID,
    CONVERSATIONAL,
    AGENT_NAME,
    RUN_PROMPT,
    FULL_INPUT,
    RUN_RESPONSE,
    FULL_OUTPUT,
    METADATA,
    *_times("r", "tcc.run"),
    STEPS,
    TOOL_CALLS,
    FEEDBACK,
)
PROMPT_FIELDS: Final = (USER_PROMPT, SYSTEM_PROMPT)
FEEDBACK_FIELDS: Final = (SCORE, FEEDBACK_TEXT)
# What every send_* takes besides the record's fields: where to send it (the run's, for nested records).
DESTINATION_NAMES: Final = ("api_key", "tcc_url")


def names(fields: tuple[Field, ...]) -> frozenset[str]:
    return frozenset(field.name for field in fields)


def by_name(fields: tuple[Field, ...]) -> dict[str, Field]:
    return {field.name: field for field in fields}
