"""Run, Step and ToolCall: fluent records, each backed by one OpenTelemetry span.

    >>> r = tcc.run()
    >>> r.prompt("What is the weather in London?").response("15°C and cloudy").end()

A record's span starts when the record is made. Setters check their arguments at the call and keep the
values; ``end()`` / ``error()`` write every attribute at once and end the span. That keeps a setter to a
few attribute stores, and lets ``end()`` refuse (and leave the record open) when a required call is
missing, before anything is written.
"""

from __future__ import annotations

import threading
import weakref
from collections import OrderedDict
from collections.abc import Mapping
from typing import Any, ClassVar, Final, Literal, Self

from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.trace import SpanKind, StatusCode
from opentelemetry.util.types import AttributeValue

from . import _checks as checks
from . import _config
from . import _semconv as sc
from ._redact import redact

FeedbackScore = Literal["thumbs_up", "thumbs_down"]
FEEDBACK_SCORES: Final = {"thumbs_up": 1.0, "thumbs_down": -1.0}
FEEDBACK_TEXT_MAX: Final = 2000


# --- the run registry: live runs by id, and the span contexts of recently ended ones -------------------

_live_runs: weakref.WeakValueDictionary[str, Run] = weakref.WeakValueDictionary()
_recent_lock = threading.Lock()
_recent_runs: OrderedDict[str, trace.SpanContext] = OrderedDict()
_RECENT_RUNS_MAX: Final = 10_000


def _remember_run(run_id: str, span_context: trace.SpanContext) -> None:
    if not span_context.is_valid:
        return
    with _recent_lock:
        _recent_runs[run_id] = span_context
        _recent_runs.move_to_end(run_id)
        while len(_recent_runs) > _RECENT_RUNS_MAX:
            _recent_runs.popitem(last=False)


def live_run(run_id: str) -> Run | None:
    return _live_runs.get(run_id)


def run_context(run_id: str) -> Context | None:
    """A context whose parent is run ``run_id``'s span, if this process knows it (live or recent)."""
    run = _live_runs.get(run_id)
    if run is not None:
        return run._context
    with _recent_lock:
        span_context = _recent_runs.get(run_id)
    if span_context is None:
        return None
    return trace.set_span_in_context(trace.NonRecordingSpan(span_context))


# --- the records ----------------------------------------------------------------------------------------


class _Record:
    """What runs, steps and tool calls share: the span, status, the ended-guard and end()/error()."""

    __slots__ = (
        "__weakref__",
        "_api_key",
        "_end_lock",
        "_ended",
        "_span",
        "_status",
        "_status_message",
        "_tcc_url",
    )

    _kind: ClassVar[str]  # "run", "step", "tool call": for messages
    _var: ClassVar[str]  # "r", "s", "tc": how the old package's docs name the object in messages

    _span: trace.Span

    def __init__(self, api_key: str | None, tcc_url: str | None) -> None:
        self._api_key = api_key
        self._tcc_url = tcc_url
        self._ended = False
        self._end_lock = threading.Lock()
        self._status = StatusCode.UNSET
        self._status_message: str | None = None

    def _open(self, call: str) -> None:
        if self._ended:
            raise RuntimeError(
                f"[TCC] {self._kind.capitalize()} has already ended: {self._var}.{call}() cannot be called "
                f"after {self._var}.end() or {self._var}.error()"
            )

    def _start(
        self,
        name: str,
        parent: Context | None,
        kind: SpanKind,
        attributes: dict[str, AttributeValue],
    ) -> None:
        tracer = _config.get(self._api_key, self._tcc_url).tracer
        self._span = tracer.start_span(name, context=parent, kind=kind, attributes=attributes)

    def status(self, code: int, message: str | None = None) -> Self:
        """Set the status: 0 ok (the default), 2 error (1 marks ok explicitly, as in OpenTelemetry).

        >>> s.status(2, "rate limited")
        """
        where = f"{self._var}.status"
        status = checks.status_code(code, where)
        text = checks.optional_text(message, f"{where}(message=...)")
        self._open("status")
        self._status = status
        self._status_message = None if text is None else redact(text)
        return self

    def _missing(self) -> str | None:
        """The setter that must be called before end(), if one is missing."""
        return None

    def _attributes(self) -> dict[str, AttributeValue]:
        raise NotImplementedError

    def _name(self) -> str | None:
        return None

    def _finish(self) -> None:
        with self._end_lock:
            self._open("end")
            self._ended = True
        span = self._span
        attributes = self._attributes()
        if self._status is StatusCode.ERROR:
            attributes[sc.ERROR_TYPE] = sc.ERROR_TYPE_OTHER
        span.set_attributes(attributes)
        name = self._name()
        if name is not None:
            span.update_name(name)
        if self._status is not StatusCode.UNSET:
            span.set_status(self._status, self._status_message if self._status is StatusCode.ERROR else None)
        span.end()
        self._ended_hook()

    def _ended_hook(self) -> None:
        pass

    def end(self) -> None:
        """Finish the record and send its span. Raises ValueError, sending nothing and leaving the
        record open, when a required setter was not called."""
        self._open("end")
        missing = self._missing()
        if missing is not None:
            raise ValueError(
                f"[TCC] Cannot end {self._kind}: {missing} is required. "
                f"Call {self._var}.{missing}(...) before {self._var}.end()"
            )
        self._finish()

    def error(self, status_message: str = "") -> None:
        """Finish the record as failed and send its span; needs nothing else to be set.

        The message is redacted (bearer tokens, API keys, passwords in URLs) before it is recorded.
        """
        text = checks.text(status_message, f"{self._var}.error(status_message=...)")
        self._open("error")
        self._status = StatusCode.ERROR
        if text:
            self._status_message = redact(text)
        if self._status_message is None:
            self._status_message = f"{self._kind} failed"
        self._finish()

    def __repr__(self) -> str:
        state = "ended" if self._ended else "open"
        return f"<{type(self).__name__} {self._ident()} {state}>"

    def _ident(self) -> str:
        raise NotImplementedError


