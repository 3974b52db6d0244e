"""Ends what the application left open, each ending saying why (``error.type``):

- a run past its timeout (``tcc.timeout``): ``reaper.watch(deadline)`` when the run starts, ``expire``
  ends it on the reaper's thread;
- a record garbage-collected without ``end()`` (``tcc.abandoned``): its finalizer calls ``collected``;
- anything still open at interpreter exit (``tcc.process_exit``): ``end_everything_open``, run by the
  pipeline's exit hook before the last delivery;
- after ``fork()``: the child forgets the records it inherited (``forget_inherited_records``, in the
  after-fork STATE phase); the parent ends and sends them, the child must not send them again.

    >>> reaper = Reaper(scan=expire)          # scan(now) ends expired runs, returns the next deadline
    >>> reaper.watch(deadline)                 # a run with a timeout started

Which records are open is ``_registry``'s; ending one is the record's own ``_abandon()``.

One daemon thread, started on first need (never at import), sleeps until the earliest deadline (at most
a second, so records abandoned to the garbage collector are finished promptly). A garbage-collector
callback only appends to a deque: it may run on any thread, in the middle of any code, even while that
thread holds one of tcc's locks, so it must not take a lock itself; the thread does the work.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING

from opentelemetry.trace import StatusCode

from . import _diag as diag
from . import _forksafe as forksafe
from . import _pipeline
from . import _registry as registry
from . import _semconv as sc

if TYPE_CHECKING:
    from ._records import _Record
    from ._span import SpanHandle

logger = logging.getLogger("contextcompany")

_MAX_SLEEP = 1.0
_MIN_SLEEP = 0.01


class Reaper:
    def __init__(self, scan: Callable[[float], float | None]) -> None:
        self._scan = scan
        self._pending: deque[Callable[[], None]] = deque()
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None
        self._pid = 0
        self._next: float | None = None
        self._once = diag.Once()
        forksafe.after_fork(self._after_fork_in_child, forksafe.Phase.LOCKS, weak=True)

    def _after_fork_in_child(self) -> None:
        # The thread did not survive fork, and a lock held at fork time would never be released.
        self._lock = threading.Lock()
        self._thread = None

    def watch(self, deadline: float) -> None:
        """A deadline (``time.monotonic()`` seconds) now exists; make sure someone wakes up for it."""
        self._ensure()
        next_deadline = self._next
        if next_deadline is None or deadline < next_deadline:
            self._next = deadline
            self._wake.set()

    def defer(self, work: Callable[[], None]) -> None:
        """Run ``work`` on the reaper thread. Safe to call from a garbage-collector callback."""
        # deque.append is atomic and takes no lock. Starting the thread would take locks, so this does
        # not: the thread exists whenever a run does, and exit drains what is left.
        self._pending.append(work)

    def drain(self) -> None:
        """Run deferred work now, on this thread (at interpreter exit)."""
        while self._pending:
            self._call(self._pending.popleft())

    def _ensure(self) -> None:
        if self._thread is not None and self._pid == os.getpid():
            return
        with self._lock:
            if self._thread is not None and self._pid == os.getpid():
                return
            # After fork() the parent's thread does not exist here; the child gets its own.
            self._pid = os.getpid()
            self._wake = threading.Event()
            self._thread = threading.Thread(target=self._loop, name="contextcompany-lifetimes", daemon=True)
            self._thread.start()

    def _loop(self) -> None:
        while True:
            now = time.monotonic()
            next_deadline = self._next
            sleep = _MAX_SLEEP if next_deadline is None else min(_MAX_SLEEP, next_deadline - now)
            self._wake.wait(max(sleep, _MIN_SLEEP))
            self._wake.clear()
            self.drain()
            try:
                self._next = self._scan(time.monotonic())
            except Exception:
                self._log()

    def _call(self, work: Callable[[], None]) -> None:
        try:
            work()
        except Exception:
            self._log()

    def _log(self) -> None:
        self._once.error("end", "contextcompany: ending an abandoned record failed")


# --- the endings ---------------------------------------------------------------------------------------


def expire(now: float) -> float | None:
    """The reaper's scan: end runs past their deadline; return the next deadline."""
    next_deadline: float | None = None
    for run in list(registry.live_runs.values()):
        deadline = run._deadline
        if deadline is None:
            continue
        if deadline <= now:
            run._abandon(
                f"run timed out after {run._timeout:g} s without end() or error()", sc.ERROR_TYPE_TIMEOUT
            )
        elif next_deadline is None or deadline < next_deadline:
            next_deadline = deadline
    return next_deadline


reaper = Reaper(expire)


def _end_collected(handle: SpanHandle, children: dict[_Record, None] | None, kind: str) -> None:
    """A record was garbage-collected without end(): end its open children and its span as errors."""
    for child in reversed(list(children or ())):
        child._abandon(f"its run was dropped before this {child._kind} ended", sc.ERROR_TYPE_ABANDONED)
    handle.finish(
        {sc.ERROR_TYPE: sc.ERROR_TYPE_ABANDONED},
        status=StatusCode.ERROR,
        description=f"{kind} was garbage-collected without end() or error()",
    )


def collected(handle: SpanHandle, children: dict[_Record, None] | None, kind: str) -> None:
    """A record's finalizer: it holds the record's span handle and open children, never the record."""
    # Runs inside the garbage collector, maybe while this thread holds a lock: defer, take no lock.
    reaper.defer(lambda: _end_collected(handle, children, kind))


def end_everything_open() -> None:
    """At interpreter exit: what the application left open is ended, so no span is lost."""
    reaper.drain()
    cause = _pipeline.exit_cause()  # the process exits, or SIGTERM stops it (tcc's handler)
    for run in list(registry.live_runs.values()):
        if cause.error_type != sc.ERROR_TYPE_PROCESS_EXIT:
            # Terminated: every open record says so itself (at a plain exit its run's ending speaks for it).
            for child in reversed(list(run._children)):
                child._abandon(cause.message(child._kind), cause.error_type)
        run._abandon(cause.message("run"), cause.error_type)
    for record in list(registry.orphans):
        record._abandon(cause.message(record._kind), cause.error_type)
    reaper.drain()


_pipeline.on_exit(end_everything_open)


def forget_inherited_records() -> None:
    """In a forked child: the parent's open records are the parent's to end and send, not this one's
    (from its exit hook or its garbage collector)."""
    inherited: list[_Record] = [*registry.live_runs.values(), *registry.orphans]
    inherited += [child for run in list(registry.live_runs.values()) for child in run._children]
    for record in inherited:
        record._ended = record._auto_ended = True
        if record._finalizer is not None:
            record._finalizer.detach()
    registry.live_runs.clear()
    registry.orphans.clear()


forksafe.after_fork(forget_inherited_records, forksafe.Phase.STATE)
