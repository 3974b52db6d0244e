"""Run, Step and ToolCall: fluent records, each backed by one OpenTelemetry span.

    >>> with tcc.run(name="weather") as r:
    ...     r.prompt("What is the weather in London?")
    ...     with r.step() as s:
    ...         s.prompt("...").response("15°C and cloudy").model("gpt-4o")
    ...     r.response("15°C and cloudy")

A record's span starts when the record is made, with the record's start time. Setters check their
arguments at the call and keep the values; ``end()`` / ``error()`` write every attribute at once and end
the span. That keeps a setter to a few attribute stores, and lets ``end()`` refuse (and leave the record
open) when a required call is missing, before anything is written. A step of a live run goes one step
further: its span is started at ``end()``, back-dated to when the step was made, with all its
attributes and its final name in one go (the SDK's per-attribute checks are a third of what a step costs
the caller). Whatever needs the span earlier (the ``with`` form, a tool call made from the step,
``s.context()``, an exception recorded on it) starts it at that moment.

Nothing is left open: a run ends its open steps and tool calls first; a run past its timeout, a record
dropped without ``end()`` and anything still open at interpreter exit are ended as errors that say why
(``error.type`` ``tcc.timeout``, ``tcc.parent_ended``, ``tcc.abandoned``, ``tcc.process_exit``). Calls on
a record tcc ended that way are ignored with one warning instead of raising: the application did nothing
wrong.
"""

from __future__ import annotations

import logging
import threading
import time
import traceback
import weakref
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from contextvars import ContextVar, Token
from types import TracebackType
from typing import Any, ClassVar, Final, Literal, Self

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.semconv.attributes import exception_attributes as exc_attrs
from opentelemetry.trace import SpanKind, StatusCode
from opentelemetry.util.types import AttributeValue

from . import _checks as checks
from . import _content, _destinations, _ids, _pipeline, _settings
from . import _diag as diag
from . import _forksafe as forksafe
from . import _messages as messages
from . import _semconv as sc
from ._export import SpanProcessor
from ._lifetimes import Reaper
from ._redact import redact

logger = logging.getLogger("contextcompany")

FeedbackScore = Literal["thumbs_up", "thumbs_down"]
FEEDBACK_SCORES: Final = {"thumbs_up": 1.0, "thumbs_down": -1.0}
FEEDBACK_TEXT_MAX: Final = 2000

ERROR_TIMEOUT: Final = sc.ERROR_TYPE_TIMEOUT
ERROR_PARENT_ENDED: Final = sc.ERROR_TYPE_PARENT_ENDED
ERROR_ABANDONED: Final = sc.ERROR_TYPE_ABANDONED
ERROR_PROCESS_EXIT: Final = sc.ERROR_TYPE_PROCESS_EXIT


# --- what this process knows about runs ---------------------------------------------------------------

_live_runs: weakref.WeakValueDictionary[str, Run] = weakref.WeakValueDictionary()
# Steps and tool calls whose run is not alive here (made from another process's run id): ended at exit.
_orphans: weakref.WeakSet[_Record] = weakref.WeakSet()
_recent_lock = threading.Lock()
_recent_runs: OrderedDict[str, trace.SpanContext] = OrderedDict()
_RECENT_RUNS_MAX: Final = 10_000

_current_run: ContextVar[Run | None] = ContextVar("contextcompany.current_run", default=None)
_current_step: ContextVar[Step | None] = ContextVar("contextcompany.current_step", default=None)


def current_run() -> Run | None:
    """The run whose ``with`` block (or ``@tcc.agent`` function) this code runs in, if any.

    It follows ``contextvars``: asyncio tasks and ``contextvars.copy_context().run`` see the run of the
    code that created them.

    >>> with tcc.run() as r:
    ...     assert tcc.current_run() is r
    """
    return _current_run.get()


def current_step() -> Step | None:
    return _current_step.get()


def _remember_run(run_id: str, span_context: trace.SpanContext) -> None:
    if not span_context.is_valid:
        return
    with _recent_lock:
        _recent_runs[run_id] = span_context
        _recent_runs.move_to_end(run_id)
        while len(_recent_runs) > _RECENT_RUNS_MAX:
            _recent_runs.popitem(last=False)


