"""The module-level functions of the public API (``tcc.run()``, ``tcc.step()``, ...)."""

from __future__ import annotations

import math
import threading

from . import _pipeline
from ._export import Stats
from ._records import Run, Step, ToolCall
from ._registry import current_run, current_step, known_run


def run(
    run_id: str | None = None,
    session_id: str | None = None,
    conversational: bool | None = None,
    api_key: str | None = None,
    tcc_url: str | None = None,
    *,
    name: str | None = None,
    timeout: float | None = None,
    start_time: object = None,
) -> Run:
    """Start a run: one agent invocation. Use it as a context manager or call ``end()``.

    ``name`` names the agent (span ``invoke_agent {name}``, ``gen_ai.agent.name``); ``timeout`` (seconds,
    default 20 minutes, 0 disables) ends the run as an error if it is still open by then; ``start_time``
    (a datetime or epoch ns) records a run that started earlier.

    >>> with tcc.run(name="weather", session_id="chat-42") as r:
    ...     r.prompt("What is the weather in London?").response("15°C and cloudy.")
    """
    return Run(
        run_id,
        session_id,
        conversational,
        api_key,
        tcc_url,
        name=name,
        timeout=timeout,
        start_time=start_time,
    )


def _no_run(call: str) -> TypeError:
    return TypeError(
        f"[TCC] {call} needs run_id=... here: there is no current run (inside `with tcc.run():` or an "
        "@tcc.agent function, it uses that run)"
    )


def step(
    run_id: str | None = None,
    step_id: str | None = None,
    api_key: str | None = None,
    tcc_url: str | None = None,
    *,
    start_time: object = None,
) -> Step:
    """Start an LLM call in run ``run_id``, or in the current run when no ``run_id`` is given.

    >>> s = tcc.step(run_id=r.run_id)      # 2.0.0 style, from anywhere
    >>> with tcc.run() as r:
    ...     with tcc.step() as s:            # the current run
    ...         s.prompt("Hello").response("World")
    """
    if run_id is None:
        current = current_run()
        if current is None:
            raise _no_run("tcc.step()")
        if api_key is None and tcc_url is None:
            return current.step(step_id, start_time=start_time)
        run_id = current.run_id
    return Step(run_id, step_id, api_key, tcc_url, start_time=start_time)


def tool_call(
    run_id: str | None = None,
    tool_call_id: str | None = None,
    tool_name: str | None = None,
    api_key: str | None = None,
    tcc_url: str | None = None,
    *,
    start_time: object = None,
) -> ToolCall:
    """Start a tool call in run ``run_id``, or in the current run (and current step) without one.

    Inside a run, ``tcc.tool_call("get_weather")`` names the tool; the 2.0.0 form
    ``tcc.tool_call(run_id, tool_call_id=None, tool_name=None)`` keeps working everywhere: a first
    argument that is the id of a run this process knows is read as a run id. Pass ``run_id=`` by keyword
    to be explicit.

    >>> with tcc.run() as r:
    ...     tcc.tool_call("get_weather").args({"city": "Paris"}).result("18°C").end()
    """
    current = current_run()
    if run_id is not None and tool_name is None and current is not None and not known_run(run_id):
        tool_name, run_id = run_id, None
    if run_id is None:
        if current is None:
            raise _no_run("tcc.tool_call()")
        step = current_step()
        if step is not None and step.run_id == current.run_id and api_key is None and tcc_url is None:
            return step.tool_call(tool_name, tool_call_id, start_time=start_time)
        if api_key is None and tcc_url is None:
            return current.tool_call(tool_name, tool_call_id, start_time=start_time)
        run_id = current.run_id
    return ToolCall(run_id, tool_call_id, tool_name, api_key, tcc_url, start_time=start_time)


def flush(timeout_millis: int = 30000) -> bool:
    """Send everything recorded so far; False if that did not finish within the timeout.

    Not needed before a normal exit: what is queued is sent at interpreter exit.

    >>> tcc.flush(timeout_millis=5000)
    True
    """
    if isinstance(timeout_millis, bool) or not isinstance(timeout_millis, int | float):
        raise TypeError(
            f"[TCC] tcc.flush(timeout_millis=...) expects a number >= 0, got {type(timeout_millis).__name__}"
        )
    if not 0 <= timeout_millis < math.inf:
        raise ValueError(
            f"[TCC] tcc.flush(timeout_millis=...) expects a finite number >= 0, got {timeout_millis}"
        )
    # threading waits take at most TIMEOUT_MAX seconds; longer is forever for any caller.
    return _pipeline.flush(int(min(timeout_millis, threading.TIMEOUT_MAX * 1000)))


def shutdown() -> None:
    """Send what is queued and stop sending; later records still validate but send nothing.

    >>> tcc.shutdown()
    """
    _pipeline.shutdown()


def stats() -> Stats:
    """Counts of what tcc's span processors did: tcc's own pipeline, or in drop-in use every
    ``tcc.SpanProcessor`` on the service's provider. All zeros when there is none (not set up yet,
    disabled, or a service pipeline without one).

    >>> tcc.stats().spans_dropped
    0
    """
    return _pipeline.stats()
