"""Send complete runs, steps and tool calls after the fact: from logs, from another system, or replayed
from the JSON payloads contextcompany 2.0.0 sent.

    >>> tcc.send_run(
    ...     run_id="run-42",
    ...     prompt={"user_prompt": "Weather in London?", "system_prompt": "You are a weather agent."},
    ...     response="15°C and cloudy.",
    ...     start_time="2025-01-01T12:00:00Z",
    ...     end_time="2025-01-01T12:00:04.500Z",
    ...     steps=[{"prompt": "Weather in London?", "response": "15°C and cloudy.", "model": "gpt-4o",
    ...             "prompt_uncached_tokens": 120, "completion_tokens": 9}],
    ...     tool_calls=[{"tool_name": "get_weather", "args": {"city": "London"}, "result": {"temp_c": 15}}],
    ... )
    'run-42'

Each call is all or nothing, in two passes over the payload. The first checks every field of the whole
nested record through the checks of ``_fields`` (the ones the setters use, so with the same messages)
into plain checked values; the first bad field raises (its path prepended: ``steps[1].completion_tokens:
[TCC] s.tokens(completion=...) ...``) and nothing is made. The second builds the records from the checked
values, once, and ends them.

Times are what ``tcc.run(start_time=...)`` takes (a datetime, naive read as UTC, or epoch ns) or an ISO
8601 str such as ``"2025-01-01T12:00:00.123Z"``. A record without ``start_time`` starts at its parent's
start (a run or a record sent on its own: now), or at its own ``end_time`` when that is earlier; one
without ``end_time`` ends at its parent's end (a run: now), or at its own start when that is later.
``status_code`` 2 ends a record with ``error(status_message)``, which needs no prompt or response.
"""

from __future__ import annotations

import difflib
import time
from collections.abc import Callable, Mapping, Sequence
from contextlib import suppress
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Final, TypeAlias

from opentelemetry.trace import StatusCode

from . import _checks as checks
from . import _destinations
from . import _feedback as feedback
from . import _fields as fields
from . import _registry as registry
from ._fields import Field
from ._records import Run, Step, ToolCall

__all__ = ["send_run", "send_step", "send_tool_call"]

Time: TypeAlias = datetime | int | str | None
Fields: TypeAlias = Mapping[str, Any]
_Record: TypeAlias = Run | Step | ToolCall
_Window: TypeAlias = tuple[int, int]  # (start, end) in epoch ns
_Values: TypeAlias = list[tuple[Field, Any]]  # checked values, each with the field that stores it

# The keys a nested dict may hold: a record's fields. run_id is the run's: accepted only when it is the
# same, so 2.0.0 step and tool call payloads (which carry it) nest as they are. The destination
# (api_key, tcc_url) is the run's.
_TOOL_CALL_KEYS: Final = fields.names(fields.TOOL_CALL_FIELDS)
_STEP_KEYS: Final = fields.names(fields.STEP_FIELDS)
_PROMPT_KEYS: Final = fields.names(fields.PROMPT_FIELDS)
_FEEDBACK_KEYS: Final = fields.names(fields.FEEDBACK_FIELDS)
# What a setter stores, in the order the setters were called before: token counts one field each, so an
# error names the field that caused it.
_STEP_SETTERS: Final = tuple(f for f in fields.STEP_FIELDS if f.store is not None)
_TOOL_CALL_SETTERS: Final = tuple(f for f in fields.TOOL_CALL_FIELDS if f.store is not None)
_DESTINATION: Final = fields.DESTINATION_NAMES


# --- where an error is ---------------------------------------------------------------------------------


def _join(path: str, field: str) -> str:
    return f"{path}.{field}" if path else field


def _located(exc: TypeError | ValueError, path: str) -> TypeError | ValueError:
    """The same exception type with ``path: `` in front of the message."""
    message = f"{path}: {exc}"
    base = TypeError if isinstance(exc, TypeError) else ValueError
    try:
        located = type(exc)(message)
    except Exception:  # a subclass with another constructor (JSONDecodeError, UnicodeError, ...)
        return base(message)
    return located if str(located) == message else base(message)


