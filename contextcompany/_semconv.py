"""Attribute names and the GenAI message format, written in one place.

GenAI names come from ``opentelemetry-semantic-conventions``. Those constants are marked
deprecated there because the GenAI conventions moved to their own repository; the names
themselves are unchanged and current. What the convention lacks lives under ``tcc.``.
"""

from __future__ import annotations

import json
from json.encoder import encode_basestring
from typing import Final

from opentelemetry.semconv._incubating.attributes import gen_ai_attributes as _g
from opentelemetry.semconv.attributes import error_attributes as _e

# --- OpenTelemetry GenAI semantic conventions -------------------------------------------------
OPERATION_NAME: Final = _g.GEN_AI_OPERATION_NAME
PROVIDER_NAME: Final = _g.GEN_AI_PROVIDER_NAME
SYSTEM: Final = _g.GEN_AI_SYSTEM  # the older name of gen_ai.provider.name, still sent by some libraries
REQUEST_MODEL: Final = _g.GEN_AI_REQUEST_MODEL
RESPONSE_MODEL: Final = _g.GEN_AI_RESPONSE_MODEL
# Spans with one response id in a run describe one call (the roll-up's rule 2, _calls).
RESPONSE_ID: Final = _g.GEN_AI_RESPONSE_ID
# Streaming: whether the call streamed, and seconds from the request to the first chunk.
REQUEST_STREAM: Final = _g.GEN_AI_REQUEST_STREAM
RESPONSE_TIME_TO_FIRST_CHUNK: Final = _g.GEN_AI_RESPONSE_TIME_TO_FIRST_CHUNK
USAGE_INPUT_TOKENS: Final = _g.GEN_AI_USAGE_INPUT_TOKENS
USAGE_OUTPUT_TOKENS: Final = _g.GEN_AI_USAGE_OUTPUT_TOKENS
USAGE_CACHE_READ_INPUT_TOKENS: Final = _g.GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS
USAGE_CACHE_CREATION_INPUT_TOKENS: Final = _g.GEN_AI_USAGE_CACHE_CREATION_INPUT_TOKENS
# The same count under the name opentelemetry-util-genai and the anthropic SDK send; the installed
# semantic-conventions package does not define it yet. Both are read (_usage); these are written:
USAGE_CACHE_WRITE_INPUT_TOKENS: Final = "gen_ai.usage.cache_write.input_tokens"
USAGE_CACHE_WRITE_KEYS: Final = (USAGE_CACHE_CREATION_INPUT_TOKENS,)
USAGE_REASONING_OUTPUT_TOKENS: Final = _g.GEN_AI_USAGE_REASONING_OUTPUT_TOKENS
RESPONSE_FINISH_REASONS: Final = _g.GEN_AI_RESPONSE_FINISH_REASONS
TOOL_DEFINITIONS: Final = _g.GEN_AI_TOOL_DEFINITIONS
INPUT_MESSAGES: Final = _g.GEN_AI_INPUT_MESSAGES
OUTPUT_MESSAGES: Final = _g.GEN_AI_OUTPUT_MESSAGES
SYSTEM_INSTRUCTIONS: Final = _g.GEN_AI_SYSTEM_INSTRUCTIONS
CONVERSATION_ID: Final = _g.GEN_AI_CONVERSATION_ID
AGENT_NAME: Final = _g.GEN_AI_AGENT_NAME
TOOL_NAME: Final = _g.GEN_AI_TOOL_NAME
TOOL_CALL_ID: Final = _g.GEN_AI_TOOL_CALL_ID
TOOL_CALL_ARGUMENTS: Final = _g.GEN_AI_TOOL_CALL_ARGUMENTS
TOOL_CALL_RESULT: Final = _g.GEN_AI_TOOL_CALL_RESULT
EVALUATION_NAME: Final = _g.GEN_AI_EVALUATION_NAME
EVALUATION_SCORE_LABEL: Final = _g.GEN_AI_EVALUATION_SCORE_LABEL
EVALUATION_SCORE_VALUE: Final = _g.GEN_AI_EVALUATION_SCORE_VALUE
EVALUATION_EXPLANATION: Final = _g.GEN_AI_EVALUATION_EXPLANATION
ERROR_TYPE: Final = _e.ERROR_TYPE
ERROR_TYPE_OTHER: Final = _e.ErrorTypeValues.OTHER.value

