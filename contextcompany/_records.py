"""Run, Step and ToolCall: fluent records, each backed by one OpenTelemetry span.

    >>> with tcc.run(name="weather") as r:
    ...     r.prompt("What is the weather in London?")
    ...     with r.step() as s:
    ...         s.prompt("...").response("15°C and cloudy").model("gpt-4o")
    ...     r.response("15°C and cloudy")

A setter checks its arguments at the call (the checks are ``_fields``') and keeps the values in slots;
``end()`` / ``error()`` turn them into attributes and hand them to the record's span handle (``_span``),
which writes them at once and ends the span. That keeps a setter to a few slot stores, and lets ``end()``
refuse (and leave the record open) when a required call is missing, before anything is written. A step
of a live run starts its span only at ``end()``, back-dated, with every attribute and its final name (the
SDK's per-attribute checks are a third of what a step costs the caller); whatever needs the span earlier
(the ``with`` form, a tool call made from the step, ``s.context()``) starts it then.

Nothing is left open: a run ends its open steps and tool calls first; a run past its timeout, a record
dropped without ``end()`` and anything still open at interpreter exit are ended as errors that say why
(``_lifetimes``). Calls on a record tcc ended that way are ignored with one warning instead of raising:
the application did nothing wrong. Which runs are alive, and the current run and step, are
``_registry``'s.
"""

from __future__ import annotations

import logging
import threading
import time
import traceback
import weakref
from collections.abc import Mapping, Sequence
from contextvars import ContextVar, Token
from types import TracebackType
from typing import Any, ClassVar, Final, Self

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.semconv.attributes import exception_attributes as exc_attrs
from opentelemetry.trace import SpanKind, StatusCode
from opentelemetry.util.types import AttributeValue

from . import _checks as checks
from . import _content, _destinations, _ids, _settings
from . import _diag as diag
from . import _feedback as feedback
from . import _fields as fields
from . import _lifetimes as lifetimes
from . import _messages as messages
from . import _registry as registry
from . import _semconv as sc
from ._feedback import FeedbackScore, submit_feedback
from ._redact import redact
from ._registry import current_run, current_step, known_run, run_context
from ._span import SpanHandle
from ._usage import Usage

__all__ = [
    "Run",
    "Step",
    "ToolCall",
    "current_run",
    "current_step",
    "known_run",
    "run_context",
    "submit_feedback",
]

logger = logging.getLogger("contextcompany")

ERROR_PARENT_ENDED: Final = sc.ERROR_TYPE_PARENT_ENDED


def _describe(exc: BaseException) -> str:
    try:
        return str(exc)
    except Exception:  # an exception whose __str__ raises
        return ""


def _stack(exc: BaseException) -> str:
    try:
        return "".join(traceback.format_exception(exc))
    except Exception:
        return _error_type(exc)


def _error_type(exc: BaseException) -> str:
    cls = type(exc)
    return cls.__qualname__ if cls.__module__ == "builtins" else f"{cls.__module__}.{cls.__qualname__}"


# --- the records ----------------------------------------------------------------------------------------