class _at:  # noqa: N801  # reads as a phrase: `with _at("steps[1].prompt"): ...`
    """Prefix TypeError/ValueError raised inside with ``path``. A constructor checks several fields at
    once; its messages name the parameter as ``(field=...)``, which ``fields`` maps back to a path.

    A class rather than ``@contextmanager``: it wraps every field of every record, and a
    generator-based context manager costs several times as much."""

    __slots__ = ("fields", "path")

    def __init__(self, path: str, fields: Sequence[str] = ()) -> None:
        self.path = path
        self.fields = fields

    def __enter__(self) -> None:
        return None

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: object) -> None:
        if not isinstance(exc, TypeError | ValueError):
            return
        text = str(exc)
        where = next((_join(self.path, f) for f in self.fields if f"({f}=" in text), self.path)
        if where:
            raise _located(exc, where) from None


def _invalid(path: str, message: str) -> ValueError:
    return ValueError(f"{path}: [TCC] {message}" if path else f"[TCC] {message}")


def _check_keys(data: Fields, allowed: frozenset[str], path: str, what: str) -> None:
    # Typo protection: a misspelt key would otherwise drop its value without a word.
    for key in data:
        if key in allowed:
            continue
        shown = key if isinstance(key, str) else repr(key)
        close = difflib.get_close_matches(shown, sorted(allowed), n=1) if isinstance(key, str) else []
        hint = f"did you mean {close[0]!r}?" if close else f"expected one of {', '.join(sorted(allowed))}"
        raise _invalid(path, f"{what} has an unknown key {key!r}: {hint}")


def _dicts(value: object, path: str, allowed: frozenset[str], what: str) -> Sequence[Fields]:
    """The nested records of a ``steps`` / ``tool_calls`` field: a list (or tuple) of dicts."""
    if value is None:
        return ()
    if isinstance(value, str | bytes | Mapping) or not isinstance(value, Sequence):
        raise TypeError(f"{path}: [TCC] expects a list of {what} dicts, got {checks.type_name(value)}")
    for index, item in enumerate(value):
        if not isinstance(item, Mapping):
            raise TypeError(f"{path}[{index}]: [TCC] expects a {what} dict, got {checks.type_name(item)}")
        _check_keys(item, allowed, f"{path}[{index}]", f"a {what}")
    return value


def _same_run(data: Fields, run_id: str, path: str) -> None:
    given = data.get("run_id")
    if given is not None and str(given) != run_id:
        raise _invalid(
            _join(path, "run_id"),
            f"a nested record belongs to its run: expected {run_id!r} or no run_id, got {given!r}",
        )


# --- times ---------------------------------------------------------------------------------------------


def _ns(value: object, where: str) -> int | None:
    """Epoch ns from what ``checks.timestamp`` takes, or from an ISO 8601 str (the 2.0.0 format)."""
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value)
        except ValueError:
            raise ValueError(
                f"[TCC] {where} expects an ISO 8601 time such as '2025-01-01T12:00:00.123Z', a datetime "
                f"or an int of epoch nanoseconds, got {value!r}"
            ) from None
    return checks.timestamp(value, where)


def _window(data: Fields, path: str, call: str, var: str, parent: _Window) -> _Window:
    with _at(_join(path, "start_time")):
        start = _ns(data.get("start_time"), f"{call}(start_time=...)")
    with _at(_join(path, "end_time")):
        end = _ns(data.get("end_time"), f"{var}.end_time(t=...)")
    # Defaults never invert a window: a given end before the parent's start pulls the start back to it,
    # a given start after the parent's end pushes the end forward. A given end before a given start is
    # left for end_time() to refuse.
    if start is None:
        start = parent[0] if end is None else min(parent[0], end)
    if end is None:
        end = max(parent[1], start)
    return start, end


# --- the first pass: check everything, into plain values ------------------------------------------------


@dataclass(slots=True)
class _Ending:
    """How a checked record ends: its window, and its status (code 2: error(message))."""

    start: int
    end: int
    status: StatusCode
    message: str | None


@dataclass(slots=True)
class _ToolCallIn:
    tool_call_id: str
    tool_name: str | None  # given to the constructor; a "name" is among the values
    values: _Values
    ending: _Ending