OP_INVOKE_AGENT: Final = _g.GenAiOperationNameValues.INVOKE_AGENT.value
OP_CHAT: Final = _g.GenAiOperationNameValues.CHAT.value
OP_EXECUTE_TOOL: Final = _g.GenAiOperationNameValues.EXECUTE_TOOL.value

# --- What the convention lacks: the tcc. namespace ----------------------------------------------
RUN_ID: Final = "tcc.run.id"
STEP_ID: Final = "tcc.step.id"
CONVERSATIONAL: Final = "tcc.run.conversational"
METADATA_PREFIX: Final = "tcc.metadata."
RUN_FULL_INPUT: Final = "tcc.run.full_input"
RUN_FULL_OUTPUT: Final = "tcc.run.full_output"
# Cost of one LLM call in USD, and where the number came from (one of the COST_SOURCE_* values).
COST_USD: Final = "tcc.cost.usd"
COST_SOURCE: Final = "tcc.cost.source"
COST_SOURCE_REPORTED: Final = "reported"
COST_SOURCE_COMPUTED: Final = "computed"
COST_SOURCE_NO_PRICE: Final = "no_price"
# Totals a run carries for every LLM call beneath it, written by the span processor.
RUN_INPUT_TOKENS: Final = "tcc.run.usage.input_tokens"
RUN_CACHE_READ_TOKENS: Final = "tcc.run.usage.cache_read.input_tokens"
RUN_CACHE_CREATION_TOKENS: Final = "tcc.run.usage.cache_creation.input_tokens"
RUN_OUTPUT_TOKENS: Final = "tcc.run.usage.output_tokens"
RUN_REASONING_TOKENS: Final = "tcc.run.usage.reasoning.output_tokens"
RUN_COST_USD: Final = "tcc.run.cost.usd"
RUN_LLM_CALLS: Final = "tcc.run.llm_calls"
RUN_UNPRICED_CALLS: Final = "tcc.run.unpriced_llm_calls"
# User feedback is recorded as a GenAI evaluation of the run, named this:
FEEDBACK_EVALUATION_NAME: Final = "user_feedback"
FEEDBACK_SPAN_NAME: Final = "feedback"
# The content policy: which content attributes it withheld, and the original length of a cut value.
CONTENT_WITHHELD: Final = "tcc.content.withheld"
TRUNCATED_PREFIX: Final = "tcc.truncated."
# error.type for a step the span processor had to mark failed because prompt or response was missing
ERROR_TYPE_INCOMPLETE_STEP: Final = "tcc.incomplete_step"
# error.type for a record tcc ended itself, and why
ERROR_TYPE_TIMEOUT: Final = "tcc.timeout"
ERROR_TYPE_PARENT_ENDED: Final = "tcc.parent_ended"
ERROR_TYPE_ABANDONED: Final = "tcc.abandoned"
ERROR_TYPE_PROCESS_EXIT: Final = "tcc.process_exit"
ERROR_TYPE_TERMINATED: Final = "tcc.terminated"  # SIGTERM, handled by tcc (_sigterm)

# --- Other backends' own names ----------------------------------------------------------------------
# MLflow (3.6+) prices spans itself unless they carry this: a JSON string with input_cost, output_cost and
# total_cost in USD. Written when TCC_COST_BACKENDS names mlflow.
MLFLOW_LLM_COST: Final = "mlflow.llm.cost"

INSTRUMENTATION_NAME: Final = "contextcompany"

