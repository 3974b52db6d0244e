"""What tcc says about itself: one logger, each problem said once, secrets never in a log line.

    >>> diag.warn_once("endpoint", "contextcompany: %s is not a URL", raw)      # a warning, once per key
    >>> try:
    ...     risky()
    ... except Exception:
    ...     diag.error_once("start", "contextcompany: starting the span failed")   # with the traceback

tcc never lets its own failure reach the application: an internal error is caught where it happens and
logged here, once per kind, so a bug that repeats on every span cannot flood the application's logs.
``Once`` keeps its own set of keys for an object that wants its own (one span processor, one reaper);
the module-level functions share the process's.

Every line on the ``contextcompany`` logger passes ``RedactingFilter``: a secret in a collector's error,
an exception or a status message must not reach the application's logs either.
"""

from __future__ import annotations

import logging
import threading

from ._redact import redact

logger = logging.getLogger("contextcompany")


class Once:
    """Logs each key's message the first time only. Thread-safe: two threads racing on one key log once.

    >>> once = Once()
    >>> once.warning("queue", "contextcompany: the export queue is full")
    """

    __slots__ = ("_keys", "_lock")

    def __init__(self) -> None:
        self._keys: set[str] = set()
        self._lock = threading.Lock()

    def first(self, key: str) -> bool:
        """True the first time ``key`` is seen (and remembers it)."""
        if key in self._keys:  # the common case after the first time, without the lock
            return False
        with self._lock:
            if key in self._keys:
                return False
            self._keys.add(key)
            return True

    def warning(self, key: str, message: str, *args: object) -> None:
        if self.first(key):
            logger.warning(message, *args)

    def error(self, key: str, message: str, *args: object) -> None:
        """Call from an ``except`` block: logs the message with the traceback being handled."""
        if self.first(key):
            logger.exception(message, *args)

    def forget(self) -> None:
        """Say everything again (tests; a fresh outage after recovery uses its own keys instead)."""
        with self._lock:
            self._keys.clear()

    def renew_lock(self) -> None:
        """After ``fork()``: a lock held at fork time by another thread would never be released."""
        self._lock = threading.Lock()


_process = Once()


def warn_once(key: str, message: str, *args: object) -> None:
    """A warning, the first time ``key`` is seen in this process."""
    _process.warning(key, message, *args)


def error_once(key: str, message: str, *args: object) -> None:
    """An internal error with its traceback, the first time ``key`` is seen; call it from ``except``."""
    _process.error(key, message, *args)


class RedactingFilter(logging.Filter):
    """Redacts every line tcc logs, tracebacks included."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        clean = redact(message)
        if clean != message:
            record.msg, record.args = clean, None
        if record.exc_info and not record.exc_text:
            record.exc_text = redact(logging.Formatter().formatException(record.exc_info))
        return True


logger.addFilter(RedactingFilter())