@dataclass(slots=True)
class _StepIn:
    step_id: str
    values: _Values
    ending: _Ending
    tool_calls: list[_ToolCallIn] = field(default_factory=list)


@dataclass(slots=True)
class _RunIn:
    run_id: str
    session_id: str | None
    conversational: bool | None
    name: str | None
    dest: _destinations.Destination | None
    values: _Values
    ending: _Ending
    tool_calls: list[_ToolCallIn] = field(default_factory=list)
    steps: list[_StepIn] = field(default_factory=list)
    feedback: tuple[feedback.FeedbackScore | None, str | None] | None = None


def _check(data: Fields, f: Field, path: str) -> Any:
    """The field's checked value (None when not given), errors at ``path.name``."""
    value = data.get(f.name)
    if value is None:
        return None
    with _at(_join(path, f.name)):
        return f.check(value, f.where)


def _values(data: Fields, setters: tuple[Field, ...], path: str) -> _Values:
    out: _Values = []
    for f in setters:
        value = _check(data, f, path)
        if value is not None:
            out.append((f, value))
    return out


def _ending(
    data: Fields, path: str, window: _Window, record: tuple[str, str], missing: str | None
) -> _Ending:
    """Status and end time, checked as status(), end_time() and end() or error() check them."""
    kind, var = record
    code = data.get("status_code")
    code = 0 if code is None else code
    with _at(_join(path, "status_code")):
        status = checks.status_code(code, f"{var}.status")
    with _at(_join(path, "status_message")):
        message = checks.optional_text(data.get("status_message"), f"{var}.status(message=...)")
    start, end = window
    if end < start:
        raise _invalid(_join(path, "end_time"), f"{var}.end_time(t=...) is before the {kind}'s start time")
    if status is not StatusCode.ERROR and missing is not None:
        error = fields.missing(kind, var, missing)
        raise _located(error, path) if path else error
    return _Ending(start, end, status, message)


def _tool_call_in(data: Fields, path: str, parent: _Window) -> _ToolCallIn:
    window = _window(data, path, "tcc.tool_call", "tc", parent)
    tool_name, name = data.get("tool_name"), data.get("name")
    if tool_name is not None and name is not None and tool_name != name:
        raise _invalid(_join(path, "name"), f"tool_name {tool_name!r} and name {name!r} differ: give one")
    tool_call_id = _check(data, fields.TOOL_CALL_ID, path) or checks.uuid4()
    checked_name = _check(data, fields.TOOL_NAME, path)
    values = _values(data, _TOOL_CALL_SETTERS, path)
    if checked_name is not None:  # tool_name= names it at the start; a "name" equal to it adds nothing
        values = [(f, v) for f, v in values if f is not fields.NAME]
    named = checked_name is not None or name is not None
    ending = _ending(data, path, window, ("tool call", "tc"), None if named else "name")
    return _ToolCallIn(tool_call_id, checked_name, values, ending)


def _tool_calls_in(data: Fields, path: str, run_id: str, window: _Window) -> list[_ToolCallIn]:
    out = []
    for index, child in enumerate(_dicts(data.get("tool_calls"), path, _TOOL_CALL_KEYS, "tool call")):
        here = f"{path}[{index}]"
        _same_run(child, run_id, here)
        out.append(_tool_call_in(child, here, window))
    return out


def _step_in(data: Fields, path: str, run_id: str, parent: _Window) -> _StepIn:
    window = _window(data, path, "tcc.step", "s", parent)
    step_id = _check(data, fields.STEP_ID, path) or checks.uuid4()
    values = _values(data, _STEP_SETTERS, path)
    given = {f.name: v for f, v in values}
    with _at(_join(path, fields.REASONING_TOKENS.name)):
        fields.reasoning_within_completion(
            given.get(fields.REASONING_TOKENS.name), given.get(fields.COMPLETION_TOKENS.name)
        )
    # The step's tool calls: its span's children, ended before it.
    tool_calls = _tool_calls_in(data, _join(path, "tool_calls"), run_id, window)
    missing = "prompt" if "prompt" not in given else "response" if "response" not in given else None
    return _StepIn(step_id, values, _ending(data, path, window, ("step", "s"), missing), tool_calls)


