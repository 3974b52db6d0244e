"""SIGTERM: deliver what was recorded, then die of the signal as if tcc had not been there.

    >>> install(deliver=terminate, bound_seconds=lambda: 5.0)   # from the main thread, at setup
    True
    >>> uninstall()                                               # configure(handle_sigterm=False)

Container platforms (``docker stop``, Kubernetes, systemd) stop a process with SIGTERM. Python's default
disposition for it kills the process without running exit handlers, so every span still queued and every
record still open would be lost. When the application left SIGTERM at its default, tcc installs a handler
that:

1. ends what is open and delivers what is queued (``deliver``), on a helper thread, waiting for it at most
   ``bound_seconds()`` (the shutdown timeout);
2. restores the default disposition and raises SIGTERM again, so the process dies as SIGTERM would have
   killed it: its parent sees it killed by signal 15, and no exit handler runs after tcc's delivery.

Why a helper thread: Python runs a signal handler on the main thread between two bytecodes, possibly while
that thread holds one of tcc's locks (a record's end lock, the export queue's lock). Taking such a lock
again on the same thread would deadlock; on another thread it only waits, and the main thread stops
waiting for it at the bound. The helper is started with ``_thread`` rather than ``threading``, whose
``Thread.start()`` takes a module lock the interrupted main thread may be holding.

An application's own handler is never replaced: tcc installs its handler only while the disposition is
``SIG_DFL``, and a handler the application installs later simply replaces tcc's. Installing needs the main
thread (``signal.signal`` refuses elsewhere); from any other thread ``install`` does nothing.
"""

from __future__ import annotations

import _thread
import logging
import os
import signal
import threading
from collections.abc import Callable
from types import FrameType

logger = logging.getLogger("contextcompany")

_deliver: Callable[[], None] | None = None
_bound: Callable[[], float] = lambda: 5.0  # noqa: E731
_terminating = False


def install(deliver: Callable[[], None], bound_seconds: Callable[[], float]) -> bool:
    """Handle SIGTERM with ``deliver`` when the application has not: True when tcc's handler is in place.

    Call it from the main thread; elsewhere, or when SIGTERM already has a handler (the application's, or
    ignored), it changes nothing and returns False. ``bound_seconds`` is read when the signal comes.
    """
    global _deliver, _bound
    if threading.current_thread() is not threading.main_thread():
        return False
    try:
        current = signal.getsignal(signal.SIGTERM)
        if current is _handle:
            _deliver, _bound = deliver, bound_seconds
            return True
        if current is not signal.SIG_DFL:
            return False  # the application's (or SIG_IGN): never replaced
        _deliver, _bound = deliver, bound_seconds
        signal.signal(signal.SIGTERM, _handle)
    except (ValueError, OSError):  # not the main interpreter, or a platform without SIGTERM handling
        return False
    return True


def installed() -> bool:
    """Whether tcc's handler is the current SIGTERM handler."""
    return signal.getsignal(signal.SIGTERM) is _handle


def uninstall() -> None:
    """Put SIGTERM back to its default, if tcc's handler is still the one in place (main thread only)."""
    if threading.current_thread() is not threading.main_thread():
        return
    try:
        if signal.getsignal(signal.SIGTERM) is _handle:
            signal.signal(signal.SIGTERM, signal.SIG_DFL)
    except (ValueError, OSError):
        return


def _handle(signum: int, frame: FrameType | None) -> None:
    """The handler: deliver on a helper thread within the bound, then die of SIGTERM."""
    global _terminating
    if _terminating:
        return  # a second SIGTERM while the first is delivering: the first one ends the process
    _terminating = True
    deliver = _deliver
    if deliver is not None:
        _run_bounded(deliver, _bound())
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    signal.raise_signal(signal.SIGTERM)
    # Still here: the kernel ignores a default-disposition signal sent to PID 1 (a container's init, which
    # is what Python is when started with the exec form), or SIGTERM is blocked on this thread. Exit as a
    # shell reports death by SIGTERM (128 + 15); delivery is done, so no exit handler needs to run.
    os._exit(128 + signal.SIGTERM)


def _run_bounded(work: Callable[[], None], seconds: float) -> None:
    done = _thread.allocate_lock()
    done.acquire()

    def run() -> None:
        try:
            work()
        except BaseException:
            logger.exception("contextcompany: delivering at SIGTERM failed")
        finally:
            done.release()

    try:
        _thread.start_new_thread(run, ())
    except RuntimeError:  # no new threads at interpreter shutdown: the exit hook is already delivering
        return
    done.acquire(timeout=max(seconds, 0.0))