def known_run(run_id: str) -> bool:
    """Whether this process has seen run ``run_id`` (alive, or ended recently)."""
    return run_id in _live_runs or run_id in _recent_runs


def run_context(run_id: str) -> Context:
    """The context to start a child of run ``run_id`` in: its live span, the span context of a run that
    ended here recently, or the span context derived from the run id (a run of another process)."""
    run = _live_runs.get(run_id)
    if run is not None:
        return run._context
    with _recent_lock:
        span_context = _recent_runs.get(run_id)
    if span_context is None:
        span_context = _ids.run_span_context(run_id)
    return trace.set_span_in_context(trace.NonRecordingSpan(span_context))


def _expire(now: float) -> float | None:
    """The reaper's scan: end runs past their deadline; return the next deadline."""
    next_deadline: float | None = None
    for run in list(_live_runs.values()):
        deadline = run._deadline
        if deadline is None:
            continue
        if deadline <= now:
            run._abandon(f"run timed out after {run._timeout:g} s without end() or error()", ERROR_TIMEOUT)
        elif next_deadline is None or deadline < next_deadline:
            next_deadline = deadline
    return next_deadline


_reaper = Reaper(_expire)


def _end_everything_open() -> None:
    """At interpreter exit: what the application left open is ended, so no span is lost."""
    _reaper.drain()
    for run in list(_live_runs.values()):
        run._abandon("the process exited before the run ended", ERROR_PROCESS_EXIT)
    for record in list(_orphans):
        record._abandon(f"the process exited before the {record._kind} ended", ERROR_PROCESS_EXIT)
    _reaper.drain()


_pipeline.on_exit(_end_everything_open)


def _forget_inherited_records() -> None:
    global _recent_lock
    _recent_lock = threading.Lock()  # another thread may have held it at fork time
    # A forked child holds copies of the parent's open records. The parent ends and sends them; the
    # child must not send them a second time, from its exit hook or its garbage collector.
    inherited = [*_live_runs.values(), *_orphans]
    inherited += [child for run in list(_live_runs.values()) for child in run._children]
    for record in inherited:
        record._ended = record._auto_ended = True
        if record._finalizer is not None:
            record._finalizer.detach()
    _live_runs.clear()
    _orphans.clear()


forksafe.after_fork(_forget_inherited_records, forksafe.Phase.STATE)


def _end_collected(span: trace.Span, children: dict[_Record, None] | None, kind: str) -> None:
    """A record was garbage-collected without end(): end its open children and its span as errors."""
    for child in reversed(list(children or ())):
        child._abandon(f"its run was dropped before this {child._kind} ended", ERROR_ABANDONED)
    span.set_attribute(sc.ERROR_TYPE, ERROR_ABANDONED)
    span.set_status(StatusCode.ERROR, f"{kind} was garbage-collected without end() or error()")
    span.end()