def _run_prompt(data: Fields) -> tuple[_Values, bool]:
    """The run's prompt fields, and whether a user prompt was given. ``prompt`` is the user prompt or
    ``{"user_prompt": ..., "system_prompt": ...}``; ``full_input`` needs it."""
    prompt, full_input = data.get("prompt"), data.get("full_input")
    user: object = None
    values: _Values = []
    if isinstance(prompt, Mapping):
        _check_keys(prompt, _PROMPT_KEYS, "prompt", "prompt")
        user, system = prompt.get("user_prompt"), prompt.get("system_prompt")
        if user is not None or system is not None:
            with _at("prompt.user_prompt"):  # a system prompt needs the user prompt it came with
                values.append((fields.USER_PROMPT, fields.USER_PROMPT.check(user, fields.USER_PROMPT.where)))
        if system is not None:
            values.append((fields.SYSTEM_PROMPT, _check(prompt, fields.SYSTEM_PROMPT, "prompt")))
    elif prompt is not None:
        user = prompt
        with _at("prompt"):
            values.append((fields.USER_PROMPT, fields.USER_PROMPT.check(prompt, fields.USER_PROMPT.where)))
    if full_input is not None:
        if user is None:
            raise _invalid("full_input", "needs the prompt it came with: give prompt=... too")
        values.append((fields.FULL_INPUT, _check(data, fields.FULL_INPUT, "")))
    return values, user is not None


def _run_response(data: Fields) -> _Values:
    response, full_output = data.get("response"), data.get("full_output")
    values: _Values = []
    if response is not None:
        values.append((fields.RUN_RESPONSE, _check(data, fields.RUN_RESPONSE, "")))
    if full_output is not None:
        if response is None:
            raise _invalid("full_output", "needs the response it came with: give response=... too")
        values.append((fields.FULL_OUTPUT, _check(data, fields.FULL_OUTPUT, "")))
    return values


def _run_in(data: Fields, now: int) -> _RunIn:
    window = _window(data, "", "tcc.run", "r", (now, now))
    run_id = _check(data, fields.RUN_ID, "") or checks.uuid4()
    session_id = _check(data, fields.SESSION_ID, "")
    conversational = _check(data, fields.CONVERSATIONAL, "")
    name = _check(data, fields.AGENT_NAME, "")
    with _at("", _DESTINATION):
        dest = _destinations.destination(data["api_key"], data["tcc_url"], "tcc.run")
    values, prompted = _run_prompt(data)
    values += _run_response(data)
    metadata = _check(data, fields.METADATA, "")
    if metadata is not None:
        values.append((fields.METADATA, metadata))
    tool_calls = _tool_calls_in(data, "tool_calls", run_id, window)
    steps = []
    for index, child in enumerate(_dicts(data["steps"], "steps", _STEP_KEYS, "step")):
        _same_run(child, run_id, f"steps[{index}]")
        steps.append(_step_in(child, f"steps[{index}]", run_id, window))
    ending = _ending(data, "", window, ("run", "r"), None if prompted else "prompt")
    run = _RunIn(run_id, session_id, conversational, name, dest, values, ending, tool_calls, steps)
    given = data["feedback"]
    if given is not None:
        if not isinstance(given, Mapping):
            raise TypeError(
                f"feedback: [TCC] expects a dict with 'score' and/or 'text', got {checks.type_name(given)}"
            )
        _check_keys(given, _FEEDBACK_KEYS, "feedback", "feedback")
        with _at("feedback"):
            _, score, text = feedback.check(run_id, given.get("score"), given.get("text"))
        run.feedback = (score, text)
    return run


# --- the second pass: build the records from checked values, once ----------------------------------


def _store(record: _Record, values: _Values) -> None:
    for f, value in values:
        assert f.store is not None
        f.store(record, value)


def _end(record: _Record, ending: _Ending) -> None:
    record._close(ending.status, ending.message, ending.end)


def _build_tool_call(
    make: Callable[[str, str | None, int], ToolCall], checked: _ToolCallIn, opened: list[_Record]
) -> ToolCall:
    tc = make(checked.tool_call_id, checked.tool_name, checked.ending.start)
    opened.append(tc)
    _store(tc, checked.values)
    _end(tc, checked.ending)
    return tc