class Run(_Record):
    """One agent invocation, from the user's prompt to the final response; a span ``invoke_agent``.

    >>> r = tcc.run(session_id="chat-42")
    >>> r.prompt("What is the weather in London?", system_prompt="You are a weather agent.")
    >>> r.response("15°C and cloudy.").end()
    """

    __slots__ = ("_context", "_metadata", "_prompt", "_response", "_run_id", "_system_prompt")
    _kind = "run"
    _var = "r"

    def __init__(
        self,
        run_id: str | None = None,
        session_id: str | None = None,
        conversational: bool | None = None,
        api_key: str | None = None,
        tcc_url: str | None = None,
    ) -> None:
        self._run_id = checks.new_id(run_id, "tcc.run(run_id=...)")
        session = None if session_id is None else checks.identifier(session_id, "tcc.run(session_id=...)")
        flag = checks.optional_bool(conversational, "tcc.run(conversational=...)")
        _config.check_api_key(api_key, "tcc.run")
        _config.check_tcc_url(tcc_url, "tcc.run")
        super().__init__(api_key, tcc_url)
        self._prompt: str | None = None
        self._system_prompt: str | None = None
        self._response: str | None = None
        self._metadata: dict[str, AttributeValue] | None = None
        attributes: dict[str, AttributeValue] = {
            sc.OPERATION_NAME: sc.OP_INVOKE_AGENT,
            sc.RUN_ID: self._run_id,
        }
        if session is not None:
            attributes[sc.CONVERSATION_ID] = session
        if flag is not None:
            attributes[sc.CONVERSATIONAL] = flag
        self._start(sc.OP_INVOKE_AGENT, None, SpanKind.INTERNAL, attributes)
        self._context = trace.set_span_in_context(self._span)
        _live_runs[self._run_id] = self

    @property
    def run_id(self) -> str:
        """This run's id (a UUID4 string unless one was given)."""
        return self._run_id

    def _ident(self) -> str:
        return f"run_id={self._run_id!r}"

    def prompt(self, user_prompt: str, system_prompt: str | None = None) -> Self:
        """The user's prompt, and optionally the agent's system prompt (required before ``end()``)."""
        user = checks.text(user_prompt, "r.prompt(user_prompt=...)")
        system = checks.optional_text(system_prompt, "r.prompt(system_prompt=...)")
        self._open("prompt")
        self._prompt = user
        self._system_prompt = system
        return self

    def response(self, text: str) -> Self:
        """The agent's final response."""
        value = checks.text(text, "r.response(text=...)")
        self._open("response")
        self._response = value
        return self

    def metadata(self, data: Mapping[str, str] | None = None, **kwargs: str) -> Self:
        """Key/value metadata, recorded as ``tcc.metadata.<key>``; later calls add and overwrite keys.

        >>> r.metadata({"customer": "acme"}, plan="pro")
        """
        items = checks.metadata(data, kwargs, "r.metadata")
        self._open("metadata")
        if self._metadata is None:
            self._metadata = items
        else:
            self._metadata.update(items)
        return self

    def step(self, step_id: str | None = None) -> Step:
        """Start an LLM call inside this run."""
        self._open("step")
        return Step(self._run_id, step_id, self._api_key, self._tcc_url, _parent=self._context)

    def tool_call(self, tool_name: str | None = None, tool_call_id: str | None = None) -> ToolCall:
        """Start a tool call inside this run."""
        self._open("tool_call")
        return ToolCall(
            self._run_id, tool_call_id, tool_name, self._api_key, self._tcc_url, _parent=self._context
        )

    def feedback(self, score: FeedbackScore | None = None, text: str | None = None) -> bool:
        """Record user feedback on this run; see ``tcc.submit_feedback``. Allowed after the run ended."""
        return submit_feedback(self._run_id, score, text, self._api_key, self._tcc_url)

    def _missing(self) -> str | None:
        return "prompt" if self._prompt is None else None

    def _attributes(self) -> dict[str, AttributeValue]:
        attributes: dict[str, AttributeValue] = {}
        if self._prompt is not None:
            attributes[sc.INPUT_MESSAGES] = sc.text_messages("user", self._prompt)
        if self._system_prompt is not None:
            attributes[sc.SYSTEM_INSTRUCTIONS] = sc.text_parts(self._system_prompt)
        if self._response is not None:
            attributes[sc.OUTPUT_MESSAGES] = sc.text_messages("assistant", self._response, "stop")
        if self._metadata:
            for key, value in self._metadata.items():
                attributes[sc.METADATA_PREFIX + key] = value
        return attributes

    def _ended_hook(self) -> None:
        if _live_runs.get(self._run_id) is self:
            del _live_runs[self._run_id]
        _remember_run(self._run_id, self._span.get_span_context())