def _collected(span: trace.Span, children: dict[_Record, None] | None, kind: str) -> None:
    # Runs inside the garbage collector, maybe while this thread holds a lock: defer, take no lock.
    _reaper.defer(lambda: _end_collected(span, children, kind))


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
    """What runs, steps and tool calls share: the span, status, times, the ended-guard, end()/error(),
    the ``with`` form and the lifetime rules."""

    __slots__ = (
        "__weakref__",
        "_auto_ended",
        "_dest",
        "_end_lock",
        "_end_ns",
        "_ended",
        "_error_type",
        "_finalizer",
        "_owner",
        "_scope",
        "_span",
        "_start_ns",
        "_status",
        "_status_message",
        "_warned",
    )

    _kind: ClassVar[str]  # "run", "step", "tool call": for messages
    _var: ClassVar[str]  # "r", "s", "tc": how the old package's docs name the object in messages
    _current: ClassVar[ContextVar[Any] | None] = None  # the contextvar a ``with`` block sets, if any
    _content_keys: ClassVar[tuple[str, ...]] = ()  # the attributes the content policy governs

    _span: trace.Span

    def __init__(self, dest: _destinations.Destination | None, start_ns: int | None) -> None:
        self._dest = dest  # None: the default destination
        self._start_ns = start_ns
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

    # -- the span --

    def _start(
        self,
        name: str,
        parent: Context | None,
        kind: SpanKind,
        attributes: dict[str, AttributeValue],
        *,
        start_ns: int | None = None,
        target: tuple[trace.Tracer, SpanProcessor | None] | None = None,
    ) -> None:
        try:
            tracer, router = _pipeline.target(self._dest) if target is None else target
            self._span = tracer.start_span(
                name,
                context=parent,
                kind=kind,
                attributes=attributes,
                start_time=self._start_ns if start_ns is None else start_ns,
            )
            if router is not None:
                router.route(self._span, self._dest)
        except Exception:
            # A sampler or span processor of the service raised: the application must not see it.
            diag.error_once(
                "start", "contextcompany: starting the %s span failed; it is not recorded", self._kind
            )
            self._span = trace.INVALID_SPAN

    def _adopt(self, owner: Run | None) -> None:
        """Tie the record's lifetime to its run's, or, without a live run here, to the process's."""
        if self._span is not None and not self._span.is_recording():
            return  # nothing will be exported (tcc disabled, or not sampled): nothing to end
        if owner is not None:
            # Under the run's end lock: a run ending right now either sees this child among its open
            # ones (and ends it) or has already ended (and this child is on its own).
            with owner._end_lock:
                if not owner._ended:
                    self._owner = weakref.ref(owner)
                    owner._children[self] = None
                    return
        _orphans.add(self)
        self._finalizer = weakref.finalize(self, _collected, self._started(), None, self._kind)
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
        start = self._start_ns if self._start_ns is not None else self._started_ns()
        if ns is not None and isinstance(start, int) and ns < start:
            raise ValueError(f"[TCC] {self._var}.end_time(t=...) is before the {self._kind}'s start time")
        if self._open("end_time"):
            self._end_ns = ns
        return self

    # -- ending --

    def _missing(self) -> str | None:
        """The setter that must be called before end(), if one is missing."""
        return None

    def _attributes(self) -> dict[str, AttributeValue]:
        raise NotImplementedError

    def _name(self) -> str | None:
        return None

    def _before_end(self) -> None:
        """Runs end their open children first."""

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
        policy = _settings.settings
        try:
            attributes = self._attributes()
            if self._status is StatusCode.ERROR:
                attributes[sc.ERROR_TYPE] = self._error_type or sc.ERROR_TYPE_OTHER
            _content.apply(
                attributes,
                self._content_keys,
                capture=policy.capture_content,
                mask=policy.mask,
                limit=policy.value_limit,
            )
            name = self._name()
        except Exception:
            diag.error_once(
                "build", "contextcompany: building the %s span failed; it is sent as it is", self._kind
            )
            attributes, name = {}, None
        # A deferred span starts now with everything at once; a started one gets the rest written.
        started = self._start_deferred(attributes, name)
        span = started if started is not None else self._span
        try:
            if started is None:
                span.set_attributes(attributes)
                if name is not None:
                    span.update_name(name)
            if self._status is not StatusCode.UNSET:
                description = self._status_message if self._status is StatusCode.ERROR else None
                span.set_status(self._status, _content.fit(description, policy.value_limit))
        except Exception:
            diag.error_once(
                "attributes", "contextcompany: writing the %s span failed; it is sent as it is", self._kind
            )
        end_ns = self._end_ns
        if end_ns is None and self._start_ns is not None and self._start_ns > time.time_ns():
            end_ns = self._start_ns  # a start in the future: never an end before the start
        try:
            span.end(end_time=end_ns)
        except Exception:
            # A span processor of the service raised on end: the application must not see it.
            diag.error_once("end", "contextcompany: a span processor failed to end the %s span", self._kind)
        owner = self._owner() if self._owner is not None else None
        if owner is not None:
            owner._children.pop(self, None)
        if self._finalizer is not None:
            self._finalizer.detach()
            _orphans.discard(self)
        self._after_end()

    def _after_end(self) -> None:
        pass

    def end(self) -> None:
        """Finish the record and send its span. Raises ValueError, sending nothing and leaving the
        record open, when a required setter was not called."""
        if not self._open("end"):
            return
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
        if not self._open("error"):
            return
        self._status = StatusCode.ERROR
        if text:
            self._status_message = redact(text)
        if self._status_message is None:
            self._status_message = f"{self._kind} failed"
        self._finish()

    # -- the with form --

    def __enter__(self) -> Self:
        # The record's span becomes the active OpenTelemetry span, so spans of other instrumentations
        # (HTTP clients, LLM SDKs) nest under it; a run or step also becomes tcc's current one.
        otel_token = otel_context.attach(trace.set_span_in_context(self._started()))
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
        self._started().add_event(
            "exception",
            {
                exc_attrs.EXCEPTION_TYPE: error_type,
                exc_attrs.EXCEPTION_MESSAGE: message,
                exc_attrs.EXCEPTION_STACKTRACE: stack,
            },
        )
        self._error_type = error_type
        self.error(message)

    def _started(self) -> trace.Span:
        """The record's span (a step whose start was deferred starts it now)."""
        return self._span

    def _started_ns(self) -> int | None:
        return getattr(self._span, "start_time", None)

    def _start_deferred(self, attributes: dict[str, AttributeValue], name: str | None) -> trace.Span | None:
        """At end: start a deferred span with all of ``attributes``; None when the span was started."""
        return None

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
    _current = _current_run
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
        self._run_id = checks.new_id(run_id, "tcc.run(run_id=...)")
        session = None if session_id is None else checks.identifier(session_id, "tcc.run(session_id=...)")
        flag = checks.optional_bool(conversational, "tcc.run(conversational=...)")
        agent = None if name is None else checks.identifier(name, "tcc.run(name=...)")
        seconds = checks.seconds(timeout, "tcc.run(timeout=...)")
        start_ns = checks.timestamp(start_time, "tcc.run(start_time=...)")
        super().__init__(_destinations.destination(api_key, tcc_url, "tcc.run"), start_ns)
        self._name_ = agent
        self._prompt: str | None = None
        self._system_prompt: str | None = None
        self._response: str | None = None
        self._full_input: str | None = None
        self._full_output: str | None = None
        self._metadata: dict[str, AttributeValue] | None = None
        self._children: dict[_Record, None] = {}
        attributes: dict[str, AttributeValue] = {
            sc.OPERATION_NAME: sc.OP_INVOKE_AGENT,
            sc.RUN_ID: self._run_id,
        }
        if agent is not None:
            attributes[sc.AGENT_NAME] = agent
        if session is not None:
            attributes[sc.CONVERSATION_ID] = session
        if flag is not None:
            attributes[sc.CONVERSATIONAL] = flag
        span_name = sc.OP_INVOKE_AGENT if agent is None else f"{sc.OP_INVOKE_AGENT} {agent}"
        with _ids.forced(self._run_id):  # so another process can find this span from the run id alone
            self._start(span_name, None, SpanKind.INTERNAL, attributes)
        self._context = trace.set_span_in_context(self._span)
        self._timeout = _settings.settings.run_timeout if seconds is None else seconds
        self._deadline: float | None = None
        if self._span.is_recording():
            _live_runs[self._run_id] = self
            self._finalizer = weakref.finalize(self, _collected, self._span, self._children, "run")
            self._finalizer.atexit = False  # the exit hook ends it, before the last delivery
            if self._timeout > 0:
                self._deadline = time.monotonic() + self._timeout
                _reaper.watch(self._deadline)

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
        user = checks.text(user_prompt, "r.prompt(user_prompt=...)")
        system = (
            None
            if system_prompt is None
            else messages.system_instructions(system_prompt, "r.prompt(system_prompt=...)")
        )
        whole = None if full_input is None else checks.json_or_text(full_input, "r.prompt(full_input=...)")
        if self._open("prompt"):
            self._prompt = sc.text_messages("user", user)
            self._system_prompt = system
            self._full_input = whole
        return self

    def response(self, text: str, full_output: Any = None) -> Self:
        """The agent's final response, and optionally its whole output (``tcc.run.full_output``)."""
        value = checks.text(text, "r.response(text=...)")
        whole = (
            None if full_output is None else checks.json_or_text(full_output, "r.response(full_output=...)")
        )
        if self._open("response"):
            self._response = value
            self._full_output = whole
        return self

    def metadata(self, data: Mapping[str, str] | None = None, **kwargs: str) -> Self:
        """Key/value metadata, recorded as ``tcc.metadata.<key>``; later calls add and overwrite keys.

        >>> r.metadata({"customer": "acme"}, plan="pro")
        """
        items = checks.metadata(data, kwargs, "r.metadata")
        if self._open("metadata"):
            if self._metadata is None:
                self._metadata = items
            else:
                self._metadata.update(items)
        return self

    def step(self, step_id: str | None = None, *, start_time: object = None) -> Step:
        """Start an LLM call inside this run."""
        run = self if self._open("step") else None  # after a timeout: a late step, still in the trace
        return Step(self._run_id, step_id, start_time=start_time, _run=run, _dest=self._dest)

    def tool_call(
        self, tool_name: str | None = None, tool_call_id: str | None = None, *, start_time: object = None
    ) -> ToolCall:
        """Start a tool call inside this run."""
        run = self if self._open("tool_call") else None
        return ToolCall(
            self._run_id, tool_call_id, tool_name, start_time=start_time, _run=run, _dest=self._dest
        )

    def feedback(self, score: FeedbackScore | None = None, text: str | None = None) -> bool:
        """Record user feedback on this run; see ``tcc.submit_feedback``. Allowed after the run ended."""
        return submit_feedback(self._run_id, score, text, _dest=self._dest)

    def _missing(self) -> str | None:
        return "prompt" if self._prompt is None else None

    def _before_end(self) -> None:
        for child in reversed(list(self._children)):
            child._abandon(f"the run ended before this {child._kind}", ERROR_PARENT_ENDED)

    def _attributes(self) -> dict[str, AttributeValue]:
        attributes: dict[str, AttributeValue] = {}
        if self._prompt is not None:
            attributes[sc.INPUT_MESSAGES] = self._prompt
        if self._system_prompt is not None:
            attributes[sc.SYSTEM_INSTRUCTIONS] = self._system_prompt
        if self._response is not None:
            attributes[sc.OUTPUT_MESSAGES] = sc.text_messages("assistant", self._response, "stop")
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
        if _live_runs.get(self._run_id) is self:
            del _live_runs[self._run_id]
        _remember_run(self._run_id, self._span.get_span_context())