def _build_step(step: Step, checked: _StepIn, opened: list[_Record]) -> Step:
    opened.append(step)
    _store(step, checked.values)
    for child in checked.tool_calls:
        _build_tool_call(step._tool_call, child, opened)
    _end(step, checked.ending)
    return step


def _build_run(checked: _RunIn, opened: list[_Record]) -> str:
    run = Run._checked(
        checked.run_id,
        checked.session_id,
        checked.conversational,
        checked.name,
        0.0,  # ended within this call: no deadline to watch
        start_ns=checked.ending.start,
        dest=checked.dest,
    )
    opened.append(run)
    _store(run, checked.values)
    for tool_call in checked.tool_calls:
        _build_tool_call(run._tool_call, tool_call, opened)
    for step in checked.steps:
        _build_step(run._step(step.step_id, step.ending.start), step, opened)
    _end(run, checked.ending)
    if checked.feedback is not None:
        feedback.send(run.run_id, *checked.feedback, checked.dest)
    return run.run_id


def _send(build: Callable[[list[_Record]], str]) -> str:
    """Build from checked values; should that fail midway all the same, what was started is ended as failed
    now rather than abandoned at exit."""
    opened: list[_Record] = []
    try:
        return build(opened)
    except BaseException as exc:
        for record in reversed(opened):
            with suppress(Exception):
                record.error(f"contextcompany: sending this record failed midway: {exc}")
        raise


# --- the public functions ------------------------------------------------------------------------------


def send_run(
    *,
    prompt: str | Mapping[str, Any] | None,
    run_id: str | None = None,
    response: str | None = None,
    start_time: Time = None,
    end_time: Time = None,
    session_id: str | None = None,
    conversational: bool | None = None,
    name: str | None = None,
    metadata: Mapping[str, str | bool | int | float] | None = None,
    status_code: int = 0,
    status_message: str | None = None,
    full_input: Any = None,
    full_output: Any = None,
    steps: Sequence[Mapping[str, Any]] = (),
    tool_calls: Sequence[Mapping[str, Any]] = (),
    feedback: Mapping[str, Any] | None = None,
    api_key: str | None = None,
    tcc_url: str | None = None,
) -> str:
    """Send a complete run with its steps, tool calls and feedback, after the fact; returns its run id.

    ``prompt`` is a str or ``{"user_prompt": ..., "system_prompt": ...}``. ``steps`` and ``tool_calls``
    are dicts with the ``send_step`` / ``send_tool_call`` fields minus ``run_id``; a step's own
    ``tool_calls`` are its children. ``feedback`` is ``{"score"?, "text"?}``. All or nothing: a bad
    field anywhere raises TypeError/ValueError naming its path (``steps[1].completion_tokens: ...``)
    and nothing is sent.

    >>> tcc.send_run(prompt="Hi", response="Hello!", start_time="2025-01-01T12:00:00Z",
    ...              end_time="2025-01-01T12:00:01Z", steps=[{"prompt": "Hi", "response": "Hello!"}])
    '6f1c...'
    """
    data: dict[str, Any] = {
        "run_id": run_id,
        "prompt": prompt,
        "response": response,
        "start_time": start_time,
        "end_time": end_time,
        "session_id": session_id,
        "conversational": conversational,
        "name": name,
        "metadata": metadata,
        "status_code": status_code,
        "status_message": status_message,
        "full_input": full_input,
        "full_output": full_output,
        "steps": steps,
        "tool_calls": tool_calls,
        "feedback": feedback,
        "api_key": api_key,
        "tcc_url": tcc_url,
    }
    checked = _run_in(data, time.time_ns())
    return _send(lambda opened: _build_run(checked, opened))