class Step(_Record):
    """One LLM call; a span ``chat {model}``, the child of its run.

    >>> s = r.step()
    >>> s.prompt("Hello").response("World").model(requested="gpt-4", used="gpt-4-0613")
    >>> s.tokens(prompt_uncached=150, prompt_cached=50, completion=25).finish_reason("stop").end()
    """

    __slots__ = (
        "_cached",
        "_completion",
        "_context",
        "_cost",
        "_finish_reason",
        "_model_requested",
        "_model_used",
        "_prompt",
        "_response",
        "_run_id",
        "_step_id",
        "_tool_definitions",
        "_uncached",
    )
    _kind = "step"
    _var = "s"

    def __init__(
        self,
        run_id: str,
        step_id: str | None = None,
        api_key: str | None = None,
        tcc_url: str | None = None,
        *,
        _parent: Context | None = None,
    ) -> None:
        self._run_id = checks.identifier(run_id, "tcc.step(run_id=...)")
        self._step_id = checks.new_id(step_id, "tcc.step(step_id=...)")
        _config.check_api_key(api_key, "tcc.step")
        _config.check_tcc_url(tcc_url, "tcc.step")
        super().__init__(api_key, tcc_url)
        self._prompt: str | None = None
        self._response: str | None = None
        self._model_requested: str | None = None
        self._model_used: str | None = None
        self._uncached: int | None = None
        self._cached: int | None = None
        self._completion: int | None = None
        self._cost: float | None = None
        self._finish_reason: str | None = None
        self._tool_definitions: str | None = None
        parent = _parent if _parent is not None else run_context(self._run_id)
        self._start(
            sc.OP_CHAT,
            parent,
            SpanKind.CLIENT,
            {sc.OPERATION_NAME: sc.OP_CHAT, sc.STEP_ID: self._step_id, sc.RUN_ID: self._run_id},
        )
        self._context: Context | None = None

    @property
    def step_id(self) -> str:
        return self._step_id

    @property
    def run_id(self) -> str:
        return self._run_id

    def _ident(self) -> str:
        return f"step_id={self._step_id!r} run_id={self._run_id!r}"

    def prompt(self, text: str) -> Self:
        """What was sent to the model (required before ``end()``)."""
        value = checks.text(text, "s.prompt(text=...)")
        self._open("prompt")
        self._prompt = value
        return self

    def response(self, text: str) -> Self:
        """What the model answered (required before ``end()``)."""
        value = checks.text(text, "s.response(text=...)")
        self._open("response")
        self._response = value
        return self

    def model(self, requested: str | None = None, used: str | None = None) -> Self:
        """The model asked for, and the model that answered (often a dated version of it)."""
        req = checks.optional_text(requested, "s.model(requested=...)")
        use = checks.optional_text(used, "s.model(used=...)")
        self._open("model")
        if req is not None:
            self._model_requested = req
        if use is not None:
            self._model_used = use
        return self

    def tokens(
        self,
        prompt_uncached: int | None = None,
        prompt_cached: int | None = None,
        completion: int | None = None,
    ) -> Self:
        """Token counts; ``gen_ai.usage.input_tokens`` is uncached + cached, as the convention counts them."""
        uncached = checks.token_count(prompt_uncached, "s.tokens(prompt_uncached=...)")
        cached = checks.token_count(prompt_cached, "s.tokens(prompt_cached=...)")
        out = checks.token_count(completion, "s.tokens(completion=...)")
        self._open("tokens")
        if uncached is not None:
            self._uncached = uncached
        if cached is not None:
            self._cached = cached
        if out is not None:
            self._completion = out
        return self

    def cost(self, real_total: float) -> Self:
        """The call's actual cost in USD; it wins over the cost computed from model and tokens."""
        value = checks.cost(real_total, "s.cost(real_total=...)")
        self._open("cost")
        self._cost = value
        return self

    def finish_reason(self, reason: str) -> Self:
        """Why the model stopped, e.g. "stop", "length", "tool_calls"."""
        value = checks.text(reason, "s.finish_reason(reason=...)")
        self._open("finish_reason")
        self._finish_reason = value
        return self

    def tool_definitions(self, definitions: str) -> Self:
        """The tools offered to the model, as a JSON string."""
        value = checks.text(definitions, "s.tool_definitions(definitions=...)")
        self._open("tool_definitions")
        self._tool_definitions = value
        return self

    def tool_call(self, tool_name: str | None = None, tool_call_id: str | None = None) -> ToolCall:
        """Start a tool call made from this step; its span is this step's child."""
        self._open("tool_call")
        if self._context is None:
            self._context = trace.set_span_in_context(self._span)
        return ToolCall(
            self._run_id, tool_call_id, tool_name, self._api_key, self._tcc_url, _parent=self._context
        )

    def _missing(self) -> str | None:
        if self._prompt is None:
            return "prompt"
        if self._response is None:
            return "response"
        return None

    def _name(self) -> str | None:
        model = self._model_requested or self._model_used
        return f"{sc.OP_CHAT} {model}" if model else None

    def _attributes(self) -> dict[str, AttributeValue]:
        attributes: dict[str, AttributeValue] = {}
        if self._prompt is not None:
            attributes[sc.INPUT_MESSAGES] = sc.text_messages("user", self._prompt)
        if self._response is not None:
            attributes[sc.OUTPUT_MESSAGES] = sc.text_messages(
                "assistant", self._response, self._finish_reason
            )
        if self._model_requested is not None:
            attributes[sc.REQUEST_MODEL] = self._model_requested
        if self._model_used is not None:
            attributes[sc.RESPONSE_MODEL] = self._model_used
        if self._uncached is not None or self._cached is not None:
            attributes[sc.USAGE_INPUT_TOKENS] = (self._uncached or 0) + (self._cached or 0)
        if self._cached is not None:
            attributes[sc.USAGE_CACHE_READ_INPUT_TOKENS] = self._cached
        if self._completion is not None:
            attributes[sc.USAGE_OUTPUT_TOKENS] = self._completion
        if self._finish_reason is not None:
            attributes[sc.RESPONSE_FINISH_REASONS] = (self._finish_reason,)
        if self._tool_definitions is not None:
            attributes[sc.TOOL_DEFINITIONS] = self._tool_definitions
        if self._cost is not None:
            attributes[sc.COST_USD] = self._cost
            attributes[sc.COST_SOURCE] = sc.COST_SOURCE_REPORTED
        return attributes