def _parent_for(run_id: str, run: Run | None) -> tuple[Run | None, Context]:
    if run is not None:
        return run, run._context
    live = _live_runs.get(run_id)
    if live is not None and not live._ended:
        return live, live._context
    return None, run_context(run_id)


# A step's span not started yet: its parent, first attributes, start time (ns) and tracer and router.
_Deferred = tuple[Context, dict[str, AttributeValue], int, tuple[trace.Tracer, "SpanProcessor | None"]]


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
        "_deferred",
        "_finish_reason",
        "_model_requested",
        "_model_used",
        "_prompt",
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
    _current = _current_step
    _content_keys = (sc.INPUT_MESSAGES, sc.OUTPUT_MESSAGES)

    def __init__(
        self,
        run_id: str,
        step_id: str | None = None,
        api_key: str | None = None,
        tcc_url: str | None = None,
        *,
        start_time: object = None,
        _run: Run | None = None,
        _dest: _destinations.Destination | None = None,
    ) -> None:
        # A run passes its own id (checked when the run was made): the common path skips the checks.
        self._run_id = run_id if _run is not None else checks.identifier(run_id, "tcc.step(run_id=...)")
        self._step_id = checks.new_id(step_id, "tcc.step(step_id=...)")
        start_ns = None if start_time is None else checks.timestamp(start_time, "tcc.step(start_time=...)")
        dest = _destinations.destination(api_key, tcc_url, "tcc.step") or _dest
        owner, parent = (_run, _run._context) if _run is not None else _parent_for(self._run_id, None)
        super().__init__(dest if dest is not None or owner is None else owner._dest, start_ns)
        self._prompt: str | None = None  # GenAI input messages JSON
        self._response: str | None = None  # a plain-text response, written out at end()
        self._response_json: str | None = None  # or a structured one, already GenAI JSON...
        self._response_reason: str | None = None  # ...and the finish reason written into it
        self._model_requested: str | None = None
        self._model_used: str | None = None
        self._uncached: int | None = None
        self._cached: int | None = None
        self._cache_write: int | None = None
        self._completion: int | None = None
        self._reasoning: int | None = None
        self._cost: float | None = None
        self._finish_reason: str | None = None
        self._tool_definitions: str | None = None
        attributes: dict[str, AttributeValue] = {
            sc.OPERATION_NAME: sc.OP_CHAT,
            sc.STEP_ID: self._step_id,
            sc.RUN_ID: self._run_id,
        }
        self._context: Context | None = None
        self._deferred: _Deferred | None = None
        if owner is not None:
            # The span starts at end(), with every attribute and its final name at once, from the time
            # the step was made: a third less of the SDK's work on the caller's thread than starting it
            # now and writing the rest later. Whatever needs the span sooner (the with form, a tool call
            # made from the step, context()) starts it then.
            # The pipeline is the one of now, not of when the step ends (after a shutdown(), say).
            self._span = None  # type: ignore[assignment]
            start = start_ns if start_ns is not None else time.time_ns()
            self._deferred = (parent, attributes, start, _pipeline.target(self._dest))
        else:
            self._start(sc.OP_CHAT, parent, SpanKind.CLIENT, attributes)
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
        value = messages.input_messages(text, "s.prompt(text=...)")
        if self._open("prompt"):
            self._prompt = value
        return self

    def response(self, text: str | Any) -> Self:
        """What the model answered (required before ``end()``): a str, or the assistant message (an
        OpenAI message, choice or completion, an Anthropic message; dicts or SDK objects). A finish
        reason found in it is used unless ``finish_reason()`` gives one.

        >>> s.response(completion.choices[0])      # message, tool calls and finish reason
        """
        if isinstance(text, str):
            plain: str | None = checks.text(text, "s.response(text=...)")
            structured, found = None, None
        else:
            plain = None
            structured, found = messages.output_messages(text, None, "s.response(text=...)")
        if self._open("response"):
            self._response, self._response_json, self._response_reason = plain, structured, found
        return self

    def model(self, requested: str | None = None, used: str | None = None) -> Self:
        """The model asked for, and the model that answered (often a dated version of it).
        ``s.model("gpt-4o")`` says both, unless the answering model is given (before or after)."""
        req = checks.optional_text(requested, "s.model(requested=...)")
        use = checks.optional_text(used, "s.model(used=...)")
        if self._open("model"):
            if req is not None:
                self._model_requested = req
            if use is not None:
                self._model_used = use
            elif req is not None and self._model_used is None:
                self._model_used = req
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
        count = checks.token_count
        uncached = (
            None if prompt_uncached is None else count(prompt_uncached, "s.tokens(prompt_uncached=...)")
        )
        cached = None if prompt_cached is None else count(prompt_cached, "s.tokens(prompt_cached=...)")
        out = None if completion is None else count(completion, "s.tokens(completion=...)")
        written = None if cache_write is None else count(cache_write, "s.tokens(cache_write=...)")
        thought = None if reasoning is None else count(reasoning, "s.tokens(reasoning=...)")
        total_out = out if out is not None else self._completion
        total_thought = thought if thought is not None else self._reasoning
        if total_out is not None and total_thought is not None and total_thought > total_out:
            raise ValueError(
                f"[TCC] s.tokens(reasoning=...) counts part of the completion and cannot exceed it: "
                f"reasoning={total_thought}, completion={total_out}"
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
        value = checks.cost(real_total, "s.cost(real_total=...)")
        if self._open("cost"):
            self._cost = value
        return self

    def finish_reason(self, reason: str) -> Self:
        """Why the model stopped, e.g. "stop", "length", "tool_calls"."""
        value = checks.text(reason, "s.finish_reason(reason=...)")
        if self._open("finish_reason"):
            self._finish_reason = value
        return self

    def tool_definitions(self, definitions: str | Sequence[Any]) -> Self:
        """The tools offered to the model: a JSON str, or a list of definitions (OpenAI or Anthropic
        shape, dicts or SDK objects), recorded as given."""
        value = messages.tool_definitions(definitions, "s.tool_definitions(definitions=...)")
        if self._open("tool_definitions"):
            self._tool_definitions = value
        return self

    def tool_call(
        self, tool_name: str | None = None, tool_call_id: str | None = None, *, start_time: object = None
    ) -> ToolCall:
        """Start a tool call made from this step; its span is this step's child."""
        self._open("tool_call")
        return ToolCall(
            self._run_id,
            tool_call_id,
            tool_name,
            start_time=start_time,
            _run=self._owner() if self._owner is not None else None,
            _parent=self.context(),
            _dest=self._dest,
        )

    def context(self) -> Context:
        """An OpenTelemetry context with this step's span as the parent."""
        if self._context is None:
            self._context = trace.set_span_in_context(self._started())
        return self._context

    def _started(self) -> trace.Span:
        self._start_deferred({}, None)
        return self._span

    def _started_ns(self) -> int | None:
        deferred = self._deferred
        return deferred[2] if deferred is not None else super()._started_ns()

    def _start_deferred(self, attributes: dict[str, AttributeValue], name: str | None) -> trace.Span | None:
        if self._deferred is None:
            return None
        with self._end_lock:  # one start, whichever thread needs the span first
            deferred, self._deferred = self._deferred, None
            if deferred is None:
                return None  # another thread started it a moment ago
            parent, first, start_ns, target = deferred
            everything = {**first, **attributes}
            self._start(
                name or sc.OP_CHAT, parent, SpanKind.CLIENT, everything, start_ns=start_ns, target=target
            )
        return self._span

    def _missing(self) -> str | None:
        if self._prompt is None:
            return "prompt"
        if self._response is None and self._response_json is None:
            return "response"
        return None

    def _name(self) -> str | None:
        model = self._model_requested or self._model_used
        return f"{sc.OP_CHAT} {model}" if model else None

    def _attributes(self) -> dict[str, AttributeValue]:
        attributes: dict[str, AttributeValue] = {}
        finish_reason = self._finish_reason or self._response_reason
        if self._prompt is not None:
            attributes[sc.INPUT_MESSAGES] = self._prompt
        if self._response is not None:
            attributes[sc.OUTPUT_MESSAGES] = sc.text_messages("assistant", self._response, finish_reason)
        elif self._response_json is not None:
            structured = self._response_json
            if finish_reason is not None and finish_reason != self._response_reason:
                structured = messages.with_finish_reason(structured, finish_reason)
            attributes[sc.OUTPUT_MESSAGES] = structured
        if self._model_requested is not None:
            attributes[sc.REQUEST_MODEL] = self._model_requested
        if self._model_used is not None:
            attributes[sc.RESPONSE_MODEL] = self._model_used
        if self._uncached is not None or self._cached is not None or self._cache_write is not None:
            attributes[sc.USAGE_INPUT_TOKENS] = (
                (self._uncached or 0) + (self._cached or 0) + (self._cache_write or 0)
            )
        if self._cached is not None:
            attributes[sc.USAGE_CACHE_READ_INPUT_TOKENS] = self._cached
        if self._cache_write is not None:
            attributes[sc.USAGE_CACHE_CREATION_INPUT_TOKENS] = self._cache_write
        if self._completion is not None:
            attributes[sc.USAGE_OUTPUT_TOKENS] = self._completion
        if self._reasoning is not None:
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
        _run: Run | None = None,
        _parent: Context | None = None,
        _dest: _destinations.Destination | None = None,
    ) -> None:
        # A run passes its own id (checked when the run was made): the common path skips the checks.
        self._run_id = run_id if _run is not None else checks.identifier(run_id, "tcc.tool_call(run_id=...)")
        self._tool_call_id = checks.new_id(tool_call_id, "tcc.tool_call(tool_call_id=...)")
        self._tool_name = (
            None if tool_name is None else checks.identifier(tool_name, "tcc.tool_call(tool_name=...)")
        )
        start_ns = (
            None if start_time is None else checks.timestamp(start_time, "tcc.tool_call(start_time=...)")
        )
        dest = _destinations.destination(api_key, tcc_url, "tcc.tool_call") or _dest
        owner, parent = _parent_for(self._run_id, _run)
        super().__init__(dest if dest is not None or owner is None else owner._dest, start_ns)
        self._args: str | None = None
        self._result: str | None = None
        attributes: dict[str, AttributeValue] = {
            sc.OPERATION_NAME: sc.OP_EXECUTE_TOOL,
            sc.TOOL_CALL_ID: self._tool_call_id,
            sc.RUN_ID: self._run_id,
        }
        if self._tool_name is not None:
            attributes[sc.TOOL_NAME] = self._tool_name
        name = sc.OP_EXECUTE_TOOL if self._tool_name is None else f"{sc.OP_EXECUTE_TOOL} {self._tool_name}"
        self._start(name, _parent if _parent is not None else parent, SpanKind.INTERNAL, attributes)
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
        value = checks.identifier(tool_name, "tc.name(tool_name=...)")
        if self._open("name"):
            self._tool_name = value
        return self

    def args(self, value: str | Any) -> Self:
        """The call's arguments: a str as is, anything else serialised to JSON here."""
        text = checks.json_or_text(value, "tc.args(value=...)")
        if self._open("args"):
            self._args = text
        return self

    def result(self, value: str | Any) -> Self:
        """The call's result: a str as is, anything else serialised to JSON here."""
        text = checks.json_or_text(value, "tc.result(value=...)")
        if self._open("result"):
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
    *,
    _dest: _destinations.Destination | None = None,
) -> bool:
    """Record user feedback on a run, as a short ``feedback`` span in the run's trace.

    The span carries the GenAI evaluation attributes: ``gen_ai.evaluation.name="user_feedback"``,
    ``gen_ai.evaluation.score.label`` (the score), ``gen_ai.evaluation.score.value`` (+1.0 / -1.0) and
    ``gen_ai.evaluation.explanation`` (the text), plus ``tcc.run.id``.

    >>> tcc.submit_feedback(r.run_id, score="thumbs_up", text="Spot on")
    True
    """
    rid = checks.identifier(run_id, "tcc.submit_feedback(run_id=...)")
    if score is not None and not isinstance(score, str):
        raise TypeError(
            "[TCC] tcc.submit_feedback(score=...) expects 'thumbs_up', 'thumbs_down' or None, "
            f"got {checks.type_name(score)}"
        )
    if score is not None and score not in FEEDBACK_SCORES:
        raise ValueError(
            "[TCC] tcc.submit_feedback(score=...) expects 'thumbs_up', 'thumbs_down' or None, "
            f"got {checks.show(score)}"
        )
    body = checks.optional_text(text, "tcc.submit_feedback(text=...)")
    if not score and not body:
        raise ValueError("[TCC] Cannot submit feedback: at least one of 'score' or 'text' must be provided")
    if body is not None and len(body) > FEEDBACK_TEXT_MAX:
        raise ValueError(
            f"[TCC] Cannot submit feedback: text length ({len(body)}) exceeds maximum of "
            f"{FEEDBACK_TEXT_MAX} characters"
        )
    dest = _destinations.destination(api_key, tcc_url, "tcc.submit_feedback") or _dest
    if dest is None:
        live = _live_runs.get(rid)
        dest = live._dest if live is not None else None
    attributes: dict[str, AttributeValue] = {sc.RUN_ID: rid, sc.EVALUATION_NAME: sc.FEEDBACK_EVALUATION_NAME}
    if score is not None:
        attributes[sc.EVALUATION_SCORE_LABEL] = score
        attributes[sc.EVALUATION_SCORE_VALUE] = FEEDBACK_SCORES[score]
    if body:
        attributes[sc.EVALUATION_EXPLANATION] = body
    policy = _settings.settings
    _content.apply(
        attributes,
        (sc.EVALUATION_EXPLANATION,),
        capture=policy.capture_content,
        mask=policy.mask,
        limit=policy.value_limit,
    )
    try:
        tracer, router = _pipeline.target(dest)
        span = tracer.start_span(sc.FEEDBACK_SPAN_NAME, context=run_context(rid), attributes=attributes)
        if router is not None:
            router.route(span, dest)
        span.end()
    except Exception:
        diag.error_once("feedback", "contextcompany: recording feedback failed")
    return True
