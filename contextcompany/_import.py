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

Each call is all or nothing. The whole nested record is first built inside ``_pipeline.dry_run()``, through
the same ``Run`` / ``Step`` / ``ToolCall`` setters the live API uses, so it is checked by the same code
with the same messages; the first bad field raises (its path prepended: ``steps[1].completion_tokens:
[TCC] s.tokens(completion=...) ...``) and nothing is sent. Only then is it built again for real.

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
from datetime import datetime
from typing import Any, Final, TypeAlias

from . import _checks as checks
from . import _pipeline
from ._records import Run, Step, ToolCall, submit_feedback

__all__ = ["send_run", "send_step", "send_tool_call"]

Time: TypeAlias = datetime | int | str | None
Fields: TypeAlias = Mapping[str, Any]
_Record: TypeAlias = Run | Step | ToolCall
_Window: TypeAlias = tuple[int, int]  # (start, end) in epoch ns

# The keys a nested dict may hold: the send_step / send_tool_call keywords minus api_key / tcc_url (the
# destination is the run's). run_id is the run's: accepted only when it is the same, so 2.0.0 step and
# tool call payloads (which carry it) nest as they are.
_TOOL_CALL_KEYS: Final = frozenset(
    {
        "run_id",
        "tool_call_id",
        "tool_name",
        "name",
        "args",
        "result",
        "start_time",
        "end_time",
        "status_code",
        "status_message",
    }
)
_STEP_KEYS: Final = frozenset(
    {
        "run_id",
        "step_id",
        "prompt",
        "response",
        "model",
        "model_requested",
        "model_used",
        "prompt_uncached_tokens",
        "prompt_cached_tokens",
        "completion_tokens",
        "cache_write_tokens",
        "reasoning_tokens",
        "real_total_cost",
        "finish_reason",
        "tool_definitions",
        "start_time",
        "end_time",
        "status_code",
        "status_message",
        "tool_calls",
    }
)
_PROMPT_KEYS: Final = frozenset({"user_prompt", "system_prompt"})
_FEEDBACK_KEYS: Final = frozenset({"score", "text"})

# Field -> setter call, in the order they are applied. Token counts go one field per call, so an error
# names the field that caused it (and reasoning <= completion is checked once both are known).
_STEP_SETTERS: Final[tuple[tuple[str, Callable[[Step, Any], object]], ...]] = (
    ("prompt", lambda s, v: s.prompt(v)),
    ("response", lambda s, v: s.response(v)),
    ("model", lambda s, v: s.model(v)),
    ("model_requested", lambda s, v: s.model(requested=v)),
    ("model_used", lambda s, v: s.model(used=v)),
    ("prompt_uncached_tokens", lambda s, v: s.tokens(prompt_uncached=v)),
    ("prompt_cached_tokens", lambda s, v: s.tokens(prompt_cached=v)),
    ("cache_write_tokens", lambda s, v: s.tokens(cache_write=v)),
    ("completion_tokens", lambda s, v: s.tokens(completion=v)),
    ("reasoning_tokens", lambda s, v: s.tokens(reasoning=v)),
    ("real_total_cost", lambda s, v: s.cost(v)),
    ("finish_reason", lambda s, v: s.finish_reason(v)),
    ("tool_definitions", lambda s, v: s.tool_definitions(v)),
)
_TOOL_CALL_SETTERS: Final[tuple[tuple[str, Callable[[ToolCall, Any], object]], ...]] = (
    ("args", lambda tc, v: tc.args(v)),
    ("result", lambda tc, v: tc.result(v)),
)


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

    A class rather than ``@contextmanager``: it wraps every field of every record, twice, and a
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


# --- building the records --------------------------------------------------------------------------


def _finish(record: _Record, data: Fields, path: str, end: int) -> None:
    """Status and end time, then end() or, for status_code 2, error()."""
    code = data.get("status_code")
    code = 0 if code is None else code
    message = data.get("status_message")
    with _at(_join(path, "status_code")):
        record.status(code)
    if message is not None:
        with _at(_join(path, "status_message")):
            record.status(code, message)
    with _at(_join(path, "end_time")):
        record.end_time(end)
    with _at(path):
        if code == 2:
            record.error(message or "")
        else:
            record.end()


def _tool_call(
    make: Callable[[str | None, str | None, int], ToolCall],
    data: Fields,
    path: str,
    parent: _Window,
    opened: list[_Record],
) -> ToolCall:
    start, end = _window(data, path, "tcc.tool_call", "tc", parent)
    tool_name, name = data.get("tool_name"), data.get("name")
    if tool_name is not None and name is not None and tool_name != name:
        raise _invalid(_join(path, "name"), f"tool_name {tool_name!r} and name {name!r} differ: give one")
    with _at(path, ("run_id", "tool_call_id", "tool_name", "api_key", "tcc_url")):
        tc = make(tool_name, data.get("tool_call_id"), start)
    opened.append(tc)
    if tool_name is None and name is not None:
        with _at(_join(path, "name")):
            tc.name(name)
    for field, setter in _TOOL_CALL_SETTERS:
        value = data.get(field)
        if value is not None:
            with _at(_join(path, field)):
                setter(tc, value)
    _finish(tc, data, path, end)
    return tc


