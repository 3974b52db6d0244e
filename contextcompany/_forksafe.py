"""No ``fork()`` while tcc's export thread is importing a module.

    >>> with importing():
    ...     import genai_prices    # on the export thread: a fork waits until this is done

The export thread imports requests and genai-prices on first use, so the caller's thread never pays for
them. A fork in the middle of such an import would leave the child with that module's import lock held
by a thread that does not exist there, and the child's export thread would wait on it forever. So a
fork waits (at most the length of one import, well under a second) until no such import is under way.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager

_lock = threading.Lock()


@contextmanager
def importing() -> Iterator[None]:
    with _lock:
        yield


def _before_fork() -> None:
    _lock.acquire()


def _after_fork_in_parent() -> None:
    _lock.release()


def _after_fork_in_child() -> None:
    global _lock
    _lock = threading.Lock()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(
        before=_before_fork, after_in_parent=_after_fork_in_parent, after_in_child=_after_fork_in_child
    )