def send_step(
    *,
    run_id: str,
    prompt: str | Sequence[Any] | None = None,
    response: str | Any = None,
    step_id: str | None = None,
    model: str | None = None,
    model_requested: str | None = None,
    model_used: str | None = None,
    prompt_uncached_tokens: int | None = None,
    prompt_cached_tokens: int | None = None,
    completion_tokens: int | None = None,
    cache_write_tokens: int | None = None,
    reasoning_tokens: int | None = None,
    real_total_cost: float | None = None,
    finish_reason: str | None = None,
    tool_definitions: str | Sequence[Any] | None = None,
    start_time: Time = None,
    end_time: Time = None,
    status_code: int = 0,
    status_message: str | None = None,
    tool_calls: Sequence[Mapping[str, Any]] = (),
    api_key: str | None = None,
    tcc_url: str | None = None,
) -> str:
    """Send one complete LLM call of run ``run_id`` after the fact; returns its step id.

    It joins the run as ``tcc.step(run_id=...)`` does: a run alive here, one that ended here recently,
    or, for a run of another process, the run's trace derived from its id. ``tool_calls`` (dicts with
    the ``send_tool_call`` fields minus ``run_id``) are the step's children. All or nothing.

    >>> tcc.send_step(run_id=run_id, prompt="Hi", response="Hello!", model="gpt-4o", completion_tokens=3)
    """
    data: dict[str, Any] = {
        "step_id": step_id,
        "prompt": prompt,
        "response": response,
        "model": model,
        "model_requested": model_requested,
        "model_used": model_used,
        "prompt_uncached_tokens": prompt_uncached_tokens,
        "prompt_cached_tokens": prompt_cached_tokens,
        "completion_tokens": completion_tokens,
        "cache_write_tokens": cache_write_tokens,
        "reasoning_tokens": reasoning_tokens,
        "real_total_cost": real_total_cost,
        "finish_reason": finish_reason,
        "tool_definitions": tool_definitions,
        "start_time": start_time,
        "end_time": end_time,
        "status_code": status_code,
        "status_message": status_message,
        "tool_calls": tool_calls,
    }
    with _at("run_id"):
        rid = fields.STEP_RUN_ID.check(run_id, fields.STEP_RUN_ID.where)
    checked = _step_in(data, "", rid, (now := time.time_ns(), now))
    with _at("", _DESTINATION):
        dest = _destinations.destination(api_key, tcc_url, "tcc.step")

    def build(opened: list[_Record]) -> str:
        owner, parent = registry.parent_for(rid)
        where = dest if dest is not None or owner is None else owner._dest
        step = Step._make(rid, checked.step_id, checked.ending.start, dest=where, owner=owner, parent=parent)
        return _build_step(step, checked, opened).step_id

    return _send(build)


def send_tool_call(
    *,
    run_id: str,
    tool_name: str | None = None,
    name: str | None = None,
    tool_call_id: str | None = None,
    args: Any = None,
    result: Any = None,
    start_time: Time = None,
    end_time: Time = None,
    status_code: int = 0,
    status_message: str | None = None,
    api_key: str | None = None,
    tcc_url: str | None = None,
) -> str:
    """Send one complete tool call of run ``run_id`` after the fact; returns its tool call id.

    ``name`` is another spelling of ``tool_name`` (one of them is needed unless ``status_code`` is 2).
    It joins the run as ``tcc.tool_call(run_id=...)`` does. All or nothing.

    >>> tcc.send_tool_call(run_id=run_id, tool_name="get_weather", args={"city": "Paris"}, result="18°C")
    """
    data: dict[str, Any] = {
        "tool_call_id": tool_call_id,
        "tool_name": tool_name,
        "name": name,
        "args": args,
        "result": result,
        "start_time": start_time,
        "end_time": end_time,
        "status_code": status_code,
        "status_message": status_message,
    }
    with _at("run_id"):
        rid = fields.TOOL_CALL_RUN_ID.check(run_id, fields.TOOL_CALL_RUN_ID.where)
    checked = _tool_call_in(data, "", (now := time.time_ns(), now))
    with _at("", _DESTINATION):
        dest = _destinations.destination(api_key, tcc_url, "tcc.tool_call")

    def make(tool_call_id: str, tool_name: str | None, start: int) -> ToolCall:
        owner, parent = registry.parent_for(rid)
        where = dest if dest is not None or owner is None else owner._dest
        return ToolCall._make(rid, tool_call_id, tool_name, start, dest=where, owner=owner, parent=parent)

    return _send(lambda opened: _build_tool_call(make, checked, opened).tool_call_id)