def _step(
    make: Callable[[str | None, int], Step],
    data: Fields,
    path: str,
    parent: _Window,
    opened: list[_Record],
) -> Step:
    start, end = _window(data, path, "tcc.step", "s", parent)
    with _at(path, ("run_id", "step_id", "api_key", "tcc_url")):
        step = make(data.get("step_id"), start)
    opened.append(step)
    for field, setter in _STEP_SETTERS:
        value = data.get(field)
        if value is not None:
            with _at(_join(path, field)):
                setter(step, value)
    # The step's tool calls: its span's children, ended before it.
    children = _join(path, "tool_calls")
    for index, child in enumerate(_dicts(data.get("tool_calls"), children, _TOOL_CALL_KEYS, "tool call")):
        here = f"{children}[{index}]"
        _same_run(child, step.run_id, here)
        _tool_call(
            lambda name, tcid, t: step.tool_call(name, tcid, start_time=t), child, here, (start, end), opened
        )
    _finish(step, data, path, end)
    return step


def _run_prompt(run: Run, data: Fields) -> None:
    # One r.prompt() call takes user prompt, system prompt and full input; it is called again for each
    # part that is given, so an error names the part that caused it.
    prompt, full_input = data.get("prompt"), data.get("full_input")
    user: object = None
    system: object = None
    if isinstance(prompt, Mapping):
        _check_keys(prompt, _PROMPT_KEYS, "prompt", "prompt")
        user, system = prompt.get("user_prompt"), prompt.get("system_prompt")
        if user is not None or system is not None:
            with _at("prompt.user_prompt"):
                run.prompt(user)  # type: ignore[arg-type]  # checked by r.prompt()
        if system is not None:
            with _at("prompt.system_prompt"):
                run.prompt(user, system)  # type: ignore[arg-type]
    elif prompt is not None:
        user = prompt
        with _at("prompt"):
            run.prompt(prompt)
    if full_input is not None:
        if user is None:
            raise _invalid("full_input", "needs the prompt it came with: give prompt=... too")
        with _at("full_input"):
            run.prompt(user, system, full_input)  # type: ignore[arg-type]


def _run_response(run: Run, data: Fields) -> None:
    response, full_output = data.get("response"), data.get("full_output")
    if response is not None:
        with _at("response"):
            run.response(response)
    if full_output is not None:
        if response is None:
            raise _invalid("full_output", "needs the response it came with: give response=... too")
        with _at("full_output"):
            run.response(response, full_output)


def _run(data: Fields, now: int, opened: list[_Record]) -> str:
    start, end = _window(data, "", "tcc.run", "r", (now, now))
    with _at("", ("run_id", "session_id", "conversational", "name", "api_key", "tcc_url")):
        run = Run(
            data["run_id"],
            data["session_id"],
            data["conversational"],
            data["api_key"],
            data["tcc_url"],
            name=data["name"],
            timeout=0,  # ended within this call: no deadline to watch
            start_time=start,
        )
    opened.append(run)
    _run_prompt(run, data)
    _run_response(run, data)
    if data["metadata"] is not None:
        with _at("metadata"):
            run.metadata(data["metadata"])
    for index, child in enumerate(_dicts(data["tool_calls"], "tool_calls", _TOOL_CALL_KEYS, "tool call")):
        _same_run(child, run.run_id, f"tool_calls[{index}]")
        _tool_call(
            lambda name, tcid, t: run.tool_call(name, tcid, start_time=t),
            child,
            f"tool_calls[{index}]",
            (start, end),
            opened,
        )
    for index, child in enumerate(_dicts(data["steps"], "steps", _STEP_KEYS, "step")):
        _same_run(child, run.run_id, f"steps[{index}]")
        _step(
            lambda sid, t: run.step(sid, start_time=t),
            child,
            f"steps[{index}]",
            (start, end),
            opened,
        )
    _finish(run, data, "", end)
    feedback = data["feedback"]
    if feedback is not None:
        if not isinstance(feedback, Mapping):
            raise TypeError(
                f"feedback: [TCC] expects a dict with 'score' and/or 'text', got {checks.type_name(feedback)}"
            )
        _check_keys(feedback, _FEEDBACK_KEYS, "feedback", "feedback")
        with _at("feedback"):
            submit_feedback(
                run.run_id, feedback.get("score"), feedback.get("text"), data["api_key"], data["tcc_url"]
            )
    return run.run_id


def _send(build: Callable[[list[_Record]], str]) -> str:
    """Build the record twice: a dry pass that checks everything and sends nothing, then the real one."""
    with _pipeline.dry_run():
        build([])
    opened: list[_Record] = []
    try:
        return build(opened)
    except BaseException as exc:
        # Not expected once the dry pass succeeded (the same calls with the same values); should it
        # happen, what was started is ended as failed now rather than abandoned at exit.
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
    rid = checks.uuid4() if run_id is None else run_id  # the same id in both passes
    data: dict[str, Any] = {
        "run_id": rid,
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
    now = time.time_ns()  # "now" must be the same instant in both passes
    return _send(lambda opened: _run(data, now, opened))


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
    sid = checks.uuid4() if step_id is None else step_id
    data: dict[str, Any] = {
        "step_id": sid,
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
    now = time.time_ns()

    def build(opened: list[_Record]) -> str:
        def make(step_id: str | None, start: int) -> Step:
            return Step(run_id, step_id, api_key, tcc_url, start_time=start)

        return _step(make, data, "", (now, now), opened).step_id

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
    tcid = checks.uuid4() if tool_call_id is None else tool_call_id
    data: dict[str, Any] = {
        "tool_call_id": tcid,
        "tool_name": tool_name,
        "name": name,
        "args": args,
        "result": result,
        "start_time": start_time,
        "end_time": end_time,
        "status_code": status_code,
        "status_message": status_message,
    }
    now = time.time_ns()

    def build(opened: list[_Record]) -> str:
        def make(tool_name: str | None, tool_call_id: str | None, start: int) -> ToolCall:
            return ToolCall(run_id, tool_call_id, tool_name, api_key, tcc_url, start_time=start)

        return _tool_call(make, data, "", (now, now), opened).tool_call_id

    return _send(build)