class _Record:
    """What runs, steps and tool calls share: the span handle, status, times, the ended-guard,
    end()/error(), the ``with`` form and the lifetime rules."""

    __slots__ = (
        "__weakref__",
        "_agent",
        "_auto_ended",
        "_dest",
        "_end_lock",
        "_end_ns",
        "_ended",
        "_error_type",
        "_finalizer",
        "_handle",
        "_owner",
        "_scope",
        "_start_ns",
        "_status",
        "_status_message",
        "_warned",
    )

    _kind: ClassVar[str]  # "run", "step", "tool call": for messages
    _var: ClassVar[str]  # "r", "s", "tc": how the old package's docs name the object in messages
    _current: ClassVar[ContextVar[Any] | None] = None  # the contextvar a ``with`` block sets, if any
    _content_keys: ClassVar[tuple[str, ...]] = ()  # the attributes the content policy governs

    _handle: SpanHandle

    def __init__(self, dest: _destinations.Destination | None, start_ns: int | None) -> None:
        self._dest = dest  # None: the default destination
        self._start_ns = start_ns  # a start the application gave
        self._end_ns: int | None = None
        self._ended = False
        self._auto_ended = False
        self._warned = False
        self._end_lock = threading.Lock()
        self._status = StatusCode.UNSET
        self._status_message: str | None = None
        self._error_type: str | None = None
        # Weak: the run holds its open children, and a strong link back would keep a dropped run (and
        # its garbage-collection finalizer) alive forever.
        self._owner: weakref.ref[Run] | None = None
        self._finalizer: weakref.finalize[Any, Any] | None = None
        self._scope: tuple[object, Token[Any] | None] | None = None
        self._agent: str | None = None  # the name of the run a step or tool call belongs to (metrics)

    # -- guards --

    def _open(self, call: str) -> bool:
        """True when the record takes calls. Raises after the application's own end()/error(); after tcc
        ended the record (timeout, run ended, exit) the call is ignored, with one warning."""
        if not self._ended:
            return True
        if self._auto_ended:
            if not self._warned:
                self._warned = True
                logger.warning(
                    "contextcompany: %s.%s() ignored: tcc already ended this %s (%s)",
                    self._var,
                    call,
                    self._kind,
                    self._status_message,
                )
            return False
        raise RuntimeError(
            f"[TCC] {self._kind.capitalize()} has already ended: {self._var}.{call}() cannot be called "
            f"after {self._var}.end() or {self._var}.error()"
        )

    # -- lifetime --

    def _adopt(self, owner: Run | None) -> None:
        """Tie the record's lifetime to its run's, or, without a live run here, to the process's."""
        if not self._handle.is_recording():
            return  # nothing will be exported (tcc disabled, or not sampled): nothing to end
        if owner is not None:
            # Under the run's end lock: a run ending right now either sees this child among its open
            # ones (and ends it) or has already ended (and this child is on its own).
            with owner._end_lock:
                if not owner._ended:
                    self._owner = weakref.ref(owner)
                    owner._children[self] = None
                    return
        registry.orphans.add(self)
        self._finalizer = weakref.finalize(self, lifetimes.collected, self._handle, None, self._kind)
        self._finalizer.atexit = False  # the exit hook ends it, before the last delivery

    # -- setters every record has --

    def status(self, code: int, message: str | None = None) -> Self:
        """Set the status: 0 ok (the default), 2 error (1 marks ok explicitly, as in OpenTelemetry).

        >>> s.status(2, "rate limited")
        """
        where = f"{self._var}.status"
        status = checks.status_code(code, where)
        text = checks.optional_text(message, f"{where}(message=...)")
        if self._open("status"):
            self._status = status
            self._status_message = None if text is None else redact(text)
        return self

    def end_time(self, t: object) -> Self:
        """When the record ended, if not now: an aware datetime, a naive one (read as UTC), or epoch ns.

        >>> s.end_time(datetime(2026, 5, 1, 12, 0, 3, tzinfo=UTC))
        """
        ns = checks.timestamp(t, f"{self._var}.end_time(t=...)")
        start = self._start_ns if self._start_ns is not None else self._handle.start_ns
        if ns is not None and start is not None and ns < start:
            raise ValueError(f"[TCC] {self._var}.end_time(t=...) is before the {self._kind}'s start time")
        if self._open("end_time"):
            self._end_ns = ns
        return self

    # -- ending --

    def _missing(self) -> str | None:
        """The setter that must be called before end(), if one is missing."""
        return None

    def _attributes(self) -> _content.Draft:
        raise NotImplementedError

    def _name(self) -> str | None:
        return None

    def _before_end(self) -> None:
        """Runs end their open children first."""

    def _after_end(self) -> None:
        """Runs leave the registry."""

    def _finish(self) -> None:
        with self._end_lock:
            if self._ended:
                if self._auto_ended:
                    return  # tcc ended it a moment ago (timeout, its run ended): nothing to add
                self._open("end")
            self._ended = True
        self._emit()

    def _abandon(self, reason: str, error_type: str) -> None:
        """tcc ends the record as an error (timeout, parent ended, process exit). Never raises."""
        with self._end_lock:
            if self._ended:
                return
            # The reason first: a call racing with this one reads it as soon as it sees the record ended.
            self._status = StatusCode.ERROR
            self._status_message = reason
            self._error_type = error_type
            self._auto_ended = True  # before _ended: a racing call must never take it for the app's end()
            self._ended = True
        try:
            self._emit()
        except Exception:
            logger.exception("contextcompany: could not end %r", self)

    def _emit(self) -> None:
        self._before_end()
        try:
            attributes = self._attributes()
            if self._status is StatusCode.ERROR:
                attributes[sc.ERROR_TYPE] = self._error_type or sc.ERROR_TYPE_OTHER
            name = self._name()
        except Exception:
            diag.error_once(
                "build", "contextcompany: building the %s span failed; it is sent as it is", self._kind
            )
            attributes, name = {}, None
        self._handle.finish(
            attributes,
            name=name,
            status=self._status,
            description=self._status_message,
            end_ns=self._end_ns,
            content=self._content_keys,
            dest=self._dest,
            agent=self._agent,
        )
        owner = self._owner() if self._owner is not None else None
        if owner is not None:
            owner._children.pop(self, None)
        if self._finalizer is not None:
            self._finalizer.detach()
            registry.orphans.discard(self)
        self._after_end()

    def end(self) -> None:
        """Finish the record and send its span. Raises ValueError, sending nothing and leaving the
        record open, when a required setter was not called."""
        if not self._open("end"):
            return
        missing = self._missing()
        if missing is not None:
            raise fields.missing(self._kind, self._var, missing)
        self._finish()

    def error(self, status_message: str = "") -> None:
        """Finish the record as failed and send its span; needs nothing else to be set.

        The message is redacted (bearer tokens, API keys, passwords in URLs) before it is recorded.
        """
        text = checks.text(status_message, f"{self._var}.error(status_message=...)")
        if not self._open("error"):
            return
        self._status = StatusCode.ERROR
        if text:
            self._status_message = redact(text)
        if self._status_message is None:
            self._status_message = f"{self._kind} failed"
        self._finish()

    def _close(self, status: StatusCode, message: str | None, end_ns: int) -> None:
        """End a record built from checked values (the import): as ``status(...)``, ``end_time(...)``
        and ``end()`` or, for an error, ``error(message)`` would; nothing is left to refuse."""
        self._end_ns = end_ns
        self._status = status
        self._status_message = None if message is None else redact(message)
        if status is StatusCode.ERROR and self._status_message is None:
            self._status_message = f"{self._kind} failed"
        self._finish()

    # -- the with form --

    def __enter__(self) -> Self:
        # The record's span becomes the active OpenTelemetry span, so spans of other instrumentations
        # (HTTP clients, LLM SDKs) nest under it; a run or step also becomes tcc's current one.
        otel_token = otel_context.attach(trace.set_span_in_context(self._handle.span()))
        var = self._current
        self._scope = (otel_token, var.set(self) if var is not None else None)
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._leave()
        if self._ended:
            return  # ended inside the block
        if exc is None:
            self.end()  # a missing prompt/response raises here, as end() would
        else:
            self._fail(exc)

    def _leave(self) -> None:
        scope, self._scope = self._scope, None
        if scope is None:
            return
        otel_token, var_token = scope
        if var_token is not None and self._current is not None:
            try:
                self._current.reset(var_token)
            except ValueError:  # exited in another context than it entered (e.g. another task)
                self._current.set(None)
        otel_context.detach(otel_token)  # type: ignore[arg-type]

    def _fail(self, exc: BaseException) -> None:
        """End as failed with the exception recorded on the span (redacted), as ``with`` does."""
        error_type = _error_type(exc)
        limit = _settings.settings.value_limit
        # An exception's text is the application's, not checked by any setter: make it sendable here.
        message = _content.fit(checks.text(redact(_describe(exc)), "exception"), limit) or error_type
        stack = _content.fit(checks.text(redact(_stack(exc)), "exception"), limit)
        self._handle.span().add_event(
            "exception",
            {
                exc_attrs.EXCEPTION_TYPE: error_type,
                exc_attrs.EXCEPTION_MESSAGE: message,
                exc_attrs.EXCEPTION_STACKTRACE: stack,
            },
        )
        self._error_type = error_type
        self.error(message)

    def __repr__(self) -> str:
        state = "ended" if self._ended else "open"
        return f"<{type(self).__name__} {self._ident()} {state}>"

    def _ident(self) -> str:
        raise NotImplementedError


