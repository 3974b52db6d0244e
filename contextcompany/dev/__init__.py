"""Local development tools: an OTLP/HTTP receiver and a printer that shows agent runs as trees.

Example::

    from contextcompany.dev import OTLPReceiver, RunTreePrinter

    with OTLPReceiver(port=4318, on_spans=RunTreePrinter()) as rx:
        ...  # run an agent with OTEL_EXPORTER_OTLP_ENDPOINT=http://127.0.0.1:4318

The same thing from a shell: ``python -m contextcompany dev``.
"""

from contextcompany.dev._receiver import OTLPReceiver, ReceivedEvent, ReceivedRequest, ReceivedSpan
from contextcompany.dev._tree import RunTreePrinter

__all__ = ["OTLPReceiver", "ReceivedEvent", "ReceivedRequest", "ReceivedSpan", "RunTreePrinter"]
