"""What this process knows about runs: the live ones, the recent ones, the orphans, the current ones.

    >>> with tcc.run() as r:
    ...     assert current_run() is r and known_run(r.run_id)
    >>> run_context("run-of-another-process")    # a context whose parent is that run's span

A step or tool call made from a run id joins its run wherever it is: a run alive here (``live_runs``),
one that ended here recently (``recent_runs``: its span context, so a late child still nests under it),
or a run of another process (its span context derived from the run id alone, ``_ids``). Records whose
run is not alive here are ``orphans``: nothing else would end them, so the exit hook does (_lifetimes).

This module only keeps track; what ends records is ``_lifetimes``.
"""

from __future__ import annotations

import threading
import weakref
from collections import OrderedDict
from contextvars import ContextVar
from typing import TYPE_CHECKING, Final

from opentelemetry import trace
from opentelemetry.context import Context

from . import _forksafe as forksafe
from . import _ids

if TYPE_CHECKING:
    from ._records import Run, Step, _Record

live_runs: weakref.WeakValueDictionary[str, Run] = weakref.WeakValueDictionary()
# Steps and tool calls whose run is not alive here (made from another process's run id): ended at exit.
orphans: weakref.WeakSet[_Record] = weakref.WeakSet()
_recent_lock = threading.Lock()
_recent_runs: OrderedDict[str, trace.SpanContext] = OrderedDict()
RECENT_RUNS_MAX: Final = 10_000

current_run_var: ContextVar[Run | None] = ContextVar("contextcompany.current_run", default=None)
current_step_var: ContextVar[Step | None] = ContextVar("contextcompany.current_step", default=None)


def current_run() -> Run | None:
    """The run whose ``with`` block (or ``@tcc.agent`` function) this code runs in, if any.

    It follows ``contextvars``: asyncio tasks and ``contextvars.copy_context().run`` see the run of the
    code that created them.

    >>> with tcc.run() as r:
    ...     assert tcc.current_run() is r
    """
    return current_run_var.get()


def current_step() -> Step | None:
    """The step whose ``with`` block this code runs in, if any (tool calls made here are its children)."""
    return current_step_var.get()


def remember_run(run_id: str, span_context: trace.SpanContext) -> None:
    """A run ended here: keep its span context, so a child that comes late still nests under it."""
    if not span_context.is_valid:
        return
    with _recent_lock:
        _recent_runs[run_id] = span_context
        _recent_runs.move_to_end(run_id)
        while len(_recent_runs) > RECENT_RUNS_MAX:
            _recent_runs.popitem(last=False)


def known_run(run_id: str) -> bool:
    """Whether this process has seen run ``run_id`` (alive, or ended recently)."""
    return run_id in live_runs or run_id in _recent_runs


def run_context(run_id: str) -> Context:
    """The context to start a child of run ``run_id`` in: its live span, the span context of a run that
    ended here recently, or the span context derived from the run id (a run of another process)."""
    run = live_runs.get(run_id)
    if run is not None:
        return run._context
    with _recent_lock:
        span_context = _recent_runs.get(run_id)
    if span_context is None:
        span_context = _ids.run_span_context(run_id)
    return trace.set_span_in_context(trace.NonRecordingSpan(span_context))


def parent_for(run_id: str) -> tuple[Run | None, Context]:
    """The live run a new child of ``run_id`` belongs to (None: not alive here), and its parent context."""
    live = live_runs.get(run_id)
    if live is not None and not live._ended:
        return live, live._context
    return None, run_context(run_id)


def _renew_lock() -> None:
    global _recent_lock
    _recent_lock = threading.Lock()  # another thread may have held it at fork time


forksafe.after_fork(_renew_lock, forksafe.Phase.LOCKS)
