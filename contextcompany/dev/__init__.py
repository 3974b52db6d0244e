"""Local development tools: an OTLP/HTTP receiver, a SQLite span store with a web viewer, and a
printer that shows agent runs as trees in a terminal.

Example::

    from contextcompany.dev import OTLPReceiver, SpanStore, Viewer

    store = SpanStore("dev.db")
    viewer = Viewer(store)
    with OTLPReceiver(port=4318, on_spans=store.add, web=viewer.handle) as rx:
        ...  # run an agent with OTEL_EXPORTER_OTLP_ENDPOINT=http://127.0.0.1:4318, open rx.endpoint

The same thing from a shell: ``python -m contextcompany dev``. ``RunTreePrinter`` needs rich (the
``cli`` extra) and is imported only when asked for, so the rest works without it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from contextcompany.dev._metrics import MetricTotals
from contextcompany.dev._receiver import OTLPReceiver, ReceivedEvent, ReceivedRequest, ReceivedSpan
from contextcompany.dev._store import RunQuery, SpanStore
from contextcompany.dev._web import Viewer

if TYPE_CHECKING:
    from contextcompany.dev._tree import RunTreePrinter

__all__ = [
    "MetricTotals",
    "OTLPReceiver",
    "ReceivedEvent",
    "ReceivedRequest",
    "ReceivedSpan",
    "RunQuery",
    "RunTreePrinter",
    "SpanStore",
    "Viewer",
]


def __getattr__(name: str) -> Any:
    # rich is the cli extra's: importing the tree printer only when it is used keeps the receiver,
    # the store and the viewer importable without it.
    if name == "RunTreePrinter":
        from contextcompany.dev._tree import RunTreePrinter  # noqa: PLC0415

        return RunTreePrinter
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