class ToolCall(_Record):
    """One tool (function) call; a span ``execute_tool {name}``, the child of its run or step.

    >>> tc = r.tool_call("get_weather")
    >>> tc.args({"city": "London"}).result({"temp_c": 15}).end()
    """

    __slots__ = ("_args", "_result", "_run_id", "_tool_call_id", "_tool_name")
    _kind = "tool call"
    _var = "tc"

    def __init__(
        self,
        run_id: str,
        tool_call_id: str | None = None,
        tool_name: str | None = None,
        api_key: str | None = None,
        tcc_url: str | None = None,
        *,
        _parent: Context | None = None,
    ) -> None:
        self._run_id = checks.identifier(run_id, "tcc.tool_call(run_id=...)")
        self._tool_call_id = checks.new_id(tool_call_id, "tcc.tool_call(tool_call_id=...)")
        self._tool_name = (
            None if tool_name is None else checks.identifier(tool_name, "tcc.tool_call(tool_name=...)")
        )
        _config.check_api_key(api_key, "tcc.tool_call")
        _config.check_tcc_url(tcc_url, "tcc.tool_call")
        super().__init__(api_key, tcc_url)
        self._args: str | None = None
        self._result: str | None = None
        attributes: dict[str, AttributeValue] = {
            sc.OPERATION_NAME: sc.OP_EXECUTE_TOOL,
            sc.TOOL_CALL_ID: self._tool_call_id,
            sc.RUN_ID: self._run_id,
        }
        if self._tool_name is not None:
            attributes[sc.TOOL_NAME] = self._tool_name
        parent = _parent if _parent is not None else run_context(self._run_id)
        self._start(sc.OP_EXECUTE_TOOL, parent, SpanKind.INTERNAL, attributes)

    @property
    def tool_call_id(self) -> str:
        return self._tool_call_id

    @property
    def run_id(self) -> str:
        return self._run_id

    def _ident(self) -> str:
        return f"tool_call_id={self._tool_call_id!r} name={self._tool_name!r}"

    def name(self, tool_name: str) -> Self:
        """The tool's name (required before ``end()``, unless given to ``tool_call()``)."""
        value = checks.identifier(tool_name, "tc.name(tool_name=...)")
        self._open("name")
        self._tool_name = value
        return self

    def args(self, value: str | Any) -> Self:
        """The call's arguments: a str as is, anything else serialised to JSON here."""
        text = checks.json_or_text(value, "tc.args(value=...)")
        self._open("args")
        self._args = text
        return self

    def result(self, value: str | Any) -> Self:
        """The call's result: a str as is, anything else serialised to JSON here."""
        text = checks.json_or_text(value, "tc.result(value=...)")
        self._open("result")
        self._result = text
        return self

    def _missing(self) -> str | None:
        return "name" if self._tool_name is None else None

    def _name(self) -> str | None:
        return f"{sc.OP_EXECUTE_TOOL} {self._tool_name}" if self._tool_name else None

    def _attributes(self) -> dict[str, AttributeValue]:
        attributes: dict[str, AttributeValue] = {}
        if self._tool_name is not None:
            attributes[sc.TOOL_NAME] = self._tool_name
        if self._args is not None:
            attributes[sc.TOOL_CALL_ARGUMENTS] = self._args
        if self._result is not None:
            attributes[sc.TOOL_CALL_RESULT] = self._result
        return attributes