class Run(_Record):
    """One agent invocation, from the user's prompt to the final response; a span ``invoke_agent``.

    >>> with tcc.run(name="weather", session_id="chat-42") as r:
    ...     r.prompt("What is the weather in London?", system_prompt="You are a weather agent.")
    ...     r.response("15°C and cloudy.")
    """

    __slots__ = (
        "_children",
        "_context",
        "_deadline",
        "_full_input",
        "_full_output",
        "_metadata",
        "_name_",
        "_prompt",
        "_response",
        "_run_id",
        "_system_prompt",
        "_timeout",
    )
    _kind = "run"
    _var = "r"
    _current = registry.current_run_var
    _content_keys = (
        sc.INPUT_MESSAGES,
        sc.SYSTEM_INSTRUCTIONS,
        sc.OUTPUT_MESSAGES,
        sc.RUN_FULL_INPUT,
        sc.RUN_FULL_OUTPUT,
    )

    def __init__(
        self,
        run_id: str | None = None,
        session_id: str | None = None,
        conversational: bool | None = None,
        api_key: str | None = None,
        tcc_url: str | None = None,
        *,
        name: str | None = None,
        timeout: float | None = None,
        start_time: object = None,
    ) -> None:
        rid = fields.RUN_ID.check(run_id, fields.RUN_ID.where)
        session = None if session_id is None else fields.SESSION_ID.check(session_id, fields.SESSION_ID.where)
        flag = fields.CONVERSATIONAL.check(conversational, fields.CONVERSATIONAL.where)
        agent = None if name is None else fields.AGENT_NAME.check(name, fields.AGENT_NAME.where)
        seconds = checks.seconds(timeout, "tcc.run(timeout=...)")
        start_ns = checks.timestamp(start_time, "tcc.run(start_time=...)")
        dest = _destinations.destination(api_key, tcc_url, "tcc.run")
        self._begin(rid, session, flag, agent, seconds, start_ns=start_ns, dest=dest)

    @classmethod
    def _checked(
        cls,
        run_id: str,
        session_id: str | None,
        conversational: bool | None,
        name: str | None,
        timeout: float | None,
        *,
        start_ns: int | None,
        dest: _destinations.Destination | None,
    ) -> Run:
        """A run from values checked already (the import)."""
        run = cls.__new__(cls)
        run._begin(run_id, session_id, conversational, name, timeout, start_ns=start_ns, dest=dest)
        return run

    def _begin(
        self,
        run_id: str,
        session_id: str | None,
        conversational: bool | None,
        name: str | None,
        timeout: float | None,
        *,
        start_ns: int | None,
        dest: _destinations.Destination | None,
    ) -> None:
        _Record.__init__(self, dest, start_ns)
        self._run_id = run_id
        self._name_ = name
        self._prompt: str | _content.Later | None = None
        self._system_prompt: str | _content.Later | None = None
        self._response: str | None = None
        self._full_input: str | _content.Later | None = None
        self._full_output: str | _content.Later | None = None
        self._metadata: dict[str, AttributeValue] | None = None
        self._children: dict[_Record, None] = {}
        attributes: dict[str, AttributeValue] = {
            sc.OPERATION_NAME: sc.OP_INVOKE_AGENT,
            sc.RUN_ID: run_id,
        }
        if name is not None:
            attributes[sc.AGENT_NAME] = name
        if session_id is not None:
            attributes[sc.CONVERSATION_ID] = session_id
        if conversational is not None:
            attributes[sc.CONVERSATIONAL] = conversational
        span_name = sc.OP_INVOKE_AGENT if name is None else f"{sc.OP_INVOKE_AGENT} {name}"
        with _ids.forced(run_id):  # so another process can find this span from the run id alone
            self._handle = SpanHandle.start(
                "run", span_name, None, SpanKind.INTERNAL, attributes, start_ns=start_ns, dest=dest
            )
        span = self._handle.span()
        self._context = trace.set_span_in_context(span)
        self._timeout = _settings.settings.run_timeout if timeout is None else timeout
        self._deadline: float | None = None
        if span.is_recording():
            registry.live_runs[run_id] = self
            self._finalizer = weakref.finalize(self, lifetimes.collected, self._handle, self._children, "run")
            self._finalizer.atexit = False  # the exit hook ends it, before the last delivery
            if self._timeout > 0:
                self._deadline = time.monotonic() + self._timeout
                lifetimes.reaper.watch(self._deadline)

    @property
    def run_id(self) -> str:
        """This run's id (a UUID4 string unless one was given)."""
        return self._run_id

    def _ident(self) -> str:
        return f"run_id={self._run_id!r}"

    def prompt(
        self, user_prompt: str, system_prompt: str | Sequence[Any] | None = None, full_input: Any = None
    ) -> Self:
        """The user's prompt (required before ``end()``), optionally the agent's system prompt (a str, or
        content blocks such as Anthropic's ``system=``), and the agent's whole input when it is more than
        the prompt (a str, or anything JSON can hold: recorded as ``tcc.run.full_input``).

        >>> r.prompt("Book a table for two", system_prompt="You are a concierge.", full_input=request)
        """
        user = fields.USER_PROMPT.check(user_prompt, fields.USER_PROMPT.where)
        system = (
            None
            if system_prompt is None
            else fields.SYSTEM_PROMPT.check(system_prompt, fields.SYSTEM_PROMPT.where)
        )
        whole = None if full_input is None else fields.FULL_INPUT.check(full_input, fields.FULL_INPUT.where)
        if self._open("prompt"):
            self._prompt = fields.text_message("user", user)
            self._system_prompt = system
            self._full_input = whole
        return self

    def response(self, text: str, full_output: Any = None) -> Self:
        """The agent's final response, and optionally its whole output (``tcc.run.full_output``)."""
        value = fields.RUN_RESPONSE.check(text, fields.RUN_RESPONSE.where)
        whole = (
            None if full_output is None else fields.FULL_OUTPUT.check(full_output, fields.FULL_OUTPUT.where)
        )
        if self._open("response"):
            self._response = value
            self._full_output = whole
        return self

    def metadata(self, data: Mapping[str, str] | None = None, **kwargs: str) -> Self:
        """Key/value metadata, recorded as ``tcc.metadata.<key>``; later calls add and overwrite keys.

        >>> r.metadata({"customer": "acme"}, plan="pro")
        """
        items = checks.metadata(data, kwargs, fields.METADATA.where)
        if self._open("metadata"):
            if self._metadata is None:
                self._metadata = items
            else:
                self._metadata.update(items)
        return self

    def step(self, step_id: str | None = None, *, start_time: object = None) -> Step:
        """Start an LLM call inside this run."""
        open_ = self._open("step")
        sid = fields.STEP_ID.check(step_id, fields.STEP_ID.where)
        start_ns = None if start_time is None else checks.timestamp(start_time, "tcc.step(start_time=...)")
        if open_:  # the common path, without the call to _step()
            return Step._make(self._run_id, sid, start_ns, dest=self._dest, owner=self, parent=self._context)
        return self._step(sid, start_ns, open_)

    def _step(self, step_id: str, start_ns: int | None, open_: bool = True) -> Step:
        if open_:
            return Step._make(
                self._run_id, step_id, start_ns, dest=self._dest, owner=self, parent=self._context
            )
        owner, parent = registry.parent_for(self._run_id)  # after a timeout: a late step, still in the trace
        return Step._make(self._run_id, step_id, start_ns, dest=self._dest, owner=owner, parent=parent)

    def tool_call(
        self, tool_name: str | None = None, tool_call_id: str | None = None, *, start_time: object = None
    ) -> ToolCall:
        """Start a tool call inside this run."""
        open_ = self._open("tool_call")
        tcid, name, start_ns = ToolCall._check(tool_call_id, tool_name, start_time)
        return self._tool_call(tcid, name, start_ns, open_)

    def _tool_call(
        self, tool_call_id: str, tool_name: str | None, start_ns: int | None, open_: bool = True
    ) -> ToolCall:
        owner, parent = (self, self._context) if open_ else registry.parent_for(self._run_id)
        return ToolCall._make(
            self._run_id, tool_call_id, tool_name, start_ns, dest=self._dest, owner=owner, parent=parent
        )

    def feedback(self, score: FeedbackScore | None = None, text: str | None = None) -> bool:
        """Record user feedback on this run; see ``tcc.submit_feedback``. Allowed after the run ended."""
        rid, checked_score, body = feedback.check(self._run_id, score, text)
        feedback.send(rid, checked_score, body, self._dest)
        return True

    def _missing(self) -> str | None:
        return "prompt" if self._prompt is None else None

    def _before_end(self) -> None:
        for child in reversed(list(self._children)):
            child._abandon(f"the run ended before this {child._kind}", ERROR_PARENT_ENDED)

    def _attributes(self) -> _content.Draft:
        attributes: _content.Draft = {}
        if self._prompt is not None:
            attributes[sc.INPUT_MESSAGES] = self._prompt
        if self._system_prompt is not None:
            attributes[sc.SYSTEM_INSTRUCTIONS] = self._system_prompt
        if self._response is not None:
            attributes[sc.OUTPUT_MESSAGES] = fields.text_message("assistant", self._response, "stop")
        if self._full_input is not None:
            attributes[sc.RUN_FULL_INPUT] = self._full_input
        if self._full_output is not None:
            attributes[sc.RUN_FULL_OUTPUT] = self._full_output
        if self._metadata:
            for key, value in self._metadata.items():
                attributes[sc.METADATA_PREFIX + key] = value
        return attributes

    def _after_end(self) -> None:
        self._deadline = None
        if self._finalizer is not None:
            self._finalizer.detach()
        if registry.live_runs.get(self._run_id) is self:
            del registry.live_runs[self._run_id]
        registry.remember_run(self._run_id, self._handle.span().get_span_context())


