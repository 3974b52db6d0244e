"""One export path: the enrichment stages, the batching worker, and the span processor joining them.

    >>> from contextcompany._export import SpanProcessor
    >>> provider.add_span_processor(SpanProcessor(OTLPSpanExporter()))

- ``_stages``: ``Edit`` and the stages (``StepRule``, ``Pricing``, ``RollUp``), plain callables over an
  edit of one ended span, run on the export worker;
- ``_batcher``: the bounded queue, the export worker, flush, shutdown, fork restart, counts, size cut;
- ``_exporter_logs``: ``note()`` and the capture of the OTLP exporter's log lines as failure reasons;
- ``_processor``: ``SpanProcessor`` (public as ``tcc.SpanProcessor``), ``Stats``, and ``Handed`` (a record's
  span for the worker to start).

Nothing in this package imports the pipeline (``_pipeline``) or the records: they use it, not the reverse.
"""

from ._processor import Handed, SpanProcessor, Stats

__all__ = ["Handed", "SpanProcessor", "Stats"]