# --- Metric attributes (never span attributes): see _metrics and docs/metrics.md -----------------
TOKEN_TYPE: Final = _g.GEN_AI_TOKEN_TYPE
TOKEN_TYPE_INPUT: Final = _g.GenAiTokenTypeValues.INPUT.value
TOKEN_TYPE_OUTPUT: Final = _g.GenAiTokenTypeValues.OUTPUT.value
# The disjoint part of a token type a tcc.client.token.parts point counts (uncached, cache_read, ...).
TOKEN_PART: Final = "tcc.token.part"
TOKEN_PART_UNKNOWN: Final = "unknown"
# Whether a metric point comes from a tcc record (exact under sampling) or another instrumentation's span.
METRIC_ORIGIN: Final = "tcc.origin"
ORIGIN_TCC: Final = "tcc"
ORIGIN_OTHER: Final = "other"
METRIC_ATTRIBUTES: Final = frozenset({TOKEN_TYPE, TOKEN_PART, METRIC_ORIGIN})

# Every attribute key tcc writes or reads (a prefix ends with "."). docs/attributes.md documents each.
ATTRIBUTES: Final = frozenset(
    {
        OPERATION_NAME,
        PROVIDER_NAME,
        SYSTEM,
        REQUEST_MODEL,
        RESPONSE_MODEL,
        RESPONSE_ID,
        REQUEST_STREAM,
        RESPONSE_TIME_TO_FIRST_CHUNK,
        USAGE_INPUT_TOKENS,
        USAGE_OUTPUT_TOKENS,
        USAGE_CACHE_READ_INPUT_TOKENS,
        USAGE_CACHE_CREATION_INPUT_TOKENS,
        USAGE_CACHE_WRITE_INPUT_TOKENS,
        USAGE_REASONING_OUTPUT_TOKENS,
        RESPONSE_FINISH_REASONS,
        TOOL_DEFINITIONS,
        INPUT_MESSAGES,
        OUTPUT_MESSAGES,
        SYSTEM_INSTRUCTIONS,
        CONVERSATION_ID,
        AGENT_NAME,
        TOOL_NAME,
        TOOL_CALL_ID,
        TOOL_CALL_ARGUMENTS,
        TOOL_CALL_RESULT,
        EVALUATION_NAME,
        EVALUATION_SCORE_LABEL,
        EVALUATION_SCORE_VALUE,
        EVALUATION_EXPLANATION,
        ERROR_TYPE,
        RUN_ID,
        STEP_ID,
        CONVERSATIONAL,
        METADATA_PREFIX,
        RUN_FULL_INPUT,
        RUN_FULL_OUTPUT,
        COST_USD,
        COST_SOURCE,
        MLFLOW_LLM_COST,
        RUN_INPUT_TOKENS,
        RUN_CACHE_READ_TOKENS,
        RUN_CACHE_CREATION_TOKENS,
        RUN_OUTPUT_TOKENS,
        RUN_REASONING_TOKENS,
        RUN_COST_USD,
        RUN_LLM_CALLS,
        RUN_UNPRICED_CALLS,
        CONTENT_WITHHELD,
        TRUNCATED_PREFIX,
    }
)


# --- The GenAI message format -------------------------------------------------------------------
# Messages are JSON strings in the convention's shape: a list of {"role", "parts": [{"type": "text",
# "content"}]}; output messages also carry "finish_reason". Plain text is by far the common case and
# sits on the caller's hot path, so it is written with the C string encoder json itself uses instead
# of building and dumping a dict (about a tenth of the time). Richer shapes go through json.dumps.


def text_messages(role: str, text: str, finish_reason: str | None = None) -> str:
    """One message with one text part, as a GenAI messages JSON string.

    >>> text_messages("user", "Hi")
    '[{"role":"user","parts":[{"type":"text","content":"Hi"}]}]'
    """
    tail = "}]" if finish_reason is None else ',"finish_reason":' + encode_basestring(finish_reason) + "}]"
    return (
        '[{"role":'
        + encode_basestring(role)
        + ',"parts":[{"type":"text","content":'
        + encode_basestring(text)
        + "}]"
        + tail
    )


def text_parts(text: str) -> str:
    """A list of one text part, the shape of ``gen_ai.system_instructions``.

    >>> text_parts("Be brief.")
    '[{"type":"text","content":"Be brief."}]'
    """
    return '[{"type":"text","content":' + encode_basestring(text) + "}]"


def dumps(value: object) -> str:
    """Compact JSON, UTF-8 text kept as is; raises TypeError/ValueError like json.dumps."""
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