class Step(_Record):
    """One LLM call; a span ``chat {model}``, the child of its run.

    >>> with r.step() as s:
    ...     s.prompt("Hello").response("World").model(requested="gpt-4", used="gpt-4-0613")
    ...     s.tokens(prompt_uncached=150, prompt_cached=50, completion=25).finish_reason("stop")
    """

    __slots__ = (
        "_cache_write",
        "_cached",
        "_completion",
        "_context",
        "_cost",
        "_finish_reason",
        "_first_chunk_ns",
        "_model_requested",
        "_model_used",
        "_prompt",
        "_provider",
        "_reasoning",
        "_response",
        "_response_json",
        "_response_reason",
        "_run_id",
        "_step_id",
        "_tool_definitions",
        "_uncached",
    )
    _kind = "step"
    _var = "s"
    _current = registry.current_step_var
    _content_keys = (sc.INPUT_MESSAGES, sc.OUTPUT_MESSAGES)

    def __init__(
        self,
        run_id: str,
        step_id: str | None = None,
        api_key: str | None = None,
        tcc_url: str | None = None,
        *,
        start_time: object = None,
    ) -> None:
        rid = fields.STEP_RUN_ID.check(run_id, fields.STEP_RUN_ID.where)
        sid = fields.STEP_ID.check(step_id, fields.STEP_ID.where)
        start_ns = None if start_time is None else checks.timestamp(start_time, "tcc.step(start_time=...)")
        dest = _destinations.destination(api_key, tcc_url, "tcc.step")
        owner, parent = registry.parent_for(rid)
        if dest is None and owner is not None:
            dest = owner._dest
        self._begin(rid, sid, start_ns, dest=dest, owner=owner, parent=parent)

    @classmethod
    def _make(
        cls,
        run_id: str,
        step_id: str,
        start_ns: int | None,
        *,
        dest: _destinations.Destination | None,
        owner: Run | None,
        parent: Context,
    ) -> Step:
        """A step from checked values: of ``owner`` (a run alive here) or, without one, on its own."""
        step = cls.__new__(cls)
        step._begin(run_id, step_id, start_ns, dest=dest, owner=owner, parent=parent)
        return step

    def _begin(
        self,
        run_id: str,
        step_id: str,
        start_ns: int | None,
        *,
        dest: _destinations.Destination | None,
        owner: Run | None,
        parent: Context,
    ) -> None:
        _Record.__init__(self, dest, start_ns)
        if owner is not None:
            self._agent = owner._name_
        self._run_id = run_id
        self._step_id = step_id
        self._prompt: str | _content.Later | None = None  # GenAI input messages JSON
        self._response: str | None = None  # a plain-text response, written out at end()
        self._response_json: str | None = None  # or a structured one, already GenAI JSON...
        self._response_reason: str | None = None  # ...and the finish reason written into it
        self._model_requested: str | None = None
        self._model_used: str | None = None
        self._provider: str | None = None
        self._first_chunk_ns: int | None = None
        self._uncached: int | None = None
        self._cached: int | None = None
        self._cache_write: int | None = None
        self._completion: int | None = None
        self._reasoning: int | None = None
        self._cost: float | None = None
        self._finish_reason: str | None = None
        self._tool_definitions: str | None = None
        self._context: Context | None = None
        attributes: dict[str, AttributeValue] = {
            sc.OPERATION_NAME: sc.OP_CHAT,
            sc.STEP_ID: step_id,
            sc.RUN_ID: run_id,
        }
        if owner is not None:
            # The span starts at end(), with every attribute and its final name at once, from the time
            # the step was made: a third less of the SDK's work on the caller's thread than starting it
            # now and writing the rest later. Whatever needs the span sooner starts it then.
            self._handle = SpanHandle.later(
                "step",
                sc.OP_CHAT,
                parent,
                SpanKind.CLIENT,
                attributes,
                start_ns=start_ns,
                dest=dest,
                lock=self._end_lock,
            )
        else:
            self._handle = SpanHandle.start(
                "step", sc.OP_CHAT, parent, SpanKind.CLIENT, attributes, start_ns=start_ns, dest=dest
            )
        self._adopt(owner)

    @property
    def step_id(self) -> str:
        return self._step_id

    @property
    def run_id(self) -> str:
        return self._run_id

    def _ident(self) -> str:
        return f"step_id={self._step_id!r} run_id={self._run_id!r}"

    def prompt(self, text: str | Sequence[Any]) -> Self:
        """What was sent to the model (required before ``end()``): a str, or the list of chat messages
        in the OpenAI or Anthropic shape (dicts or SDK objects), written in the GenAI message format.

        >>> s.prompt([{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"}])
        """
        value = fields.STEP_PROMPT.check(text, fields.STEP_PROMPT.where)
        if self._open("prompt"):
            self._prompt = value
        return self

    def response(self, text: str | Any) -> Self:
        """What the model answered (required before ``end()``): a str, or the assistant message (an
        OpenAI message, choice or completion, an Anthropic message; dicts or SDK objects). A finish
        reason found in it is used unless ``finish_reason()`` gives one.

        >>> s.response(completion.choices[0])      # message, tool calls and finish reason
        """
        value = fields.STEP_RESPONSE.check(text, fields.STEP_RESPONSE.where)
        if self._open("response"):
            self._response, self._response_json, self._response_reason = value
        return self

    def model(
        self, requested: str | None = None, used: str | None = None, *, provider: str | None = None
    ) -> Self:
        """The model asked for, and the model that answered (often a dated version of it).
        ``s.model("gpt-4o")`` says both, unless the answering model is given (before or after).
        ``provider`` is the ``gen_ai.provider.name`` ("openai", "anthropic", "aws.bedrock"); left out, the
        span processor infers it from the model, off your thread.

        >>> s.model("claude-sonnet-4-5", provider="anthropic")
        """
        req = (
            None
            if requested is None
            else fields.MODEL_REQUESTED.check(requested, fields.MODEL_REQUESTED.where)
        )
        use = None if used is None else fields.MODEL_USED.check(used, fields.MODEL_USED.where)
        named = None if provider is None else fields.PROVIDER.check(provider, fields.PROVIDER.where)
        if self._open("model"):
            if named is not None:
                self._provider = named
            if req is not None:
                self._model_requested = req
            if use is not None:
                self._model_used = use
            elif req is not None and self._model_used is None:
                self._model_used = req
        return self

    def first_chunk(self, at: object = None) -> Self:
        """The call streamed, and its first chunk arrived now (or ``at``: a datetime or epoch ns). The step
        carries ``gen_ai.request.stream`` and ``gen_ai.response.time_to_first_chunk`` (seconds from its
        start); only the first call counts, so it can sit inside the loop over the chunks.

        >>> for chunk in stream:
        ...     s.first_chunk()
        """
        ns = time.time_ns() if at is None else checks.timestamp(at, "s.first_chunk(at=...)")
        start = self._start_ns if self._start_ns is not None else self._handle.start_ns
        if ns is not None and start is not None and ns < start:
            raise ValueError("[TCC] s.first_chunk(at=...) is before the step's start time")
        if self._first_chunk_ns is None and self._open("first_chunk"):
            self._first_chunk_ns = ns
        return self

    def tokens(
        self,
        prompt_uncached: int | None = None,
        prompt_cached: int | None = None,
        completion: int | None = None,
        *,
        cache_write: int | None = None,
        reasoning: int | None = None,
    ) -> Self:
        """Token counts. ``prompt_uncached`` are input tokens neither read from nor written to a cache;
        ``gen_ai.usage.input_tokens`` is their sum with ``prompt_cached`` (cache reads) and
        ``cache_write``, as the convention counts input. ``completion`` includes ``reasoning`` tokens.

        >>> s.tokens(prompt_uncached=900, prompt_cached=4000, completion=350, cache_write=120, reasoning=200)
        """
        f = fields
        uncached = (
            None
            if prompt_uncached is None
            else f.UNCACHED_TOKENS.check(prompt_uncached, f.UNCACHED_TOKENS.where)
        )
        cached = (
            None if prompt_cached is None else f.CACHED_TOKENS.check(prompt_cached, f.CACHED_TOKENS.where)
        )
        out = None if completion is None else f.COMPLETION_TOKENS.check(completion, f.COMPLETION_TOKENS.where)
        written = (
            None
            if cache_write is None
            else f.CACHE_WRITE_TOKENS.check(cache_write, f.CACHE_WRITE_TOKENS.where)
        )
        thought = None if reasoning is None else f.REASONING_TOKENS.check(reasoning, f.REASONING_TOKENS.where)
        f.reasoning_within_completion(
            thought if thought is not None else self._reasoning, out if out is not None else self._completion
        )
        if self._open("tokens"):
            if uncached is not None:
                self._uncached = uncached
            if cached is not None:
                self._cached = cached
            if out is not None:
                self._completion = out
            if written is not None:
                self._cache_write = written
            if thought is not None:
                self._reasoning = thought
        return self

    def cost(self, real_total: float) -> Self:
        """The call's actual cost in USD; it wins over the cost computed from model and tokens."""
        value = fields.COST.check(real_total, fields.COST.where)
        if self._open("cost"):
            self._cost = value
        return self

    def finish_reason(self, reason: str) -> Self:
        """Why the model stopped, e.g. "stop", "length", "tool_calls"."""
        value = fields.FINISH_REASON.check(reason, fields.FINISH_REASON.where)
        if self._open("finish_reason"):
            self._finish_reason = value
        return self

    def tool_definitions(self, definitions: str | Sequence[Any]) -> Self:
        """The tools offered to the model: a JSON str, or a list of definitions (OpenAI or Anthropic
        shape, dicts or SDK objects), recorded as given."""
        value = fields.TOOL_DEFINITIONS.check(definitions, fields.TOOL_DEFINITIONS.where)
        if self._open("tool_definitions"):
            self._tool_definitions = value
        return self

    def tool_call(
        self, tool_name: str | None = None, tool_call_id: str | None = None, *, start_time: object = None
    ) -> ToolCall:
        """Start a tool call made from this step; its span is this step's child."""
        self._open("tool_call")
        tcid, name, start_ns = ToolCall._check(tool_call_id, tool_name, start_time)
        return self._tool_call(tcid, name, start_ns)

    def _tool_call(self, tool_call_id: str, tool_name: str | None, start_ns: int | None) -> ToolCall:
        owner = self._owner() if self._owner is not None else registry.parent_for(self._run_id)[0]
        return ToolCall._make(
            self._run_id,
            tool_call_id,
            tool_name,
            start_ns,
            dest=self._dest,
            owner=owner,
            parent=self.context(),
        )

    def context(self) -> Context:
        """An OpenTelemetry context with this step's span as the parent."""
        if self._context is None:
            self._context = trace.set_span_in_context(self._handle.span())
        return self._context

    def _missing(self) -> str | None:
        if self._prompt is None:
            return "prompt"
        if self._response is None and self._response_json is None:
            return "response"
        return None

    def _name(self) -> str | None:
        model = self._model_requested or self._model_used
        return f"{sc.OP_CHAT} {model}" if model else None

    def _attributes(self) -> _content.Draft:
        attributes: _content.Draft = {}
        finish_reason = self._finish_reason or self._response_reason
        if self._prompt is not None:
            attributes[sc.INPUT_MESSAGES] = self._prompt
        if self._response is not None:
            attributes[sc.OUTPUT_MESSAGES] = fields.text_message("assistant", self._response, finish_reason)
        elif self._response_json is not None:
            structured = self._response_json
            if finish_reason is not None and finish_reason != self._response_reason:
                structured = messages.with_finish_reason(structured, finish_reason)
            attributes[sc.OUTPUT_MESSAGES] = structured
        if self._model_requested is not None:
            attributes[sc.REQUEST_MODEL] = self._model_requested
        if self._model_used is not None:
            attributes[sc.RESPONSE_MODEL] = self._model_used
        if self._provider is not None:
            attributes[sc.PROVIDER_NAME] = self._provider
        if self._first_chunk_ns is not None:
            attributes[sc.REQUEST_STREAM] = True
            start = self._start_ns if self._start_ns is not None else self._handle.start_ns
            if start is not None:
                attributes[sc.RESPONSE_TIME_TO_FIRST_CHUNK] = max(self._first_chunk_ns - start, 0) / 1e9
        uncached, cached, written = self._uncached, self._cached, self._cache_write
        if uncached is not None or cached is not None or written is not None or self._completion is not None:
            prompt_total = (
                None
                if uncached is None and cached is None and written is None
                else (uncached or 0) + (cached or 0) + (written or 0)
            )
            attributes.update(
                Usage(prompt_total, cached, written, self._completion, self._reasoning).to_attributes()
            )
        elif self._reasoning is not None:
            attributes[sc.USAGE_REASONING_OUTPUT_TOKENS] = self._reasoning
        if finish_reason is not None:
            attributes[sc.RESPONSE_FINISH_REASONS] = (finish_reason,)
        if self._tool_definitions is not None:
            attributes[sc.TOOL_DEFINITIONS] = self._tool_definitions
        if self._cost is not None:
            attributes[sc.COST_USD] = self._cost  # tcc.cost.source=reported is the span processor's
        return attributes


