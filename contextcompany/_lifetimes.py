"""Ends what the application left open: runs past their timeout, records dropped without ``end()``.

    >>> reaper = Reaper(scan=expire_runs)     # scan(now) ends expired runs, returns the next deadline
    >>> reaper.watch(deadline)                 # a run with a timeout started

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

from . import _diag as diag
from . import _forksafe as forksafe

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
