"""What the OTLP exporter says while it works for tcc: kept as the failure's reason, not printed.

    >>> with capturing() as notes:          # on the export thread, around one export
    ...     exporter.export(spans)
    >>> notes[-1]                            # the last cause said (note() or the exporter's own log line)
    'ConnectionError: ...'

The OTLP exporter logs every failed batch and every retry on its own loggers. For tcc's exports those
lines would repeat what tcc says once per outage, so while the export worker exports they are kept as the
failure's reason (``stats().last_error``) instead of printed. Other exporters in the process, which log
from their own threads, are not affected.

Threads: ``capturing()`` is entered by the export worker; ``note()`` and the log filter run on whatever
thread the exporter runs on (that same worker), and do nothing on any other thread.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Final

_EXPORTER_LOGGERS: Final = (
    "opentelemetry.exporter.otlp.proto.http.trace_exporter",
    "opentelemetry.exporter.otlp.proto.http.metric_exporter",  # on the metrics reader's thread (_meter)
    "opentelemetry.exporter.otlp.common.http",
    "opentelemetry.exporter.otlp.proto.http",
)
# The exporter's closing line after retries names no cause; the lines before it (and note()) do.
_GENERIC_FAILURE: Final = "due to timeout, max retries or shutdown"
_exporting = threading.local()


@contextmanager
def capturing(
    on_note: Callable[[str, bool], None] | None = None, *, final: bool = False
) -> Iterator[list[str]]:
    """Collect, on this thread, what the exporter and ``note()`` say until the block ends.

    ``on_note(cause, at_once)`` hears each cause of ``note()`` as it is said, while the exporter may still
    be retrying (so a failure that retrying will not mend is told at once, not after the retries).
    ``final``: this is the last export before the process stops (``final()`` tells tcc's HTTP session,
    which then does not let a refused connection be retried).
    """
    notes: list[str] = []
    _exporting.notes = notes
    _exporting.on_note = on_note
    _exporting.final = final
    _exporting.noted = False
    try:
        yield notes
    finally:
        _exporting.notes = None
        _exporting.on_note = None
        _exporting.final = False


def final() -> bool:
    """Whether the export under way on this thread is one of the last, at shutdown."""
    return bool(getattr(_exporting, "final", False))


def note(message: str, *, at_once: bool = False) -> None:
    """Tell the export under way on this thread why it is failing (tcc's own HTTP session does).
    ``at_once``: a cause retrying will most likely not mend (refused, not found, unauthorized): warn now."""
    notes: list[str] | None = getattr(_exporting, "notes", None)
    if notes is not None:
        notes.append(message)
        _exporting.noted = True
        on_note: Callable[[str, bool], None] | None = getattr(_exporting, "on_note", None)
        if on_note is not None:
            on_note(message, at_once)


class _ExporterLogs(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        notes: list[str] | None = getattr(_exporting, "notes", None)
        if notes is None:
            return True
        message = record.getMessage()
        # Once tcc's session said the cause (with the URL), the exporter's own lines only repeat it.
        if record.levelno >= logging.WARNING and _GENERIC_FAILURE not in message and not _exporting.noted:
            notes.append(message)
        return False


_exporter_logs = _ExporterLogs()
for _name in _EXPORTER_LOGGERS:
    logging.getLogger(_name).addFilter(_exporter_logs)