class ToolCall(_Record):
    """One tool (function) call; a span ``execute_tool {name}``, the child of its run or step.

    >>> with r.tool_call("get_weather") as tc:
    ...     tc.args({"city": "London"}).result({"temp_c": 15})
    """

    __slots__ = ("_args", "_result", "_run_id", "_tool_call_id", "_tool_name")
    _kind = "tool call"
    _var = "tc"
    _content_keys = (sc.TOOL_CALL_ARGUMENTS, sc.TOOL_CALL_RESULT)

    def __init__(
        self,
        run_id: str,
        tool_call_id: str | None = None,
        tool_name: str | None = None,
        api_key: str | None = None,
        tcc_url: str | None = None,
        *,
        start_time: object = None,
    ) -> None:
        rid = fields.TOOL_CALL_RUN_ID.check(run_id, fields.TOOL_CALL_RUN_ID.where)
        tcid, name, start_ns = ToolCall._check(tool_call_id, tool_name, start_time)
        dest = _destinations.destination(api_key, tcc_url, "tcc.tool_call")
        owner, parent = registry.parent_for(rid)
        if dest is None and owner is not None:
            dest = owner._dest
        self._begin(rid, tcid, name, start_ns, dest=dest, owner=owner, parent=parent)

    @staticmethod
    def _check(
        tool_call_id: object, tool_name: object, start_time: object
    ) -> tuple[str, str | None, int | None]:
        tcid = fields.TOOL_CALL_ID.check(tool_call_id, fields.TOOL_CALL_ID.where)
        name = None if tool_name is None else fields.TOOL_NAME.check(tool_name, fields.TOOL_NAME.where)
        start_ns = (
            None if start_time is None else checks.timestamp(start_time, "tcc.tool_call(start_time=...)")
        )
        return tcid, name, start_ns

    @classmethod
    def _make(
        cls,
        run_id: str,
        tool_call_id: str,
        tool_name: str | None,
        start_ns: int | None,
        *,
        dest: _destinations.Destination | None,
        owner: Run | None,
        parent: Context,
    ) -> ToolCall:
        """A tool call from checked values: of ``owner`` (a run alive here) or, without one, on its own."""
        call = cls.__new__(cls)
        call._begin(run_id, tool_call_id, tool_name, start_ns, dest=dest, owner=owner, parent=parent)
        return call

    def _begin(
        self,
        run_id: str,
        tool_call_id: str,
        tool_name: str | None,
        start_ns: int | None,
        *,
        dest: _destinations.Destination | None,
        owner: Run | None,
        parent: Context,
    ) -> None:
        _Record.__init__(self, dest, start_ns)
        if owner is not None:
            self._agent = owner._name_
        self._run_id = run_id
        self._tool_call_id = tool_call_id
        self._tool_name = tool_name
        self._args: str | _content.Later | None = None
        self._result: str | _content.Later | None = None
        attributes: dict[str, AttributeValue] = {
            sc.OPERATION_NAME: sc.OP_EXECUTE_TOOL,
            sc.TOOL_CALL_ID: tool_call_id,
            sc.RUN_ID: run_id,
        }
        if tool_name is not None:
            attributes[sc.TOOL_NAME] = tool_name
        name = sc.OP_EXECUTE_TOOL if tool_name is None else f"{sc.OP_EXECUTE_TOOL} {tool_name}"
        self._handle = SpanHandle.start(
            "tool call", name, parent, SpanKind.INTERNAL, attributes, start_ns=start_ns, dest=dest
        )
        self._adopt(owner)

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
        value = fields.NAME.check(tool_name, fields.NAME.where)
        if self._open("name"):
            self._tool_name = value
        return self

    def args(self, value: str | Any) -> Self:
        """The call's arguments: a str as is, anything else serialised to JSON here."""
        text = fields.ARGS.check(value, fields.ARGS.where)
        if self._open("args"):
            self._args = text
        return self

    def result(self, value: str | Any) -> Self:
        """The call's result: a str as is, anything else serialised to JSON here."""
        text = fields.RESULT.check(value, fields.RESULT.where)
        if self._open("result"):
            self._result = text
        return self

    def _missing(self) -> str | None:
        return "name" if self._tool_name is None else None

    def _name(self) -> str | None:
        return f"{sc.OP_EXECUTE_TOOL} {self._tool_name}" if self._tool_name else None

    def _attributes(self) -> _content.Draft:
        attributes: _content.Draft = {}
        if self._tool_name is not None:
            attributes[sc.TOOL_NAME] = self._tool_name
        if self._args is not None:
            attributes[sc.TOOL_CALL_ARGUMENTS] = self._args
        if self._result is not None:
            attributes[sc.TOOL_CALL_RESULT] = self._result
        return attributes
