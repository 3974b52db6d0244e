"""The module-level functions of the public API (``tcc.run()``, ``tcc.step()``, ...)."""

from __future__ import annotations

from . import _config
from ._processor import Stats
from ._records import Run, Step, ToolCall


def run(
    run_id: str | None = None,
    session_id: str | None = None,
    conversational: bool | None = None,
    api_key: str | None = None,
    tcc_url: str | None = None,
) -> Run:
    """Start a run: one agent invocation.

    >>> r = tcc.run(session_id="chat-42")
    >>> r.prompt("What is the weather in London?").response("15°C and cloudy.").end()
    """
    return Run(run_id, session_id, conversational, api_key, tcc_url)


def step(
    run_id: str,
    step_id: str | None = None,
    api_key: str | None = None,
    tcc_url: str | None = None,
) -> Step:
    """Start an LLM call in run ``run_id``; same as ``Run.step()`` when that run is alive in this process.

    >>> s = tcc.step(run_id=r.run_id)
    """
    return Step(run_id, step_id, api_key, tcc_url)


def tool_call(
    run_id: str,
    tool_call_id: str | None = None,
    tool_name: str | None = None,
    api_key: str | None = None,
    tcc_url: str | None = None,
) -> ToolCall:
    """Start a tool call in run ``run_id``.

    >>> tcc.tool_call(r.run_id, tool_name="get_weather").args({"city": "Paris"}).result("18°C").end()
    """
    return ToolCall(run_id, tool_call_id, tool_name, api_key, tcc_url)


def flush(timeout_millis: int = 30000) -> bool:
    """Send everything recorded so far; False if that did not finish within the timeout.

    Not needed before a normal exit: what is queued is sent at interpreter exit.

    >>> tcc.flush(timeout_millis=5000)
    True
    """
    if isinstance(timeout_millis, bool) or not isinstance(timeout_millis, int | float) or timeout_millis < 0:
        raise ValueError(f"[TCC] tcc.flush(timeout_millis=...) expects a number >= 0, got {timeout_millis!r}")
    return _config.flush(int(timeout_millis))


def shutdown() -> None:
    """Send what is queued and stop sending; later records still validate but send nothing.

    >>> tcc.shutdown()
    """
    _config.shutdown()


def stats() -> Stats | None:
    """Counts of what the export pipeline did, or None when tcc does not own one (not set up yet,
    disabled, or spans go through the host service's own provider).

    >>> tcc.stats().spans_dropped
    0
    """
    return _config.stats()