def submit_feedback(
    run_id: str,
    score: FeedbackScore | None = None,
    text: str | None = None,
    api_key: str | None = None,
    tcc_url: str | None = None,
) -> bool:
    """Record user feedback on a run, as a short ``feedback`` span in the run's trace.

    The span carries the GenAI evaluation attributes: ``gen_ai.evaluation.name="user_feedback"``,
    ``gen_ai.evaluation.score.label`` (the score), ``gen_ai.evaluation.score.value`` (+1.0 / -1.0) and
    ``gen_ai.evaluation.explanation`` (the text), plus ``tcc.run.id``.

    >>> tcc.submit_feedback(r.run_id, score="thumbs_up", text="Spot on")
    True
    """
    rid = checks.identifier(run_id, "tcc.submit_feedback(run_id=...)")
    if score is not None and score not in FEEDBACK_SCORES:
        raise ValueError(
            f"[TCC] tcc.submit_feedback(score=...) expects 'thumbs_up', 'thumbs_down' or None, got {score!r}"
        )
    body = checks.optional_text(text, "tcc.submit_feedback(text=...)")
    if not score and not body:
        raise ValueError("[TCC] Cannot submit feedback: at least one of 'score' or 'text' must be provided")
    if body is not None and len(body) > FEEDBACK_TEXT_MAX:
        raise ValueError(
            f"[TCC] Cannot submit feedback: text length ({len(body)}) exceeds maximum of "
            f"{FEEDBACK_TEXT_MAX} characters"
        )
    _config.check_api_key(api_key, "tcc.submit_feedback")
    _config.check_tcc_url(tcc_url, "tcc.submit_feedback")
    attributes: dict[str, AttributeValue] = {sc.RUN_ID: rid, sc.EVALUATION_NAME: sc.FEEDBACK_EVALUATION_NAME}
    if score is not None:
        attributes[sc.EVALUATION_SCORE_LABEL] = score
        attributes[sc.EVALUATION_SCORE_VALUE] = FEEDBACK_SCORES[score]
    if body:
        attributes[sc.EVALUATION_EXPLANATION] = body
    tracer = _config.get(api_key, tcc_url).tracer
    span = tracer.start_span(sc.FEEDBACK_SPAN_NAME, context=run_context(rid), attributes=attributes)
    span.end()
    return True
