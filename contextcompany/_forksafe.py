"""After ``fork()``: one ordered registry of what each module must renew, and no fork mid-import.

    >>> forksafe.after_fork(renew_my_lock, Phase.LOCKS)           # a module-level hook
    >>> forksafe.after_fork(self._restart, Phase.WORKERS, weak=True)  # a bound method, held weakly

A forked child has one thread, copies of every lock (some maybe held by a thread that no longer exists)
and copies of the parent's open records and queues. What each module must do about that runs in three
phases, in this order, whatever order the modules were imported in:

1. ``LOCKS``: locks and random generators are renewed, so nothing below can block on a dead thread's
   lock or repeat the parent's ids;
2. ``STATE``: state that belongs to the parent is forgotten (its open records, its queued spans);
3. ``WORKERS``: background threads and hooks the child needs are started or registered again.

tcc's export thread imports requests and genai-prices on first use, so the caller's thread never pays
for them. A fork in the middle of such an import would leave the child with that module's import lock
held by a thread that does not exist there, and the child's export thread would wait on it forever. So a
fork waits (at most the length of one import, well under a second) until no such import is under way:

    >>> with importing():
    ...     import genai_prices    # on the export thread: a fork waits until this is done
"""

from __future__ import annotations

import enum
import os
import threading
import weakref
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from . import _diag as diag


class Phase(enum.IntEnum):
    LOCKS = 0
    STATE = 1
    WORKERS = 2


_hooks: list[tuple[Phase, int, Callable[[], Callable[[], None] | None]]] = []
_order = 0
_import_lock = threading.Lock()


def after_fork(hook: Callable[[], None], phase: Phase, *, weak: bool = False) -> None:
    """Run ``hook`` in a forked child, in ``phase``; hooks of one phase run in registration order.

    ``weak=True`` (for a bound method) lets its object be garbage-collected; the hook then goes away.
    """
    global _order
    if weak:
        method = weakref.WeakMethod(hook)
        resolve: Callable[[], Callable[[], None] | None] = method
    else:

        def resolve() -> Callable[[], None]:
            return hook

    _order += 1
    _hooks.append((phase, _order, resolve))


@contextmanager
def importing() -> Iterator[None]:
    """Hold off ``fork()`` while the body imports a module on a background thread."""
    with _import_lock:
        yield


def _before_fork() -> None:
    _import_lock.acquire()


def _after_fork_in_parent() -> None:
    _import_lock.release()


def _after_fork_in_child() -> None:
    global _import_lock
    _import_lock = threading.Lock()
    alive = []
    for phase, order, resolve in sorted(_hooks, key=lambda h: (h[0], h[1])):
        hook = resolve()
        if hook is None:
            continue  # its object is gone
        alive.append((phase, order, resolve))
        try:
            hook()
        except Exception:
            diag.error_once(f"fork {phase.name}", "contextcompany: an after-fork hook failed")
    _hooks[:] = alive


if hasattr(os, "register_at_fork"):
    os.register_at_fork(
        before=_before_fork, after_in_parent=_after_fork_in_parent, after_in_child=_after_fork_in_child
    )
